/**
 * QUIC variable-length integers (RFC 9000 §16), shared by every transport that frames with them (the WebTransport
 * HTTP/3 core and the WebSocket framing).
 *
 * Values are 62-bit. Lengths and stream ids fit a JS number long before they could reach 2^53, so `decodeVarint`
 * returns a number and refuses more; protocol fields that are routinely 8-byte GREASE values (RFC 9114 §7.2.8)
 * are read with `decodeVarintBig`.
 */

/** The largest value a QUIC varint can carry: 2^62 - 1. */
export const MAX_VARINT = (1n << 62n) - 1n;

/** A value that does not fit the field it is read into (e.g. a length beyond 2^53 - 1). */
export class VarintRangeError extends RangeError {
  /** `'VarintRangeError'`. */
  override readonly name = 'VarintRangeError';
}

/** Encoded length of a varint from its first byte (RFC 9000 §16: the two high bits). */
export function varintLengthFromFirstByte(first: number): 1 | 2 | 4 | 8 {
  return (1 << (first >> 6)) as 1 | 2 | 4 | 8;
}

/** Bytes needed to encode `value` (the shortest encoding). */
export function varintLength(value: number | bigint): 1 | 2 | 4 | 8 {
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0) throw new VarintRangeError(`not a varint: ${value}`);
    if (value < 0x40) return 1;
    if (value < 0x4000) return 2;
    if (value < 0x40000000) return 4;
    if (value <= Number.MAX_SAFE_INTEGER) return 8;
    throw new VarintRangeError(`not a safe integer: ${value}`);
  }
  if (value < 0n || value > MAX_VARINT) throw new VarintRangeError(`not a varint: ${value}`);
  if (value < 0x40n) return 1;
  if (value < 0x4000n) return 2;
  if (value < 0x40000000n) return 4;
  return 8;
}

/** Writes `value` at `offset`; returns the offset after it. The caller sized `buf` with {@link varintLength}. */
export function writeVarintAt(buf: Uint8Array, offset: number, value: number | bigint): number {
  const len = varintLength(value);
  if (offset + len > buf.length) throw new RangeError('buffer too small for varint');
  if (len === 8) {
    const big = BigInt(value);
    const hi = Number(big >> 32n);
    const lo = Number(big & 0xffffffffn);
    buf[offset] = 0xc0 | (hi >>> 24);
    buf[offset + 1] = (hi >>> 16) & 0xff;
    buf[offset + 2] = (hi >>> 8) & 0xff;
    buf[offset + 3] = hi & 0xff;
    buf[offset + 4] = lo >>> 24;
    buf[offset + 5] = (lo >>> 16) & 0xff;
    buf[offset + 6] = (lo >>> 8) & 0xff;
    buf[offset + 7] = lo & 0xff;
    return offset + 8;
  }
  const v = Number(value);
  if (len === 1) {
    buf[offset] = v;
  } else if (len === 2) {
    buf[offset] = 0x40 | (v >>> 8);
    buf[offset + 1] = v & 0xff;
  } else {
    buf[offset] = 0x80 | (v >>> 24);
    buf[offset + 1] = (v >>> 16) & 0xff;
    buf[offset + 2] = (v >>> 8) & 0xff;
    buf[offset + 3] = v & 0xff;
  }
  return offset + len;
}

/** Encodes `value` (0 to 2^62 - 1) in its shortest varint form (RFC 9000 §16). */
export function encodeVarint(value: number | bigint): Uint8Array {
  const out = new Uint8Array(varintLength(value));
  writeVarintAt(out, 0, value);
  return out;
}

/**
 * Decodes the varint at `offset` as a bigint; `undefined` when `buf` ends inside it. Non-shortest encodings are
 * valid (RFC 9000 §16 allows them; RFC 9114 §7.1 only requires self-consistency, which the callers check).
 */
export function decodeVarintBig(
  buf: Uint8Array,
  offset: number,
):
  | {
      /** The decoded value. */
      value: bigint;
      /** Bytes the encoding took: 1, 2, 4 or 8. */
      length: number;
    }
  | undefined {
  if (offset >= buf.length) return undefined;
  const len = varintLengthFromFirstByte(buf[offset]);
  if (offset + len > buf.length) return undefined;
  if (len < 8) {
    const r = decodeSmall(buf, offset, len as 1 | 2 | 4);
    return { value: BigInt(r), length: len };
  }
  const hi =
    ((buf[offset] & 0x3f) * 0x1000000 + (buf[offset + 1] << 16)) | (buf[offset + 2] << 8) | buf[offset + 3];
  const lo =
    ((buf[offset + 4] << 24) >>> 0) + ((buf[offset + 5] << 16) | (buf[offset + 6] << 8) | buf[offset + 7]);
  return { value: (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0), length: 8 };
}

/**
 * Decodes the varint at `offset` as a number; `undefined` when `buf` ends inside it. Values above 2^53 - 1
 * throw {@link VarintRangeError}: use this only where the protocol value is bounded (lengths, stream ids).
 */
export function decodeVarint(
  buf: Uint8Array,
  offset: number,
):
  | {
      /** The decoded value. */
      value: number;
      /** Bytes the encoding took: 1, 2, 4 or 8. */
      length: number;
    }
  | undefined {
  if (offset >= buf.length) return undefined;
  const len = varintLengthFromFirstByte(buf[offset]);
  if (offset + len > buf.length) return undefined;
  if (len < 8) return { value: decodeSmall(buf, offset, len as 1 | 2 | 4), length: len };
  const hi =
    (buf[offset] & 0x3f) * 0x1000000 + ((buf[offset + 1] << 16) | (buf[offset + 2] << 8) | buf[offset + 3]);
  if (hi >= 0x200000) throw new VarintRangeError('varint exceeds 2^53 - 1');
  const lo =
    ((buf[offset + 4] << 24) >>> 0) + ((buf[offset + 5] << 16) | (buf[offset + 6] << 8) | buf[offset + 7]);
  return { value: hi * 0x100000000 + lo, length: 8 };
}

function decodeSmall(buf: Uint8Array, offset: number, len: 1 | 2 | 4): number {
  const first = buf[offset] & 0x3f;
  if (len === 1) return first;
  if (len === 2) return (first << 8) | buf[offset + 1];
  return first * 0x1000000 + ((buf[offset + 1] << 16) | (buf[offset + 2] << 8) | buf[offset + 3]);
}
