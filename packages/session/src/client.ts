import type { ConnectOptions, Connector, QuiverSession } from '@quiver/transport';
import { createRng, type TimerHandle } from './clock.js';
import { Kind } from './codec.js';
import {
  CloseCode,
  ConnectError,
  HandshakeTimeoutError,
  isFinalCloseCode,
  SessionClosedError,
  type SessionError,
} from './errors.js';
import { type BackoffOptions, backoffDelay } from './estimators.js';
import {
  type FallbackOptions,
  raceTransports,
  type TransportAttempt,
  type TransportCandidate,
} from './fallback.js';
import type { MessageType } from './messages.js';
import type { PersistedQueue } from './offline-queue.js';
import type { ClientTelemetry } from './telemetry.js';
import type { EstablishTrace } from './tracing.js';
import {
  ControlStream,
  type Handler,
  type HandshakeTables,
  Peer,
  type Link,
  type PeerOptions,
  type SendOptions,
} from './peer.js';

/** Automatic reconnection: exponential backoff with jitter (the backoff fields), and when to give up. */
export interface ReconnectOptions extends BackoffOptions {
  /** Attempts after a loss before giving up (the session then closes). Default Infinity. */
  maxAttempts?: number;
  /** Seed of the jitter generator (deterministic tests); default random. */
  seed?: number;
  /**
   * Each reconnect attempt (transport and handshake) is abandoned after this long and a fresh one follows: an
   * attempt started inside a blackout would otherwise wait out its transport's own retransmission backoff (QUIC's
   * PTO, TCP's SYN timer) long after the network came back. Default 2000 ms.
   */
  attemptTimeoutMs?: number;
}

/** Options of `connect()`: transports, credentials, reconnection, plus the peer options. */
export interface ClientOptions extends PeerOptions {
  /** Transports in order of preference; raced with a head start (see `fallback`). */
  transports?: TransportCandidate[];
  /**
   * `clientTelemetry({ intervalMs, sample })`: reports the client's RTT, jitter, loss, frame time and interpolation
   * delay to the server at a low rate on the `unreliable` channel (`quiver.telemetry`). Default off.
   */
  telemetry?: ClientTelemetry;
  /** Shorthand for a single transport. */
  connector?: Connector;
  /** How `transports` are raced: head start, per-attempt timeout, remembered winners. */
  fallback?: FallbackOptions;
  /** Options passed to every connector (certificate hashes, headers, timeout). */
  connectOptions?: ConnectOptions;
  /**
   * A credential for the server's `authenticate` hook, sent as the `token` query parameter (browsers cannot set
   * headers on WebTransport or WebSocket). A function is called again on every (re)connect, for fresh tokens.
   */
  token?: string | (() => string | Promise<string>);
  /** Query parameter name for `token`. Default `token`. */
  tokenParam?: string;
  /** WELCOME must arrive within this after the transport is ready. Default 10 000 ms. */
  handshakeTimeoutMs?: number;
  /** Automatic reconnection with resumption; `false` disables it. */
  reconnect?: ReconnectOptions | false;
  /** Errors that do not end the session (a throwing handler) and the typed error of a session that failed. */
  onError?: (error: Error) => void;
  /**
   * Opt-in: reliable messages sent while no transport is connected are also kept in storage (`localStorage`), and a
   * page reloaded before the connection came back sends them on its first connect (README "Offline queue"). Pass
   * `new PersistedQueue({ key, messages })`; taking an instance keeps the store out of bundles that do not use it.
   */
  persistQueue?: PersistedQueue;
}

/**
 * `connecting`: the first connect runs. `open`: a transport carries the session. `reconnecting`: it was lost and
 * a reconnect is scheduled or running. `closed`: ended for good.
 */
export type ClientState = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** What `open` handlers get on every (re)connect. */
export interface OpenInfo {
  /** True when the server resumed the previous session: no reliable message was lost. */
  recovered: boolean;
  /** The name of the transport that won the race. */
  transport: string;
}

