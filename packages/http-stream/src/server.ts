import { randomBytes, timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import type {
  IncomingSession,
  QuiverSession,
  SessionRequest,
  TransportListener,
  WebTransportCloseInfo,
} from '@quiver/transport';
import {
  PendingRequests,
  ProtocolViolationError,
  QuiverTransportError,
  requestHeaders,
  systemClock,
} from '@quiver/transport';
import { matchesPath, WebSocketSession, type WebSocketSessionOptions } from '@quiver/websocket';
import {
  type HttpTunnelOptions,
  Q,
  resolveTunnel,
  SESSION_DEFAULTS,
  splitQuery,
  tunnelLimits,
} from './options.js';
import { type EventResponse, ServerTunnel, type Tombstone } from './server-tunnel.js';
import {
  encodeEvent,
  encodeTunnelFrames,
  HttpErrorCode,
  httpViolation,
  type TunnelFrame,
  TunnelFrameReader,
} from './wire.js';

export interface HttpStreamListenerOptions extends WebSocketSessionOptions, HttpTunnelOptions {
  /** Standalone: port to listen on (0 lets the OS choose). */
  port?: number;
  /** Standalone: address to bind. Default `127.0.0.1`. */
  host?: string;
  /** Standalone: serve HTTPS with this certificate and key (PEM), HTTP/2 and HTTP/1.1 by ALPN. */
  tls?: {
    /** The certificate chain (PEM). */
    cert: string | Buffer;
    /** The private key of `cert` (PEM). */
    key: string | Buffer;
  };
  /**
   * Mounted: the server whose requests the application hands to `listener.handle(req, res)` (e.g. fastify's
   * `server`); only used for `address`. Without it the listener starts its own server.
   */
  server?:
    | http.Server
    | http2.Http2SecureServer
    | {
        /** The bound address, as `net.Server.address()` returns it. */
        address(): unknown;
      };
  /** Path prefixes served (see `@quiver/websocket`). Default: every path. */
  path?: string | string[];
  /** Requests without accept() or reject() for this long get 408. Default 10000 ms. */
  requestTimeoutMs?: number;
  /** Requests waiting for a verdict at once; more get 503. Default 256. */
  maxPendingRequests?: number;
  /** Open sessions at most; more session requests get 503. Default 10000. */
  maxSessions?: number;
  /** A downstream response is ended after this many bytes and the client reconnects (0: never). Default 0. */
  maxDownstreamBytes?: number;
  /**
   * Largest batch (decoded bytes) in one event; an event is the unit that a cut response loses, so it stays well
   * below what intermediaries let through in one response. Default 16 KiB (at least one message always goes).
   */
  maxEventBytes?: number;
  /**
   * An upload stream is reset after this many bytes of body, the chunk that crosses the bound unread (0: never). The
   * client goes on by POST and opens another; for intermediaries that limit request bodies, and to test that a cut
   * upload loses nothing. Default 0.
   */
  maxUploadBytes?: number;
  /** Comment event after this long without output, for proxies that close quiet responses. Default 15000 ms. */
  keepAliveMs?: number;
  /** A POST body must arrive within this long, or it is answered 408 (the client sends it again). Default 10000 ms. */
  bodyTimeoutMs?: number;
}

/** The defaults of {@link HttpStreamListenerOptions}, for applications that derive their own limits from them. */
export const HTTP_LISTENER_DEFAULTS = {
  /** Standalone: loopback only. */
  host: '127.0.0.1',
  /** Milliseconds a request may wait for accept() or reject() before 408. */
  requestTimeoutMs: 10_000,
  /** Requests waiting for a verdict at once; more get 503. */
  maxPendingRequests: 256,
  /** Open sessions at most; more session requests get 503. */
  maxSessions: 10_000,
  /** Bytes after which a downstream response is ended and the client reconnects; 0: never. */
  maxDownstreamBytes: 0,
  /** Bytes after which an upload stream is reset; 0: never. */
  maxUploadBytes: 0,
  /** Largest batch in one event, in decoded bytes (16 KiB). */
  maxEventBytes: 16 * 1024,
  /** Milliseconds without output before a comment event keeps proxies from closing the response. */
  keepAliveMs: 15_000,
  /** Milliseconds a POST body may take to arrive before 408. */
  bodyTimeoutMs: 10_000,
} as const;

/** Listener counters: every refused or failed request is counted. */
export interface HttpStreamListenerStats {
  /** Tunnel requests (those with an operation in the query) on the listener's paths, of any kind. */
  requests: number;
  /** Session requests the application accepted. */
  accepted: number;
  /** Session requests the application rejected. */
  rejected: number;
  /** Session requests answered 408: no accept() or reject() within `requestTimeoutMs`. */
  timedOut: number;
  /** Session requests answered 503: shutting down, or `maxPendingRequests` or `maxSessions` reached. */
  overloaded: number;
  /** Refused with 400: unknown tunnel operation, method or parameters. */
  malformed: number;
  /** Session requests whose client went away before the application decided. */
  abandoned: number;
  /** A resume or POST whose token does not match the session's (403); the session is not affected. */
  forbidden: number;
  /** A resume or POST for a session id that does not exist (404). */
  unknownSession: number;
  /** POST bodies refused as too large (413); the session they named failed. */
  oversize: number;
  /** Downstream responses opened to resume a session. */
  resumed: number;
  /** Upstream POSTs that named a live session with its token. */
  posts: number;
  /** Upload streams (README "Upload stream") that named a live session with its token over HTTP/2. */
  uploads: number;
  /** Upload streams refused with 505 because they did not come over HTTP/2 (the client uses POSTs instead). */
  uploadsRefused: number;
  /** Upload streams reset after `maxUploadBytes`. */
  uploadsCut: number;
  /** CORS preflights answered for cross-origin upload streams. */
  preflights: number;
  /** Sessions open now (a gauge: it goes down when a session is released). */
  sessions: number;
  /** Messages clients sent again that had already arrived (a POST whose answer was lost), dropped: all sessions. */
  duplicateMessages: number;
  /** Messages sent again on a new event stream: all sessions. */
  retransmittedMessages: number;
}

/** A tunnel listener: standalone, or mounted on an application's server through `handle`. */
export interface HttpStreamListener extends TransportListener {
  /** Live counters; read, never reset. */
  readonly stats: Readonly<HttpStreamListenerStats>;
  /**
   * Serves `req` if it is a tunnel request on one of the listener's paths (its query has `qh=`) and returns true;
   * returns false and leaves it alone otherwise. Works with `http`, `https` and `http2` compatibility requests.
   */
  handle(req: IncomingRequest, res: OutgoingResponse): boolean;
}

/** What `handle` needs of a Node request (`http.IncomingMessage` or `http2.Http2ServerRequest`). */
export type IncomingRequest = http.IncomingMessage | http2.Http2ServerRequest;
/** What `handle` answers on: the response of the same request. */
export type OutgoingResponse = http.ServerResponse | http2.Http2ServerResponse;

const ID_BYTES = 16;
/** Closed sessions remembered for a late resume (oldest forgotten first); each holds one message at most. */
const MAX_TOMBSTONES = 1024;

function newId(): string {
  return randomBytes(ID_BYTES).toString('base64url');
}

function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function corsHeaders(req: IncomingRequest): Record<string, string> {
  const origin = req.headers.origin;
  // The session request is the application's to judge (it sees `origin`); the others carry the session's token.
  return typeof origin === 'string' ? { 'access-control-allow-origin': origin, vary: 'origin' } : {};
}

function reply(req: IncomingRequest, res: OutgoingResponse, status: number, body: string | Uint8Array): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  (res as http.ServerResponse).writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/octet-stream',
    'content-length': String(bytes.length),
    'cache-control': 'no-store',
    ...corsHeaders(req),
  });
  res.end(bytes);
}

