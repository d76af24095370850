import type { WebSocketSessionOptions } from '@quiver/websocket';
import type { TunnelLimits } from './tunnel.js';

/** Tunnel limits and timings, on either side (README "Options"). */
export interface HttpTunnelOptions {
  /** Largest POST body or event payload (decoded) accepted, and sent. Default 1 MiB + 1 KiB. */
  maxBatchBytes?: number;
  /** How far ahead of the next expected message a sequence number may be. Default 256. */
  receiveWindow?: number;
  /** Bytes held out of order at most. Default 2 MiB. */
  receiveWindowBytes?: number;
  /** Bytes sent but unacknowledged (plus unsent) at most before the session fails (BUFFER_LIMIT). Default 8 MiB. */
  maxUnackedBytes?: number;
  /** How long the downstream (or, on the client, every POST) may fail before the session fails. Default 10000 ms. */
  reconnectTimeoutMs?: number;
}

/** The defaults of {@link HttpTunnelOptions}, on both sides. */
export const TUNNEL_DEFAULTS = {
  /** Largest POST body or event payload, in decoded bytes: one message of the default `maxMessageSize` (1 MiB) plus 1 KiB of framing. */
  maxBatchBytes: 1024 * 1024 + 1024,
  /** Messages a sequence number may run ahead of the next expected one. */
  receiveWindow: 256,
  /** Bytes held out of order at most (2 MiB). */
  receiveWindowBytes: 2 * 1024 * 1024,
  /** Bytes unacknowledged or unsent at most before BUFFER_LIMIT (8 MiB). */
  maxUnackedBytes: 8 * 1024 * 1024,
  /** Milliseconds the downstream (or every POST) may fail before RECONNECT_TIMEOUT. */
  reconnectTimeoutMs: 10_000,
} as const;

/**
 * Session defaults that differ from `@quiver/websocket`'s: `bufferedAmount` of a tunnel counts bytes until they are
 * acknowledged, a round trip later than a socket would release them, so the high-water marks are larger.
 */
export const SESSION_DEFAULTS: WebSocketSessionOptions = {
  // One message per event at most this large: an intermediary that cuts responses after some bytes still lets
  // whole events through, so every reconnection makes progress.
  maxOutgoingMessageSize: 16 * 1024,
  sendHighWaterMark: 512 * 1024,
  datagramDropThreshold: 640 * 1024,
};

export type ResolvedTunnel = Required<HttpTunnelOptions>;

export function resolveTunnel(options: HttpTunnelOptions & { maxMessageSize?: number }): ResolvedTunnel {
  const o = { ...TUNNEL_DEFAULTS } as ResolvedTunnel;
  for (const k of Object.keys(TUNNEL_DEFAULTS) as (keyof ResolvedTunnel)[]) {
    const v = options[k];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${k} must be an integer >= 1, got ${v}`);
    o[k] = v;
  }
  const maxMessage = options.maxMessageSize ?? 1024 * 1024;
  if (o.maxBatchBytes < maxMessage + 32) {
    throw new RangeError(
      `maxBatchBytes ${o.maxBatchBytes} must hold one message of maxMessageSize ${maxMessage}`,
    );
  }
  return o;
}

export function tunnelLimits(o: ResolvedTunnel, maxMessageSize: number): TunnelLimits {
  return {
    maxMessageSize,
    receiveWindow: o.receiveWindow,
    receiveWindowBytes: o.receiveWindowBytes,
    maxUnackedBytes: o.maxUnackedBytes,
  };
}

/** Query parameters the tunnel adds to the application's URL (README "Requests"); stripped before it sees them. */
export const Q = { op: 'qh', sid: 'qh-sid', token: 'qh-tok', ack: 'qh-ack' } as const;

/** Appends tunnel parameters to a URL's query string without re-encoding the application's own parameters. */
export function withParams(url: string, params: Record<string, string | number>): string {
  const hash = url.indexOf('#');
  const base = hash < 0 ? url : url.slice(0, hash);
  const extra = Object.entries(params)
    .map(([k, v]) => `${k}=${encodeURIComponent(String(v))}`)
    .join('&');
  return base + (base.includes('?') ? (base.endsWith('?') ? '' : '&') : '?') + extra;
}

/** Splits a raw query string into the tunnel's parameters and the application's query, byte for byte as sent. */
export function splitQuery(search: string): { tunnel: Map<string, string>; app: string } {
  const tunnel = new Map<string, string>();
  const app: string[] = [];
  for (const part of (search.startsWith('?') ? search.slice(1) : search).split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = eq < 0 ? part : part.slice(0, eq);
    if (key === Q.op || key === Q.sid || key === Q.token || key === Q.ack) {
      let value = eq < 0 ? '' : part.slice(eq + 1);
      try {
        value = decodeURIComponent(value);
      } catch {
        value = '';
      }
      tunnel.set(key, value);
    } else app.push(part);
  }
  return { tunnel, app: app.length > 0 ? `?${app.join('&')}` : '' };
}