/** What `reconnecting` handlers get before each reconnect attempt. */
export interface ReconnectingInfo {
  /** 0 for the first attempt after a loss, counting up until one succeeds. */
  attempt: number;
  /** Backoff before this attempt starts, in ms. */
  delayMs: number;
  /** Close code of the loss that started the reconnecting. */
  code: number;
  /** Why the connection was lost, or why the previous attempt failed. */
  reason: string;
}

/** What `close` handlers get when the session ends for good. */
export interface CloseEventInfo {
  /** The close code ({@link CloseCode}, or the application's own). */
  code: number;
  /** The close reason; may be empty. */
  reason: string;
}

/** Lifecycle events of a client session and what their handlers get. */
export interface ClientEvents {
  open: (info: OpenInfo) => void;
  reconnecting: (info: ReconnectingInfo) => void;
  close: (info: CloseEventInfo) => void;
  error: (error: Error) => void;
}

/** The client end of a session: reconnects by itself and resumes where the transport dropped. */
export class ClientSession extends Peer<ClientSession> {
  /** Where the session is in its lifecycle. */
  state: ClientState = 'connecting';
  /** The server's id for this session. */
  sessionId: string | undefined;
  /** Whether the last (re)connect resumed the previous session. */
  recovered = false;
  /** How the last connect went, transport by transport. */
  transportAttempts: TransportAttempt[] = [];
  /** Reconnects that completed (resumed or not). */
  reconnects = 0;
  private resumeToken: string | undefined;
  private reconnectTimer: TimerHandle | undefined;
  /** A reconnect raced against a suspected path is running. */
  private racing = false;
  private unlistenNetwork: (() => void) | undefined;
  private readonly rng: () => number;
  // biome-ignore lint/suspicious/noExplicitAny: handlers of every payload type share one table
  private readonly events = new Map<keyof ClientEvents, Set<(...args: any[]) => void>>();
  private closeInfo: CloseEventInfo | undefined;
  private readonly candidates: TransportCandidate[];
  /** The persisted offline queue, when `persistQueue` is set (`dropped` counts what it could not keep). */
  readonly persistedQueue: PersistedQueue | undefined;

  constructor(
    /** The server URL given to `connect()`, before `token` is added. */
    readonly url: string,
    private readonly clientOptions: ClientOptions,
  ) {
    super(clientOptions, 'error');
    this.candidates =
      clientOptions.transports ??
      (clientOptions.connector ? [{ name: 'default', connector: clientOptions.connector }] : []);
    if (this.candidates.length === 0) throw new TypeError('connect() needs `transports` or `connector`');
    const r = clientOptions.reconnect;
    const seed = r && r.seed !== undefined ? r.seed : Math.floor(Math.random() * 2 ** 32);
    const rng = createRng(seed);
    this.rng = rng;
    if (r !== false && this.opts.heartbeat.suspectAfterMs > 0) {
      this.watchPaths(
        (link, silentMs) => this.raceReconnect(link, `no answer for ${Math.round(silentMs)} ms`),
        (link, overdueMs) =>
          this.raceReconnect(link, `no acknowledgement for ${Math.round(overdueMs)} ms on a live path`),
      );
    }
    this.unlistenNetwork = r === false ? undefined : listenNetwork(() => this.networkChanged());
    if (clientOptions.telemetry) {
      this.registry.register(clientOptions.telemetry.message);
      this.on('close', clientOptions.telemetry.start(this, this.clock));
    }
    const store = clientOptions.persistQueue;
    if (store) {
      this.persistedQueue = store;
      // Once a transport is connected, what was recorded is in flight through the session's resumable queue.
      this.on('open', () => store.clear());
    }
  }

  protected get self(): ClientSession {
    return this;
  }

  protected get sessionIdForTrace(): string | undefined {
    return this.sessionId;
  }

  /** The server's clock now, estimated from the heartbeat exchange with the smallest RTT (NTP-style). */
  serverTime(): number {
    return this.clock.now() + this.liveness.clockSync.offset;
  }

  /** Bound on the error of `serverTime()` in ms: half the RTT of the sample it uses; Infinity before any. */
  get clockError(): number {
    return this.liveness.clockSync.error;
  }