/**
 * Starts an HTTP tunnel listener: standalone (`{ port, host, tls }`, HTTP/1.1, or HTTP/2 and HTTP/1.1 over TLS),
 * or mounted (`handle(req, res)` called by the application's server for each request). Each session request
 * (`GET <path>?qh=open`) becomes an {@link IncomingSession}.
 */
export async function createHttpStreamListener(
  options: HttpStreamListenerOptions = {},
): Promise<HttpStreamListener> {
  const sessionOptions: WebSocketSessionOptions = { ...SESSION_DEFAULTS, ...stripUndefined(options) };
  const maxMessageSize = options.maxMessageSize ?? 1024 * 1024;
  const tunnel = resolveTunnel(options);
  const limits = tunnelLimits(tunnel, maxMessageSize);
  const o = { ...HTTP_LISTENER_DEFAULTS, ...stripUndefined(options) };
  const clock = options.clock ?? systemClock;
  const paths = options.path === undefined ? undefined : [options.path].flat();
  const stats: HttpStreamListenerStats = {
    requests: 0,
    accepted: 0,
    rejected: 0,
    timedOut: 0,
    overloaded: 0,
    malformed: 0,
    abandoned: 0,
    forbidden: 0,
    unknownSession: 0,
    oversize: 0,
    resumed: 0,
    posts: 0,
    uploads: 0,
    uploadsRefused: 0,
    uploadsCut: 0,
    preflights: 0,
    sessions: 0,
    duplicateMessages: 0,
    retransmittedMessages: 0,
  };
  const tunnels = new Map<string, { tunnel: ServerTunnel; session: WebSocketSession }>();
  const tombstones = new Map<string, Tombstone & { until: number }>();
  const pending = new PendingRequests({ max: o.maxPendingRequests, timeoutMs: o.requestTimeoutMs, stats });
  let closing = false;
  let controller!: ReadableStreamDefaultController<IncomingSession>;
  const incomingSessions = new ReadableStream<IncomingSession>({
    start: (c) => {
      controller = c;
    },
  });

  const open = (req: IncomingRequest, res: OutgoingResponse, pathname: string, appQuery: string): void => {
    if (closing || pending.full || tunnels.size >= o.maxSessions) {
      stats.overloaded++;
      reply(req, res, 503, closing ? 'Shutting down' : 'Too many sessions or pending requests');
      return;
    }
    const headers = requestHeaders(req.headers);
    const request: SessionRequest = {
      transport: 'http',
      path: pathname,
      url: pathname + appQuery,
      query: new URLSearchParams(appQuery),
      headers,
      origin: headers.origin,
      remoteAddress: req.socket?.remoteAddress ?? '',
      remotePort: req.socket?.remotePort ?? 0,
    };
    const verdict = pending.add((status, reason) => reply(req, res, status, reason));
    const onGone = () => verdict.clientGone();
    verdict.onSettled(() => res.off('close', onGone));
    res.on('close', onGone);
    controller.enqueue({
      request,
      accept(): QuiverSession {
        verdict.accept();
        const gone = verdict.gone;
        const session = new WebSocketSession('server', sessionOptions, 'http');
        if (gone || closing) {
          session.abandon(
            new QuiverTransportError(gone ? 'client went away before accept' : 'listener closed', {
              source: 'session',
            }),
          );
          if (!gone) res.destroy();
          return session;
        }
        let sessionId = newId();
        while (tunnels.has(sessionId)) sessionId = newId();
        const token = newId();
        const t = new ServerTunnel(sessionId, token, {
          tunnel,
          limits,
          clock,
          maxDownstreamBytes: o.maxDownstreamBytes,
          maxEventBytes: o.maxEventBytes,
          keepAliveMs: o.keepAliveMs,
          onFinished: (tombstone) => {
            tunnels.delete(sessionId);
            stats.duplicateMessages += t.stats.duplicates;
            stats.retransmittedMessages += t.stats.retransmitted;
            if (!tombstone) return;
            tombstones.set(sessionId, { ...tombstone, until: clock.now() + tunnel.reconnectTimeoutMs });
            if (tombstones.size > MAX_TOMBSTONES) tombstones.delete(tombstones.keys().next().value!);
          },
        });
        tunnels.set(sessionId, { tunnel: t, session });
        stats.sessions++;
        void session.released.then(() => {
          stats.sessions--;
          // A session that ended without its tunnel noticing (handshake timeout) must not keep its entry.
          t.terminate();
        });
        session.attach(t);
        startEvents(req, res);
        t.attachDownstream(res as unknown as EventResponse, 0, { type: 'hello', sessionId, token });
        return session;
      },
      reject(status: number, reason = ''): void {
        verdict.reject(status, reason);
      },
    });
  };

  /** Looks up a session named by a resume or a POST, answering 404/403 itself when it cannot be used. */
  const lookup = (
    req: IncomingRequest,
    res: OutgoingResponse,
    params: Map<string, string>,
  ): { tunnel: ServerTunnel; session: WebSocketSession } | undefined => {
    const sid = params.get(Q.sid) ?? '';
    const entry = tunnels.get(sid);
    if (!entry && tombstones.has(sid)) {
      // Closed: the client learns how from its event stream (the tombstone), not from this answer.
      reply(req, res, 410, 'Session closed');
      return undefined;
    }
    if (!entry) {
      stats.unknownSession++;
      reply(req, res, 404, 'Unknown session');
      return undefined;
    }
    if (!sameToken(params.get(Q.token) ?? '', entry.tunnel.token)) {
      // Knowing a session's id is not enough to act on it: the session itself is left alone.
      stats.forbidden++;
      reply(req, res, 403, 'Bad session token');
      return undefined;
    }
    return entry;
  };

  const resume = (req: IncomingRequest, res: OutgoingResponse, params: Map<string, string>): void => {
    const ackText = params.get(Q.ack) ?? '';
    if (!/^\d{1,15}$/.test(ackText)) {
      stats.malformed++;
      reply(req, res, 400, 'Bad ack');
      return;
    }
    const sid = params.get(Q.sid) ?? '';
    const tomb = tombstones.get(sid);
    if (tomb && !tunnels.has(sid)) {
      tombstones.delete(sid);
      if (tomb.until >= clock.now() && sameToken(params.get(Q.token) ?? '', tomb.token)) {
        stats.resumed++;
        startEvents(req, res);
        const frames: TunnelFrame[] = [];
        if (tomb.lastMessage) frames.push({ type: 'data', seq: Number(ackText) + 1, data: tomb.lastMessage });
        frames.push({ type: 'close', code: tomb.code, reason: tomb.reason });
        res.end(encodeEvent(encodeTunnelFrames(frames)));
        return;
      }
    }
    const entry = lookup(req, res, params);
    if (!entry) return;
    stats.resumed++;
    startEvents(req, res);
    entry.tunnel.attachDownstream(res as unknown as EventResponse, Number(ackText), undefined);
  };

  const post = (req: IncomingRequest, res: OutgoingResponse, params: Map<string, string>): void => {
    const entry = lookup(req, res, params);
    if (!entry) {
      req.resume();
      return;
    }
    stats.posts++;
    const max = tunnel.maxBatchBytes;
    const declared = Number(req.headers['content-length'] ?? 0);
    const tooLarge = () => {
      stats.oversize++;
      entry.tunnel.failWith(httpViolation(HttpErrorCode.BATCH_TOO_LARGE, `POST body over ${max} bytes`));
      reply(req, res, 413, 'Batch too large');
      // Whatever else the client sends of it is not read.
      req.destroy();
    };
    if (declared > max) {
      tooLarge();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      reply(req, res, 408, 'Body timeout');
      req.destroy();
    }, o.bodyTimeoutMs);
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > max) {
        done = true;
        clearTimeout(timer);
        tooLarge();
        return;
      }
      chunks.push(chunk);
    });
    req.on('error', () => {
      done = true;
      clearTimeout(timer);
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
      let ack: Uint8Array;
      try {
        ack = entry.tunnel.onPost(new Uint8Array(body.buffer, body.byteOffset, body.byteLength));
      } catch (e) {
        const status =
          e instanceof ProtocolViolationError && e.code === HttpErrorCode.BATCH_TOO_LARGE ? 413 : 400;
        reply(
          req,
          res,
          e instanceof ProtocolViolationError ? status : 410,
          e instanceof Error ? e.message : '',
        );
        return;
      }
      reply(req, res, 200, ack);
    });
  };

  /**
   * An upload stream: one request body carrying tunnel frames for as long as it lasts, read as it comes with at most
   * one unfinished frame held. HTTP/2 only: an HTTP/1.1 intermediary may hold a request body until it ends, which
   * for this one is never; refused with 505, the client keeps to POSTs.
   */
  const upload = (req: IncomingRequest, res: OutgoingResponse, params: Map<string, string>): void => {
    if (req.httpVersionMajor < 2) {
      stats.uploadsRefused++;
      req.resume();
      reply(req, res, 505, 'Upload streams need HTTP/2');
      return;
    }
    const entry = lookup(req, res, params);
    if (!entry) {
      req.resume();
      return;
    }
    const t = entry.tunnel;
    let done = false;
    const handle = {
      end: () => {
        if (done) return;
        done = true;
        // The client sees this as the end of its upload (lost if it had not ended it); its messages go by POST.
        res.end();
      },
    };
    if (!t.attachUpload(handle)) {
      reply(req, res, 410, 'Session closed');
      req.resume();
      return;
    }
    stats.uploads++;
    (res as http.ServerResponse).writeHead(200, {
      'content-type': 'application/octet-stream',
      'cache-control': 'no-store',
      ...corsHeaders(req),
    });
    (res as http.ServerResponse).flushHeaders?.();
    const reader = new TunnelFrameReader(maxMessageSize);
    const stop = () => {
      done = true;
      t.detachUpload(handle);
    };
    let received = 0;
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      received += chunk.length;
      if (o.maxUploadBytes > 0 && received > o.maxUploadBytes) {
        stop();
        stats.uploadsCut++;
        resetStream(res);
        return;
      }
      try {
        t.onUploadFrames(reader.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)));
      } catch (e) {
        stop();
        if (e instanceof ProtocolViolationError) {
          if (e.code === HttpErrorCode.BATCH_TOO_LARGE) stats.oversize++;
          t.violated(e);
        }
        // The rest of the body is not read: the stream is reset.
        resetStream(res);
      }
    });
    req.on('end', () => {
      if (done) return;
      stop();
      if (reader.buffered > 0) {
        t.violated(httpViolation(HttpErrorCode.MALFORMED, 'upload stream ended inside a frame'));
      }
      res.end();
    });
    req.on('error', stop);
    res.on('close', stop);
  };

  /**
   * The CORS preflight (Fetch §3.2.2) a browser sends before a cross-origin request with a `ReadableStream` body,
   * which is never a simple request. Allowed for any origin: the upload itself needs the session's token, and the
   * application judged the origin on the session request.
   */
  const preflight = (req: IncomingRequest, res: OutgoingResponse): void => {
    stats.preflights++;
    (res as http.ServerResponse).writeHead(204, {
      ...corsHeaders(req),
      'access-control-allow-methods': 'POST',
      'access-control-max-age': '600',
      'content-length': '0',
    });
    res.end();
  };

  const handle = (req: IncomingRequest, res: OutgoingResponse): boolean => {
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    const pathname = q < 0 ? raw : raw.slice(0, q);
    if (q < 0 || !matchesPath(pathname, paths)) return false;
    const { tunnel: params, app } = splitQuery(raw.slice(q));
    const op = params.get(Q.op);
    if (op === undefined) return false;
    stats.requests++;
    res.on('error', () => {
      // A client that hangs up is seen by the response's close event.
    });
    if (op === 'open' && req.method === 'GET') open(req, res, pathname, app);
    else if (op === 'down' && req.method === 'GET') resume(req, res, params);
    else if (op === 'up' && req.method === 'POST') post(req, res, params);
    else if (op === 'stream' && req.method === 'POST') upload(req, res, params);
    else if (op === 'stream' && req.method === 'OPTIONS') preflight(req, res);
    else {
      stats.malformed++;
      reply(req, res, 400, 'Unknown tunnel request');
    }
    return true;
  };

  const standalone = !options.server;
  const server = options.server
    ? undefined
    : options.tls
      ? http2.createSecureServer({ cert: options.tls.cert, key: options.tls.key, allowHTTP1: true })
      : http.createServer();
  const onRequest = (req: IncomingRequest, res: OutgoingResponse) => {
    if (!handle(req, res)) reply(req, res, 404, 'Not Found');
  };
  // Http2SecureServer has no closeAllConnections(): its connections (HTTP/2 sessions a browser keeps alive, and
  // HTTP/1.1 ones) are tracked so that close() can end them.
  const sockets = new Set<{ destroy(): void }>();
  if (server) {
    server.on('connection', (socket: import('node:net').Socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
    server.on('request', onRequest);
    server.listen(options.port ?? 0, o.host);
    await once(server, 'listening');
  }

  const address = (): { host: string; port: number } => {
    const a = (server ?? options.server)?.address();
    if (a && typeof a === 'object' && 'port' in a) {
      const { address, port } = a as { address: string; port: number };
      return { host: address, port };
    }
    return { host: o.host, port: options.port ?? 0 };
  };

  let closePromise: Promise<void> | undefined;
  return {
    transport: 'http',
    incomingSessions,
    handle,
    get address() {
      return address();
    },
    get stats() {
      const live = [...tunnels.values()].map((e) => e.tunnel.stats);
      return {
        ...stats,
        duplicateMessages: live.reduce((n, t) => n + t.duplicates, stats.duplicateMessages),
        retransmittedMessages: live.reduce((n, t) => n + t.retransmitted, stats.retransmittedMessages),
      };
    },
    close(closeInfo: WebTransportCloseInfo = {}): Promise<void> {
      closePromise ??= (async () => {
        closing = true;
        pending.refuseAll(503, 'Shutting down');
        try {
          controller.close();
        } catch {
          // Already closed.
        }
        const all = [...tunnels.values()].map((e) => e.session);
        for (const s of all) s.close({ closeCode: closeInfo.closeCode ?? 0, reason: closeInfo.reason ?? '' });
        await Promise.all(all.map((s) => s.released));
        if (standalone && server) {
          server.off('request', onRequest);
          const closed = new Promise<void>((resolve) => server.close(() => resolve()));
          if ('closeAllConnections' in server) (server as http.Server).closeAllConnections();
          for (const socket of sockets) socket.destroy();
          await closed;
        }
      })();
      return closePromise;
    },
  };
}

/**
 * Resets an HTTP/2 stream with CANCEL (RFC 9113 §7), so that the client sees a failed upload, not a clean end (a
 * plain destroy() may reset with NO_ERROR after the response headers).
 */
function resetStream(res: OutgoingResponse): void {
  const stream = (res as http2.Http2ServerResponse).stream;
  if (stream && !stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
  else res.destroy();
}

/** The response headers of an event stream (WHATWG HTML §9.2), written before the first event. */
function startEvents(req: IncomingRequest, res: OutgoingResponse): void {
  (res as http.ServerResponse).writeHead(200, {
    'content-type': 'text/event-stream',
    // Proxies must pass events on as they come (no-transform) and not store them.
    'cache-control': 'no-store, no-transform',
    // nginx buffers responses unless told not to.
    'x-accel-buffering': 'no',
    ...corsHeaders(req),
  });
  // HTTP/1.1 responses wait for a first body write before the headers leave; an event stream must start now.
  (res as http.ServerResponse).flushHeaders?.();
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
