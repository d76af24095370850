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
    destroy?(): void;
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

/** RFC 9113 §7 PROTOCOL_ERROR: the close code of a session whose peer broke the capsule protocol. */
export const H2_PROTOCOL_ERROR = 0x1;

/**
 * The guard on one native session's capsule parser: what the peer sent that the parser could not take, and who is
 * told about it. One per native session (see {@link guardParser}).
 */
export interface ParserGuard {
  /** The first error the parser threw on peer input; later input is then ignored. */
  error: unknown;
  /** Called once, with that error; set by whoever owns the session (the adapter's `H2Session`). */
  onViolation: ((error: unknown) => void) | undefined;
}

const guards = new WeakMap<object, ParserGuard>();

/**
 * Wraps the parser of a library native session so that nothing it throws on peer input leaves it.
 *
 * Why: `Http2CapsuleParser.parseData` (and the WebSocket mapping's parser) runs from the CONNECT stream's
 * `'readable'` handler. Some peer input makes it throw, e.g. a WT_STREAM capsule for a stream id of the receiver's own
 * direction that it never opened (`lib/session.js` `onStream`: "Got bidirectional stream without asking for it").
 * A throw there is an uncaught exception that ends the process. draft-ietf-webtrans-http2 treats a malformed capsule
 * sequence as a session error, so the guard closes only this session, with H2 PROTOCOL_ERROR (RFC 9113 §7).
 *
 * Callers install it in the same synchronous turn that the library builds the native session (the parser attaches
 * its `'readable'` listener in its constructor and Node emits `'readable'` no earlier than the next tick), so no
 * bytes can reach an unguarded parser: on the server in the `onHttpWTSessionVisitor` override, on the client in the
 * `setSessionObj` hook. The one path where the library parses bytes inside its own constructor (the head of a
 * WebSocket-over-HTTP/1.1 upgrade) is handed to the guarded parser by the listener instead. Idempotent: a second call
 * returns the same guard.
 */
export function guardParser(native: LibNativeSession | undefined): ParserGuard | undefined {
  if (!native || typeof native !== 'object') return undefined;
  const existing = guards.get(native);
  if (existing) return existing;
  const parser = native.capsParser;
  const parse = parser?.parseData;
  if (!parser || typeof parse !== 'function') return undefined;
  const guard: ParserGuard = { error: undefined, onViolation: undefined };
  guards.set(native, guard);
  parser.parseData = (data: Uint8Array) => {
    // After a violation the parser state is unknown (it threw mid-capsule): drop whatever else arrives.
    if (guard.error !== undefined) return;
    try {
      parse.call(parser, data);
    } catch (error) {
      guard.error = error ?? new Error('parser threw without an error');
      const reason = `protocol violation: ${error instanceof Error ? error.message : String(error)}`;
      try {
        native.closeConnection?.({ code: H2_PROTOCOL_ERROR, reason });
      } catch {
        // The library could not close it the orderly way (no session object yet, or already gone): end the
        // CONNECT stream so that the peer and the library both see the session end.
        try {
          native.stream?.destroy?.();
        } catch {
          // already destroyed
        }
      }
      try {
        guard.onViolation?.(guard.error);
      } catch {
        // the owner's bookkeeping must not turn this back into an uncaught throw
      }
    }
  };
  return guard;
}

/** The native session behind a library session, when the library still holds one. */
export function nativeOf(lib: LibSession): LibNativeSession | undefined {
  const holder = (lib as LibWebTransport).sessionint ?? (lib as { objint?: LibNativeSession });
  return (holder as { objint?: LibNativeSession }).objint;
}