  /**
   * Registers a handler for a message type, or for a lifecycle event (`open`, `reconnecting`, `close`, `error`).
   * Returns a function that removes it.
   */
  on<T>(type: MessageType<T>, handler: Handler<T, ClientSession>): () => void;
  on<E extends keyof ClientEvents>(event: E, handler: ClientEvents[E]): () => void;
  // biome-ignore lint/suspicious/noExplicitAny: handlers of every payload type share one table
  on(type: MessageType<any> | keyof ClientEvents, handler: (...args: any[]) => void): () => void {
    if (typeof type === 'string') {
      let set = this.events.get(type);
      if (!set) {
        set = new Set();
        this.events.set(type, set);
      }
      set.add(handler);
      return () => set.delete(handler);
    }
    return this.onMessage(type, handler);
  }

  override send<T>(type: MessageType<T>, payload: T, options?: SendOptions): boolean {
    const accepted = super.send(type, payload, options);
    const store = this.persistedQueue;
    if (store && accepted && this.state !== 'open') {
      const channel = options?.channel ?? type.channel ?? 'reliable';
      if (this.channels.get(channel)?.reliable) store.add(type as MessageType<unknown>, channel, payload);
    }
    return accepted;
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

  /** Closes for good: tells the server not to keep the session for a resume. */
  async close(code: number = CloseCode.NORMAL, reason = ''): Promise<void> {
    if (this.state === 'closed') return;
    this.clock.clearTimeout(this.reconnectTimer);
    await this.closeLink(code, reason, false);
    this.finish(code, reason);
  }

  /** Resolves once closed for good. */
  get closed(): Promise<CloseEventInfo> {
    if (this.closeInfo) return Promise.resolve(this.closeInfo);
    return new Promise((resolve) => this.on('close', resolve));
  }

  private async url_(): Promise<string> {
    const t = this.clientOptions.token;
    if (t === undefined) return this.url;
    const token = typeof t === 'function' ? await t() : t;
    const u = new URL(this.url);
    u.searchParams.set(this.clientOptions.tokenParam ?? 'token', token);
    return u.toString();
  }

  /** @internal One connection attempt with handshake; resolves when the session is attached. */
  async connectOnce(reconnecting = false): Promise<void> {
    const traced = this.options.tracing?.establish('client', {
      'quiver.session.resume': this.sessionId !== undefined,
    });
    this.traceSampled = traced?.sampled ?? false;
    try {
      await this.connectTraced(traced, reconnecting);
      traced?.end({
        'network.protocol.name': this.transport ?? '',
        'quiver.session.recovered': this.recovered,
      });
    } catch (err) {
      traced?.end({}, err);
      throw err;
    }
  }

  private async connectTraced(traced: EstablishTrace | undefined, reconnecting: boolean): Promise<void> {
    const url = await this.url_();
    const r = this.clientOptions.reconnect || {};
    const limit = reconnecting ? (r.attemptTimeoutMs ?? 2000) : Number.POSITIVE_INFINITY;
    const raced = await raceTransports(url, this.candidates, {
      ...this.clientOptions.fallback,
      connectTimeoutMs: Math.min(this.clientOptions.fallback?.connectTimeoutMs ?? 10_000, limit),
      clock: this.clientOptions.fallback?.clock ?? this.clock,
      connectOptions: this.clientOptions.connectOptions,
    }).catch((err) => {
      if (err instanceof ConnectError) {
        this.transportAttempts = [...err.attempts];
        traced?.attempts(err.attempts);
      }
      throw err;
    });
    this.transportAttempts = raced.attempts;
    traced?.attempts(raced.attempts);
    const session = raced.session;
    if (this.state === 'closed') {
      session.close();
      throw new SessionClosedError('closed while connecting');
    }
    let control: ControlStream | undefined;
    let timer: TimerHandle | undefined;
    try {
      // The deadline covers opening the control stream too: on a path that died after `ready` it never opens.
      const ms = Math.min(this.clientOptions.handshakeTimeoutMs ?? 10_000, limit);
      const deadline = new Promise<never>((_, rej) => {
        timer = this.clock.setTimeout(() => rej(new HandshakeTimeoutError(`no WELCOME within ${ms} ms`)), ms);
      });
      deadline.catch(() => {});
      const stream = await Promise.race([session.createBidirectionalStream(), deadline]);
      control = new ControlStream(stream, this.opts.maxMessageBytes + 64);
      const t0 = this.clock.now();
      const hello: Record<string, unknown> = { v: 1, ...this.localTables(), acks: this.localAcks() };
      if (this.sessionId && this.resumeToken) hello.resume = { id: this.sessionId, token: this.resumeToken };
      control.write([Kind.HELLO, hello]);
      const frame = await Promise.race([control.next(), deadline]);
      this.clock.clearTimeout(timer);
      if (!frame) throw new SessionClosedError('the server closed during the handshake');
      if (frame.header[0] === Kind.CLOSE) {
        const code = typeof frame.header[1] === 'number' ? frame.header[1] : 0;
        throw new SessionClosedError(`refused: ${String(frame.header[2] ?? '')}`, code);
      }
      const w = frame.header[1] as Record<string, unknown> | undefined;
      if (frame.header[0] !== Kind.WELCOME || !w || typeof w.sessionId !== 'string') {
        throw new SessionClosedError('expected WELCOME', CloseCode.BAD_MESSAGE);
      }
      if (typeof w.serverTime === 'number') this.liveness.clockSync.add(t0, w.serverTime, this.clock.now());
      const resumed = w.recovered === true && w.sessionId === this.sessionId;
      this.sessionId = w.sessionId;
      this.resumeToken = typeof w.resumeToken === 'string' ? w.resumeToken : undefined;
      this.recovered = resumed;
      const peer: HandshakeTables = {
        messages: Array.isArray(w.messages) ? (w.messages as [string, number][]) : [],
        channels: Array.isArray(w.channels) ? (w.channels as HandshakeTables['channels']) : [],
        acks: Array.isArray(w.acks) ? (w.acks as [string, number][]) : [],
      };
      this.state = 'open';
      this.attach(session, control, peer, resumed);
    } catch (err) {
      this.clock.clearTimeout(timer);
      control?.cancel().catch(() => {});
      try {
        session.close();
      } catch {
        // already closed
      }
      throw err;
    }
  }

  protected linkLost(code: number, reason: string): void {
    if (this.state === 'closed' || this.replacedByRace(code)) return;
    if (isFinalCloseCode(code) || this.clientOptions.reconnect === false) {
      this.finish(code, reason);
      return;
    }
    this.state = 'reconnecting';
    // A raced reconnect is already under way: its outcome decides what follows.
    if (!this.racing) this.scheduleReconnect(0, code, reason);
  }

  /** The server let the old link go because the raced reconnect resumed the session on a new one: not an end. */
  private replacedByRace(code: number): boolean {
    if (!this.racing || code !== CloseCode.REPLACED) return false;
    this.state = 'reconnecting';
    return true;
  }

  /**
   * The path of `link` looks dead (see `heartbeat.suspectAfterMs`): a reconnect that resumes the session starts now,
   * while the old link stays in use; whichever delivers first wins, and a new link replaces the old one.
   */
  private raceReconnect(link: Link, reason: string): void {
    if (this.state !== 'open' || this.racing || this.link !== link) {
      // Not now (a race or a reconnect already runs): keep watching the link, or the next loss goes unnoticed.
      if (!this.racing && this.link === link && !link.closed) this.pathWatch?.watch(link);
      return;
    }
    this.racing = true;
    this.emit('reconnecting', { attempt: 0, delayMs: 0, code: 0, reason });
    this.connectOnce(true).then(
      () => {
        this.racing = false;
        this.reconnects++;
        this.emit('open', { recovered: this.recovered, transport: this.transport ?? '' });
      },
      (err: Error) => {
        this.racing = false;
        if (this.state === 'closed') return;
        if (this.state === 'reconnecting') this.scheduleReconnect(1, 0, err.message);
        else if (this.link === link && !link.closed) this.pathWatch?.watch(link);
      },
    );
  }

  /** The platform says the network changed (a browser's `online` event): a pending reconnect goes now. */
  private networkChanged(): void {
    if (this.state === 'open' && this.link) {
      // A new network (Wi-Fi to cellular): the old path may be gone without a word.
      this.raceReconnect(this.link, 'network changed');
      return;
    }
    if (this.state !== 'reconnecting' || this.racing || this.reconnectTimer === undefined) return;
    this.clock.clearTimeout(this.reconnectTimer);
    this.scheduleReconnect(0, 0, 'network changed');
  }

  private scheduleReconnect(attempt: number, code: number, reason: string): void {
    const r = this.clientOptions.reconnect || {};
    if (attempt >= (r.maxAttempts ?? Number.POSITIVE_INFINITY)) {
      this.finish(code, `gave up reconnecting: ${reason}`);
      return;
    }
    const delayMs = backoffDelay(attempt, this.rng, r);
    this.emit('reconnecting', { attempt, delayMs, code, reason });
    this.reconnectTimer = this.clock.setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.state === 'closed') return;
      this.connectOnce(true).then(
        () => {
          this.reconnects++;
          this.emit('open', { recovered: this.recovered, transport: this.transport ?? '' });
        },
        (err: Error) => {
          if (this.state === 'closed') return;
          const status = err instanceof ConnectError ? err.status : undefined;
          const closeCode = err instanceof SessionClosedError ? err.code : 0;
          if (status === 401 || status === 403 || isFinalCloseCode(closeCode)) {
            this.reportError(err);
            this.finish(closeCode || CloseCode.FORBIDDEN, err.message);
            return;
          }
          this.scheduleReconnect(attempt + 1, code, err.message);
        },
      );
    }, delayMs);
  }

  protected peerClosed(code: number, reason: string, reconnect: boolean): void {
    if (this.replacedByRace(code)) return;
    if (reconnect) this.linkLost(code, reason);
    else this.finish(code, reason);
  }

  protected fail(err: SessionError): void {
    this.reportError(err);
    this.closeLink(err.closeCode, err.message.slice(0, 200), false);
    this.finish(err.closeCode, err.message);
  }

  protected reportError(err: Error): void {
    try {
      this.clientOptions.onError?.(err);
    } catch {
      // ignore
    }
    this.emit('error', err);
  }

  private finish(code: number, reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.closedForGood = true;
    this.checkDrained();
    this.clock.clearTimeout(this.reconnectTimer);
    this.unlistenNetwork?.();
    this.pathWatch?.stop();
    if (this.link) this.detach(this.link);
    this.closeInfo = { code, reason };
    this.emit('close', this.closeInfo);
  }
}

