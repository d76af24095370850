import type { Connector } from '@quiver/transport';
import type { TransportCandidate } from './fallback.js';

/**
 * What a Quiver server tells its clients about its endpoints (the fastify plugin answers it at `GET <path>/info`).
 */
export interface QuiverInfo {
  /** URL path of the endpoints, e.g. `/quiver`. */
  path: string;
  /** The WebTransport endpoint, or `null` where the server runs none. */
  webtransport: {
    /** `https://host:port/path` to open a WebTransport session to. */
    url: string;
    /** UDP port of `url`. */
    port: number;
    /**
     * SHA-256 hashes (base64) of a certificate to pin through W3C WebTransport `serverCertificateHashes`: given
     * only for a certificate browsers accept that way (ECDSA P-256, valid at most 14 days). Empty for a
     * CA-signed certificate, which the client validates as usual.
     */
    certificateHashes: {
      /** The only algorithm W3C WebTransport §6.2 allows. */
      algorithm: 'sha-256';
      /** The certificate's SHA-256 digest, base64. */
      value: string;
    }[];
  } | null;
  /** The WebSocket endpoint (`ws:` or `wss:` URL), or `null` where the server runs none. */
  websocket: {
    /** `ws://` or `wss://host:port/path`. */
    url: string;
  } | null;
  /**
   * The HTTP fallback (`@quiver/http-stream`: an event stream down, POSTs up; `http:` or `https:` URL), or `null`
   * where the server runs none. Absent in answers from servers older than the HTTP transport.
   */
  http?: {
    /** `http://` or `https://host:port/path`. */
    url: string;
  } | null;
}

/** Connectors to use for the endpoints of a {@link QuiverInfo}; an endpoint without one is skipped. */
export interface InfoConnectors {
  /** E.g. `connectWebTransport`, or the browser's native `WebTransport` wrapped as a connector. */
  webtransport?: Connector;
  /** E.g. `connectWebSocket` from `@quiver/websocket`. */
  websocket?: Connector;
  /** E.g. `connectHttpStream` from `@quiver/http-stream`. */
  http?: Connector;
}

/** Head start the WebSocket candidate gets over the HTTP fallback in {@link transportsFromInfo}. */
export const HTTP_FALLBACK_HEAD_START_MS = 1000;

/**
 * The transport candidates for `connect(url, { transports })` from a server's {@link QuiverInfo}, WebTransport
 * first, then WebSocket, then the HTTP fallback (which starts only after WebSocket had a head start). A WebTransport entry with certificate hashes gets them as `serverCertificateHashes` (W3C WebTransport
 * §6.2); one without gets no `serverCertificateHashes` at all, so its certificate is validated against the CAs
 * as for any HTTPS site.
 */
export function transportsFromInfo(info: QuiverInfo, connectors: InfoConnectors): TransportCandidate[] {
  const out: TransportCandidate[] = [];
  const wt = info.webtransport;
  if (wt && connectors.webtransport) {
    const hashes = wt.certificateHashes.map((h) => ({ algorithm: h.algorithm, value: fromBase64(h.value) }));
    out.push({
      name: 'webtransport',
      connector: connectors.webtransport,
      url: wt.url,
      ...(hashes.length > 0 ? { options: { serverCertificateHashes: hashes } } : {}),
    });
  }
  if (info.websocket && connectors.websocket) {
    out.push({ name: 'websocket', connector: connectors.websocket, url: info.websocket.url });
  }
  if (info.http && connectors.http) {
    out.push({
      name: 'http',
      connector: connectors.http,
      url: info.http.url,
      headStartMs: HTTP_FALLBACK_HEAD_START_MS,
    });
  }
  if (out.length === 0) throw new Error('the server offers no endpoint for the given connectors');
  return out;
}

// atob exists in browsers and Node alike; Buffer would pull Node into browser bundles.
function fromBase64(b64: string): Uint8Array<ArrayBuffer> {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
