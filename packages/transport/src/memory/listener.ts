/**
 * In-process "network" for the memory transport: listeners registered by name, a connector for `memory://` URLs and
 * pairs of sessions wired back to back. Every connection is two {@link Link}s driven by the listener's clock and a
 * seed derived from the listener's seed and the connection's index, so a run is reproducible under a ManualClock.
 */
import { type Clock, createRng, systemClock, type TimerHandle } from '../clock.js';
import { QuiverTransportError } from '../errors.js';
import type {
  ConnectOptions,
  IncomingSession,
  QuiverSession,
  SessionRequest,
  TransportListener,
  WebTransportCloseInfo,
} from '../types.js';
import { Link, type LinkOptions, resolveLinkOptions } from './link.js';
import {
  type Frame,
  frameSize,
  MemorySession,
  type MemorySessionLimits,
  type TransportParams,
} from './session.js';

/** Options of the in-memory transport, shared by listeners and pairs. */
export interface MemoryTransportOptions {
  /** Drives link delays and timeouts. Default {@link systemClock}; a ManualClock makes runs reproducible. */
  clock?: Clock;
  /** Seed of the link model's randomness (loss, jitter, reordering). Default 1. */
  seed?: number;
  /** The link model, both directions. Default: no delay, no loss, no cap. */
  link?: LinkOptions;
  /** Overrides of `link` for the client-to-server direction. */
  clientToServer?: LinkOptions;
  /** Overrides of `link` for the server-to-client direction. */
  serverToClient?: LinkOptions;
  /** Largest datagram payload. Default 1200 (a QUIC datagram in a 1280-byte IPv6 minimum MTU path). */
  maxDatagramSize?: number;
  /** Stream send buffer in bytes before `writer.ready` waits. Default 64 KiB. */
  highWaterMark?: number;
  /** Per-stream receive window in bytes (unread data a peer may send ahead). Default 256 KiB. */
  streamReceiveWindow?: number;
  /** Peer-initiated streams of each type open at once; the peer's create calls wait beyond it. Default 100. */
  maxIncomingStreams?: number;
  /** Incoming datagrams queued for the application before `receive-queue-full` drops. Default 128. */
  datagramReceiveQueue?: number;
  /** Outgoing bytes waiting behind the bandwidth cap before datagrams drop as `congestion`. Default 64 KiB. */
  datagramSendBufferBytes?: number;
}

/** Options of `createMemoryListener`. */
export interface MemoryListenerOptions extends MemoryTransportOptions {
  /** Registry name: clients connect to `memory://<name>/<path>`. Default: a fresh unique name. */
  name?: string;
  /** Undecided requests are rejected with 408 after this many ms. Default 10 000. */
  requestTimeoutMs?: number;
  /** Requests waiting for accept()/reject() at once; more are rejected with 503 at arrival. Default 128. */
  maxPendingRequests?: number;
}

/** A memory transport listener, registered process-wide under `name` until closed. */
export interface MemoryListener extends TransportListener {
  /** Always `'memory'`. */
  readonly transport: 'memory';
  /** The registry name clients address as `memory://<name>` (the `name` option, or `memory-<n>`). */
  readonly name: string;
  /** `memory://<name>`; append a path to connect. */
  readonly url: string;
  /** Requests refused with 503 at arrival because `maxPendingRequests` were already waiting. */
  readonly refusedRequests: number;
  /** Requests rejected with 408 because nobody decided within `requestTimeoutMs`. */
  readonly timedOutRequests: number;
}

/** Two connected memory sessions. */
export interface MemoryPair {
  /** The session that connected. */
  client: MemorySession;
  /** The session that accepted. */
  server: MemorySession;
}

