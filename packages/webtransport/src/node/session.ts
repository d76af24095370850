/**
 * The QuiverSession of one WebTransport session over HTTP/3 (W3C WebTransport §6), on top of a
 * {@link WtConnection}. Streams are WHATWG streams with real backpressure in both directions:
 * - reading is pull-based: when a stream's JS queue is full the adapter stops reading it from quiche, quiche's
 *   receive buffer fills and QUIC flow control (RFC 9000 §4.1) holds the peer back;
 * - a write resolves once quiche accepted the bytes or the stream's queue is below its high-water mark.
 */
import type {
  DatagramDropReason,
  QuiverBidirectionalStream,
  QuiverDatagramDuplexStream,
  QuiverSession,
  TransportStats,
  WebTransportCloseInfo,
} from '@quiver/transport';
import { QuiverTransportError, streamErrorCodeOf } from '@quiver/transport';
import type { WtConnection } from './wt-connection.js';

/** Per-session buffering limits of the Node WebTransport adapter; see {@link defaultSessionLimits}. */
export interface SessionLimits {
  /** Bytes a stream's readable queues before the adapter stops reading it from QUIC. Default 256 KiB. */
  streamReadHighWaterMark: number;
  /** Bytes queued per stream before `write()` waits. Default 256 KiB. */
  streamWriteHighWaterMark: number;
  /** Incoming datagrams queued for the application; more are dropped as `receive-queue-full`. Default 1024. */
  datagramReadQueue: number;
  /**
   * Milliseconds the last byte of a write may wait for the stream's close() so that the FIN travels with it.
   * quiche 0.18 loses a FIN written alone once the stream's data was acknowledged (upstream cloudflare/quiche
   * issue 2525: the stream is collected before a STREAM frame with FIN is sent; the peer's readable never ends), so a
   * close() later than this after the last write is at risk. 0: until the end of the event-loop turn (no added
   * latency; covers `write(); close()`). Servers that close in answer to the peer's FIN (echo) want ~50.
   * `Infinity`: until the writer's close() or next write, with no timer, so that a FIN never travels alone
   * whenever the peer's FIN comes; only for servers that close or keep writing every stream they write to (an
   * echo): a stream written and then left open keeps its last byte. Default 0.
   */
  streamTailHoldMs: number;
}

/** The defaults of {@link SessionLimits}, each documented there. */
export const defaultSessionLimits: SessionLimits = {
  streamReadHighWaterMark: 256 * 1024,
  streamWriteHighWaterMark: 256 * 1024,
  datagramReadQueue: 1024,
  streamTailHoldMs: 0,
};

const CLOSE_REASON_MAX = 1024;
const EMPTY = new Uint8Array(0);

type Deferred<T> = { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void };
function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function toBytes(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  if (ArrayBuffer.isView(chunk)) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
  throw new TypeError('WebTransport streams accept only BufferSource chunks');
}

/** One WebTransport stream (draft-ietf-webtrans-http3 §4.2-4.3); either side may be absent. */
export class WtStream {
  readable: ReadableStream<Uint8Array> | undefined;
  writable: WritableStream<Uint8Array> | undefined;
  private readCtl: ReadableStreamDefaultController<Uint8Array> | undefined;
  private writeCtl: WritableStreamDefaultController | undefined;
  private readDone: boolean;
  private writeDone: boolean;
  private paused = false;
  private drained: Deferred<void> | undefined;
  private stopError: QuiverTransportError | undefined;

