import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import type {
  IncomingSession,
  QuiverSession,
  SessionRequest,
  TransportListener,
  WebTransportCloseInfo,
} from '@quiver/transport';
import { PendingRequests, QuiverTransportError, requestHeaders } from '@quiver/transport';
import { WebSocketServer } from 'ws';
import { NodeSocketAdapter } from './node-socket.js';
import { resolveOptions, type WebSocketSessionOptions } from './options.js';
import { WebSocketSession } from './session.js';
import { SUBPROTOCOL } from './socket.js';

export interface WebSocketListenerOptions extends WebSocketSessionOptions {
  /** Standalone: port to listen on (0 lets the OS choose). Ignored when `server` is given. */
  port?: number;
  /** Standalone: address to bind. Default `127.0.0.1`. */
  host?: string;
  /** Standalone: serve WSS (HTTPS) with this certificate and key (PEM). */
  tls?: {
    /** PEM certificate chain, leaf first. */
    cert: string | Buffer;
    /** PEM private key of the leaf certificate. */
    key: string | Buffer;
  };
  /** Mounted: an existing Node `http`/`https` server (e.g. `fastify.server`); only upgrades on `path` are taken. */
  server?: http.Server | https.Server;
  /**
   * Path prefixes served (a prefix matches itself and anything below it: `/game` matches `/game` and `/game/x`).
   * Default: every path.
   */
  path?: string | string[];
  /** Requests without accept() or reject() for this long get 408. Default 10000 ms. */
  requestTimeoutMs?: number;
  /** Requests waiting for a verdict at once; more get 503. Default 256. */
  maxPendingRequests?: number;
}

/** The defaults of {@link WebSocketListenerOptions}. */
export const LISTENER_DEFAULTS = {
  /** Loopback only: binding a public address is a deliberate choice. */
  host: '127.0.0.1',
  /** Milliseconds before an undecided request gets 408. */
  requestTimeoutMs: 10_000,
  /** Undecided requests at once before further ones get 503. */
  maxPendingRequests: 256,
} as const;

/** Listener counters: every refused or failed request is counted. */
export interface WebSocketListenerStats {
  /** Upgrade requests that reached the listener on a served path. */
  requests: number;
  /** Requests the application accepted. */
  accepted: number;
  /** Requests the application rejected with `reject(status)`. */
  rejected: number;
  /** Requests answered 408 because nobody decided within `requestTimeoutMs`. */
  timedOut: number;
  /** Refused with 503 because maxPendingRequests were waiting or the listener was closing. */
  overloaded: number;
  /** Refused with 400: not a valid WebSocket upgrade (RFC 6455 §4.2.1). */
  malformed: number;
  /** The client went away before the verdict. */
  abandoned: number;
  /** Sessions currently open. */
  sessions: number;
}

/** A WebSocket transport listener, standalone or mounted on an existing HTTP server. */
export interface WebSocketListener extends TransportListener {
  /** The listener's counters since it was created. */
  readonly stats: Readonly<WebSocketListenerStats>;
}

/** Whether `pathname` is one of `prefixes` or below one (`/game` matches `/game` and `/game/x`, not `/gamex`). */
export function matchesPath(pathname: string, prefixes: string[] | undefined): boolean {
  if (!prefixes) return true;
  return prefixes.some((p) => {
    if (p === '/' || pathname === p) return true;
    const base = p.endsWith('/') ? p : `${p}/`;
    return pathname.startsWith(base);
  });
}

/** RFC 6455 §4.2.1: what a server must find in an opening handshake (ws answers 400 to anything else). */
function validUpgrade(req: http.IncomingMessage): boolean {
  const key = req.headers['sec-websocket-key'];
  const version = req.headers['sec-websocket-version'];
  return (
    req.method === 'GET' &&
    (req.headers.upgrade ?? '').toLowerCase() === 'websocket' &&
    typeof key === 'string' &&
    /^[+/0-9A-Za-z]{22}==$/.test(key) &&
    (version === '13' || version === '8')
  );
}

function writeHttpError(socket: Duplex, status: number, reason: string): void {
  const body = Buffer.from(reason || http.STATUS_CODES[status] || '', 'utf8');
  // Status line text is fixed by the status; the application's reason goes in the body (it may hold any byte).
  const head =
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Error'}\r\n` +
    'Connection: close\r\nContent-Type: text/plain; charset=utf-8\r\n' +
    `Content-Length: ${body.length}\r\n\r\n`;
  if (socket.writable) {
    socket.once('finish', () => socket.destroy());
    socket.end(Buffer.concat([Buffer.from(head, 'latin1'), body]));
  } else {
    socket.destroy();
  }
}

/**
 * Starts a WebSocket listener, standalone (`{ port, host, tls }`) or mounted on an existing server
 * (`{ server, path }`). Each upgrade request becomes an {@link IncomingSession} on `incomingSessions`.
 */
