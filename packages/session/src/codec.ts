import { DecodeError, MessageTooLargeError } from './errors.js';
import { decodeValue, encodeTransient, encodeValue } from './msgpack.js';

export { decodeValue, encodeValue, ExtData } from './msgpack.js';

/**
 * Wire format of the session layer, the same on every transport.
 *
 * A frame body is `u16 headerLength | header | payload`: the header is a MessagePack array whose first element is
 * the frame kind; the payload is the application's message, either MessagePack or raw bytes (flag bit 0), kept
 * outside the header so that binary payloads are written and read without a copy. On streams every body is
 * preceded by a `u32` length; a datagram carries one body, which may be a BUNDLE of several bodies.
 */
export const Kind = {
  /** Client's first frame on the control stream: its message and channel tables, acks, and the session to resume. */
  HELLO: 1,
  /** Server's answer to HELLO: session id, resume token, whether it recovered, its tables, acks, server time. */
  WELCOME: 2,
  /** Heartbeat probe; answered by PONG. */
  PING: 3,
  /** Answer to a PING, with the server's clock for clock sync. */
  PONG: 4,
  /** Cumulative acknowledgement of a reliable channel. */
  ACK: 5,
  /** First frame of a unidirectional stream: which channel it carries. */
  OPEN: 6,
  /** A message on a stream: [DATA, messageId | name, seq, flags]. */
  DATA: 7,
  /** A message in a datagram: [DGRAM, channelId, messageId | name, seq, flags, fragmentId?, index?, count?]. */
  DGRAM: 8,
  /** `[CLOSE, code, reason, reconnect]`: a deliberate close; `reconnect` false forbids resumption. */
  CLOSE: 9,
  /**
   * A datagram carrying several datagram bodies: header `[BUNDLE, count]`, payload `count` times `u16 length | body`.
   * Chromium moves about one datagram per event-loop turn from a page into QUIC, so everything a turn sends
   * unreliably is packed into as few datagrams as fit `maxDatagramSize`. Bundles do not nest.
   */
  BUNDLE: 10,
} as const;

export const FLAG_RAW = 1;

/** Encodes `u16 headerLength | header` followed by nothing: the payload, if any, is sent after it as is. */
function headerBytes(header: unknown[], prefixBytes: number, payloadLength: number): Uint8Array {
  const h = encodeValue(header);
  if (h.length > 0xffff) throw new DecodeError('frame header too large');
  const out = new Uint8Array(prefixBytes + 2 + h.length);
  const view = new DataView(out.buffer);
  if (prefixBytes === 4) view.setUint32(0, 2 + h.length + payloadLength);
  view.setUint16(prefixBytes, h.length);
  out.set(h, prefixBytes + 2);
  return out;
}

/** Payloads at least this large are written as their own chunk instead of being copied next to the header. */
export const ZERO_COPY_THRESHOLD = 4096;

/**
 * A stream frame as chunks. Large payloads stay a chunk of their own, unchanged (no copy); small ones are joined to
 * the header, since a write costs more than a small copy on every transport (a WebSocket message, a QUIC frame).
 */
export function streamFrame(header: unknown[], payload?: Uint8Array): Uint8Array[] {
  const plen = payload?.length ?? 0;
  if (!payload || plen === 0) return [headerBytes(header, 4, 0)];
  if (plen >= ZERO_COPY_THRESHOLD) return [headerBytes(header, 4, plen), payload];
  const h = encodeValue(header);
  if (h.length > 0xffff) throw new DecodeError('frame header too large');
  const out = new Uint8Array(6 + h.length + plen);
  const view = new DataView(out.buffer);
  view.setUint32(0, 2 + h.length + plen);
  view.setUint16(4, h.length);
  out.set(h, 6);
  out.set(payload, 6 + h.length);
  return [out];
}

/** A datagram body (one contiguous buffer: a datagram cannot be written in pieces). */
export function datagramFrame(header: unknown[], payload?: Uint8Array): Uint8Array {
  return datagramBody(encodeTransient(header), payload);
}

/**
 * The datagram body of `header` and `payload` when it fits in `max` bytes, else `undefined`; the header is encoded
 * once for both the check and the body (a message per tick per session goes through here).
 */
export function datagramFrameWithin(
  header: unknown[],
  payload: Uint8Array,
  max: number,
): Uint8Array | undefined {
  const h = encodeTransient(header);
  if (2 + h.length + payload.length > max) return undefined;
  return datagramBody(h, payload);
}

/** `u16 headerLength | header | payload` in one buffer, the only allocation. */
function datagramBody(h: Uint8Array, payload: Uint8Array | undefined): Uint8Array {
  if (h.length > 0xffff) throw new DecodeError('frame header too large');
  const plen = payload?.length ?? 0;
  const out = new Uint8Array(2 + h.length + plen);
  out[0] = h.length >>> 8;
  out[1] = h.length & 0xff;
  out.set(h, 2);
  if (payload && plen > 0) out.set(payload, 2 + h.length);
  return out;
}

/** Size in bytes a datagram header takes, to know how much room a fragment has. */
export function datagramHeaderSize(header: unknown[]): number {
  return 2 + encodeValue(header).length;
}

