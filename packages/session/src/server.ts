import type {
  IncomingSession,
  QuiverSession,
  SessionRequest,
  TransportListener,
  TransportName,
} from '@quiver/transport';
import { PendingHandshakes, type PreAuthOptions } from './admission.js';
import { randomToken, systemClock, type TimerHandle } from './clock.js';
import { Kind } from './codec.js';
import {
  CloseCode,
  HandshakeTimeoutError,
  isFinalCloseCode,
  NotAuthenticatedError,
  ServerBusyError,
  SessionClosedError,
  SessionError,
  ValidationError,
} from './errors.js';
import { DEFAULT_SESSION_RATE, IncomingBudget } from './limits.js';
import type { MessageType } from './messages.js';
import { type ClientQuality, QualityTracker, type QualityOptions, TelemetryMessage } from './telemetry.js';
import { createMetrics, type SessionMetrics } from './metrics.js';
import { parseHello } from './hello.js';
import type { DeliveryMode } from './messages.js';
import {
  ControlStream,
  channelMode,
  defaultChannels,
  type Handler,
  type HandshakeTables,
  Peer,
  type PeerOptions,
  type SendOptions,
} from './peer.js';

/** Thrown (or returned via `reject()`) by `authenticate` to refuse a session before it exists. */
export class AuthRejection extends Error {
  /** `'AuthRejection'`. */
  override readonly name = 'AuthRejection';
  constructor(
    /** 401, 403, 429, 503, ... */
    readonly status: number,
    /** Sent to the client with the status; empty by default. Do not put secrets here. */
    readonly reason = '',
  ) {
    super(`rejected with ${status}${reason ? `: ${reason}` : ''}`);
  }
}

/** Refuses the session from inside `authenticate` with an HTTP status: throws an {@link AuthRejection}. */
export function reject(status: number, reason?: string): never {
  throw new AuthRejection(status, reason);
}

/**
 * The fields of a log record, kept apart from its message so that a structured logger (pino) stores them as
 * fields: `sessionId`, `transport`, `user` (the authenticated user id), `code` (a close code or HTTP status),
 * `reason`, `remoteAddress` and `err`.
 */
export interface LogFields {
  /** The session's `id`. */
  sessionId?: string;
  /** The transport's name (`webtransport`, `websocket`, ...). */
  transport?: string;
  /** The authenticated user id (`AuthResult.userId`). */
  user?: string;
  /** A close code or HTTP status. */
  code?: number;
  /** A close or refusal reason. */
  reason?: string;
  /** The peer's IP address as the socket reports it. */
  remoteAddress?: string;
  /** The error behind the record, if any. */
  err?: Error;
}

/** A logger in pino's shape (`logger.info(fields, message)`); every level is optional. */
export interface SessionLogger {
  /** A session lost its transport and may resume. */
  debug?: (fields: LogFields, msg: string) => void;
  /** Lifecycle: session opened, resumed, closed; session request rejected. */
  info?: (fields: LogFields, msg: string) => void;
  /** Errors: bad peer input, broken limits, handler exceptions (what `onError` gets). */
  warn?: (fields: LogFields, msg: string) => void;
}

/** What `authenticate` returns: who the peer is. Kept on the session as `session.user`. */
export interface AuthResult {
  /** Stable id of the user; a resume is only accepted for the same `userId`. */
  userId: string;
  [key: string]: unknown;
}

/** A decoded incoming message as the `validate` hook sees it. */
export interface ReceivedMessage {
  /** The message type's name. */
  name: string;
  /** The channel it arrived on. */
  channel: string;
  /** The decoded MessagePack payload, not yet checked against any schema. */
  payload: unknown;
}

