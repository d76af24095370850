/**
 * A small in-process test network, used where @quiver/transport's memory transport does not model what a test
 * needs: a remote address per connection (`x-test-ip` header, for per-IP limits), a path that silently stops
 * delivering (`blackhole()`, for heartbeat timeouts), a `reliable-only` carrier, a never-ready attempt (a blocked
 * transport for the fallback race) and a one-slot datagram reordering. Real WHATWG streams with bounded buffers, so
 * backpressure is real; datagram loss from a seeded generator.
 */
import type {
  ConnectOptions,
  IncomingSession,
  QuiverBidirectionalStream,
  QuiverDatagramDuplexStream,
  QuiverSession,
  SessionRequest,
  TransportListener,
  TransportReliability,
  TransportStats,
  WebTransportCloseInfo,
} from '@quiver/transport';
import { createRng } from '../../src/clock.js';

export interface LinkOptions {
  /** Probability a datagram is lost, each direction. */
  loss?: number;
  seed?: number;
  maxDatagramSize?: number;
  reliability?: TransportReliability;
  /** Bytes a stream buffers (writer side) before `desiredSize` goes to 0. */
  streamHighWaterMark?: number;
  /** Datagrams a receiver buffers before dropping. */
  datagramQueue?: number;
  /** One-way delay in ms, timed by `clock` (streams stay ordered). */
  delayMs?: number;
  clock?: { setTimeout(fn: () => void, ms: number): unknown };
  /** Probability a datagram is held back and delivered after the next one (reordering). */
  reorder?: number;
}

class Pipe {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  private controller!: TransformStreamDefaultController<Uint8Array>;
  blackholed = false;
  constructor(hwm: number, link: LinkOptions) {
    const ts = new TransformStream<Uint8Array, Uint8Array>(
      {
        start: (c) => {
          this.controller = c;
        },
        transform: async (chunk, c) => {
          const copy = chunk.slice();
          if (link.delayMs && link.clock)
            await new Promise((r) => link.clock!.setTimeout(() => r(undefined), link.delayMs!));
          // A blackholed path never delivers and never frees buffer space: the sender sees backpressure.
          if (this.blackholed) await new Promise(() => {});
          c.enqueue(copy);
        },
      },
      { highWaterMark: hwm, size: (c) => c.byteLength },
      { highWaterMark: 0 },
    );
    this.readable = ts.readable;
    this.writable = ts.writable;
  }
  kill(reason: unknown): void {
    try {
      this.controller.error(reason);
    } catch {
      // already errored
    }
  }
}

export class MemorySession implements QuiverSession {
  readonly transport = 'memory';
  readonly reliability: TransportReliability;
  readonly ready: Promise<void>;
  readonly closed: Promise<WebTransportCloseInfo>;
  readonly incomingBidirectionalStreams: ReadableStream<QuiverBidirectionalStream>;
  readonly incomingUnidirectionalStreams: ReadableStream<ReadableStream<Uint8Array>>;
  readonly datagrams: QuiverDatagramDuplexStream;
  peer!: MemorySession;
  isClosed = false;
  bytesSent = 0;
  bytesReceived = 0;
  private readyResolve!: () => void;
  private readyReject!: (err: unknown) => void;
  private closedResolve!: (info: WebTransportCloseInfo) => void;
  private bidiCtl!: ReadableStreamDefaultController<QuiverBidirectionalStream>;
  private uniCtl!: ReadableStreamDefaultController<ReadableStream<Uint8Array>>;
  private dgramCtl!: ReadableStreamDefaultController<Uint8Array>;
  private readonly pipes = new Set<Pipe>();
  private readonly rng: () => number;
  readonly dropped = { lost: 0, queueFull: 0 };