  constructor(
    readonly session: WtSession,
    readonly streamId: number,
    hasReadable: boolean,
    hasWritable: boolean,
  ) {
    const conn = session.conn;
    const limits = session.limits;
    this.readDone = !hasReadable;
    this.writeDone = !hasWritable;
    if (hasReadable) {
      this.readable = new ReadableStream<Uint8Array>(
        {
          start: (c) => {
            this.readCtl = c;
          },
          pull: () => {
            if (this.paused) {
              this.paused = false;
              conn.resumeRead(streamId);
            }
          },
          cancel: (reason) => {
            if (this.readDone) return;
            this.readDone = true;
            // W3C WebTransport §8.3 (cancel): STOP_SENDING with the reason's code.
            conn.stopSending(streamId, streamErrorCodeOf(reason));
            this.maybeForget();
          },
        },
        new ByteLengthQueuingStrategy({ highWaterMark: limits.streamReadHighWaterMark }),
      );
    }
    if (hasWritable) {
      conn.trackSend(streamId);
      this.writable = new WritableStream<Uint8Array>(
        {
          start: (c) => {
            this.writeCtl = c;
          },
          write: (chunk) => this.write(chunk),
          close: () => {
            if (this.stopError) throw this.stopError;
            if (this.writeDone) return;
            this.writeDone = true;
            conn.sendStreamData(streamId, EMPTY, true);
            this.maybeForget();
          },
          abort: (reason) => {
            if (this.writeDone) return;
            this.writeDone = true;
            // W3C WebTransport §8.4 (abort): RESET_STREAM with the reason's code.
            conn.resetStream(streamId, streamErrorCodeOf(reason));
            this.maybeForget();
          },
        },
        { highWaterMark: 1 },
      );
    }
  }

  private write(chunk: Uint8Array): Promise<void> | undefined {
    if (this.stopError) throw this.stopError;
    if (this.session.isClosed) throw this.session.closedError();
    // Not copied here: quiche copies what it takes, and the adapter copies what it has to queue.
    const data = toBytes(chunk);
    if (data.length === 0) return undefined;
    const conn = this.session.conn;
    conn.sendStreamData(this.streamId, data, false);
    // The engine drops what a stopped stream or a closing connection is given, and the event that says so
    // (STOP_SENDING, the close) is still to come. Resolving now would let a writer loop go on in microtasks and never
    // yield to that event (a hang): the write waits for it instead, and it settles the write.
    if (conn.sendRefused(this.streamId)) {
      this.drained ??= deferred<void>();
      return this.drained.promise;
    }
    if (conn.queuedBytes(this.streamId) <= this.session.limits.streamWriteHighWaterMark) return undefined;
    this.drained = deferred<void>();
    conn.waitDrained(this.streamId);
    return this.drained.promise;
  }

  /** Payload from the peer (signal already stripped by the core). */
  onData(data: Uint8Array, fin: boolean): void {
    const c = this.readCtl;
    if (!c || this.readDone) return;
    if (data.length > 0) c.enqueue(data);
    if (fin) {
      this.readDone = true;
      c.close();
      this.maybeForget();
      return;
    }
    if (!this.paused && (c.desiredSize ?? 0) <= 0) {
      this.paused = true;
      this.session.conn.pauseRead(this.streamId);
    }
  }

  /** RESET_STREAM from the peer: reads reject with its code (W3C WebTransport §8.3). */
  onReset(code: number): void {
    if (this.readDone) return;
    this.readDone = true;
    this.readCtl?.error(
      new QuiverTransportError(`stream reset by the peer with code ${code}`, {
        source: 'stream',
        streamErrorCode: code,
      }),
    );
    this.maybeForget();
  }

  /** STOP_SENDING from the peer: writes reject with its code; the stream is reset (RFC 9000 §3.5). */
  onStopSending(code: number): void {
    if (this.writeDone) return;
    this.writeDone = true;
    this.stopError = new QuiverTransportError(`stream stopped by the peer with code ${code}`, {
      source: 'stream',
      streamErrorCode: code,
    });
    this.writeCtl?.error(this.stopError);
    this.drained?.resolve();
    this.drained = undefined;
    this.maybeForget();
  }

  onDrained(): void {
    const d = this.drained;
    this.drained = undefined;
    d?.resolve();
  }

  /** The session ended: both sides fail with a session error. */
  onSessionClosed(err: QuiverTransportError): void {
    if (!this.readDone) {
      this.readDone = true;
      this.readCtl?.error(err);
    }
    if (!this.writeDone) {
      this.writeDone = true;
      this.writeCtl?.error(err);
    }
    this.drained?.reject(err);
    this.drained = undefined;
    this.session.conn.forgetStream(this.streamId);
  }

  private maybeForget(): void {
    if (this.readDone && this.writeDone) this.session.conn.forgetStream(this.streamId);
  }
}