/** Options of {@link createSessionServer}; the peer options apply to every session. */
export interface SessionServerOptions extends PeerOptions {
  /** Only requests for this path are accepted (others get 404). Default: any path. */
  path?: string;
  /** Listeners to accept sessions from; more can be added (and removed) later with `addListener`. */
  listeners?: TransportListener[];
  /** Client telemetry (`telemetry` client option): report rate limit and the thresholds of poor quality. */
  quality?: QualityOptions;
  /**
   * Called when a session's reported quality crosses its thresholds (`quality.thresholds`): `quality.state` is
   * `poor` once a figure is over its threshold, `good` once all are under 80 % of theirs.
   */
  onQualityChange?: (session: ServerSession, quality: ClientQuality) => void;
  /**
   * Runs on every session establishment on every transport, resumptions included, before the session exists.
   * Return who the peer is; throw `AuthRejection` (or call `reject(status)`) to refuse. Without it every request is
   * accepted as an anonymous user.
   */
  authenticate?: (request: SessionRequest) => AuthResult | Promise<AuthResult>;
  /**
   * Browser origins allowed (exact `scheme://host:port` strings, or a predicate). Requests with another Origin get
   * 403. Requests without Origin (non-browser clients) are allowed unless `requireOrigin`. Default: any.
   */
  allowedOrigins?: string[] | ((origin: string) => boolean);
  /**
   * Refuse (403) requests with no Origin header (non-browser clients). Default false. An Origin of `null` is
   * refused whenever `allowedOrigins` is set.
   */
  requireOrigin?: boolean;
  /** Per-session and per-address rate limits on what peers may send or open. */
  rateLimits?: {
    /**
     * Incoming frames per second and bytes per second per session, with `burstSeconds` of either held in reserve;
     * over it the session is closed with 4429. Each field left out takes its default: 1000 messages/s, 1 MiB/s,
     * 2 s of burst (`DEFAULT_SESSION_RATE`). `Infinity` lifts a limit.
     */
    perSession?: {
      /** Incoming frames per second. Default 1000. */
      messagesPerSecond?: number;
      /** Incoming bytes per second. Default 1 MiB. */
      bytesPerSecond?: number;
      /** Seconds of either rate a session may use at once. Default 2. */
      burstSeconds?: number;
    };
    /** New sessions per minute per remote address; over it requests get 429. */
    perIp?: {
      /** Session requests per sliding minute from one address. Default: no limit. */
      sessionsPerMinute?: number;
    };
  };
  /**
   * Sessions at once (connected or awaiting a resume); over it requests get 503 (and a HELLO that arrives when the
   * server filled up meanwhile is closed with 4503). Connections still in their handshake do not count here but
   * against `preAuth`. Default 10 000.
   */
  maxSessions?: number;
  /**
   * The pre-authentication budget: connections that have not completed HELLO (authenticate running or HELLO
   * awaited), in total (`maxPending`, default 1024) and per remote address (`maxPendingPerIp`, default 16). At a
   * cap the oldest pending handshake is evicted (503 before acceptance, 4503 after), so idle sockets cannot lock
   * clients out. Each has at most `handshakeTimeoutMs` + `firstMessageTimeoutMs` to finish.
   */
  preAuth?: PreAuthOptions;
  /** Deadline for `authenticate` to decide; over it the request gets 503. Default 5000 ms. */
  handshakeTimeoutMs?: number;
  /** After accepting, the client's HELLO must arrive within this; else the session is closed with 4408. Default 5000 ms. */
  firstMessageTimeoutMs?: number;
  /** Hook run on every incoming message after decoding; false or a throw closes the session with 4422. */
  validate?: (message: ReceivedMessage, session: ServerSession) => boolean;
  /** How long a session whose transport dropped can be resumed. Default 30 000 ms. */
  resumeWindowMs?: number;
  /** Typed errors: bad input, refused requests, handler exceptions. */
  onError?: (error: Error, session?: ServerSession) => void;
}

/**
 * `open`: a transport carries the session. `disconnected`: the transport was lost and the resume window runs.
 * `closed`: ended for good.
 */
export type ServerSessionState = 'open' | 'disconnected' | 'closed';

/** Why a session ended, as told to `closed` handlers. */
export interface SessionCloseInfo {
  /** The close code ({@link CloseCode}, or the application's own). */
  code: number;
  /** The close reason; may be empty. */
  reason: string;
  /**
   * Who ended it: `server` (the application's `session.close()` / `server.close()`, or the server closing a peer
   * that broke a rule), `client` (its CLOSE frame, or a final close code on its transport), `timeout` (the resume
   * window ran out after the transport was lost).
   */
  initiator: 'server' | 'client' | 'timeout';
  /**
   * True when an end chose to close (the application or the client said so); false when the session was lost:
   * the resume window expired, or the peer broke a rule (`error` says which).
   */
  deliberate: boolean;
  /** The typed error when the server closed the session because of the peer's input or a limit. */
  error?: SessionError;
}

/** Why a session's transport went away while the session waits for a resume. */
export interface SessionDisconnectInfo {
  /** The transport's close code (0 when it was lost without one). */
  code: number;
  /** The transport's close reason or error message. */
  reason: string;
  /** When the resume window ends (clock time in ms): without a resume by then the session closes. */
  resumeDeadline: number;
}

/** A session came back on a new transport connection within the resume window. */
export interface SessionResumeInfo {
  /** The transport the session resumed on. */
  transport: TransportName;
  /** True when the server still had a live link for it (the new connection replaced it, without `disconnected`). */
  replaced: boolean;
}

/** What `session.data` holds unless typed: anything the application puts there. */
// biome-ignore lint/suspicious/noExplicitAny: untyped, the slot takes any value (`ServerSession<MyData>` narrows it)
export type SessionData = Record<string, any>;

/**
 * The server's end of one client session, surviving transport reconnects within the resume window. `Data` types
 * `session.data`, a slot the application (or a layer such as rooms) keeps per session.
 */
