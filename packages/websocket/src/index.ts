/**
 * @quiver/websocket (Node entry): the WebSocket transport. Streams and datagrams are multiplexed over one
 * WebSocket with the framing described in the README; sessions implement QuiverSession.
 */
import { createHash } from 'node:crypto';
import type net from 'node:net';
import { isIP } from 'node:net';
import tls from 'node:tls';
import WebSocket from 'ws';
import { connectWith, type WebSocketConnectOptions } from './client.js';
import { NodeSocketAdapter } from './node-socket.js';
import { resolveOptions } from './options.js';
import type { WebSocketSession } from './session.js';

export type { WebSocketConnectOptions } from './client.js';
export { connectWith, type SocketFactory, toWebSocketUrl } from './client.js';
export * from './common.js';
export { NodeSocketAdapter } from './node-socket.js';
export {
  createWebSocketListener,
  LISTENER_DEFAULTS,
  matchesPath,
  type WebSocketListener,
  type WebSocketListenerOptions,
  type WebSocketListenerStats,
} from './server.js';

/** Node-only client options. */
export interface NodeWebSocketConnectOptions extends WebSocketConnectOptions {
  /** TLS settings for `wss:`: trusted CA certificates (PEM), or `rejectUnauthorized: false` for tests only. */
  tls?: {
    /** Trusted CA certificates (PEM); default Node's bundled roots. */
    ca?: string | Buffer | (string | Buffer)[];
    /** `false` accepts any certificate: for tests only. Default true. */
    rejectUnauthorized?: boolean;
  };
}

/**
 * Opens a Quiver session over a WebSocket (through `ws`). `url` may be `https:`/`http:` (mapped to `wss:`/`ws:`)
 * or `wss:`/`ws:`. `headers` are sent with the upgrade request. `serverCertificateHashes` pins the server
 * certificate by SHA-256 instead of CA validation, as W3C WebTransport §6.2 does (browsers ignore it for WebSockets).
 */
export function connectWebSocket(url: string, options: NodeWebSocketConnectOptions = {}): WebSocketSession {
  return connectWith(
    (u, protocols, o) => {
      const pins = o.serverCertificateHashes?.map((h) => toBytes(h.value));
      const ws = new WebSocket(u, protocols, {
        headers: o.headers,
        perMessageDeflate: false,
        // Pings are answered by the adapter, after the session's buffer check (NodeSocketAdapter).
        autoPong: false,
        maxPayload: resolveOptions(o).maxMessageSize,
        ca: o.tls?.ca,
        rejectUnauthorized: o.tls?.rejectUnauthorized,
        ...(pins && pins.length > 0
          ? // ws calls createConnection with its request options only (ws/lib/websocket.js initAsClient).
            {
              createConnection: ((opts: tls.ConnectionOptions) =>
                pinnedConnect(opts, pins)) as typeof net.connect,
            }
          : {}),
      });
      return new NodeSocketAdapter(ws);
    },
    url,
    options,
  );
}

function toBytes(source: BufferSource): Uint8Array {
  return source instanceof ArrayBuffer
    ? new Uint8Array(source)
    : new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
}

let pinnedContext: tls.SecureContext | undefined;

function sharedPinnedContext(): tls.SecureContext {
  pinnedContext ??= tls.createSecureContext();
  return pinnedContext;
}

/**
 * A TLS connection accepted only if the server certificate's SHA-256 is one of `pins` and it is valid now (W3C
 * WebTransport §4.4 "verify a certificate hash"). The check runs on `secureConnect`, before the upgrade request,
 * which TLS holds back until the handshake completes, leaves the client.
 */
function pinnedConnect(options: tls.ConnectionOptions, pins: Uint8Array[]): tls.TLSSocket {
  const host = (options as { host?: string }).host ?? '';
  const socket = tls.connect({
    ...options,
    // A pinned connection verifies no chain, so one context serves them all: building one per connect (Node does
    // when none is given) was ~2 ms of CPU per join in a load generator opening thousands of connections.
    ...(options.ca === undefined && options.secureContext === undefined
      ? { secureContext: sharedPinnedContext() }
      : {}),
    servername: options.servername ?? (isIP(host) ? '' : host),
    rejectUnauthorized: false,
  });
  socket.once('secureConnect', () => {
    const cert = socket.getPeerX509Certificate();
    const now = Date.now();
    const hash = cert ? createHash('sha256').update(cert.raw).digest() : undefined;
    const pinned = hash !== undefined && pins.some((p) => Buffer.compare(Buffer.from(p), hash) === 0);
    const valid = cert !== undefined && Date.parse(cert.validFrom) <= now && now <= Date.parse(cert.validTo);
    if (!pinned || !valid) {
      socket.destroy(
        new Error(
          pinned
            ? 'pinned server certificate is not valid now'
            : 'server certificate hash does not match serverCertificateHashes',
        ),
      );
    }
  });
  return socket;
}