export async function createWebSocketListener(
  options: WebSocketListenerOptions = {},
): Promise<WebSocketListener> {
  // Validates the session options once, up front, rather than on the first request.
  const sessionOptions = resolveOptions(options);
  const requestTimeoutMs = options.requestTimeoutMs ?? LISTENER_DEFAULTS.requestTimeoutMs;
  const maxPending = options.maxPendingRequests ?? LISTENER_DEFAULTS.maxPendingRequests;
  const paths = options.path === undefined ? undefined : [options.path].flat();
  const standalone = !options.server;
  const server: http.Server | https.Server =
    options.server ??
    (options.tls
      ? https.createServer({ cert: options.tls.cert, key: options.tls.key })
      : http.createServer());
  const wss = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    perMessageDeflate: false,
    // Pings are answered by the adapter, after the session's buffer check (NodeSocketAdapter).
    autoPong: false,
    maxPayload: sessionOptions.maxMessageSize,
    handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
  });
  const stats: WebSocketListenerStats = {
    requests: 0,
    accepted: 0,
    rejected: 0,
    timedOut: 0,
    overloaded: 0,
    malformed: 0,
    abandoned: 0,
    sessions: 0,
  };
  const sessions = new Set<WebSocketSession>();
  const pending = new PendingRequests({ max: maxPending, timeoutMs: requestTimeoutMs, stats });
  let closing = false;
  let controller!: ReadableStreamDefaultController<IncomingSession>;
  const incomingSessions = new ReadableStream<IncomingSession>({
    start: (c) => {
      controller = c;
    },
  });

  const onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (!matchesPath(url.pathname, paths)) {
      // Another upgrade handler on the same server may own this path; with none, answer rather than hang.
      if (server.listenerCount('upgrade') <= 1) writeHttpError(socket, 404, 'Not Found');
      return;
    }
    stats.requests++;
    socket.on('error', () => {
      // A reset by the client is not the server's problem; the close handler below sees it.
    });
    if (!validUpgrade(req)) {
      stats.malformed++;
      writeHttpError(socket, 400, 'Bad Request');
      return;
    }
    if (closing || pending.full) {
      stats.overloaded++;
      writeHttpError(socket, 503, closing ? 'Shutting down' : 'Too many pending requests');
      return;
    }
    const headers = requestHeaders(req.headers);
    const request: SessionRequest = {
      transport: 'websocket',
      path: url.pathname,
      url: url.pathname + url.search,
      query: url.searchParams,
      headers,
      origin: headers.origin,
      remoteAddress: req.socket.remoteAddress ?? '',
      remotePort: req.socket.remotePort ?? 0,
    };
    const verdict = pending.add((status, reason) => writeHttpError(socket, status, reason));
    const onGone = () => verdict.clientGone();
    // The HTTP server's sockets allow half-open connections, so a client hanging up shows as 'end', not 'close'.
    const onEnd = () => {
      onGone();
      socket.destroy();
    };
    verdict.onSettled(() => {
      socket.off('close', onGone);
      socket.off('end', onEnd);
    });
    socket.on('close', onGone);
    socket.on('end', onEnd);
    // An upgraded socket is paused, so a client that hangs up would go unnoticed until the verdict. Reading
    // notices it; whatever else arrives is dropped, since a client may send nothing before the 101 (RFC 6455 §4.1).
    socket.resume();

    const incoming: IncomingSession = {
      request,
      accept(): QuiverSession {
        verdict.accept();
        const session = new WebSocketSession('server', options);
        const gone = verdict.gone || socket.destroyed || !socket.readable || !socket.writable;
        if (gone || closing) {
          session.abandon(
            new QuiverTransportError(gone ? 'client went away before accept' : 'listener closed', {
              source: 'session',
            }),
          );
          if (!gone) socket.destroy();
          return session;
        }
        sessions.add(session);
        stats.sessions++;
        void session.released.then(() => {
          sessions.delete(session);
          stats.sessions--;
        });
        let attached = false;
        // ws gives up silently on a socket that dies during the upgrade: fail the session rather than wait for
        // its handshake timeout.
        socket.once('close', () => {
          if (!attached)
            session.abandon(
              new QuiverTransportError('connection lost during the upgrade', { source: 'session' }),
            );
        });
        wss.handleUpgrade(req, socket, head, (ws) => {
          attached = true;
          session.attach(new NodeSocketAdapter(ws));
        });
        return session;
      },
      reject(status: number, reason = ''): void {
        verdict.reject(status, reason);
      },
    };
    controller.enqueue(incoming);
  };

  server.on('upgrade', onUpgrade);
  const onRequest = (_req: http.IncomingMessage, res: http.ServerResponse) => {
    res.writeHead(426, { 'Content-Type': 'text/plain', Upgrade: 'websocket', Connection: 'close' });
    res.end('Upgrade Required');
  };
  if (standalone) {
    server.on('request', onRequest);
    server.listen(options.port ?? 0, options.host ?? LISTENER_DEFAULTS.host);
    await once(server, 'listening');
  }

  const address = (): { host: string; port: number } => {
    const a = server.address();
    if (a && typeof a === 'object') return { host: a.address, port: a.port };
    return { host: options.host ?? LISTENER_DEFAULTS.host, port: options.port ?? 0 };
  };

  let closePromise: Promise<void> | undefined;
  return {
    transport: 'websocket',
    incomingSessions,
    get address() {
      return address();
    },
    get stats() {
      return { ...stats };
    },
    close(closeInfo: WebTransportCloseInfo = {}): Promise<void> {
      closePromise ??= (async () => {
        closing = true;
        server.off('upgrade', onUpgrade);
        pending.refuseAll(503, 'Shutting down');
        try {
          controller.close();
        } catch {
          // Already closed.
        }
        const all = [...sessions];
        for (const s of all) s.close({ closeCode: closeInfo.closeCode ?? 0, reason: closeInfo.reason ?? '' });
        await Promise.all(all.map((s) => s.released));
        wss.close();
        if (standalone) {
          server.off('request', onRequest);
          const closed = new Promise<void>((resolve) => server.close(() => resolve()));
          server.closeAllConnections();
          await closed;
        }
      })();
      return closePromise;
    },
  };
}