/** Default of {@link MemoryTransportOptions.maxDatagramSize}. */
export const DEFAULT_MAX_DATAGRAM_SIZE = 1200;
/** Default of {@link MemoryTransportOptions.highWaterMark}. */
export const DEFAULT_HIGH_WATER_MARK = 64 * 1024;
/** Default of {@link MemoryTransportOptions.streamReceiveWindow}. */
export const DEFAULT_STREAM_RECEIVE_WINDOW = 256 * 1024;
/** Default of {@link MemoryTransportOptions.datagramReceiveQueue}. */
export const DEFAULT_DATAGRAM_RECEIVE_QUEUE = 128;
/** Default of {@link MemoryTransportOptions.maxIncomingStreams}. */
export const DEFAULT_MAX_INCOMING_STREAMS = 100;
/** Default of {@link MemoryListenerOptions.maxPendingRequests}. */
export const DEFAULT_MAX_PENDING_REQUESTS = 128;
/** Default of {@link MemoryTransportOptions.datagramSendBufferBytes}. */
export const DEFAULT_DATAGRAM_SEND_BUFFER_BYTES = 64 * 1024;
/** Default of {@link MemoryListenerOptions.requestTimeoutMs}. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

function positiveInt(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v <= 0)
    throw new RangeError(`memory transport option ${name} must be a positive integer`);
  return v;
}

function resolveLimits(o: MemoryTransportOptions): MemorySessionLimits {
  return {
    maxDatagramSize: positiveInt('maxDatagramSize', o.maxDatagramSize, DEFAULT_MAX_DATAGRAM_SIZE),
    highWaterMark: positiveInt('highWaterMark', o.highWaterMark, DEFAULT_HIGH_WATER_MARK),
    streamReceiveWindow: positiveInt(
      'streamReceiveWindow',
      o.streamReceiveWindow,
      DEFAULT_STREAM_RECEIVE_WINDOW,
    ),
    maxIncomingStreams: positiveInt('maxIncomingStreams', o.maxIncomingStreams, DEFAULT_MAX_INCOMING_STREAMS),
    datagramReceiveQueue: positiveInt(
      'datagramReceiveQueue',
      o.datagramReceiveQueue,
      DEFAULT_DATAGRAM_RECEIVE_QUEUE,
    ),
    datagramSendBufferBytes: positiveInt(
      'datagramSendBufferBytes',
      o.datagramSendBufferBytes,
      DEFAULT_DATAGRAM_SEND_BUFFER_BYTES,
    ),
  };
}

function paramsOf(limits: MemorySessionLimits): TransportParams {
  return { streamWindow: limits.streamReceiveWindow, maxStreams: limits.maxIncomingStreams };
}

interface Wire {
  c2s: Link<Frame>;
  s2c: Link<Frame>;
  rtt: { minRtt: number; smoothedRtt: number; rttVariation: number };
  toServer: (frame: Frame, size: number) => void;
  toClient: (frame: Frame, size: number) => void;
  lostAtServer: (frame: Frame) => void;
  lostAtClient: (frame: Frame) => void;
}

/** Two links, one per direction, each with its own random stream derived from `seed`. */
function createWire(clock: Clock, seed: number, o: MemoryTransportOptions): Wire {
  const up = resolveLinkOptions({ ...o.link, ...o.clientToServer });
  const down = resolveLinkOptions({ ...o.link, ...o.serverToClient });
  const wire: Wire = {
    toServer: () => {},
    toClient: () => {},
    lostAtServer: () => {},
    lostAtClient: () => {},
    rtt: {
      // The RTT the link model implies: both one-way delays plus the mean of both jitters (uniform in [0, j)).
      minRtt: up.delayMs + down.delayMs,
      smoothedRtt: up.delayMs + down.delayMs + (up.jitterMs + down.jitterMs) / 2,
      rttVariation: (up.jitterMs + down.jitterMs) / 4,
    },
  } as unknown as Wire;
  const base = seed >>> 0;
  wire.c2s = new Link<Frame>(
    clock,
    createRng(base),
    up,
    (f, s) => wire.toServer(f, s),
    (f) => wire.lostAtServer(f),
  );
  wire.s2c = new Link<Frame>(
    clock,
    createRng((base ^ 0x9e3779b9) >>> 0),
    down,
    (f, s) => wire.toClient(f, s),
    (f) => wire.lostAtClient(f),
  );
  return wire;
}

/**
 * Two sessions connected back to back (no listener, no handshake): both are `ready` at once.
 */
export function createMemoryPair(options: MemoryTransportOptions = {}): MemoryPair {
  const clock = options.clock ?? systemClock;
  const limits = resolveLimits(options);
  const wire = createWire(clock, options.seed ?? 1, options);
  const client = new MemorySession({
    role: 'client',
    clock,
    out: wire.c2s,
    limits,
    rtt: wire.rtt,
    peer: paramsOf(limits),
  });
  const server = new MemorySession({
    role: 'server',
    clock,
    out: wire.s2c,
    limits,
    rtt: wire.rtt,
    peer: paramsOf(limits),
  });
  wire.toServer = (f, s) => server.receive(f, s);
  wire.toClient = (f, s) => client.receive(f, s);
  wire.lostAtServer = (f) => server.noteLost(f);
  wire.lostAtClient = (f) => client.noteLost(f);
  return { client, server };
}

const registry = new Map<string, MemoryListenerImpl>();
let nameCounter = 0;

/** Listeners currently registered (a leak check for tests: it must be 0 after every listener closed). */
export function memoryListenerCount(): number {
  return registry.size;
}

interface Connection {
  wire: Wire;
  server?: MemorySession;
}