export class ServerSession<Data extends SessionData = SessionData> extends Peer<ServerSession> {
  /** Random id of the session, stable across resumes; used in logs. */
  readonly id = randomToken(12);
  /** Secret the client presents to resume the session on a new transport; random, 18 bytes of entropy. */
  resumeToken = randomToken(18);
  /** Where the session is in its lifecycle. */
  state: ServerSessionState = 'open';
  /** Transport that carried the session last. */
  lastTransport: TransportName;
  /** The application's per-session data: starts as `{}`, lives as long as the session (resumes included). */
  data: Data = {} as Data;
  private resumeTimer: TimerHandle | undefined;
  private readonly closeHandlers = new Set<(code: number, reason: string) => void>();
  private readonly events = new Emitter<ServerSessionEvents>();

  constructor(
    private readonly server: SessionServer,
    /** What `authenticate` returned (`{ userId: 'anonymous' }` without it). */
    public user: AuthResult,
    /** The request that established the session (updated by a resume). */
    public request: SessionRequest,
    options: SessionServerOptions,
  ) {
    // A reliable channel that silently lost messages would break the one promise it makes; shedding load is opt-in
    // per channel (`drop-oldest`, `coalesce`), so the default refuses the send with a typed error.
    super(options, 'error');
    this.strictMessages = true;
    this.lastTransport = request.transport;
    this.sink = server.sinkFor();
    const per = options.rateLimits?.perSession ?? {};
    this.incoming = new IncomingBudget(this.clock, this.incoming.maxBufferedBytes, {
      messagesPerSecond: per.messagesPerSecond ?? DEFAULT_SESSION_RATE.messagesPerSecond,
      bytesPerSecond: per.bytesPerSecond ?? DEFAULT_SESSION_RATE.bytesPerSecond,
      burstSeconds: per.burstSeconds ?? DEFAULT_SESSION_RATE.burstSeconds,
    });
    this.registry.register(TelemetryMessage);
    if (this.opts.heartbeat.suspectAfterMs > 0) this.watchAcks();
    this.qualityTracker = new QualityTracker(options.quality);
    // Handlers registered on the server apply to every session; their message names are known up front.
    for (const name of server.handlerNames()) {
      const t = server.messageType(name);
      if (t) this.registry.register(t);
    }
  }

  protected get self(): ServerSession {
    return this;
  }

  protected get sessionIdForTrace(): string {
    return this.id;
  }

  /**
   * Registers a handler for this session only: a message, or a lifecycle event. `disconnected`: the transport was
   * lost and the resume window runs; `resumed`: the client came back within it; `closed`: the session ended for
   * good (once, with `SessionCloseInfo`); `close`: the same moment as `(code, reason)`.
   */
  on<T>(type: MessageType<T>, handler: Handler<T, ServerSession>): () => void;
  on(event: 'close', handler: (code: number, reason: string) => void): () => void;
  on<E extends keyof ServerSessionEvents>(event: E, handler: ServerSessionEvents[E]): () => void;
  // biome-ignore lint/suspicious/noExplicitAny: handlers of every payload type share one table
  on(type: MessageType<any> | string, handler: (...args: any[]) => void): () => void {
    if (type === 'close') {
      this.closeHandlers.add(handler as (code: number, reason: string) => void);
      return () => this.closeHandlers.delete(handler as (code: number, reason: string) => void);
    }
    if (typeof type === 'string') {
      return this.events.on(type as keyof ServerSessionEvents, handler as never);
    }
    return this.onMessage(type, handler);
  }

  override send<T>(type: MessageType<T>, payload: T, options?: SendOptions): boolean {
    return super.send(type, payload, options);
  }

  /** Closes the session for good (it cannot be resumed). */
  async close(code: number = CloseCode.NORMAL, reason = ''): Promise<void> {
    if (this.state === 'closed') return;
    // The session ends here either way; `reconnect` tells the client whether coming back makes sense (4503).
    await this.closeLink(code, reason, code !== CloseCode.NORMAL && !isFinalCloseCode(code));
    this.finish(code, reason, { initiator: 'server', deliberate: true });
  }

  protected override knownType(name: string): MessageType | undefined {
    return super.knownType(name) ?? this.server.messageType(name);
  }

  /** The quality this session's client last reported (`telemetry` client option); undefined before any report. */
  get quality(): ClientQuality | undefined {
    return this.qualityTracker.quality;
  }

  private readonly qualityTracker: QualityTracker;

  private telemetryReport(payload: unknown): void {
    const m = this.server.metrics;
    const outcome = this.qualityTracker.accept(payload, this.clock.now());
    m.telemetry[outcome === 'changed' ? 'accepted' : outcome]++;
    if (outcome === 'invalid' || outcome === 'rate-limited') return;
    const q = this.qualityTracker.quality!;
    const transport = this.server.transportLabel(this.transport);
    for (const l of m.clientQualityListeners) l(q, transport);
    if (outcome === 'changed') this.server.qualityChanged(this, q);
  }

