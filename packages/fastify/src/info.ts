import type { AddressInfo } from 'node:net';
import type { QuiverInfo } from '@quiver/session';

/** Where clients reach the server: a host for the WebSocket URL (with its port), a name for WebTransport's. */
interface Origin {
  /** Host name, IPv6 in brackets. */
  hostname: string;
  /** Host name and port as in a URL's authority (port left out when it is the scheme's default). */
  host: string;
  secure: boolean;
}

/** What `info()` needs to know about the server. */
export interface InfoSource {
  path: string;
  publicUrl: URL | undefined;
  address: AddressInfo | null;
  https: boolean;
  webtransport: { port: number; hash: Uint8Array | null } | null;
  websocket: boolean;
  http: boolean;
}

/** What a request says of the server's address: its Host header (or X-Forwarded-Host under `trustProxy`). */
export interface RequestOrigin {
  host: string;
  protocol: string;
}

/** Parses and checks a `publicUrl` option: an absolute http(s) URL. */
export function parsePublicUrl(value: string | undefined): URL | undefined {
  if (value === undefined || value === '') return undefined;
  const url = new URL(value);
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new TypeError(`publicUrl must be an http: or https: URL, got ${value}`);
  }
  return url;
}

function hostForUrl(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

/** A Host header value as an origin, or `undefined` when it is not a valid host[:port]. */
function fromHostHeader(host: string, secure: boolean): Origin | undefined {
  if (host === '' || /[/\\?#@\s]/.test(host)) return undefined;
  try {
    const u = new URL(`${secure ? 'https' : 'http'}://${host}`);
    return { hostname: u.hostname, host: u.host, secure };
  } catch {
    return undefined;
  }
}

/**
 * The endpoints to advertise. Precedence for the host: `publicUrl` (what the operator says), then the request's Host
 * (what the client reached, right behind a reverse proxy or a DNS name), then the bound address. WebTransport keeps
 * its own UDP port: reverse proxies carry TCP only, so UDP must reach this process on that port.
 */
export function buildInfo(src: InfoSource, request?: RequestOrigin): QuiverInfo {
  const bound = src.address;
  const origin: Origin | undefined = src.publicUrl
    ? {
        hostname: src.publicUrl.hostname,
        host: src.publicUrl.host,
        secure: src.publicUrl.protocol === 'https:',
      }
    : request
      ? fromHostHeader(request.host, request.protocol === 'https')
      : undefined;
  const fallbackHost = hostForUrl(bound?.address ?? '127.0.0.1');
  const o: Origin = origin ?? {
    hostname: fallbackHost,
    host: `${fallbackHost}:${bound?.port ?? 0}`,
    secure: src.https,
  };
  const wt = src.webtransport;
  return {
    path: src.path,
    webtransport: wt
      ? {
          url: `https://${o.hostname}:${wt.port}${src.path}`,
          port: wt.port,
          certificateHashes: wt.hash
            ? [{ algorithm: 'sha-256', value: Buffer.from(wt.hash).toString('base64') }]
            : [],
        }
      : null,
    websocket: src.websocket && bound ? { url: `${o.secure ? 'wss' : 'ws'}://${o.host}${src.path}` } : null,
    http: src.http && bound ? { url: `${o.secure ? 'https' : 'http'}://${o.host}${src.path}` } : null,
  };
}