class MemoryListenerImpl implements MemoryListener {
  readonly transport = 'memory' as const;
  readonly name: string;
  readonly url: string;
  readonly address: { host: string; port: number };
  readonly incomingSessions: ReadableStream<IncomingSession>;
  readonly clock: Clock;
  readonly options: MemoryListenerOptions;
  readonly limits: MemorySessionLimits;
  #controller!: ReadableStreamDefaultController<IncomingSession>;
  #connections = new Set<Connection>();
  /** Rejecters of requests still waiting for accept()/reject(). */
  #undecided = new Set<(status: number, reason: string) => void>();
  #seq = 0;
  #closed = false;
  #requestTimeoutMs: number;
  #maxPendingRequests: number;
  #refusedRequests = 0;
  #timedOutRequests = 0;

  get refusedRequests(): number {
    return this.#refusedRequests;
  }

  get timedOutRequests(): number {
    return this.#timedOutRequests;
  }

  constructor(options: MemoryListenerOptions) {
    this.options = options;
    this.clock = options.clock ?? systemClock;
    this.limits = resolveLimits(options);
    this.#requestTimeoutMs = positiveInt(
      'requestTimeoutMs',
      options.requestTimeoutMs,
      DEFAULT_REQUEST_TIMEOUT_MS,
    );
    this.#maxPendingRequests = positiveInt(
      'maxPendingRequests',
      options.maxPendingRequests,
      DEFAULT_MAX_PENDING_REQUESTS,
    );
    this.name = options.name ?? `memory-${++nameCounter}`;
    if (!/^[a-z0-9][a-z0-9.-]*$/i.test(this.name))
      throw new TypeError(`invalid memory listener name: ${this.name}`);
    if (registry.has(this.name)) throw new Error(`a memory listener named ${this.name} already exists`);
    this.url = `memory://${this.name}`;
    this.address = { host: this.name, port: 0 };
    this.incomingSessions = new ReadableStream<IncomingSession>({
      start: (c) => {
        this.#controller = c;
      },
    });
    registry.set(this.name, this);
  }

  /** Wires a new client session to this listener; the request reaches it after the link's one-way delay. */
  connect(url: URL, options: ConnectOptions): MemorySession {
    const index = ++this.#seq;
    const clientLimits = this.limits;
    const wire = createWire(
      this.clock,
      ((this.options.seed ?? 1) + Math.imul(index, 0x85ebca6b)) >>> 0,
      this.options,
    );
    const connection: Connection = { wire };
    this.#connections.add(connection);
    let timer: TimerHandle | undefined;
    const client = new MemorySession({
      role: 'client',
      clock: this.clock,
      out: wire.c2s,
      limits: clientLimits,
      rtt: wire.rtt,
      onClosed: () => {
        this.clock.clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        this.#forgetWhenIdle(connection);
      },
    });
    wire.toClient = (f, s) => client.receive(f, s);
    wire.lostAtClient = (f) => client.noteLost(f);
    const onAbort = () =>
      client.fail(
        new QuiverTransportError('the connection attempt was aborted', { source: 'session' }),
        true,
      );
    if (options.signal?.aborted) {
      queueMicrotask(onAbort);
    } else {
      options.signal?.addEventListener('abort', onAbort, { once: true });
    }
    if (options.connectTimeoutMs !== undefined) {
      timer = this.clock.setTimeout(
        () =>
          client.fail(
            new QuiverTransportError(`connect timed out after ${options.connectTimeoutMs} ms`, {
              source: 'session',
            }),
            true,
          ),
        options.connectTimeoutMs,
      );
    }
    // Timeout and abort only concern establishment (W3C WebTransport: the signal aborts the connection attempt).
    client.ready.then(
      () => {
        this.clock.clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
      },
      () => {},
    );
    // Until the application decides, the server end of the wire is the pending request.
    let pending: { abandoned: boolean } | undefined;
    wire.toServer = (frame, size) => {
      if (connection.server) {
        connection.server.receive(frame, size);
        return;
      }
      if (frame.type === 'request') {
        pending = { abandoned: false };
        this.#onRequest(connection, frame, index, pending);
      } else if (frame.type === 'abandon' && pending) {
        pending.abandoned = true;
      }
    };
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(options.headers ?? {})) headers[k.toLowerCase()] = v;
    client.sendFrame({
      type: 'request',
      url: url.pathname + url.search,
      headers,
      params: paramsOf(clientLimits),
    });
    return client;
  }

  #onRequest(
    connection: Connection,
    frame: Extract<Frame, { type: 'request' }>,
    index: number,
    pending: { abandoned: boolean },
  ): void {
    const { wire } = connection;
    const reply = (f: Frame) => wire.s2c.send(f, frameSize(f), false);
    if (this.#closed) {
      reply({ type: 'reject', status: 503, reason: 'listener closed' });
      return;
    }
    if (this.#undecided.size >= this.#maxPendingRequests) {
      this.#refusedRequests++;
      reply({ type: 'reject', status: 503, reason: 'too many pending session requests' });
      return;
    }
    const parsed = new URL(frame.url, 'memory://x');
    const request: SessionRequest = {
      transport: 'memory',
      path: parsed.pathname,
      url: frame.url,
      query: parsed.searchParams,
      headers: frame.headers,
      origin: frame.headers.origin,
      remoteAddress: 'memory',
      remotePort: index,
    };
    let decided = false;
    const decide = (): void => {
      if (decided) throw new Error('this session request was already accepted or rejected');
      decided = true;
      this.clock.clearTimeout(timer);
      this.#undecided.delete(rejectIfUndecided);
    };
    const reject = (status: number, reason = ''): void => {
      if (!Number.isInteger(status) || status < 400 || status > 599) {
        throw new RangeError(`reject status must be an HTTP error status (400-599), got ${status}`);
      }
      decide();
      if (!pending.abandoned) reply({ type: 'reject', status, reason });
      this.#forgetWhenIdle(connection);
    };
    const incoming: IncomingSession = {
      request,
      accept: () => {
        decide();
        const server = new MemorySession({
          role: 'server',
          clock: this.clock,
          out: wire.s2c,
          limits: this.limits,
          rtt: wire.rtt,
          peer: frame.params,
          onClosed: () => this.#forgetWhenIdle(connection),
        });
        connection.server = server;
        wire.lostAtServer = (f) => server.noteLost(f);
        if (pending.abandoned) {
          server.terminate({ closeCode: 0, reason: 'the client abandoned the request' });
        } else {
          reply({ type: 'accept', params: paramsOf(this.limits) });
        }
        return server;
      },
      reject,
    };
    const rejectIfUndecided = (status: number, reason: string) => {
      if (!decided) reject(status, reason);
    };
    // A request nobody decides on must not wait forever (the TransportListener contract: 408).
    const timer = this.clock.setTimeout(() => {
      if (!decided) this.#timedOutRequests++;
      rejectIfUndecided(408, 'request timeout');
    }, this.#requestTimeoutMs);
    this.#undecided.add(rejectIfUndecided);
    this.#controller.enqueue(incoming);
  }

  #forgetWhenIdle(connection: Connection): void {
    const { c2s, s2c } = connection.wire;
    void Promise.all([c2s.whenIdle(), s2c.whenIdle()]).then(() => {
      const serverOpen = connection.server && connection.server.state !== 'closed';
      if (!serverOpen) this.#connections.delete(connection);
    });
  }

  async close(closeInfo: WebTransportCloseInfo = {}): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      registry.delete(this.name);
      try {
        this.#controller.close();
      } catch {
        // the application cancelled incomingSessions
      }
      // Undecided requests get the same answer as requests arriving after close.
      for (const rejectIfUndecided of [...this.#undecided]) rejectIfUndecided(503, 'listener closed');
      for (const { server } of this.#connections) {
        server?.close({ closeCode: closeInfo.closeCode ?? 0, reason: closeInfo.reason ?? '' });
      }
    }
    await Promise.all(
      [...this.#connections].map(({ wire }) => Promise.all([wire.c2s.whenIdle(), wire.s2c.whenIdle()])),
    );
  }
}

