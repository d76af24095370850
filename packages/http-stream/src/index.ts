/**
 * @quiver/http-stream (Node entry): the HTTP fallback transport. Server-sent events down, batched POSTs up, the
 * framing of `@quiver/websocket` carried with sequence numbers and acknowledgements; sessions implement
 * QuiverSession.
 */
import { connectWithCarrier, type HttpStreamConnectOptions, type HttpStreamSession } from './client.js';
import { NodeCarrier, type NodeCarrierOptions } from './node-carrier.js';

export * from './common.js';
export { NodeCarrier, type NodeCarrierOptions } from './node-carrier.js';
export {
  createHttpStreamListener,
  HTTP_LISTENER_DEFAULTS,
  type HttpStreamListener,
  type HttpStreamListenerOptions,
  type HttpStreamListenerStats,
  type IncomingRequest,
  type OutgoingResponse,
} from './server.js';

/** Node client options: TLS, HTTP/2 and the common ones. */
export interface NodeHttpStreamConnectOptions
  extends HttpStreamConnectOptions,
    Omit<NodeCarrierOptions, 'headers'> {}

/** Opens a Quiver session over HTTP (`https:` or `http:`; `wss:`/`ws:` are mapped). */
export function connectHttpStream(
  url: string,
  options: NodeHttpStreamConnectOptions = {},
): HttpStreamSession {
  return connectWithCarrier(
    (u) => new NodeCarrier(u, { tls: options.tls, headers: options.headers, http2: options.http2 }),
    url,
    options,
  );
}