/** A session's datagram totals since it was created; the source of `getStats().datagrams`. */
export interface SessionCounters {
  /** Datagrams handed to QUIC. */
  datagramsSent: number;
  /** Datagrams delivered to `datagrams.readable`. */
  datagramsReceived: number;
  /** Outgoing datagrams dropped before QUIC took them, by reason. */
  droppedOutgoing: Partial<Record<DatagramDropReason, number>>;
  /** Incoming datagrams dropped before the application read them, by reason. */
  droppedIncoming: Partial<Record<DatagramDropReason, number>>;
}

/** A WebTransport session (W3C WebTransport §6) on an HTTP/3 connection. */
export class WtSession implements QuiverSession {
  readonly transport = 'webtransport' as const;
  readonly reliability = 'supports-unreliable' as const;
  readonly ready: Promise<void>;
  readonly closed: Promise<WebTransportCloseInfo>;
  readonly incomingBidirectionalStreams: ReadableStream<QuiverBidirectionalStream>;
  readonly incomingUnidirectionalStreams: ReadableStream<ReadableStream<Uint8Array>>;
  readonly datagrams: QuiverDatagramDuplexStream;
  /** Resolves when the peer asked to drain (draft §4.7) or the connection got a GOAWAY (RFC 9114 §5.2). */
  readonly draining: Promise<void>;
  /** Live datagram counters (not a snapshot). */
  readonly counters: SessionCounters = {
    datagramsSent: 0,
    datagramsReceived: 0,
    droppedOutgoing: {},
    droppedIncoming: {},
  };
  /** The stream id of the CONNECT request stream (draft-ietf-webtrans-http3 §4.2); -1 until it is known. */
  sessionId = -1;
  /** True once the session has ended, cleanly or not. */
  isClosed = false;
  /** The session's open WebTransport streams, by QUIC stream id. */
  readonly streams = new Map<number, WtStream>();
  private readonly readyD = deferred<void>();
  private readonly closedD = deferred<WebTransportCloseInfo>();
  private readonly drainingD = deferred<void>();
  private isReady = false;
  private bidiCtl!: ReadableStreamDefaultController<QuiverBidirectionalStream>;
  private uniCtl!: ReadableStreamDefaultController<ReadableStream<Uint8Array>>;
  private dgramCtl!: ReadableStreamDefaultController<Uint8Array>;
  private closeError: QuiverTransportError | undefined;
  /** Stream openings waiting for the session id (client before QUIC is up) or for peer stream credit. */
  private readonly pendingOpens: { bidi: boolean; d: Deferred<WtStream> }[] = [];

  /** The connection; a client session exists before its connection does (see `attach`). */
  conn!: WtConnection;

  constructor(
    conn: WtConnection | undefined,
    /** The buffering limits in force, defaults filled in. */
    readonly limits: SessionLimits,
  ) {
    if (conn) this.conn = conn;
    this.ready = this.readyD.promise;
    this.closed = this.closedD.promise;
    this.draining = this.drainingD.promise;
    // Unobserved rejections of these are the application's business, not an unhandled-rejection crash.
    this.ready.catch(() => {});
    this.closed.catch(() => {});
    this.incomingBidirectionalStreams = new ReadableStream<QuiverBidirectionalStream>({
      start: (c) => {
        this.bidiCtl = c;
      },
    });
    this.incomingUnidirectionalStreams = new ReadableStream<ReadableStream<Uint8Array>>({
      start: (c) => {
        this.uniCtl = c;
      },
    });
    const readable = new ReadableStream<Uint8Array>(
      {
        start: (c) => {
          this.dgramCtl = c;
        },
      },
      { highWaterMark: limits.datagramReadQueue },
    );
    const writable = new WritableStream<Uint8Array>({
      write: (chunk) => {
        this.sendDatagram(toBytes(chunk));
      },
    });
    const self = this;
    this.datagrams = {
      readable,
      writable,
      get maxDatagramSize(): number {
        return self.maxDatagramSize();
      },
      // A client session exists before its connection: nothing is queued then.
      sendEstimate: () =>
        this.conn
          ? this.conn.datagramSendEstimate()
          : { queuedBytes: 0, sendRate: 0, networkQueueMs: 0, delayMs: 0 },
    };
  }

