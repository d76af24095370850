import type { ServerHttp2Session } from 'node:http2';
import type { Socket } from 'node:net';
import {
  type Clock,
  type IncomingSession,
  type QuiverSession,
  QuiverTransportError,
  type SessionRequest,
  systemClock,
  type TimerHandle,
  type TransportListener,
  type WebTransportCloseInfo,
} from '@quiver/transport';
import { Http2Server } from '@fails-components/webtransport';
import {
  guardParser,
  type LibHttpServer,
  type LibNativeSession,
  type LibServerInit,
  type LibServerSessionRequest,
  type LibSession,
} from './lib.js';
import { H2Session, type H2SessionOptions } from './session.js';

export interface H2WebTransportListenerOptions extends H2SessionOptions {
  /** Default `127.0.0.1`. */
  host?: string;
  /** Default 0 (the OS chooses; read it back from `listener.address.port`). */
  port?: number;
  /** PEM certificate chain for TLS (HTTP/2 here is always over TLS, ALPN `h2`). */
  cert: string;
  /** PEM private key. */
  key: string;
  /** Requests left without `accept()`/`reject()` this long are refused with 408. Default 10 000 ms. */
  requestTimeoutMs?: number;
  /** Requests waiting for a verdict at once; more are refused with 503. Default 128. */
  maxPendingRequests?: number;
  /**
   * WebTransport-over-HTTP/2 flow-control windows (draft-ietf-webtrans-http2 §5.4), passed to the library. Its
   * defaults: 16 KiB initial stream and session windows, auto-tuned up to 6 MiB (stream) and 15 MiB (session).
   */
  initialStreamFlowControlWindow?: number;
  initialSessionFlowControlWindow?: number;
  streamFlowControlWindowSizeLimit?: number;
  sessionFlowControlWindowSizeLimit?: number;
  /** Streams each peer may open (draft-ietf-webtrans-http2 WT_MAX_STREAMS). Library default 100 each. */
  initialBidirectionalStreams?: number;
  initialUnidirectionalStreams?: number;
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
export const DEFAULT_MAX_PENDING_REQUESTS = 128;

export interface H2WebTransportListener extends TransportListener {
  readonly transport: 'http2-webtransport';
}

const noop = (): void => {};
const LibHttp2Server = Http2Server as unknown as new (init: LibServerInit) => LibHttpServer;

function splitPeer(peer: string): { address: string; port: number } {
  const i = peer.lastIndexOf(':');
  if (i < 0) return { address: peer, port: 0 };
  const port = Number(peer.slice(i + 1));
  return { address: peer.slice(0, i), port: Number.isInteger(port) ? port : 0 };
}

function toRequest(args: LibServerSessionRequest): SessionRequest {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(args.header)) {
    if (value === undefined) continue;
    headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value);
  }
  const url = headers[':path'] ?? '/';
  const q = url.indexOf('?');
  const peer = splitPeer(args.peerAddress ?? '');
  return {
    transport: 'http2-webtransport',
    path: q < 0 ? url : url.slice(0, q),
    url,
    query: new URLSearchParams(q < 0 ? '' : url.slice(q + 1)),
    headers,
    origin: headers.origin,
    remoteAddress: peer.address,
    remotePort: peer.port,
  };
}

/**
 * Listens for WebTransport over HTTP/2 (extended CONNECT with `:protocol webtransport`, RFC 8441 and
 * draft-ietf-webtrans-http2) on `@fails-components/webtransport`'s `Http2Server`.
 *
 * Every request reaches `incomingSessions` before any response: the library's request hook (`onSessionRequest`,
 * overridden here) holds the CONNECT stream until `accept()` (200) or `reject(status)`.
 */
