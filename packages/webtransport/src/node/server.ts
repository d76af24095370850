/**
 * The WebTransport over HTTP/3 listener for Node: one UDP socket (IPv4, or IPv4 and IPv6 on '::'), many QUIC
 * connections, several sessions per connection where the peer allows (draft-ietf-webtrans-http3 §4.8 / draft-02
 * SETTINGS_ENABLE_WEBTRANSPORT).
 */
import { randomBytes } from 'node:crypto';
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
import { buildQuicheConfig, defaultQuicTransportOptions } from './config.js';
import type { EndpointCounters } from './endpoint.js';
import { QuicEndpoint } from './endpoint.js';
import { QuicConnection } from './quic-connection.js';
import { quiche, SCID_LEN } from './quiche.js';
import type { SessionLimits } from './session.js';
import { defaultSessionLimits, WtSession } from './session.js';
import { WtConnection } from './wt-connection.js';

export interface WebTransportListenerOptions extends Partial<QuicTransportOptions> {
  /** Address to bind. '::' accepts IPv6 and IPv4. Default '127.0.0.1'. */
  host?: string;
  /** UDP port; 0 lets the OS choose (see `address.port`). Default 0. */
  port?: number;
  /** PEM certificate chain, or `certPath`. */
  cert?: string | Uint8Array;
  /** PEM private key, or `keyPath`. */
  key?: string | Uint8Array;
  certPath?: string;
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
   * Delay between a connection's last session ending and its CONNECTION_CLOSE, so the CLOSE_WEBTRANSPORT_SESSION
   * capsule and FIN are delivered first (quiche drops unsent stream data when the connection closes). Default 100 ms.
   */
  lingerMs?: number;
  /** Deadline of `close()`: connections still open then are closed at once. Default 2 000 ms. */
  closeTimeoutMs?: number;
}

export interface WebTransportListenerCounters extends EndpointCounters {
  connectionsAccepted: number;
  sessionsAccepted: number;
  sessionsRejected: number;
  /** Requests rejected with 408 because the application did not decide in time. */
  requestsTimedOut: number;
  /** Requests rejected with 503 because `incomingSessions` was full or the listener was closing. */
  requestsOverflowed: number;
}

export interface WebTransportListener extends TransportListener {
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

export async function createWebTransportListener(
  options: WebTransportListenerOptions = {},
): Promise<WebTransportListener> {
  const o = { ...DEFAULTS, ...options };
  const transport: QuicTransportOptions = { ...defaultQuicTransportOptions };
  for (const k of Object.keys(defaultQuicTransportOptions) as (keyof QuicTransportOptions)[]) {
    if (options[k] !== undefined) (transport as unknown as Record<string, unknown>)[k] = options[k];
  }
  const sessionLimits: SessionLimits = { ...defaultSessionLimits, ...options.sessionLimits };
  const config = buildQuicheConfig(
    { cert: pem(o.cert, o.certPath, 'cert'), key: pem(o.key, o.keyPath, 'key'), verifyPeer: false },
    transport,
  );
  const endpoint = await QuicEndpoint.bind({
    host: o.host,
    port: o.port,
    socketBufferBytes: o.socketBufferBytes,
    maxPacketBytes: transport.maxUdpPayloadSize,
  });
  return new Listener(endpoint, config, o, sessionLimits, options.limits);
}

type Config = ReturnType<typeof buildQuicheConfig>;

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
  };
  private ctl!: ReadableStreamDefaultController<IncomingSession>;
  private readonly conns = new Set<WtConnection>();
  private readonly lingerTimers = new Map<WtConnection, NodeJS.Timeout>();
  private readonly requestTimers = new Set<NodeJS.Timeout>();
  private closing: Promise<void> | undefined;
  private closeInfo: WebTransportCloseInfo = {};
  private allClosed: (() => void) | undefined;

  constructor(
    private readonly endpoint: QuicEndpoint,
    private readonly config: Config,
    private readonly o: typeof DEFAULTS,
    private readonly sessionLimits: SessionLimits,
    private readonly limits: Partial<H3Limits> | undefined,
  ) {
    this.address = { host: endpoint.local.host, port: endpoint.local.port };
    this.incomingSessions = new ReadableStream<IncomingSession>(
      {
        start: (c) => {
          this.ctl = c;
        },
      },
      { highWaterMark: o.maxPendingRequests },
    );
    endpoint.onAccept = (_packet, parsed, from) => this.accept(parsed.key, from);
  }

  get counters(): WebTransportListenerCounters {
    return { ...this.endpoint.counters, ...this.extra };
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  private accept(odcidKey: string, from: { host: string; port: number }): QuicConnection | undefined {
    if (this.closing || this.conns.size >= this.o.maxConnections) return undefined;
    const scid = randomBytes(SCID_LEN);
    let qc: ReturnType<typeof quiche.Connection.accept>;
    try {
      qc = quiche.Connection.accept(scid, null, this.endpoint.local, from, this.config);
    } catch {
      return undefined;
    }
    const quic = new QuicConnection(qc, this.endpoint, from, this.sessionLimits.streamWriteHighWaterMark);
    quic.tailHoldMs = this.sessionLimits.streamTailHoldMs;
    // RFC 9000 §7.2: the client keeps using its chosen DCID until it sees ours.
    this.endpoint.route(scid.toString('latin1'), quic);
    this.endpoint.route(odcidKey, quic);
    const h3 = createH3Connection({ role: 'server', limits: this.limits });
    const conn = new WtConnection(quic, h3, {
      onSessionRequest: (c, sid, headers) => this.onRequest(c, sid, headers),
      onIdle: (c) => this.onIdle(c),
      onClosed: (c) => this.onConnClosed(c),
    });
    this.conns.add(conn);
    this.extra.connectionsAccepted++;
    return quic;
  }

  private onRequest(conn: WtConnection, sessionId: number, headers: HeaderField[]): void {
    this.cancelLinger(conn);
    if (this.closing || (this.ctl.desiredSize ?? 0) <= 0) {
      this.extra.requestsOverflowed++;
      conn.rejectSession(sessionId, 503);
      return;
    }
    const request = toRequest(headers, conn.quic.peer);
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
        if (!conn.pendingRequests.has(sessionId) || conn.quic.closed) {
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
      if (conn.sessions.size === 0 && conn.pendingRequests.size === 0) conn.close(!!this.closing);
    }, this.o.lingerMs);
    t.unref();
    this.lingerTimers.set(conn, t);
  }

  private cancelLinger(conn: WtConnection): void {
    const t = this.lingerTimers.get(conn);
    if (t) clearTimeout(t);
    this.lingerTimers.delete(conn);
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
    this.endpoint.onAccept = undefined;
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
      conn.close(true);
      conn.quic.flush();
    }
    for (const conn of [...this.conns]) conn.quic.destroy();
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
