/**
 * The page side of `@quiver/session/worker`: `connect()` with the options of the main-thread `connect()`, plus the
 * Worker that runs the session (`hostSessions()` of `@quiver/session/worker-host`). The session object it returns
 * has the main-thread session's API; what it reads synchronously (state, RTT, the server clock, the latest payload
 * of a message type) it answers from the Worker's last report.
 */
import type { ClientEvents, ClientOptions, ClientState, CloseEventInfo } from '../client.js';
import { CloseCode, ConnectError, SessionClosedError, SessionError, ValidationError } from '../errors.js';
import { defaultWinnerMemory, type TransportAttempt } from '../fallback.js';
import type { MessageType } from '../messages.js';
import type { DropInfo, DropReason, Handler, PeerStats, SendOptions } from '../peer-options.js';
import type { SessionClient } from '../session-client.js';
import { MainThreadDelay } from './main-thread-delay.js';
import type {
  AttachCommand,
  PageToWorker,
  PortLike,
  Snapshot,
  WireError,
  WireType,
  WorkerToPage,
} from './protocol.js';

/** Options of the Worker `connect()`: those of the main-thread `connect()`, with the Worker that runs it. */
export interface WorkerConnectOptions extends Omit<ClientOptions, 'connector' | 'clock' | 'persistQueue'> {
  /**
   * The dedicated Worker running `hostSessions()` (one Worker can host many sessions). Candidates in `transports`
   * cross by name, URL and options; the Worker uses its own connector of that name.
   */
  worker: PortLike;
}

/** The `MessageChannel` constructor; typed here so that Node typings need no DOM. */
interface ChannelCtor {
  new (): { port1: PortLike; port2: PortLike };
}

const now = (): number => performance.timeOrigin + performance.now();

const INITIAL: Snapshot = {
  state: 'connecting',
  sessionId: undefined,
  transport: undefined,
  connected: false,
  recovered: false,
  reconnects: 0,
  rtt: 0,
  jitter: 0,
  loss: 0,
  minRtt: 0,
  clockOffset: 0,
  clockError: Number.POSITIVE_INFINITY,
  bufferedBytes: 0,
  stats: {
    messagesIn: {},
    messagesOut: {},
    bytesIn: {},
    bytesOut: {},
    drops: {},
    pings: 0,
    traceContextInvalid: 0,
  },
  transportAttempts: [],
};

/** A client session running in a Worker, used from the page as a `ClientSession` is. */
export class WorkerClientSession implements SessionClient {
  /** The Worker's last report. */
  private s: Snapshot = INITIAL;
  private closedLocally: CloseEventInfo | undefined;
  // biome-ignore lint/suspicious/noExplicitAny: handlers of every payload type share one table
  private readonly handlers = new Map<string, Set<Handler<any, WorkerClientSession>>>();
  // biome-ignore lint/suspicious/noExplicitAny: handlers of every event share one table
  private readonly events = new Map<keyof ClientEvents, Set<(...args: any[]) => void>>();
  private readonly types = new Map<string, MessageType>();
  private readonly latestByName = new Map<string, unknown>();
  private readonly channelNames: Set<string>;
  private readonly waiters = new Map<number, () => void>();
  private nextWaiter = 1;
  /** Sends of this task, posted together at its end (see `send`). */
  private sendBatch: Extract<PageToWorker, { q: 'send' }>['b'] = [];
  private sendTransfer: ArrayBuffer[] = [];
  private readonly pageDrops: Partial<Record<DropReason, number>> = {};
  /**
   * When the Worker posted the messages being handled (epoch ms, `performance.timeOrigin + performance.now()`):
   * about when they arrived from the network. On a busy page it is earlier than now by the main-thread delay, so
   * an interpolation buffer fed with it measures the network's jitter, not the page's.
   */
  receivedAt = 0;
  /** How long the page's main thread kept the Worker's posts waiting (see {@link MainThreadDelay}). */
  readonly mainThreadDelay = new MainThreadDelay();
  /** @internal Settles the first connect. */
  opened: Promise<void>;
  private settleOpen!: { resolve: () => void; reject: (e: Error) => void };

