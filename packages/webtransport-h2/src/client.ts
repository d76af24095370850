import { type ConnectOptions, QuiverTransportError, systemClock } from '@quiver/transport';
import { attachLibWebTransport } from './attach.js';
import { WebTransport } from '@fails-components/webtransport';
import type { LibClientInit, LibWebTransport as LibWebTransportType } from './lib.js';
import { H2Session, type H2SessionOptions } from './session.js';

export interface H2WebTransportConnectOptions extends ConnectOptions, H2SessionOptions {
  /** Default 10 000 ms: `ready` rejects and the attempt is abandoned after this long. */
  connectTimeoutMs?: number;
  /** Flow-control windows, as on the listener (draft-ietf-webtrans-http2 §5.4); library defaults otherwise. */
  initialStreamFlowControlWindow?: number;
  initialSessionFlowControlWindow?: number;
  streamFlowControlWindowSizeLimit?: number;
  sessionFlowControlWindowSizeLimit?: number;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

const LibWebTransport = WebTransport as unknown as new (
  url: string,
  init: LibClientInit,
) => LibWebTransportType;

/**
 * Opens a WebTransport-over-HTTP/2 session (Node only) with `@fails-components/webtransport`'s `WebTransport`
 * (`forceReliable: true`: HTTP/2 only, no HTTP/3 attempt).
 *
 * The server certificate is checked only through `serverCertificateHashes` (W3C WebTransport §6.2) or against
 * Node's built-in root CAs: the library takes no `ca` option. It takes no extra request headers either, so
 * `headers` is refused with a TypeError rather than silently dropped.
 */
export function connectH2WebTransport(url: string, options: H2WebTransportConnectOptions = {}): H2Session {
  const parsed = new URL(url);
  if (parsed.protocol !== 'https:') {
    throw new TypeError(`connectH2WebTransport: only https: URLs are supported, got ${parsed.protocol}`);
  }
  if (options.headers && Object.keys(options.headers).length > 0) {
    throw new TypeError('connectH2WebTransport: the library cannot send extra request headers');
  }
  const clock = options.clock ?? systemClock;
  const session = new H2Session('client', options);
  if (options.signal?.aborted) {
    session.fail(new QuiverTransportError('aborted before connecting', { source: 'session' }));
    return session;
  }
  const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const lib = new LibWebTransport(url, {
    forceReliable: true,
    serverCertificateHashes: options.serverCertificateHashes,
    // The library's own two timers (TCP+TLS, then SETTINGS) stay inside ours.
    quicConnectTimeout: timeoutMs,
    webTransportConnectTimeout: timeoutMs,
    initialStreamFlowControlWindow: options.initialStreamFlowControlWindow,
    initialSessionFlowControlWindow: options.initialSessionFlowControlWindow,
    streamFlowControlWindowSizeLimit: options.streamFlowControlWindowSizeLimit,
    sessionFlowControlWindowSizeLimit: options.sessionFlowControlWindowSizeLimit,
  });
  attachLibWebTransport(session, lib, { clock, timeoutMs });
  options.signal?.addEventListener('abort', () => session.close(), { once: true });
  return session;
}