  private drop(dir: 'droppedOutgoing' | 'droppedIncoming', reason: DatagramDropReason): void {
    const m = this.counters[dir];
    m[reason] = (m[reason] ?? 0) + 1;
  }

  /** Largest datagram payload that fits one QUIC packet now; 0 before the session id is known or after close. */
  maxDatagramSize(): number {
    if (this.sessionId < 0 || this.isClosed) return 0;
    return this.conn.maxDatagramSize(this.sessionId);
  }

  private sendDatagram(data: Uint8Array): void {
    if (this.isClosed) {
      this.drop('droppedOutgoing', 'closed');
      return;
    }
    // Before the session id exists there is no quarter stream id to send with (RFC 9297 §2.1).
    if (this.sessionId < 0) {
      this.drop('droppedOutgoing', 'congestion');
      return;
    }
    if (data.length > this.maxDatagramSize()) {
      this.drop('droppedOutgoing', 'too-large');
      return;
    }
    const r = this.conn.sendDatagram(this.sessionId, data);
    if (r) this.drop('droppedOutgoing', r);
    else this.counters.datagramsSent++;
  }

  /** Called by the HTTP/3 adapter, not by applications: a datagram for this session; dropped and counted when the readable queue is full. */
  onDatagram(data: Uint8Array): void {
    if (this.isClosed) return;
    if ((this.dgramCtl.desiredSize ?? 0) <= 0) {
      this.drop('droppedIncoming', 'receive-queue-full');
      return;
    }
    this.counters.datagramsReceived++;
    this.dgramCtl.enqueue(data);
  }

  /** Called by the HTTP/3 adapter, not by applications: counts an incoming datagram the adapter dropped for this session. */
  countIncomingDrop(reason: DatagramDropReason): void {
    this.drop('droppedIncoming', reason);
  }

  /** Called by the HTTP/3 adapter, not by applications: binds the session to its connection once that exists. */
  attach(conn: WtConnection): void {
    this.conn = conn;
  }

  /** The session id is known (client: CONNECT sent; server: accepted). Pending openings proceed. */
  bind(sessionId: number): void {
    this.sessionId = sessionId;
    this.conn.sessions.set(sessionId, this);
    this.processPendingOpens();
  }

  /** Called by the HTTP/3 adapter, not by applications: the session is established; resolves `ready` (once; ignored after close). */
  markReady(): void {
    if (this.isReady || this.isClosed) return;
    this.isReady = true;
    this.readyD.resolve();
  }

  /** Called by the HTTP/3 adapter, not by applications: resolves `draining`. */
  markDraining(): void {
    this.drainingD.resolve();
  }

  createBidirectionalStream(): Promise<QuiverBidirectionalStream> {
    return this.open(true).then((s) => ({ readable: s.readable!, writable: s.writable! }));
  }

  createUnidirectionalStream(): Promise<WritableStream<Uint8Array>> {
    return this.open(false).then((s) => s.writable!);
  }

  private open(bidi: boolean): Promise<WtStream> {
    if (this.isClosed) return Promise.reject(this.closedError());
    const d = deferred<WtStream>();
    this.pendingOpens.push({ bidi, d });
    this.processPendingOpens();
    return d.promise;
  }

  /** W3C WebTransport §6.4: creating a stream waits for stream credit from the peer (RFC 9000 §4.6). */
  processPendingOpens(): void {
    if (this.sessionId < 0 || !this.conn?.started || this.isClosed) return;
    while (this.pendingOpens.length > 0) {
      const { bidi, d } = this.pendingOpens[0];
      const id = this.conn.openStream(this.sessionId, bidi);
      if (id === undefined) return;
      this.pendingOpens.shift();
      const s = new WtStream(this, id, bidi, true);
      this.streams.set(id, s);
      d.resolve(s);
    }
  }

  /** A stream the peer opened in this session. */
  onIncomingStream(streamId: number, bidi: boolean): WtStream {
    const s = new WtStream(this, streamId, true, bidi);
    this.streams.set(streamId, s);
    if (bidi) this.bidiCtl.enqueue({ readable: s.readable!, writable: s.writable! });
    else this.uniCtl.enqueue(s.readable!);
    return s;
  }