  constructor(
    /** The server URL given to `connect()`. */
    readonly url: string,
    private readonly options: WorkerConnectOptions,
    private readonly port: PortLike,
  ) {
    this.channelNames = new Set(['reliable', 'unreliable', ...Object.keys(options.channels ?? {})]);
    for (const t of options.messages ?? []) this.register(t);
    this.opened = new Promise((resolve, reject) => {
      this.settleOpen = { resolve, reject };
    });
    port.addEventListener('message', this.onMessage);
    port.start?.();
  }

  get state(): ClientState {
    return this.closedLocally ? 'closed' : this.s.state;
  }
  get sessionId(): string | undefined {
    return this.s.sessionId;
  }
  get transport(): string | undefined {
    return this.s.transport;
  }
  get connected(): boolean {
    return this.s.connected && this.state !== 'closed';
  }
  get recovered(): boolean {
    return this.s.recovered;
  }
  get reconnects(): number {
    return this.s.reconnects;
  }
  get transportAttempts(): readonly TransportAttempt[] {
    return this.s.transportAttempts;
  }
  /** Smoothed RTT in ms, measured in the Worker: the network's, not the page's. */
  get rtt(): number {
    return this.s.rtt;
  }
  get jitter(): number {
    return this.s.jitter;
  }
  get loss(): number {
    return this.s.loss;
  }
  get minRtt(): number {
    return this.s.minRtt;
  }
  /** As of the Worker's last report. */
  get bufferedBytes(): number {
    return this.s.bufferedBytes;
  }
  /** The Worker's counters as of its last report; `unhandled` drops are counted on the page. */
  get stats(): PeerStats {
    const drops = { ...this.s.stats.drops };
    for (const [k, v] of Object.entries(this.pageDrops) as [DropReason, number][])
      drops[k] = (drops[k] ?? 0) + v;
    return { ...this.s.stats, drops };
  }
  get clockError(): number {
    return this.s.clockError;
  }

  /** The server's clock now: synchronous, from the offset the Worker measured and the page's own clock. */
  serverTime(): number {
    return now() + this.s.clockOffset;
  }

  /** The last payload received of `type` (handled or not), synchronously; undefined before the first. */
  latest<T>(type: MessageType<T>): T | undefined {
    return this.latestByName.get(type.name) as T | undefined;
  }

  on<T>(type: MessageType<T>, handler: Handler<T, WorkerClientSession>): () => void;
  on<E extends keyof ClientEvents>(event: E, handler: ClientEvents[E]): () => void;
  // biome-ignore lint/suspicious/noExplicitAny: handlers of every payload type share one table
  on(type: MessageType<any> | keyof ClientEvents, handler: (...args: any[]) => void): () => void {
    const key = typeof type === 'string' ? type : type.name;
    if (typeof type !== 'string') this.register(type);
    const table = (typeof type === 'string' ? this.events : this.handlers) as Map<
      string,
      Set<typeof handler>
    >;
    let set = table.get(key);
    if (!set) {
      set = new Set();
      table.set(key, set);
    }
    set.add(handler);
    return () => set.delete(handler);
  }

  /**
   * Posts a message to the Worker: the sends of one task cross in one post (at the end of the task), so the Worker
   * handles them in one turn and its session packs them into as few datagrams as fit. The payload is copied now, as
   * `ClientSession.send` encodes it now: a buffer the caller reuses after the call (an ack or input packet builder's
   * scratch) cannot change what is sent; a byte payload's copy is transferred, not copied again. Returns true: what the Worker's session drops (congestion, budget, disconnected) is counted in
   * `stats.drops` and reported to `onDrop`, and what it refuses (too large, queue full) is an `error` event.
   */
  send<T>(type: MessageType<T>, payload: T, options: SendOptions = {}): boolean {
    if (this.state === 'closed') throw new SessionClosedError('session is closed');
    const t = this.register(type);
    const channel = options.channel ?? t.channel ?? 'reliable';
    if (!this.channelNames.has(channel)) throw new TypeError(`unknown channel '${channel}'`);
    let copy: unknown;
    if (payload instanceof Uint8Array) {
      const own = payload.slice();
      this.sendTransfer.push(own.buffer);
      copy = own;
    } else copy = typeof payload === 'object' && payload !== null ? structuredClone(payload) : payload;
    this.sendBatch.push([wireType(t), copy, options.channel, options.key]);
    if (this.sendBatch.length === 1) queueMicrotask(() => this.flushSends());
    return true;
  }