  protected override dispatch(name: string, payload: unknown): boolean {
    if (name === TelemetryMessage.name) {
      this.telemetryReport(payload);
      return true;
    }
    const local = super.dispatch(name, payload);
    const global = this.server.dispatch(name, payload, this);
    return local || global;
  }

  protected override validateIncoming(
    name: string,
    channel: string,
    payload: unknown,
    type?: MessageType,
  ): void {
    super.validateIncoming(name, channel, payload, type);
    // Telemetry is checked by its own parser: a bad report is counted and ignored, never handed to `validate`.
    if (name === TelemetryMessage.name) return;
    const v = this.server.options.validate;
    if (!v) return;
    let ok: boolean;
    try {
      ok = v({ name, channel, payload }, this);
    } catch {
      ok = false;
    }
    if (!ok) throw new ValidationError(`message '${name}' refused by validate`, name);
  }

  /** @internal */
  connect(session: QuiverSession, control: ControlStream, peer: HandshakeTables, resumed: boolean): void {
    this.clock.clearTimeout(this.resumeTimer);
    const replaced = this.link !== null;
    if (this.link) this.closeLink(CloseCode.REPLACED, 'replaced by a resumed connection', false);
    this.state = 'open';
    this.lastTransport = session.transport;
    const welcome = {
      v: 1,
      sessionId: this.id,
      resumeToken: this.resumeToken,
      recovered: resumed,
      ...this.localTables(),
      acks: this.localAcks(),
      serverTime: this.clock.now(),
    };
    control.write([Kind.WELCOME, welcome]);
    this.attach(session, control, peer, resumed);
    if (resumed) this.emit('resumed', { transport: session.transport, replaced });
  }

  protected linkLost(code: number, reason: string): void {
    if (this.state === 'closed') return;
    if (isFinalCloseCode(code)) {
      // A final code on the transport comes from the client (the server's own closes detach first).
      const deliberate = code === CloseCode.NORMAL || code === CloseCode.CLOSED;
      this.finish(code, reason, { initiator: 'client', deliberate });
      return;
    }
    this.state = 'disconnected';
    this.server.log('debug', { ...this.logFields(), code, reason }, 'session lost its transport, resumable');
    const window = this.server.resumeWindowMs;
    this.resumeTimer = this.clock.setTimeout(
      () => this.finish(code, 'resume window expired', { initiator: 'timeout', deliberate: false }),
      window,
    );
    this.emit('disconnected', { code, reason, resumeDeadline: this.clock.now() + window });
  }

  protected peerClosed(code: number, reason: string, _reconnect: boolean): void {
    // A client's CLOSE is final: it will not resume.
    this.finish(code, reason, { initiator: 'client', deliberate: true });
  }

  protected fail(err: SessionError): void {
    this.server.reportError(err, this);
    this.closeLink(err.closeCode, err.message.slice(0, 200), false);
    this.finish(err.closeCode, err.message, { initiator: 'server', deliberate: false, error: err });
  }

  /** Runs lifecycle handlers, session first, then the server's; a handler that throws is reported, not fatal. */
  private emit<E extends keyof ServerSessionEvents>(
    event: E,
    info: Parameters<ServerSessionEvents[E]>[0],
  ): void {
    const report = (err: unknown) => this.server.reportError(err as Error, this);
    this.events.emit(event, [info] as Parameters<ServerSessionEvents[E]>, report);
    this.server.emitSessionEvent(event, this, info, report);
  }

  protected reportError(err: Error): void {
    this.server.reportError(err, this);
  }

  /**
   * @internal A session that failed establishment and was never admitted: let go of its link and timers without
   * any event (nobody was told it existed).
   */
  abandon(): void {
    this.state = 'closed';
    this.closedForGood = true;
    this.clock.clearTimeout(this.resumeTimer);
    if (this.link) this.detach(this.link);
  }

  /** @internal The fields that name this session in every log record. */
  logFields(): LogFields {
    return { sessionId: this.id, transport: this.lastTransport, user: this.user.userId };
  }

  /** @internal */
  finish(code: number, reason: string, cause: Omit<SessionCloseInfo, 'code' | 'reason'>): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.closedForGood = true;
    this.checkDrained();
    this.clock.clearTimeout(this.resumeTimer);
    if (this.link) this.detach(this.link);
    this.server.removeSession(this);
    this.server.log('info', { ...this.logFields(), code, reason }, 'session closed');
    for (const h of this.closeHandlers) {
      try {
        h(code, reason);
      } catch (err) {
        this.server.reportError(err as Error, this);
      }
    }
    this.emit('closed', { code, reason, ...cause });
  }
}

/** Lifecycle events of one server session (`session.on(event, handler)`). */
export interface ServerSessionEvents {
  /** The transport was lost; the session waits for a resume until `info.resumeDeadline`. */
  disconnected: (info: SessionDisconnectInfo) => void;
  /** The client came back within the resume window. */
  resumed: (info: SessionResumeInfo) => void;
  /** The session ended for good; raised once. */
  closed: (info: SessionCloseInfo) => void;
}