export async function createH2WebTransportListener(
  options: H2WebTransportListenerOptions,
): Promise<H2WebTransportListener> {
  if (!options?.cert || !options.key)
    throw new TypeError('createH2WebTransportListener: cert and key are required');
  const clock: Clock = options.clock ?? systemClock;
  const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const maxPending = options.maxPendingRequests ?? DEFAULT_MAX_PENDING_REQUESTS;
  const live = new Set<H2Session>();
  /** Sessions accepted whose library session does not exist yet, by the id carried in the library's userData. */
  const unbound = new Map<number, H2Session>();
  /**
   * Bytes that followed a WebSocket-over-HTTP/1.1 upgrade request in the same read, by session id. The library would
   * parse them inside its parser's constructor, before any hook of ours can guard the parser; they are withheld from
   * it and fed to the guarded parser in the visitor instead (same synchronous turn, so still before any socket data).
   */
  const heads = new Map<number, Uint8Array>();
  const undecided = new Set<() => void>();
  const h2sessions = new Set<ServerHttp2Session>();
  const sockets = new Set<Socket>();
  let nextId = 1;
  let closing = false;
  let controller!: ReadableStreamDefaultController<IncomingSession>;
  const incomingSessions = new ReadableStream<IncomingSession>(
    {
      start: (c) => {
        controller = c;
      },
    },
    { highWaterMark: 0 },
  );

  const finish = (args: LibServerSessionRequest, result: Record<string, unknown>): void => {
    server.transportInt?.finishSessionRequest({ ...args, ...result });
  };

  const onRequest = (args: LibServerSessionRequest): void => {
    if (closing || undecided.size >= maxPending) {
      try {
        finish(args, { status: 503 });
      } catch {
        // the stream is already gone
      }
      return;
    }
    const request = toRequest(args);
    let decided = false;
    let timer: TimerHandle | undefined;
    const decide = (): void => {
      if (decided) throw new Error('IncomingSession: accept() or reject() was already called');
      decided = true;
      clock.clearTimeout(timer);
      undecided.delete(timeoutReject);
    };
    const reject = (status: number, _reason?: string): void => {
      if (!Number.isInteger(status) || status < 400 || status > 599) {
        throw new RangeError(`reject(): status must be an HTTP error status 400..599, got ${status}`);
      }
      decide();
      try {
        // The library answers with the status and an empty body: the reason does not reach the client.
        finish(args, { status });
      } catch {
        // the client went away first
      }
    };
    const timeoutReject = (): void => {
      // 408 when the application never decided; 503 when the listener closes first.
      if (!decided) reject(closing ? 503 : 408);
    };
    const incoming: IncomingSession = {
      request,
      accept: (): QuiverSession => {
        decide();
        const session = new H2Session('server', options);
        const id = nextId++;
        unbound.set(id, session);
        live.add(session);
        session.closed.then(
          () => live.delete(session),
          () => live.delete(session),
        );
        const head = args.head instanceof Uint8Array && args.head.byteLength > 0 ? args.head : undefined;
        if (head) heads.set(id, head);
        try {
          finish(args, { status: 200, path: '/', userData: { quiverId: id }, head: undefined });
        } catch (error) {
          unbound.delete(id);
          heads.delete(id);
          session.fail(error);
        }
        return session;
      },
      reject,
    };
    undecided.add(timeoutReject);
    timer = clock.setTimeout(timeoutReject, requestTimeoutMs);
    controller.enqueue(incoming);
  };

  const onVisitor = (args: { session: { jsobj?: unknown }; userData?: unknown }): void => {
    const id = (args.userData as { quiverId?: number } | undefined)?.quiverId;
    if (id === undefined) return;
    const session = unbound.get(id);
    const head = heads.get(id);
    heads.delete(id);
    if (session) {
      unbound.delete(id);
      session.bind(args.session.jsobj as LibSession);
    }
    // Through the guard installed in the visitor override: a bad head closes only this session.
    if (head) (args.session as LibNativeSession).capsParser?.parseData?.(head);
  };

  class QuiverHttp2Server extends LibHttp2Server {
    override onSessionRequest(args: LibServerSessionRequest): void {
      onRequest(args);
    }
    override onHttpWTSessionVisitor(args: {
      session: { jsobj?: unknown };
      userData?: unknown;
      path?: string;
    }): void {
      // The library calls this in the same synchronous turn in which it builds the native session and its parser,
      // so the guard is in place before the first 'readable' event can deliver peer bytes, whatever the load.
      guardParser(args.session as LibNativeSession);
      // The library builds its session object (HttpWTSession, not exported) here; no path stream is registered, so
      // it is only attached to the native session, where onVisitor picks it up.
      super.onHttpWTSessionVisitor(args);
      onVisitor(args);
    }
  }

  const server: LibHttpServer = new QuiverHttp2Server({
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 0,
    // Only the HTTP/3 transport of the library uses the secret (QUIC retry tokens); its constructor insists anyway.
    secret: 'unused-by-http2',
    cert: options.cert,
    privKey: options.key,
    initialStreamFlowControlWindow: options.initialStreamFlowControlWindow,
    initialSessionFlowControlWindow: options.initialSessionFlowControlWindow,
    streamFlowControlWindowSizeLimit: options.streamFlowControlWindowSizeLimit,
    sessionFlowControlWindowSizeLimit: options.sessionFlowControlWindowSizeLimit,
    initialBidirectionalStreams: options.initialBidirectionalStreams,
    initialUnidirectionalStreams: options.initialUnidirectionalStreams,
  });
  // Any truthy callback makes the library route every CONNECT through onSessionRequest (no path table).
  server.setRequestCallback(() => Promise.resolve({ status: 404 }));
  server.startServer();
  const node = server.transportInt?.serverInt;
  node?.on('session', (s: ServerHttp2Session) => {
    h2sessions.add(s);
    s.once('close', () => h2sessions.delete(s));
  });
  node?.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await server.ready;
  const bound = server.address();
  if (!bound) throw new Error('createH2WebTransportListener: the server reported no address');

  let closePromise: Promise<void> | undefined;
  const close = (closeInfo?: WebTransportCloseInfo): Promise<void> => {
    closePromise ??= (async () => {
      closing = true;
      for (const timeoutReject of [...undecided]) {
        try {
          timeoutReject();
        } catch {
          // decided meanwhile
        }
      }
      try {
        controller.close();
      } catch {
        // a reader cancelled it
      }
      for (const session of unbound.values()) {
        session.fail(new QuiverTransportError('listener closed', { source: 'session' }));
      }
      unbound.clear();
      heads.clear();
      const sessions = [...live];
      for (const session of sessions) {
        try {
          session.close(closeInfo ?? { closeCode: 0, reason: '' });
        } catch {
          // already closed
        }
      }
      await Promise.all(sessions.map((s) => s.closed.then(noop, noop)));
      server.stopServer();
      // node:http2 servers only emit 'close' once every connection has ended; clients may keep theirs open.
      for (const s of h2sessions) s.destroy();
      for (const socket of sockets) socket.destroy();
      await server.closed;
    })();
    return closePromise;
  };

  return {
    transport: 'http2-webtransport',
    incomingSessions,
    address: { host: bound.host, port: bound.port },
    close,
  };
}
