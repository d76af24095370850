/**
 * The part of `@fails-components/webtransport` 1.6.8 this adapter touches, typed narrowly.
 *
 * Types only (no runtime import), so that the session adapter also bundles for browsers with the library's
 * browser build (its WebSocket-mapped `WebTransportPonyfill`).
 *
 * Public surface: `Http2Server` (an `HttpServer` with `reliability: 'reliableOnly'`), its event-handler methods
 * `onSessionRequest` / `onHttpWTSessionVisitor` (the `HttpServerEventHandler` interface of the library's
 * `types.d.ts`, overridden by subclassing), and the Node `WebTransport` class with `forceReliable: true`.
 *
 * Private surface, read defensively (every access tolerates `undefined`) because the library exposes no other way:
 * `HttpServer.transportInt.serverInt` (the `node:http2` server, to track and end connections on close),
 * `HttpWTSession.objint` (the `Http2WebTransportSession`: its `stream.session.WTrtt` ping RTT and its
 * `datagramsWaiting_` queue), and `WebTransport.sessionint.setSessionObj` (to see the HTTP status of a refused
 * CONNECT, which the library drops).
 */
import type { ServerHttp2Session } from 'node:http2';
import type { Server as NetServer, Socket } from 'node:net';

/** What `HttpWTSession` (server side) and `WebTransport` (client side) both offer. */
export interface LibSession {
  readonly ready: Promise<void>;
  readonly closed: Promise<{ closeCode?: number; reason?: string }>;
  close(info?: { closeCode: number; reason: string }): void;
  createBidirectionalStream(): Promise<{
    readable: ReadableStream<Uint8Array>;
    writable: WritableStream<Uint8Array>;
  }>;
  createUnidirectionalStream(): Promise<WritableStream<Uint8Array>>;
  readonly incomingBidirectionalStreams: ReadableStream<{
    readable: ReadableStream<Uint8Array>;
    writable: WritableStream<Uint8Array>;
  }>;
  readonly incomingUnidirectionalStreams: ReadableStream<ReadableStream<Uint8Array>>;
  readonly datagrams: {
    readonly readable: ReadableStream<Uint8Array>;
    createWritable(): WritableStream<Uint8Array>;
    readonly maxDatagramSize: number;
  };
}

/** `Http2WebTransportSession`, private. */
export interface LibNativeSession {
  stream?: {
    session?: { WTrtt?: number } | null;
    once?(event: 'response', fn: (headers: Record<string, unknown>) => void): void;
  };
  datagramsWaiting_?: unknown[];
  capsParser?: { parseData?: (data: Uint8Array) => void };
  closeConnection?: (arg: { code: number; reason: string }) => void;
}

export interface LibServerSessionRequest {
  header: Record<string, string | string[] | undefined>;
  peerAddress: string;
  session: unknown;
  protocol: 'capsule' | 'websocket' | 'websocketoverhttp1';
  head?: unknown;
  transportPrivate?: unknown;
  promise?: unknown;
}

export interface LibServerInit {
  port: number;
  host: string;
  secret: string;
  cert: string;
  privKey: string;
  initialStreamFlowControlWindow?: number;
  initialSessionFlowControlWindow?: number;
  streamFlowControlWindowSizeLimit?: number;
  sessionFlowControlWindowSizeLimit?: number;
  initialBidirectionalStreams?: number;
  initialUnidirectionalStreams?: number;
}

export interface LibHttpServer {
  readonly ready: Promise<void>;
  readonly closed: Promise<void>;
  startServer(): void;
  stopServer(): void;
  address(): { port: number; host: string } | null;
  setRequestCallback(cb: unknown): void;
  onSessionRequest(args: LibServerSessionRequest): void;
  onHttpWTSessionVisitor(args: { session: { jsobj?: unknown }; userData?: unknown; path?: string }): void;
  transportInt?: {
    serverInt?: NetServer & { on(event: 'session', fn: (s: ServerHttp2Session) => void): unknown };
    finishSessionRequest(args: Record<string, unknown>): void;
  };
}

export interface LibClientInit {
  forceReliable: true;
  serverCertificateHashes?: { algorithm: 'sha-256'; value: BufferSource }[];
  quicConnectTimeout?: number;
  webTransportConnectTimeout?: number;
  initialStreamFlowControlWindow?: number;
  initialSessionFlowControlWindow?: number;
  streamFlowControlWindowSizeLimit?: number;
  sessionFlowControlWindowSizeLimit?: number;
}

export interface LibWebTransport extends LibSession {
  sessionint?: {
    objint?: LibNativeSession;
    setSessionObj?: (object: LibNativeSession, reliable: boolean) => void;
  };
}

export type { Socket };

/** The native session behind a library session, when the library still holds one. */
export function nativeOf(lib: LibSession): LibNativeSession | undefined {
  const holder = (lib as LibWebTransport).sessionint ?? (lib as { objint?: LibNativeSession });
  return (holder as { objint?: LibNativeSession }).objint;
}