/** The same events on the server, for every session (`server.on(event, handler)`). */
export interface SessionServerEvents {
  /** A new session completed its handshake (not raised for resumes). */
  session: (session: ServerSession) => void;
  /** A session's transport was lost; it waits for a resume. */
  disconnected: (session: ServerSession, info: SessionDisconnectInfo) => void;
  /** A session came back within its resume window. */
  resumed: (session: ServerSession, info: SessionResumeInfo) => void;
  /** A session ended for good. */
  closed: (session: ServerSession, info: SessionCloseInfo) => void;
}

/** A minimal typed event table: handlers run in registration order; one that throws does not stop the others. */
class Emitter<E extends { [K in keyof E]: (...args: never[]) => void }> {
  private readonly table = new Map<keyof E, Set<E[keyof E]>>();

  on<K extends keyof E>(event: K, handler: E[K]): () => void {
    let set = this.table.get(event);
    if (!set) {
      set = new Set();
      this.table.set(event, set);
    }
    set.add(handler);
    return () => set.delete(handler);
  }

  emit<K extends keyof E>(event: K, args: Parameters<E[K]>, onError: (err: unknown) => void): void {
    const set = this.table.get(event);
    if (!set) return;
    for (const h of [...set]) {
      try {
        (h as (...a: Parameters<E[K]>) => void)(...args);
      } catch (err) {
        onError(err);
      }
    }
  }
}

/** Accepts sessions from any number of transport listeners and runs the session layer on each. */
export class SessionServer {
  /** Live sessions (open or awaiting a resume), by `id`. */
  readonly sessions = new Map<string, ServerSession>();
  /** The server's metrics, for an exporter such as Prometheus. */
  readonly metrics: SessionMetrics;
  /** The resume window in force, in ms (`resumeWindowMs`, default 30 000). */
  readonly resumeWindowMs: number;
  private readonly listeners = new Set<TransportListener>();
  /** Transport names of the listeners ever added: the only values of the `transport` metric label. */
  private readonly transportNames = new Set<string>();
  private readonly loops = new Map<TransportListener, ReadableStreamDefaultReader<IncomingSession>>();
  // biome-ignore lint/suspicious/noExplicitAny: handlers of every payload type share one table
  private readonly handlers = new Map<string, Set<Handler<any, ServerSession>>>();
  private readonly types = new Map<string, MessageType>();
  private readonly events = new Emitter<SessionServerEvents>();
  private readonly ipWindows = new Map<string, number[]>();
  /** The channels sessions have, by name: a HELLO may only announce these (with the same mode). */
  private readonly channelModes: ReadonlyMap<string, DeliveryMode>;
  private readonly pending: PendingHandshakes;
  private readonly maxSessions: number;
  private closing = false;
  /** Where logs go (the fastify plugin points it at fastify's pino logger). */
  logger: SessionLogger = {};

  constructor(
    /** The options as given (defaults are not filled in here). */
    readonly options: SessionServerOptions = {},
  ) {
    this.resumeWindowMs = options.resumeWindowMs ?? 30_000;
    this.maxSessions = options.maxSessions ?? 10_000;
    this.pending = new PendingHandshakes(options.preAuth);
    const channels = { ...defaultChannels, ...(options.channels ?? {}) };
    this.channelModes = new Map(Object.entries(channels).map(([name, o]) => [name, channelMode(o)]));
    this.metrics = createMetrics(() => this.sessions.values());
    for (const m of options.messages ?? []) this.types.set(m.name, m);
    for (const l of options.listeners ?? []) this.addListener(l);
  }