/** A listener clients reach with {@link connectMemory} at `memory://<name>/<path>`. */
export function createMemoryListener(options: MemoryListenerOptions = {}): MemoryListener {
  return new MemoryListenerImpl(options);
}

/**
 * The memory transport's {@link Connector}: `url` is `memory://<listener name>/<path>?<query>`. Link model, clock
 * and limits are the listener's (the "network" belongs to the server side of the simulation).
 */
export function connectMemory(url: string, options: ConnectOptions = {}): QuiverSession {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`invalid memory URL: ${url}`);
  }
  if (parsed.protocol !== 'memory:') throw new TypeError(`not a memory:// URL: ${url}`);
  const listener = registry.get(parsed.hostname);
  if (!listener) return unreachable(url);
  return listener.connect(parsed, options);
}

/** A session that fails like a connection refused: `ready` and `closed` reject, nothing else happens. */
function unreachable(url: string): QuiverSession {
  const wire = createWire(systemClock, 0, {});
  const session = new MemorySession({
    role: 'client',
    clock: systemClock,
    out: wire.c2s,
    limits: resolveLimits({}),
    rtt: wire.rtt,
  });
  wire.c2s.close();
  queueMicrotask(() =>
    session.fail(new QuiverTransportError(`no memory listener at ${url}`, { source: 'session' }), false),
  );
  return session;
}
