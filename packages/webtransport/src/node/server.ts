/**
 * The WebTransport over HTTP/3 listener for Node: one UDP socket (IPv4, or IPv4 and IPv6 on '::'), many QUIC
 * connections, several sessions per connection where the peer allows (draft-ietf-webtrans-http3 §4.8 / draft-02
 * SETTINGS_ENABLE_WEBTRANSPORT).
 */
import { readFileSync } from 'node:fs';
import type {
  IncomingSession,
  QuiverSession,
  SessionRequest,
  TransportListener,
  WebTransportCloseInfo,
} from '@quiver/transport';
import { QuiverTransportError } from '@quiver/transport';
import type { H3Limits, HeaderField } from '../core/api.js';
import { createH3Connection } from './h3.js';
import type { QuicTransportOptions } from './config.js';
import {
  checkCloseDeliveryTimeout,
  DEFAULT_CLOSE_DELIVERY_TIMEOUT_MS,
  defaultQuicTransportOptions,
  validateTransportOptions,
} from './config.js';
import type { EndpointCounters } from './endpoint.js';
import type { EngineName, EngineServer, QuicEngineConnection } from './engine.js';
import { resolveEngine } from './engine.js';
import type { SessionLimits } from './session.js';
import { defaultSessionLimits, WtSession } from './session.js';
import { WtConnection } from './wt-connection.js';

/** Options of {@link createWebTransportListener}; the QUIC transport parameters default to `defaultQuicTransportOptions`. */
export interface WebTransportListenerOptions extends Partial<QuicTransportOptions> {
  /** Address to bind. '::' accepts IPv6 and IPv4. Default '127.0.0.1'. */
  host?: string;
  /** UDP port; 0 lets the OS choose (see `address.port`). Default 0. */
  port?: number;
  /** PEM certificate chain, or `certPath`. */
  cert?: string | Uint8Array;
  /** PEM private key, or `keyPath`. */
  key?: string | Uint8Array;
  /** File to read the PEM certificate chain from when `cert` is not given. */
  certPath?: string;
  /** File to read the PEM private key from when `key` is not given. */
  keyPath?: string;
  /** HTTP/3 and WebTransport limits of the core (see `H3Limits`). */
  limits?: Partial<H3Limits>;
  /** Per-session stream and datagram queue limits. */
  sessionLimits?: Partial<SessionLimits>;
  /** A request left undecided this long is rejected with 408. Default 10 000 ms. */
  requestTimeoutMs?: number;
  /** QUIC connections at once; further Initials are dropped (counted). Default 1024. */
  maxConnections?: number;
  /** Session requests waiting in `incomingSessions` before new ones get 503. Default 128. */
  maxPendingRequests?: number;
  /** SO_RCVBUF/SO_SNDBUF of the socket. Default 8 MiB. */
  socketBufferBytes?: number;
  /**
   * Delay between a connection's last session ending and its CONNECTION_CLOSE, left for the peer to open another
   * session on it (Chromium pools them). The close then also waits for every session's close to be delivered
   * (see `closeDeliveryTimeoutMs`). Default 100 ms.
   */
  lingerMs?: number;
  /**
   * After `lingerMs`, how long a connection waits for its sessions' CLOSE_WEBTRANSPORT_SESSION and FIN to be
   * delivered (draft-ietf-webtrans-http3 §6: the peer's FIN on the CONNECT stream, or the acknowledgement of ours
   * where the engine reports it) before it is closed anyway; those closes are counted in
   * `counters.closesUndelivered`. Finite, 0 or more. Default 1 000 ms.
   */
  closeDeliveryTimeoutMs?: number;
  /** Deadline of `close()`: connections still open then are closed at once. Default 2 000 ms. */
  closeTimeoutMs?: number;
  /**
   * QUIC engine: 'quinn' (native, when `npm run build:native` built it) or 'quiche'. Default: the one
   * `QUIVER_QUIC_ENGINE` names, else quinn when built, else quiche. Naming an engine that is not available is an
   * error.
   */
  engine?: EngineName;
  /** Told which engine runs the listener, once it is bound (e.g. `console.info`). Default: nothing. */
  log?: (message: string) => void;
}