  /** Starts accepting from `listener` (e.g. a restarted listener: sessions resume across it). */
  addListener(listener: TransportListener): void {
    if (this.listeners.has(listener)) return;
    this.listeners.add(listener);
    this.transportNames.add(listener.transport);
    const reader = listener.incomingSessions.getReader();
    this.loops.set(listener, reader);
    (async () => {
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          this.handle(value).catch((err) => this.reportError(err as Error));
        }
      } catch {
        // the listener closed
      } finally {
        this.listeners.delete(listener);
        this.loops.delete(listener);
      }
    })();
  }

  /** Stops accepting from `listener` without closing it or its sessions. */
  removeListener(listener: TransportListener): void {
    this.loops
      .get(listener)
      ?.cancel()
      .catch(() => {});
    this.listeners.delete(listener);
    this.loops.delete(listener);
  }

  /**
   * Registers a handler for a message on every session, or for a lifecycle event of every session: `session` (a
   * new session is established), `disconnected`, `resumed`, `closed` (see `ServerSession.on`).
   */
  on<T>(type: MessageType<T>, handler: Handler<T, ServerSession>): () => void;
  on<E extends keyof SessionServerEvents>(event: E, handler: SessionServerEvents[E]): () => void;
  // biome-ignore lint/suspicious/noExplicitAny: handlers of every payload type share one table
  on(type: MessageType<any> | string, handler: (...args: any[]) => void): () => void {
    if (typeof type === 'string') return this.events.on(type as keyof SessionServerEvents, handler as never);
    this.types.set(type.name, type);
    let set = this.handlers.get(type.name);
    if (!set) {
      set = new Set();
      this.handlers.set(type.name, set);
    }
    set.add(handler);
    return () => set.delete(handler);
  }

  /** Sends to every open session; returns how many accepted the message. */
  broadcast<T>(type: MessageType<T>, payload: T, options?: SendOptions): number {
    let n = 0;
    for (const s of this.sessions.values()) {
      if (s.state === 'closed') continue;
      try {
        if (s.send(type, payload, options)) n++;
      } catch (err) {
        this.reportError(err as Error, s);
      }
    }
    return n;
  }

  /** Closes every session (code 4503 unless given) and stops reading the listeners (it does not close them). */
  async close(code: number = CloseCode.GOING_AWAY, reason = 'server closing'): Promise<void> {
    this.closing = true;
    for (const l of [...this.listeners]) this.removeListener(l);
    await Promise.all([...this.sessions.values()].map((s) => s.close(code, reason)));
  }

  /** @internal */
  emitSessionEvent<E extends keyof ServerSessionEvents>(
    event: E,
    session: ServerSession,
    info: Parameters<ServerSessionEvents[E]>[0],
    onError: (err: unknown) => void,
  ): void {
    this.events.emit(event, [session, info] as never, onError);
  }

  /** @internal Per-transport metrics: only the server's own transport names become labels. */
  transportLabel(transport: string | undefined): string {
    return transport !== undefined && this.transportNames.has(transport) ? transport : 'unknown';
  }

  /** @internal */
  qualityChanged(session: ServerSession, quality: ClientQuality): void {
    try {
      this.options.onQualityChange?.(session, quality);
    } catch (err) {
      this.reportError(err as Error, session);
    }
  }

  /** @internal */
  handlerNames(): string[] {
    return [...this.types.keys()];
  }

  /** @internal */
  messageType(name: string): MessageType | undefined {
    return this.types.get(name);
  }

  /** @internal */
  dispatch(name: string, payload: unknown, session: ServerSession): boolean {
    const set = this.handlers.get(name);
    if (!set || set.size === 0) return false;
    for (const h of set) {
      try {
        h(payload, session);
      } catch (err) {
        this.reportError(err as Error, session);
      }
    }
    return true;
  }

  /** @internal */
  sinkFor() {
    const m = this.metrics;
    return {
      message: (name: string, direction: 'in' | 'out', bytes: number) => {
        // Labels come from the server's configuration only (parseHello already refuses other channel names).
        const channel = this.channelModes.has(name) ? name : 'unknown';
        const c = m.messages[direction];
        c[channel] = (c[channel] ?? 0) + 1;
        const b = m.bytes[direction];
        b[channel] = (b[channel] ?? 0) + bytes;
      },
      drop: (reason: string) => {
        m.drops[reason] = (m.drops[reason] ?? 0) + 1;
      },
      rtt: (ms: number, jitterMs: number, loss: number, transport: string | undefined) => {
        m.observeRtt(ms);
        const t = this.transportLabel(transport);
        for (const l of m.qualityListeners) l({ transport: t, rttMs: ms, jitterMs, loss });
      },
      traceContextInvalid: () => {
        m.traceContextInvalid++;
      },
    };
  }

  /** @internal */
  reportError(err: Error, session?: ServerSession): void {
    const kind = err instanceof SessionError ? err.kind : 'handler';
    this.metrics.errors[kind] = (this.metrics.errors[kind] ?? 0) + 1;
    this.log(
      'warn',
      { ...session?.logFields(), err, code: err instanceof SessionError ? err.closeCode : undefined },
      'session error',
    );
    try {
      this.options.onError?.(err, session);
    } catch {
      // an onError hook that throws must not take the server down
    }
  }

  /** @internal */
  log(level: 'debug' | 'info' | 'warn', fields: LogFields, msg: string): void {
    this.logger[level]?.(fields, msg);
  }

  /** @internal */
  removeSession(s: ServerSession): void {
    if (this.sessions.get(s.id) === s) {
      this.sessions.delete(s.id);
      this.metrics.sessionsClosed++;
    }
  }

  /** Refuses a request before it is accepted; counted under its status unless `key` is null (already counted). */
  private rejectRequest(
    incoming: IncomingSession,
    status: number,
    reason: string,
    key: string | null = `${status}`,
  ): void {
    if (key !== null) this.metrics.rejections[key] = (this.metrics.rejections[key] ?? 0) + 1;
    const { transport, remoteAddress } = incoming.request;
    this.log('info', { transport, remoteAddress, code: status, reason }, 'session request rejected');
    try {
      incoming.reject(status, reason);
    } catch {
      // the request went away meanwhile
    }
  }

  private originAllowed(origin: string | undefined): boolean {
    const allowed = this.options.allowedOrigins;
    if (origin === undefined || origin === '' || origin === 'null') {
      return !this.options.requireOrigin && (origin === undefined || origin === '' || allowed === undefined);
    }
    if (!allowed) return true;
    return typeof allowed === 'function' ? allowed(origin) : allowed.includes(origin);
  }

  private ipAllowed(ip: string, now: number): boolean {
    const limit = this.options.rateLimits?.perIp?.sessionsPerMinute;
    if (limit === undefined) return true;
    let w = this.ipWindows.get(ip);
    if (!w) {
      w = [];
      this.ipWindows.set(ip, w);
    }
    while (w.length > 0 && w[0] <= now - 60_000) w.shift();
    if (w.length === 0 && this.ipWindows.size > 100_000) this.ipWindows.clear(); // bound the table itself
    if (w.length >= limit) return false;
    w.push(now);
    return true;
  }

  private async handle(incoming: IncomingSession): Promise<void> {
    const req = incoming.request;
    const clock = this.options.clock;
    const now = clock ? clock.now() : Date.now();
    if (this.closing) return this.rejectRequest(incoming, 503, 'server closing');
    if (this.options.path !== undefined && req.path !== this.options.path) {
      return this.rejectRequest(incoming, 404, 'no such endpoint');
    }
    if (!this.originAllowed(req.origin)) return this.rejectRequest(incoming, 403, 'origin not allowed');
    if (!this.ipAllowed(req.remoteAddress, now))
      return this.rejectRequest(incoming, 429, 'too many sessions');
    if (this.sessions.size >= this.maxSessions) return this.rejectRequest(incoming, 503, 'server full');
    // Until its HELLO is validated the connection holds a pre-authentication slot, not a session: a newer
    // connection may evict it (see PendingHandshakes), which rejects it wherever it is in the handshake.
    let evicted!: (err: SessionError) => void;
    const eviction = new Promise<never>((_, rej) => {
      evicted = rej;
    });
    eviction.catch(() => {});
    const release = this.pending.admit(req.remoteAddress, () => {
      this.metrics.rejections['handshake-evicted'] = (this.metrics.rejections['handshake-evicted'] ?? 0) + 1;
      evicted(new ServerBusyError('too many pending handshakes', 'handshake-evicted'));
    });
    let user: AuthResult;
    try {
      user = await this.authenticate(req, eviction);
    } catch (err) {
      release();
      if (err instanceof ServerBusyError) return this.rejectRequest(incoming, 503, err.message, null);
      if (err instanceof AuthRejection) return this.rejectRequest(incoming, err.status, err.reason);
      this.reportError(err as Error);
      return this.rejectRequest(
        incoming,
        err instanceof HandshakeTimeoutError ? 503 : 500,
        'authentication failed',
      );
    }
    let session: QuiverSession;
    try {
      session = incoming.accept();
    } catch (err) {
      release();
      this.reportError(err as Error);
      return;
    }
    try {
      await this.handshake(session, req, user, eviction);
    } finally {
      release();
    }
  }

  /** Connections past the request checks that have not completed their HELLO (the pre-authentication budget). */
  get handshakesPending(): number {
    return this.pending.size;
  }

  private async authenticate(req: SessionRequest, eviction: Promise<never>): Promise<AuthResult> {
    const auth = this.options.authenticate;
    if (!auth) return { userId: 'anonymous' };
    const ms = this.options.handshakeTimeoutMs ?? 5000;
    const clock = this.options.clock ?? systemClock;
    let handle: TimerHandle | undefined;
    const timeout = new Promise<never>((_, rej) => {
      handle = clock.setTimeout(
        () => rej(new HandshakeTimeoutError(`authenticate took longer than ${ms} ms`)),
        ms,
      );
    });
    try {
      const result = await Promise.race([Promise.resolve().then(() => auth(req)), timeout, eviction]);
      if (!result || typeof result.userId !== 'string') throw new AuthRejection(401, 'unauthenticated');
      return result;
    } finally {
      clock.clearTimeout(handle);
    }
  }

  private async handshake(
    session: QuiverSession,
    req: SessionRequest,
    user: AuthResult,
    eviction: Promise<never>,
  ): Promise<void> {
    const clock = this.options.clock ?? systemClock;
    const ms = this.options.firstMessageTimeoutMs ?? 5000;
    let handle: TimerHandle | undefined;
    const timeout = new Promise<never>((_, rej) => {
      handle = clock.setTimeout(() => rej(new HandshakeTimeoutError(`no HELLO within ${ms} ms`)), ms);
    });
    // Before authentication only the HELLO is read, and it is small: the budget caps what a pending handshake holds.
    const maxFrame = this.options.preAuth?.maxHelloBytes ?? 64 * 1024;
    const traced = this.options.tracing?.establish('server', { 'network.protocol.name': req.transport });
    let control: ControlStream | undefined;
    let streams:
      | ReadableStreamDefaultReader<{
          readable: ReadableStream<Uint8Array>;
          writable: WritableStream<Uint8Array>;
        }>
      | undefined;
    try {
      const hello = await Promise.race([
        (async () => {
          streams = session.incomingBidirectionalStreams.getReader();
          const { value, done } = await streams.read();
          streams.releaseLock();
          streams = undefined;
          if (done) throw new SessionClosedError('closed before the handshake');
          control = new ControlStream(value, maxFrame);
          const frame = await control.next();
          if (!frame) throw new SessionClosedError('closed before the handshake');
          if (frame.header[0] !== Kind.HELLO) throw new NotAuthenticatedError('a frame before HELLO');
          const h = frame.header[1] as Record<string, unknown> | undefined;
          if (!h || typeof h !== 'object' || h.v !== 1) throw new NotAuthenticatedError('malformed HELLO');
          return h;
        })(),
        timeout,
        eviction,
      ]);
      clock.clearTimeout(handle);
      traced?.event('quiver.session.hello', { 'quiver.session.resume': hello.resume !== undefined });
      this.establish(session, control!, hello, req, user, traced?.sampled ?? false);
      traced?.end({});
    } catch (err) {
      clock.clearTimeout(handle);
      traced?.end({}, err);
      streams?.cancel().catch(() => {});
      control?.cancel().catch(() => {});
      const e =
        err instanceof SessionError ? err : new NotAuthenticatedError(String((err as Error)?.message ?? err));
      if (!(e instanceof SessionClosedError)) this.reportError(e);
      // Evictions were counted when they happened.
      if (e.kind !== 'handshake-evicted') {
        this.metrics.rejections[e.kind] = (this.metrics.rejections[e.kind] ?? 0) + 1;
      }
      if (control) {
        // A peer that does not read must not hold the close up: the write gets a short grace period only.
        let t: TimerHandle | undefined;
        await Promise.race([
          control.write([Kind.CLOSE, e.closeCode, e.message.slice(0, 200), false]).catch(() => {}),
          new Promise((r) => {
            t = clock.setTimeout(() => r(undefined), 50);
          }),
        ]);
        clock.clearTimeout(t);
      }
      try {
        session.close({ closeCode: e.closeCode, reason: e.message.slice(0, 200) });
      } catch {
        // already closed
      }
    }
  }

  /**
   * Turns a validated HELLO into a session. Nothing exists for the peer until the HELLO has passed `parseHello`;
   * a new session enters `sessions` only once it is connected, so a throw anywhere here leaves nothing behind (the
   * caller closes the transport and counts the rejection).
   */
  private establish(
    session: QuiverSession,
    control: ControlStream,
    raw: Record<string, unknown>,
    req: SessionRequest,
    user: AuthResult,
    traceSampled: boolean,
  ): void {
    const { tables, resume } = parseHello(raw, this.channelModes);
    let s: ServerSession | undefined;
    if (resume) {
      this.metrics.reconnects++;
      const old = typeof resume.id === 'string' ? this.sessions.get(resume.id) : undefined;
      if (
        old &&
        old.state !== 'closed' &&
        typeof resume.token === 'string' &&
        sameSecret(old.resumeToken, resume.token) &&
        old.user.userId === user.userId
      ) {
        s = old;
      }
    }
    const resumed = s !== undefined;
    if (s) {
      s.user = user;
      s.request = req;
      s.resumeToken = randomToken(18);
      s.traceSampled = traceSampled;
      this.metrics.recoveries++;
      try {
        s.connect(session, control, tables, true);
      } catch (err) {
        s.finish(CloseCode.INTERNAL, 'resume failed', { initiator: 'server', deliberate: false });
        throw err;
      }
    } else {
      // Pending handshakes do not count against maxSessions, so the check is repeated once the HELLO is in.
      if (this.sessions.size >= this.maxSessions) throw new ServerBusyError('server full', 'server-full');
      s = new ServerSession(this, user, req, this.options);
      s.traceSampled = traceSampled;
      try {
        s.connect(session, control, tables, false);
      } catch (err) {
        s.abandon();
        throw err;
      }
      this.sessions.set(s.id, s);
      this.metrics.sessionsTotal++;
    }
    this.log(
      'info',
      { ...s.logFields(), remoteAddress: req.remoteAddress },
      resumed ? 'session resumed' : 'session opened',
    );
    if (!resumed) this.events.emit('session', [s], (err) => this.reportError(err as Error, s));
  }
}

/** Compares secrets in time independent of where they differ. */
function sameSecret(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** Creates a {@link SessionServer}; it accepts from `options.listeners` at once and from any added later. */
export function createSessionServer(options: SessionServerOptions = {}): SessionServer {
  return new SessionServer(options);
}