  close(closeInfo: WebTransportCloseInfo = {}): void {
    if (this.isClosed) return;
    const code = closeInfo.closeCode ?? 0;
    const reason = truncateUtf8(closeInfo.reason ?? '', CLOSE_REASON_MAX);
    if (this.sessionId >= 0 && this.isReady) this.conn.closeSession(this.sessionId, code, reason);
    else if (this.sessionId >= 0) this.conn.abandonSession(this.sessionId);
    if (!this.isReady) {
      // W3C WebTransport §6.5 close(): before `ready`, the attempt is aborted.
      this.finish(
        undefined,
        new QuiverTransportError('session closed before it was established', { source: 'session' }),
      );
      return;
    }
    this.finish({ closeCode: code, reason });
  }

  /** The error streams and pending calls fail with now that the session is closed. */
  closedError(): QuiverTransportError {
    return this.closeError ?? new QuiverTransportError('session closed', { source: 'session' });
  }

  /**
   * The session ended. With `info` it ended cleanly (CLOSE_WEBTRANSPORT_SESSION or FIN, draft §6) and `closed`
   * resolves; otherwise `closed` rejects with `error` (W3C WebTransport §6.5 "cleanup").
   */
  finish(info: WebTransportCloseInfo | undefined, error?: QuiverTransportError): void {
    if (this.isClosed) return;
    this.isClosed = true;
    const err =
      error ??
      new QuiverTransportError(`session closed (code ${info?.closeCode ?? 0}: ${info?.reason ?? ''})`, {
        source: 'session',
      });
    this.closeError = err;
    if (!this.isReady) this.readyD.reject(err);
    if (info) this.closedD.resolve(info);
    else this.closedD.reject(err);
    for (const s of [...this.streams.values()]) s.onSessionClosed(err);
    this.streams.clear();
    for (const p of this.pendingOpens.splice(0)) p.d.reject(err);
    for (const c of [
      this.bidiCtl,
      this.uniCtl,
      this.dgramCtl,
    ] as ReadableStreamDefaultController<unknown>[]) {
      try {
        if (info) c.close();
        else c.error(err);
      } catch {
        // Already closed by the application's cancel().
      }
    }
    this.drainingD.resolve();
    this.conn?.onSessionFinished(this);
  }

  /** TransportStats with the engine's retransmissions, congestion window and delivery rate estimate. */
  async getStats(): Promise<
    TransportStats & {
      /** Packets the engine retransmitted. */
      packetsRetransmitted: number;
      /** The engine's congestion window in bytes; 0 when unknown. */
      congestionWindow: number;
      /** The engine's delivery rate estimate in bytes per second; 0 when unknown. */
      deliveryRate: number;
    }
  > {
    const st = this.conn?.transportStats();
    return {
      timestamp: performance.timeOrigin + performance.now(),
      smoothedRtt: st?.smoothedRttMs ?? 0,
      rttVariation: st?.rttVariationMs ?? 0,
      minRtt: st?.minRttMs ?? 0,
      bytesSent: st?.bytesSent ?? 0,
      bytesReceived: st?.bytesReceived ?? 0,
      packetsSent: st?.packetsSent ?? 0,
      packetsReceived: st?.packetsReceived ?? 0,
      packetsLost: st?.packetsLost ?? 0,
      packetsRetransmitted: st?.packetsRetransmitted ?? 0,
      congestionWindow: st?.congestionWindow ?? 0,
      deliveryRate: st?.deliveryRate ?? 0,
      datagrams: {
        sent: this.counters.datagramsSent,
        received: this.counters.datagramsReceived,
        droppedOutgoing: { ...this.counters.droppedOutgoing },
        droppedIncoming: { ...this.counters.droppedIncoming },
      },
    };
  }
}

/** W3C WebTransport §6.5: the reason is truncated to 1024 bytes of UTF-8 without splitting a code point. */
function truncateUtf8(s: string, max: number): string {
  const b = Buffer.from(s, 'utf8');
  if (b.length <= max) return s;
  let end = max;
  while (end > 0 && (b[end] & 0xc0) === 0x80) end--;
  return b.subarray(0, end).toString('utf8');
}