/** A listener's running totals since it was created: its UDP endpoint's counters plus session outcomes. */
export interface WebTransportListenerCounters extends EndpointCounters {
  /** QUIC connections accepted (not refused by `maxConnections`). */
  connectionsAccepted: number;
  /** Session requests the application accepted. */
  sessionsAccepted: number;
  /** Session requests the application rejected with `reject(status)`. */
  sessionsRejected: number;
  /** Requests rejected with 408 because the application did not decide in time. */
  requestsTimedOut: number;
  /** Requests rejected with 503 because `incomingSessions` was full or the listener was closing. */
  requestsOverflowed: number;
  /**
   * Connections closed before the peer confirmed their sessions' close: it neither answered with its FIN nor
   * acknowledged ours within `closeDeliveryTimeoutMs` (or the deadline of `close()` came first).
   */
  closesUndelivered: number;
}

export interface WebTransportListener extends TransportListener {
  /** The QUIC engine running this listener. */
  readonly engine: EngineName;
  /** A snapshot of the listener's counters, taken on each read. */
  readonly counters: Readonly<WebTransportListenerCounters>;
  /** Open QUIC connections. */
  readonly connectionCount: number;
}

const DEFAULTS = {
  host: '127.0.0.1',
  port: 0,
  requestTimeoutMs: 10_000,
  maxConnections: 1024,
  maxPendingRequests: 128,
  socketBufferBytes: 8 * 1024 * 1024,
  lingerMs: 100,
  closeDeliveryTimeoutMs: DEFAULT_CLOSE_DELIVERY_TIMEOUT_MS,
  closeTimeoutMs: 2_000,
};

function pem(
  v: string | Uint8Array | undefined,
  path: string | undefined,
  what: string,
): string | Uint8Array {
  if (v !== undefined) return v;
  if (path !== undefined) return readFileSync(path);
  throw new TypeError(`createWebTransportListener: ${what} or ${what}Path is required`);
}

/**
 * Binds a UDP socket and serves WebTransport over HTTP/3 (draft-ietf-webtrans-http3) on it. Resolves once bound.
 *
 * @throws TypeError when neither `cert` nor `certPath` (or `key` nor `keyPath`) is given.
 */
export async function createWebTransportListener(
  options: WebTransportListenerOptions = {},
): Promise<WebTransportListener> {
  const o = { ...DEFAULTS, ...options };
  checkCloseDeliveryTimeout(o.closeDeliveryTimeoutMs);
  const transport: QuicTransportOptions = { ...defaultQuicTransportOptions };
  for (const k of Object.keys(defaultQuicTransportOptions) as (keyof QuicTransportOptions)[]) {
    if (options[k] !== undefined) (transport as unknown as Record<string, unknown>)[k] = options[k];
  }
  const sessionLimits: SessionLimits = { ...defaultSessionLimits, ...options.sessionLimits };
  validateTransportOptions(transport);
  const engine = await resolveEngine(options.engine);
  const cert = pem(o.cert, o.certPath, 'cert');
  const key = pem(o.key, o.keyPath, 'key');
  let listener: Listener | undefined;
  const server = await engine.listen({
    host: o.host,
    port: o.port,
    cert,
    key,
    transport,
    socketBufferBytes: o.socketBufferBytes,
    streamHighWaterMark: sessionLimits.streamWriteHighWaterMark,
    streamTailHoldMs: sessionLimits.streamTailHoldMs,
    halfRttStreams: serverPreamble(options.limits),
    accept: (quic) => listener?.accept(quic) ?? false,
  });
  listener = new Listener(engine.name as EngineName, server, o, sessionLimits, options.limits);
  options.log?.(
    `WebTransport listener on udp://${server.address.host}:${server.address.port} (QUIC engine: ${engine.name})`,
  );
  return listener;
}

/**
 * The bytes a server connection's core writes on its own unidirectional streams when it starts (control stream
 * and SETTINGS, QPACK streams), in order: the same for every connection of the listener, which creates its
 * cores with the same options (`accept`), so an engine can put them in the 0.5-RTT flight.
 */