/**
 * Bytes a bundle adds around its bodies, at most: `u16 headerLength` and the header `[10, count]` (count up to
 * `MAX_BUNDLE_COUNT`, a MessagePack uint16 at worst), plus a `u16` length per body (`BUNDLE_ENTRY_OVERHEAD`).
 */
export const BUNDLE_OVERHEAD = 2 + 1 + 1 + 3;
export const BUNDLE_ENTRY_OVERHEAD = 2;
export const MAX_BUNDLE_COUNT = 0xffff;

/** Packs datagram bodies into one bundle datagram; a single body is sent as is (no bundle around it). */
export function bundleFrame(bodies: Uint8Array[]): Uint8Array {
  if (bodies.length === 1) return bodies[0];
  if (bodies.length > MAX_BUNDLE_COUNT) throw new DecodeError('too many bodies for one bundle');
  const head = headerBytes([Kind.BUNDLE, bodies.length], 0, 0);
  let size = head.length;
  for (const b of bodies) {
    if (b.length > 0xffff) throw new DecodeError('bundled body too large');
    size += BUNDLE_ENTRY_OVERHEAD + b.length;
  }
  const out = new Uint8Array(size);
  out.set(head);
  let off = head.length;
  for (const b of bodies) {
    out[off] = b.length >>> 8;
    out[off + 1] = b.length & 0xff;
    out.set(b, off + 2);
    off += 2 + b.length;
  }
  return out;
}

/**
 * The bodies of a parsed BUNDLE frame, as views into the received bytes. The whole bundle is checked before any
 * body is handed out: a count that disagrees with the payload, or a length past its end, is a DecodeError.
 */
export function unbundle(frame: Frame): Uint8Array[] {
  const count = frame.header[1];
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > MAX_BUNDLE_COUNT)
    throw new DecodeError('bundle count is not a positive integer');
  const p = frame.payload;
  const out: Uint8Array[] = [];
  let off = 0;
  while (off < p.length) {
    if (out.length === count) throw new DecodeError('bundle has bytes after its last body');
    if (off + 2 > p.length) throw new DecodeError('bundle body length truncated');
    const len = (p[off] << 8) | p[off + 1];
    if (off + 2 + len > p.length) throw new DecodeError('bundle body length exceeds the datagram');
    out.push(p.subarray(off + 2, off + 2 + len));
    off += 2 + len;
  }
  if (out.length !== count) throw new DecodeError(`bundle announces ${count} bodies but holds ${out.length}`);
  return out;
}

/** A parsed frame body. */
export interface Frame {
  /** The decoded MessagePack header, `[kind, ...]`. */
  header: unknown[];
  /** A view into the received bytes. */
  payload: Uint8Array;
}

/** Splits a frame body into its decoded header and payload view; throws {@link DecodeError} when malformed. */
export function parseBody(body: Uint8Array): Frame {
  if (body.length < 2) throw new DecodeError('frame shorter than its header length');
  const hlen = (body[0] << 8) | body[1];
  if (2 + hlen > body.length) throw new DecodeError('frame header length exceeds the frame');
  const header = decodeValue(body.subarray(2, 2 + hlen));
  if (!Array.isArray(header) || typeof header[0] !== 'number')
    throw new DecodeError('frame header is not [kind, ...]');
  return { header, payload: body.subarray(2 + hlen) };
}

/**
 * Sans-IO reader of length-prefixed frames: push received chunks, get complete frame bodies. A length above
 * `maxFrameBytes` is refused as soon as the prefix is read, before anything is buffered for it.
 */
export class FrameReader {
  private chunks: Uint8Array[] = [];
  private buffered = 0;

  constructor(
    /** May be raised later (a control stream accepts larger frames once its HELLO is through). */
    public maxFrameBytes: number,
  ) {}

  /**
   * Adds received bytes; returns the frame bodies they completed, in order (often none). Throws
   * {@link MessageTooLargeError} for a length prefix above `maxFrameBytes`.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const out: Uint8Array[] = [];
    for (;;) {
      if (this.buffered < 4) break;
      const prefix = this.peek(4);
      const len = ((prefix[0] << 24) >>> 0) + (prefix[1] << 16) + (prefix[2] << 8) + prefix[3];
      if (len > this.maxFrameBytes) {
        throw new MessageTooLargeError(
          `frame of ${len} bytes exceeds ${this.maxFrameBytes}`,
          len,
          this.maxFrameBytes,
        );
      }
      if (this.buffered < 4 + len) break;
      this.take(4);
      out.push(this.take(len));
    }
    return out;
  }

  /** Bytes of an incomplete frame still held. */
  get pending(): number {
    return this.buffered;
  }

  private peek(n: number): Uint8Array {
    if (this.chunks[0].length >= n) return this.chunks[0];
    const out = new Uint8Array(n);
    let off = 0;
    for (const c of this.chunks) {
      const k = Math.min(n - off, c.length);
      out.set(c.subarray(0, k), off);
      off += k;
      if (off === n) break;
    }
    return out;
  }

  private take(n: number): Uint8Array {
    this.buffered -= n;
    const first = this.chunks[0];
    if (first.length === n) {
      this.chunks.shift();
      return first;
    }
    if (first.length > n) {
      // A view, not a copy: frames that arrive in one chunk are handed over without copying.
      this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0];
      const k = Math.min(n - off, c.length);
      out.set(c.subarray(0, k), off);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }
}