  constructor(
    private readonly opts: LinkOptions,
    seed: number,
  ) {
    this.reliability = opts.reliability ?? 'supports-unreliable';
    this.rng = (() => {
      const r = createRng(seed);
      return r;
    })();
    this.ready = new Promise((res, rej) => {
      this.readyResolve = res;
      this.readyReject = rej;
    });
    this.ready.catch(() => {});
    this.closed = new Promise((res) => {
      this.closedResolve = res;
    });
    this.incomingBidirectionalStreams = new ReadableStream({
      start: (c) => {
        this.bidiCtl = c;
      },
    });
    this.incomingUnidirectionalStreams = new ReadableStream({
      start: (c) => {
        this.uniCtl = c;
      },
    });
    const dgReadable = new ReadableStream<Uint8Array>(
      {
        start: (c) => {
          this.dgramCtl = c;
        },
      },
      { highWaterMark: opts.datagramQueue ?? 256 },
    );
    const self = this;
    const writable = new WritableStream<Uint8Array>(
      {
        write(chunk) {
          self.sendDatagram(chunk);
        },
      },
      { highWaterMark: 64 },
    );
    this.datagrams = { readable: dgReadable, writable, maxDatagramSize: opts.maxDatagramSize ?? 1200 };
  }

  markReady(): void {
    this.readyResolve();
  }

  fail(err: unknown): void {
    this.readyReject(err);
    this.shutdown({ closeCode: 0, reason: String(err) });
  }

  private held: Uint8Array | undefined;
  blackholed = false;

  /** From now on nothing reaches the peer (both directions), and nothing tells either end. */
  blackhole(): void {
    this.blackholed = true;
    this.peer.blackholed = true;
    for (const p of this.pipes) p.blackholed = true;
  }

  /**
   * From now on the streams open so far deliver nothing more (both directions) while datagrams and new streams still
   * flow, and nothing tells either end: what a QUIC stack does to stream data it stranded on a path the peer left.
   */
  strandStreams(): void {
    for (const p of this.pipes) p.blackholed = true;
  }

  /** Datagram writes the session made, whatever became of them: what bundling is meant to keep low. */
  datagramWrites = 0;

  private sendDatagram(chunk: Uint8Array): void {
    this.datagramWrites++;
    if (this.isClosed || chunk.length > this.datagrams.maxDatagramSize || this.blackholed) return;
    this.bytesSent += chunk.length;
    const unreliable = this.reliability === 'supports-unreliable';
    if (unreliable && this.rng() < (this.opts.loss ?? 0)) {
      this.dropped.lost++;
      return;
    }
    const copy = chunk.slice();
    if (unreliable && !this.held && this.rng() < (this.opts.reorder ?? 0)) {
      this.held = copy;
      return;
    }
    const deliver = () => {
      this.peer.receiveDatagram(copy);
      const h = this.held;
      this.held = undefined;
      if (h) this.peer.receiveDatagram(h);
    };
    if (this.opts.delayMs && this.opts.clock) this.opts.clock.setTimeout(deliver, this.opts.delayMs);
    else deliver();
  }

  private receiveDatagram(chunk: Uint8Array): void {
    if (this.isClosed || this.blackholed) return;
    if ((this.dgramCtl.desiredSize ?? 0) <= 0) {
      this.dropped.queueFull++;
      return;
    }
    this.bytesReceived += chunk.length;
    this.dgramCtl.enqueue(chunk);
  }

  private pipe(): Pipe {
    const p = new Pipe(this.opts.streamHighWaterMark ?? 64 * 1024, this.opts);
    this.pipes.add(p);
    this.peer.pipes.add(p);
    return p;
  }

  async createBidirectionalStream(): Promise<QuiverBidirectionalStream> {
    if (this.isClosed) throw new Error('session closed');
    const ab = this.pipe();
    const ba = this.pipe();
    this.peer.bidiCtl.enqueue({ readable: ab.readable, writable: ba.writable });
    return { readable: ba.readable, writable: ab.writable };
  }

  async createUnidirectionalStream(): Promise<WritableStream<Uint8Array>> {
    if (this.isClosed) throw new Error('session closed');
    const p = this.pipe();
    this.peer.uniCtl.enqueue(p.readable);
    return p.writable;
  }

  close(info: WebTransportCloseInfo = {}): void {
    if (this.isClosed) return;
    this.shutdown(info);
    this.peer?.shutdown(info);
  }