function serverPreamble(limits: Partial<H3Limits> | undefined): Uint8Array[] {
  const h3 = createH3Connection({ role: 'server', limits });
  h3.start();
  const out: Uint8Array[] = [];
  for (const c of h3.drainCommands()) {
    // RFC 9000 §2.1: server-initiated unidirectional streams are 3, 7, 11, ... in the order they are opened.
    if (c.type !== 'stream-write' || c.fin || c.streamId !== 3 + 4 * out.length) break;
    out.push(c.data);
  }
  return out;
}

class Listener implements WebTransportListener {
  readonly transport = 'webtransport' as const;
  readonly incomingSessions: ReadableStream<IncomingSession>;
  readonly address: { host: string; port: number };
  private readonly extra = {
    connectionsAccepted: 0,
    sessionsAccepted: 0,
    sessionsRejected: 0,
    requestsTimedOut: 0,
    requestsOverflowed: 0,
    closesUndelivered: 0,
  };
  private readonly countUndelivered = (): void => {
    this.extra.closesUndelivered++;
  };
  private ctl!: ReadableStreamDefaultController<IncomingSession>;
  private readonly conns = new Set<WtConnection>();
  private readonly lingerTimers = new Map<WtConnection, NodeJS.Timeout>();
  private readonly requestTimers = new Set<NodeJS.Timeout>();
  private closing: Promise<void> | undefined;
  private closeInfo: WebTransportCloseInfo = {};
  private allClosed: (() => void) | undefined;

  constructor(
    readonly engine: EngineName,
    private readonly endpoint: EngineServer,
    private readonly o: typeof DEFAULTS,
    private readonly sessionLimits: SessionLimits,
    private readonly limits: Partial<H3Limits> | undefined,
  ) {
    this.address = { host: endpoint.address.host, port: endpoint.address.port };
    this.incomingSessions = new ReadableStream<IncomingSession>(
      {
        start: (c) => {
          this.ctl = c;
        },
      },
      { highWaterMark: o.maxPendingRequests },
    );
  }

