/**
 * @quiver/websocket (Node entry): the WebSocket transport. Streams and datagrams are multiplexed over one
 * WebSocket with the framing described in the README; sessions implement QuiverSession.
 */
import WebSocket from 'ws';
import { connectWith, type WebSocketConnectOptions } from './client.js';
import { NodeSocketAdapter } from './node-socket.js';
import { resolveOptions, type WebSocketSession } from './session.js';

export type { WebSocketConnectOptions } from './client.js';
export { connectWith, type SocketFactory, toWebSocketUrl } from './client.js';
export * from './common.js';
export { NodeSocketAdapter } from './node-socket.js';
export {
  createWebSocketListener,
  LISTENER_DEFAULTS,
  type WebSocketListener,
  type WebSocketListenerOptions,
  type WebSocketListenerStats,
} from './server.js';

/** Node-only client options. */
export interface NodeWebSocketConnectOptions extends WebSocketConnectOptions {
  /** TLS settings for `wss:`: trusted CA certificates (PEM), or `rejectUnauthorized: false` for tests only. */
  tls?: { ca?: string | Buffer | (string | Buffer)[]; rejectUnauthorized?: boolean };
}

/**
 * Opens a Quiver session over a WebSocket (through `ws`). `url` may be `https:`/`http:` (mapped to `wss:`/`ws:`)
 * or `wss:`/`ws:`. `headers` are sent with the upgrade request.
 */
export function connectWebSocket(url: string, options: NodeWebSocketConnectOptions = {}): WebSocketSession {
  return connectWith(
    (u, protocols, o) => {
      const ws = new WebSocket(u, protocols, {
        headers: o.headers,
        perMessageDeflate: false,
        maxPayload: resolveOptions(o).maxMessageSize,
        ca: o.tls?.ca,
        rejectUnauthorized: o.tls?.rejectUnauthorized,
      });
      return new NodeSocketAdapter(ws);
    },
    url,
    options,
  );
}