  /** Resolves once the Worker's session has at most `bytes` buffered for sending. */
  drained(bytes = 0): Promise<void> {
    if (this.state === 'closed') return Promise.resolve();
    const id = this.nextWaiter++;
    return new Promise((resolve) => {
      this.waiters.set(id, resolve);
      this.post({ q: 'drained', id, bytes });
    });
  }

  /** Closes for good (in the Worker, which tells the server); resolves once the Worker reports it closed. */
  async close(code: number = CloseCode.NORMAL, reason = ''): Promise<void> {
    if (this.state === 'closed') return;
    const done = this.closed;
    this.post({ q: 'close', code, reason });
    await done;
  }

  /** Resolves once closed for good. */
  get closed(): Promise<CloseEventInfo> {
    if (this.closedLocally) return Promise.resolve(this.closedLocally);
    return new Promise((resolve) => this.on('close', resolve));
  }

  private register(type: MessageType): MessageType {
    const known = this.types.get(type.name);
    if (known && (known.validate || !type.validate)) return known;
    this.types.set(type.name, type);
    return type;
  }

  private flushSends(): void {
    if (this.sendBatch.length === 0) return;
    const b = this.sendBatch;
    const transfer = this.sendTransfer;
    this.sendBatch = [];
    this.sendTransfer = [];
    this.port.postMessage({ q: 'send', b } satisfies PageToWorker, transfer);
  }

  private post(m: PageToWorker): void {
    // Sends already made go first: a close or a drained() after them must find them in the Worker's session.
    this.flushSends();
    this.port.postMessage(m);
  }

  private readonly onMessage = (ev: { data: unknown }): void => {
    const m = ev.data as WorkerToPage;
    this.mainThreadDelay.add(m.at, now());
    this.s = m.s;
    switch (m.q) {
      case 'msgs':
        this.receivedAt = m.at;
        for (const [name, payload] of m.b) this.deliver(name, payload);
        return;
      case 'open':
        if (m.first) this.settleOpen.resolve();
        else this.emit('open', { recovered: m.recovered, transport: m.transport });
        return;
      case 'failed':
        this.closedLocally = { code: m.error.code ?? CloseCode.NORMAL, reason: m.error.message };
        this.port.removeEventListener('message', this.onMessage);
        this.settleOpen.reject(rebuildError(m.error));
        return;
      case 'reconnecting':
        this.emit('reconnecting', { attempt: m.attempt, delayMs: m.delayMs, code: m.code, reason: m.reason });
        return;
      case 'close':
        this.finish({ code: m.code, reason: m.reason });
        return;
      case 'error':
        this.reportError(rebuildError(m.error));
        return;
      case 'drop':
        this.callOnDrop(m.reason, m.info);
        return;
      case 'drained':
        this.waiters.get(m.id)?.();
        this.waiters.delete(m.id);
        return;
      case 'token':
        void this.token().then(
          (token) => this.post({ q: 'token', id: m.id, token }),
          (err: Error) => this.post({ q: 'token', id: m.id, error: String(err?.message ?? err) }),
        );
        return;
      case 'remember':
        (this.options.fallback?.memory || defaultWinnerMemory).set(m.origin, m.winner);
        return;
      case 'tick':
        return;
    }
  };

  private async token(): Promise<string> {
    const t = this.options.token;
    return typeof t === 'function' ? await t() : (t ?? '');
  }

  private deliver(name: string, payload: unknown): void {
    if (this.state === 'closed') return;
    const type = this.types.get(name);
    let ok = true;
    try {
      ok = type?.validate ? type.validate(payload) : true;
    } catch {
      ok = false;
    }
    if (!ok) {
      // As on the main thread: a payload that fails validation closes the session with 4422.
      const err = new ValidationError(`message '${name}' failed validation`, name);
      this.reportError(err);
      void this.close(CloseCode.VALIDATION_FAILED, err.message);
      return;
    }
    this.latestByName.set(name, payload);
    const set = this.handlers.get(name);
    if (!set || set.size === 0) {
      this.pageDrops.unhandled = (this.pageDrops.unhandled ?? 0) + 1;
      this.callOnDrop('unhandled', { message: name });
      return;
    }
    for (const h of set) {
      try {
        h(payload, this);
      } catch (err) {
        this.reportError(err as Error);
      }
    }
  }