  get counters(): WebTransportListenerCounters {
    return { ...(this.endpoint.counters as unknown as EndpointCounters), ...this.extra };
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  /** A new QUIC connection from the engine: refused while closing or at `maxConnections`. */
  accept(quic: QuicEngineConnection): boolean {
    if (this.closing || this.conns.size >= this.o.maxConnections) return false;
    const h3 = createH3Connection({ role: 'server', limits: this.limits });
    const conn = new WtConnection(quic, h3, {
      onSessionRequest: (c, sid, headers) => this.onRequest(c, sid, headers),
      onIdle: (c) => this.onIdle(c),
      onClosed: (c) => this.onConnClosed(c),
    });
    this.conns.add(conn);
    this.extra.connectionsAccepted++;
    return true;
  }

  private onRequest(conn: WtConnection, sessionId: number, headers: HeaderField[]): void {
    this.cancelLinger(conn);
    if (this.closing || (this.ctl.desiredSize ?? 0) <= 0) {
      this.extra.requestsOverflowed++;
      conn.rejectSession(sessionId, 503);
      return;
    }
    const request = toRequest(headers, conn.peer);
    let decided = false;
    const timer = setTimeout(() => {
      this.requestTimers.delete(timer);
      if (decided) return;
      decided = true;
      this.extra.requestsTimedOut++;
      conn.rejectSession(sessionId, 408);
    }, this.o.requestTimeoutMs);
    timer.unref();
    this.requestTimers.add(timer);
    const decide = (): boolean => {
      if (decided) return false;
      decided = true;
      clearTimeout(timer);
      this.requestTimers.delete(timer);
      return true;
    };
    const incoming: IncomingSession = {
      request,
      accept: (): QuiverSession => {
        const session = new WtSession(conn, this.sessionLimits);
        if (!decide()) throw new Error('IncomingSession already accepted or rejected');
        if (!conn.pendingRequests.has(sessionId) || conn.isClosed) {
          session.finish(
            undefined,
            new QuiverTransportError('the request was withdrawn before it was accepted', {
              source: 'session',
            }),
          );
          return session;
        }
        this.extra.sessionsAccepted++;
        conn.acceptSession(sessionId, session);
        return session;
      },
      reject: (status: number): void => {
        if (!decide()) throw new Error('IncomingSession already accepted or rejected');
        if (!Number.isInteger(status) || status < 300 || status > 599) {
          throw new RangeError(`reject(): status must be a non-2xx HTTP status, got ${status}`);
        }
        this.extra.sessionsRejected++;
        conn.rejectSession(sessionId, status);
      },
    };
    this.ctl.enqueue(incoming);
  }

  /** Chromium keeps an idle connection open: the server closes it when its last session ended. */
  private onIdle(conn: WtConnection): void {
    if (this.lingerTimers.has(conn)) return;
    const t = setTimeout(() => {
      this.lingerTimers.delete(conn);
      if (conn.sessions.size === 0 && conn.pendingRequests.size === 0)
        conn.closeWhenDelivered(!!this.closing, this.o.closeDeliveryTimeoutMs, this.countUndelivered);
    }, this.o.lingerMs);
    t.unref();
    this.lingerTimers.set(conn, t);
  }

  private cancelLinger(conn: WtConnection): void {
    const t = this.lingerTimers.get(conn);
    if (t) clearTimeout(t);
    this.lingerTimers.delete(conn);
    conn.cancelClose();
  }

  private onConnClosed(conn: WtConnection): void {
    this.cancelLinger(conn);
    this.conns.delete(conn);
    if (this.conns.size === 0) this.allClosed?.();
  }

  close(closeInfo: WebTransportCloseInfo = {}): Promise<void> {
    if (!this.closing) {
      this.closeInfo = closeInfo;
      this.closing = this.shutdown();
    }
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    try {
      this.ctl.close();
    } catch {
      // The application cancelled incomingSessions.
    }
    for (const t of this.requestTimers) clearTimeout(t);
    this.requestTimers.clear();
    const done = new Promise<void>((resolve) => {
      this.allClosed = resolve;
    });
    for (const conn of [...this.conns]) {
      // RFC 9114 §5.2 GOAWAY, draft §4.7 DRAIN_WEBTRANSPORT_SESSION, then CLOSE_WEBTRANSPORT_SESSION (draft §6).
      conn.goaway();
      for (const sid of [...conn.pendingRequests]) conn.rejectSession(sid, 503);
      for (const s of [...conn.sessions.values()]) {
        conn.drainSession(s.sessionId);
        s.close(this.closeInfo);
      }
      if (conn.sessions.size === 0 && conn.pendingRequests.size === 0) this.onIdle(conn);
    }
    if (this.conns.size > 0) {
      let deadline: NodeJS.Timeout | undefined;
      await Promise.race([
        done,
        new Promise<void>((resolve) => {
          deadline = setTimeout(resolve, this.o.closeTimeoutMs);
        }),
      ]);
      clearTimeout(deadline);
    }
    for (const t of this.lingerTimers.values()) clearTimeout(t);
    this.lingerTimers.clear();
    for (const conn of [...this.conns]) {
      if (conn.awaitingDelivery) this.countUndelivered();
      conn.close(true);
      conn.flushAndDestroy();
    }
    await this.endpoint.close();
  }
}

function toRequest(headers: HeaderField[], peer: { host: string; port: number }): SessionRequest {
  const h: Record<string, string> = {};
  for (const [name, value] of headers) {
    const k = name.toLowerCase();
    h[k] = h[k] === undefined ? value : `${h[k]}, ${value}`;
  }
  const url = h[':path'] ?? '/';
  const q = url.indexOf('?');
  return {
    transport: 'webtransport',
    path: q < 0 ? url : url.slice(0, q),
    url,
    query: new URLSearchParams(q < 0 ? '' : url.slice(q + 1)),
    headers: h,
    origin: h.origin,
    // A dual-stack socket sees IPv4 peers as IPv4-mapped IPv6 (RFC 4291 §2.5.5.2); report them as IPv4.
    remoteAddress: /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(peer.host) ? peer.host.slice(7) : peer.host,
    remotePort: peer.port,
  };
}