  shutdown(info: WebTransportCloseInfo): void {
    if (this.isClosed) return;
    this.isClosed = true;
    const err = new Error('session closed');
    for (const p of this.pipes) p.kill(err);
    for (const c of [this.bidiCtl, this.uniCtl, this.dgramCtl]) {
      try {
        c.close();
      } catch {
        // errored
      }
    }
    this.closedResolve({ closeCode: info.closeCode ?? 0, reason: info.reason ?? '' });
  }

  async getStats(): Promise<TransportStats> {
    return {
      timestamp: Date.now(),
      smoothedRtt: 0,
      rttVariation: 0,
      minRtt: 0,
      bytesSent: this.bytesSent,
      bytesReceived: this.bytesReceived,
      packetsSent: 0,
      packetsReceived: 0,
      packetsLost: this.dropped.lost,
      datagrams: { sent: 0, received: 0, droppedOutgoing: {}, droppedIncoming: {} },
    };
  }
}

let seedCounter = 1;

export function createMemoryPair(opts: LinkOptions = {}): { client: MemorySession; server: MemorySession } {
  const seed = opts.seed ?? seedCounter++;
  const client = new MemorySession(opts, seed);
  const server = new MemorySession(opts, seed + 0x9e3779b9);
  client.peer = server;
  server.peer = client;
  client.markReady();
  server.markReady();
  return { client, server };
}

class RejectedError extends Error {
  constructor(
    readonly status: number,
    reason: string,
  ) {
    super(`session refused: ${status} ${reason}`);
  }
}

/** Listeners come and go on a network; the connector reaches whichever is current. */
export function createMemoryNetwork(link: LinkOptions = {}) {
  let current: MemoryListener | null = null;
  const all = new Set<MemorySession>();
  const net = {
    sessions: all,
    listen(): MemoryListener {
      const l = new MemoryListener(link, () => {
        if (current === l) current = null;
      });
      current = l;
      return l;
    },
    connect(url: string, options: ConnectOptions = {}): QuiverSession {
      const seed = (link.seed ?? 7) + all.size * 2;
      const client = new MemorySession(link, seed);
      const server = new MemorySession(link, seed + 1);
      client.peer = server;
      server.peer = client;
      all.add(client);
      const l = current;
      if (!l) {
        queueMicrotask(() => client.fail(new Error('connection refused')));
        return client;
      }
      l.offer(url, options, client, server);
      return client;
    },
    get listener() {
      return current;
    },
  };
  return net;
}

export class MemoryListener implements TransportListener {
  readonly transport = 'memory';
  readonly address = { host: '127.0.0.1', port: 0 };
  readonly incomingSessions: ReadableStream<IncomingSession>;
  private ctl!: ReadableStreamDefaultController<IncomingSession>;
  readonly sessions = new Set<MemorySession>();
  private isClosed = false;

  constructor(
    private readonly link: LinkOptions,
    private readonly onClose: () => void,
  ) {
    this.incomingSessions = new ReadableStream({
      start: (c) => {
        this.ctl = c;
      },
    });
  }

  offer(url: string, options: ConnectOptions, client: MemorySession, server: MemorySession): void {
    if (this.isClosed) {
      queueMicrotask(() => client.fail(new Error('connection refused')));
      return;
    }
    const u = new URL(url);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(options.headers ?? {})) headers[k.toLowerCase()] = v;
    const request: SessionRequest = {
      transport: 'memory',
      path: u.pathname,
      url: u.pathname + u.search,
      query: u.searchParams,
      headers,
      origin: headers.origin,
      remoteAddress: headers['x-test-ip'] ?? '127.0.0.1',
      remotePort: 50000,
    };
    let decided = false;
    this.ctl.enqueue({
      request,
      accept: () => {
        if (decided) throw new Error('already decided');
        decided = true;
        this.sessions.add(server);
        server.closed.then(() => this.sessions.delete(server));
        server.markReady();
        client.markReady();
        return server;
      },
      reject: (status, reason = '') => {
        if (decided) throw new Error('already decided');
        decided = true;
        client.fail(new RejectedError(status, reason));
      },
    });
    void this.link;
  }

  async close(info?: WebTransportCloseInfo): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    this.onClose();
    for (const s of this.sessions) s.close(info ?? { closeCode: 0, reason: 'listener closed' });
    try {
      this.ctl.close();
    } catch {
      // ignore
    }
  }
}
