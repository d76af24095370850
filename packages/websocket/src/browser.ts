/**
 * Browser entry of @quiver/websocket: the client over the native WebSocket. Imports nothing from Node or `ws`.
 */
import { BrowserSocketAdapter } from './browser-socket.js';
import { connectWith, type WebSocketConnectOptions } from './client.js';
import type { WebSocketSession } from './session.js';

export type { WebSocketConnectOptions } from './client.js';
export { toWebSocketUrl } from './client.js';
export * from './common.js';

/**
 * Opens a Quiver session over a WebSocket. `url` may be `https:`/`http:` (mapped to `wss:`/`ws:`) or `wss:`/`ws:`.
 * Browsers cannot set request headers, so `options.headers` is ignored here.
 */
export function connectWebSocket(url: string, options: WebSocketConnectOptions = {}): WebSocketSession {
  return connectWith((u, protocols) => new BrowserSocketAdapter(u, protocols), url, options);
}
