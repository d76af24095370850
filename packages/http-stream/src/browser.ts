/**
 * Browser entry of @quiver/http-stream: the client over `fetch` (and optionally `EventSource`). Imports nothing
 * from Node.
 */
import { BrowserCarrier } from './browser-carrier.js';
import { connectWithCarrier, type HttpStreamConnectOptions, type HttpStreamSession } from './client.js';

export * from './common.js';
export { BrowserCarrier } from './browser-carrier.js';

export interface BrowserHttpStreamConnectOptions extends HttpStreamConnectOptions {
  /** `fetch` (default: a streamed response, the status of a refusal is visible) or `eventsource`. */
  downstream?: 'fetch' | 'eventsource';
}

/** Opens a Quiver session over HTTP. Browsers cannot set most headers, so `options.headers` is ignored. */
export function connectHttpStream(
  url: string,
  options: BrowserHttpStreamConnectOptions = {},
): HttpStreamSession {
  return connectWithCarrier(() => new BrowserCarrier(options.downstream ?? 'fetch'), url, options);
}