  private callOnDrop(reason: DropReason, info: DropInfo): void {
    try {
      this.options.onDrop?.(reason, info);
    } catch (err) {
      this.reportError(err as Error);
    }
  }

  private reportError(err: Error): void {
    try {
      this.options.onError?.(err);
    } catch {
      // ignore
    }
    this.emit('error', err);
  }

  private finish(info: CloseEventInfo): void {
    if (this.closedLocally) return;
    this.closedLocally = info;
    this.port.removeEventListener('message', this.onMessage);
    for (const w of this.waiters.values()) w();
    this.waiters.clear();
    this.emit('close', info);
    this.port.close?.();
  }

  private emit<E extends keyof ClientEvents>(event: E, ...args: Parameters<ClientEvents[E]>): void {
    for (const h of this.events.get(event) ?? []) {
      try {
        h(...args);
      } catch (err) {
        if (event !== 'error') this.reportError(err as Error);
      }
    }
  }
}

function wireType(t: MessageType): WireType {
  return [t.name, t.id, t.channel];
}

function rebuildError(e: WireError): Error {
  if (e.name === 'ConnectError') return new ConnectError(e.message, e.attempts ?? [], e.status);
  if (e.name === 'SessionClosedError') return new SessionClosedError(e.message, e.code);
  const err = e.kind !== undefined ? new SessionError(e.message, e.kind, e.code) : new Error(e.message);
  Object.defineProperty(err, 'name', { value: e.name });
  return err;
}

/** The origins the race may look up winners for: the session URL's and each candidate's. */
function originsOf(url: string, candidates: { url?: string }[]): string[] {
  const out = new Set<string>();
  for (const u of [url, ...candidates.map((c) => c.url)]) {
    if (!u) continue;
    try {
      out.add(new URL(u).origin);
    } catch {
      // not a URL: the race uses it as given, and nothing is remembered for it
    }
  }
  return [...out];
}

/**
 * Connects a session that runs in `options.worker`: the same race, handshake, reconnection and resumption as
 * `connect()` of `@quiver/session`, off the main thread. Resolves with a session whose API is the main-thread
 * one's; rejects with `ConnectError` or `SessionClosedError` as `connect()` does.
 */
export async function connect(url: string, options: WorkerConnectOptions): Promise<WorkerClientSession> {
  const {
    worker,
    transports = [],
    messages = [],
    onError: _onError,
    onDrop: _onDrop,
    token,
    fallback,
    ...rest
  } = options;
  const Channel = (globalThis as unknown as { MessageChannel: ChannelCtor }).MessageChannel;
  const { port1, port2 } = new Channel();
  const session = new WorkerClientSession(url, options, port1);
  const memory = fallback?.memory === false ? undefined : (fallback?.memory ?? defaultWinnerMemory);
  const remembered: AttachCommand['remembered'] = {};
  for (const origin of originsOf(url, transports)) {
    const w = memory?.get(origin);
    if (w) remembered[origin] = { name: w.name, at: w.at };
  }
  const { memory: _memory, clock: _clock, ...fallbackRest } = fallback ?? {};
  const cmd: AttachCommand = {
    q: 'attach',
    port: port2,
    url,
    options: {
      ...rest,
      ...(typeof token === 'string' ? { token } : {}),
      fallback: fallback?.memory === false ? { ...fallbackRest, memory: false } : fallbackRest,
    },
    transports: transports.map((c) => ({
      name: c.name,
      url: c.url,
      options: c.options as Record<string, unknown> | undefined,
      headStartMs: c.headStartMs,
    })),
    messages: messages.map(wireType),
    remembered,
    tokenFunction: typeof token === 'function',
  };
  worker.postMessage(cmd, [port2]);
  await session.opened;
  return session;
}