/**
 * Calls `changed` on a browser's `online` event (W3C HTML §8.10.1.1 `navigator.onLine`) and on a Network
 * Information `change` where there is one; returns the function that stops listening. Elsewhere, nothing.
 */
function listenNetwork(changed: () => void): (() => void) | undefined {
  const g = globalThis as {
    addEventListener?: (t: string, f: () => void) => void;
    removeEventListener?: (t: string, f: () => void) => void;
    navigator?: {
      connection?: {
        addEventListener?: (t: string, f: () => void) => void;
        removeEventListener?: (t: string, f: () => void) => void;
      };
    };
  };
  if (typeof g.addEventListener !== 'function' || typeof g.navigator === 'undefined') return undefined;
  const onChange = () => changed();
  g.addEventListener('online', onChange);
  g.navigator.connection?.addEventListener?.('change', onChange);
  return () => {
    g.removeEventListener?.('online', onChange);
    g.navigator?.connection?.removeEventListener?.('change', onChange);
  };
}

/**
 * Connects to a session server: races `transports` (WebTransport first, WebSocket after a head start), performs the
 * handshake, and resolves with a session that reconnects and resumes by itself. Rejects with `ConnectError` (every
 * transport failed; see `attempts`) or `SessionClosedError` (the server refused the handshake).
 */
export async function connect(url: string, options: ClientOptions): Promise<ClientSession> {
  const session = new ClientSession(url, options);
  try {
    await session.connectOnce();
  } catch (err) {
    await session.close(err instanceof SessionClosedError ? err.code : CloseCode.NORMAL, String(err));
    throw err;
  }
  // What a previous page queued while offline goes out first, before the application's own sends.
  for (const m of session.persistedQueue?.take() ?? [])
    session.send(m.type, m.payload, { channel: m.channel });
  return session;
}

export type { QuiverSession };
