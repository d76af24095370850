/**
 * The raw N-API binding of Cloudflare quiche 0.18 shipped by `@matrixai/quic`. Only the transport is used:
 * HTTP/3 and WebTransport are Quiver's own sans-IO core (`../core/`).
 */
import type {
  Config,
  Connection,
  ConnectionError,
  Host,
  PathStats,
  Quiche,
  Stats,
} from '@matrixai/quic/native/index.js';

export type { Config, Connection, ConnectionError, Host, PathStats, Stats };

// The binding is a prebuilt native addon that exists only for some platforms (none for linux-arm64 or musl, say).
// It is loaded here, once, without throwing: where it is missing, importing this package still works (its sans-IO
// core, the WebSocket fallback of an app) and every QUIC operation throws `quicBindingError()` instead.
let binding: Quiche | undefined;
let bindingError: Error | undefined;
try {
  binding = (await import('@matrixai/quic/native/index.js')).quiche;
} catch (e) {
  bindingError = new Error(
    `the QUIC binding (@matrixai/quic) could not load on ${process.platform}-${process.arch}: ${e instanceof Error ? e.message : String(e)}`,
    { cause: e },
  );
}

/** Why WebTransport over HTTP/3 cannot run in this process (the native QUIC binding did not load), or `undefined`. */
export function quicBindingError(): Error | undefined {
  return bindingError;
}

export const quiche: Quiche =
  binding ??
  new Proxy({} as Quiche, {
    get() {
      throw bindingError;
    },
  });

/** RFC 9000 §17.2: QUIC v1. */
export const QUIC_V1 = 0x00000001;
/** Our source connection ids are always this long, so short headers can be routed without parsing them. */
export const SCID_LEN: number = binding?.MAX_CONN_ID_LEN ?? 20;

/**
 * The binding reports quiche errors as thrown `Error`s whose message is the Rust `Debug` form, e.g.
 * `StreamReset(42)`. Only the error variants with a code are parsed; anything else is `undefined`.
 */
export function quicheErrorCode(e: unknown, variant: 'StreamReset' | 'StreamStopped'): bigint | undefined {
  if (!(e instanceof Error)) return undefined;
  const msg = e.message;
  if (!msg.startsWith(variant)) return undefined;
  const m = /\((\d{1,20})\)/.exec(msg);
  return m ? BigInt(m[1]) : undefined;
}

export function quicheErrorName(e: unknown): string {
  if (e instanceof Error) {
    const i = e.message.indexOf('(');
    return i < 0 ? e.message : e.message.slice(0, i);
  }
  return String(e);
}

/**
 * RFC 9000 §17.2 / §17.3: the destination connection id of a packet, read without a native call. Long headers
 * carry its length; short headers do not, so they are routed by our fixed `SCID_LEN`. Returns the DCID as a
 * latin1 string (a cheap map key) and whether the packet is a long-header Initial (RFC 9000 §17.2.2).
 */
export function parseDcid(
  packet: Buffer,
): { key: string; long: boolean; initial: boolean; version: number; dcid: Buffer } | undefined {
  if (packet.length < 1 + SCID_LEN) {
    // Too short to be a short-header packet to us, and a long header needs at least 7 bytes.
    if (packet.length < 7 || (packet[0] & 0x80) === 0) return undefined;
  }
  const first = packet[0];
  if ((first & 0x80) === 0) {
    const dcid = packet.subarray(1, 1 + SCID_LEN);
    return { key: packet.toString('latin1', 1, 1 + SCID_LEN), long: false, initial: false, version: 0, dcid };
  }
  const version = packet.readUInt32BE(1);
  const dcidLen = packet[5];
  if (dcidLen > 20 || packet.length < 6 + dcidLen) return undefined;
  const dcid = packet.subarray(6, 6 + dcidLen);
  // RFC 9000 §17.2: long packet type in bits 4-5; 0 is Initial for v1.
  const initial = version === QUIC_V1 && (first & 0x30) >> 4 === 0;
  return { key: packet.toString('latin1', 6, 6 + dcidLen), long: true, initial, version, dcid };
}
