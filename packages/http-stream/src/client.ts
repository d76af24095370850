import type { ConnectOptions } from '@quiver/transport';
import { QuiverTransportError, systemClock } from '@quiver/transport';
import { WebSocketSession, type WebSocketSessionOptions } from '@quiver/websocket';
import type { HttpCarrier } from './carrier.js';
import { ClientTunnel } from './client-tunnel.js';
import type { TunnelStats } from './tunnel.js';
import { type HttpTunnelOptions, resolveTunnel, SESSION_DEFAULTS, tunnelLimits } from './options.js';

/** Client options: the common {@link ConnectOptions}, the session limits and the tunnel's. */
export interface HttpStreamConnectOptions extends ConnectOptions, WebSocketSessionOptions, HttpTunnelOptions {
  /** POSTs in flight at once. Default 4 (with the event stream, 5 of the 6 connections a browser opens per HTTP/1.1 origin). */
  maxConcurrentPosts?: number;
  /** Largest POST body. Default 256 KiB (at least one whole message always goes). */
  postBatchBytes?: number;
  /** Delay before an acknowledgement-only POST (data POSTs carry the acknowledgement anyway). Default 25 ms. */
  ackDelayMs?: number;
  /** Unacknowledged bytes received before an acknowledgement goes at once. Default 64 KiB. */
  ackThresholdBytes?: number;
  /**
   * Send upstream as one streaming request body where the platform can (Node over HTTP/2; Chromium's `fetch` with
   * `duplex: 'half'` over HTTP/2), falling back to POSTs when it is refused or fails. Default true.
   */
  uploadStream?: boolean;
  /** An upload stream whose first message is not acknowledged within this long is given up for POSTs. Default 3000 ms. */
  uploadConfirmMs?: number;
}

/** The defaults of the client-only options of {@link HttpStreamConnectOptions}. */
export const CLIENT_DEFAULTS = {
  /** POSTs in flight at once. */
  maxConcurrentPosts: 4,
  /** Largest POST body, in bytes (256 KiB). */
  postBatchBytes: 256 * 1024,
  /** Milliseconds before an acknowledgement-only POST. */
  ackDelayMs: 25,
  /** Unacknowledged bytes received before an acknowledgement goes at once (64 KiB). */
  ackThresholdBytes: 64 * 1024,
  /** Upstream on one streaming request body where the platform can. */
  uploadStream: true,
  /** Milliseconds an upload stream may go without its first acknowledgement before POSTs take over. */
  uploadConfirmMs: 3000,
} as const;

/** Accepts `https:`/`http:` URLs (a WebTransport URL works unchanged). */
export function toHttpUrl(url: string): string {
  const u = new URL(url);
  if (u.protocol === 'wss:') u.protocol = 'https:';
  else if (u.protocol === 'ws:') u.protocol = 'http:';
  else if (u.protocol !== 'https:' && u.protocol !== 'http:') {
    throw new TypeError(`unsupported URL scheme ${u.protocol} (use https: or http:)`);
  }
  u.hash = '';
  return u.toString();
}

/** A client session, with its tunnel's counters (retransmissions, duplicates, reconnections). */
export type HttpStreamSession = WebSocketSession & {
  /** Counters of the tunnel under the session; all zero until it exists. */
  readonly tunnel: {
    /** Messages sent, resent, received, dropped as duplicates and held out of order. */
    readonly stats: Readonly<TunnelStats>;
    /** Downstream reconnections and POSTs sent and failed. */
    readonly counters: Readonly<ClientTunnel['counters']>;
  };
};

/** The platform-independent client: a WebSocket-framing session over a tunnel on `carrier`. */
export function connectWithCarrier(
  makeCarrier: (url: URL) => HttpCarrier,
  url: string,
  options: HttpStreamConnectOptions = {},
): HttpStreamSession {
  let tunnel: ClientTunnel | undefined;
  const ws = new WebSocketSession(
    'client',
    {
      ...SESSION_DEFAULTS,
      ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
      handshakeTimeoutMs: options.connectTimeoutMs ?? options.handshakeTimeoutMs,
    },
    'http',
  );
  const session = Object.assign(ws, {
    tunnel: {
      get stats(): TunnelStats {
        return (
          tunnel?.stats ?? {
            messagesSent: 0,
            retransmitted: 0,
            messagesReceived: 0,
            duplicates: 0,
            reordered: 0,
          }
        );
      },
      get counters(): ClientTunnel['counters'] {
        return (
          tunnel?.counters ?? {
            downstreamReconnects: 0,
            postFailures: 0,
            posts: 0,
            uploads: 0,
            uploadFallbacks: 0,
          }
        );
      },
    },
  });
  const signal = options.signal;
  if (signal?.aborted) {
    session.fail(new QuiverTransportError('connect aborted', { source: 'session' }));
    return session;
  }
  try {
    const target = toHttpUrl(url);
    const t = resolveTunnel(options);
    const int = (v: number | undefined, d: number, name: string, min: number) => {
      const x = v ?? d;
      if (!Number.isSafeInteger(x) || x < min)
        throw new RangeError(`${name} must be an integer >= ${min}, got ${x}`);
      return x;
    };
    tunnel = new ClientTunnel(target, makeCarrier(new URL(target)), {
      tunnel: t,
      limits: tunnelLimits(t, options.maxMessageSize ?? 1024 * 1024),
      clock: options.clock ?? systemClock,
      maxConcurrentPosts: int(
        options.maxConcurrentPosts,
        CLIENT_DEFAULTS.maxConcurrentPosts,
        'maxConcurrentPosts',
        1,
      ),
      postBatchBytes: int(options.postBatchBytes, CLIENT_DEFAULTS.postBatchBytes, 'postBatchBytes', 1),
      ackDelayMs: int(options.ackDelayMs, CLIENT_DEFAULTS.ackDelayMs, 'ackDelayMs', 0),
      ackThresholdBytes: int(
        options.ackThresholdBytes,
        CLIENT_DEFAULTS.ackThresholdBytes,
        'ackThresholdBytes',
        1,
      ),
      uploadStream: options.uploadStream ?? CLIENT_DEFAULTS.uploadStream,
      uploadConfirmMs: int(options.uploadConfirmMs, CLIENT_DEFAULTS.uploadConfirmMs, 'uploadConfirmMs', 1),
    });
  } catch (e) {
    session.fail(new QuiverTransportError(e instanceof Error ? e.message : String(e), { source: 'session' }));
    return session;
  }
  session.attach(tunnel);
  if (signal) {
    const onAbort = () => session.fail(new QuiverTransportError('connect aborted', { source: 'session' }));
    signal.addEventListener('abort', onAbort, { once: true });
    const drop = () => signal.removeEventListener('abort', onAbort);
    session.ready.then(drop, drop);
  }
  return session;
}
