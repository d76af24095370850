/**
 * QUIC variable-length integers (RFC 9000 §16) and bounds-checked byte cursors.
 *
 * Values are 62-bit. Stream ids, lengths and session ids fit a JS number long before they could reach 2^53 (we
 * bound every length far below that), but frame types, setting ids, stream types and error codes are routinely
 * 8-byte GREASE values (RFC 9114 §7.2.8, §8.1; Firefox sends them), so those are read as bigint.
 */

/** The largest value a QUIC varint can carry: 2^62 - 1. */
export const MAX_VARINT = (1n << 62n) - 1n;

/** Thrown by {@link ByteReader} when the input ends inside a field: the caller waits for more bytes. */
export class NeedMoreData extends Error {
  /** `'NeedMoreData'`. */
  override readonly name = 'NeedMoreData';
  constructor() {
    super('need more data');
  }
}

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

/** A cursor over one complete buffer. Running out throws {@link NeedMoreData}. */
export class ByteReader {
  /** Index in `buf` of the next byte to read. */
  offset: number;
  constructor(
    /** The buffer read from; never copied, returned slices are views of it. */
    readonly buf: Uint8Array,
    offset = 0,
    /** Index in `buf` where the readable bytes end (default its length). */
    readonly end = buf.length,
  ) {
    this.offset = offset;
  }

  /** Bytes left between `offset` and `end`. */
  get remaining(): number {
    return this.end - this.offset;
  }

  /** Reads a varint as a number; throws {@link VarintRangeError} above 2^53 - 1. */
  readVarint(): number {
    const r = decodeVarint(this.buf.subarray(0, this.end), this.offset);
    if (!r) throw new NeedMoreData();
    this.offset += r.length;
    return r.value;
  }

  /** Reads a varint of any size (up to 2^62 - 1) as a bigint. */
  readVarintBig(): bigint {
    const r = decodeVarintBig(this.buf.subarray(0, this.end), this.offset);
    if (!r) throw new NeedMoreData();
    this.offset += r.length;
    return r.value;
  }

  /** Reads one byte. */
  readUint8(): number {
    if (this.offset + 1 > this.end) throw new NeedMoreData();
    return this.buf[this.offset++];
  }

  /** Reads a big-endian 32-bit unsigned integer. */
  readUint32(): number {
    if (this.offset + 4 > this.end) throw new NeedMoreData();
    const b = this.buf;
    const o = this.offset;
    this.offset += 4;
    return ((b[o] << 24) >>> 0) + ((b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]);
  }

  /** Returns the next `n` bytes as a view (no copy). */
  readBytes(n: number): Uint8Array {
    if (n < 0 || this.offset + n > this.end) throw new NeedMoreData();
    const out = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }

  /** Returns every byte up to `end` as a view (no copy) and moves `offset` there. */
  rest(): Uint8Array {
    const out = this.buf.subarray(this.offset, this.end);
    this.offset = this.end;
    return out;
  }
}

/** Builds a byte string from varints and raw parts; sizes are computed before one allocation. */
export class ByteWriter {
  private parts: Array<
    { kind: 'v'; value: number | bigint } | { kind: 'b'; bytes: Uint8Array } | { kind: 'u32'; value: number }
  > = [];
  private size = 0;

  /** Appends `value` as a shortest-form varint (RFC 9000 §16). */
  varint(value: number | bigint): this {
    this.size += varintLength(value);
    this.parts.push({ kind: 'v', value });
    return this;
  }

  /** Appends a big-endian 32-bit unsigned integer; throws RangeError outside 0 to 2^32 - 1. */
  uint32(value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff)
      throw new RangeError(`not a u32: ${value}`);
    this.size += 4;
    this.parts.push({ kind: 'u32', value });
    return this;
  }

  /** Appends raw bytes; they are copied only by `finish()`, so must not change before it. */
  bytes(bytes: Uint8Array): this {
    this.size += bytes.length;
    this.parts.push({ kind: 'b', bytes });
    return this;
  }

  /** Bytes appended so far, which is the length `finish()` will return. */
  get length(): number {
    return this.size;
  }

  /** Allocates the result once and writes every part into it. */
  finish(): Uint8Array {
    const out = new Uint8Array(this.size);
    let o = 0;
    for (const p of this.parts) {
      if (p.kind === 'v') o = writeVarintAt(out, o, p.value);
      else if (p.kind === 'u32') {
        out[o] = p.value >>> 24;
        out[o + 1] = (p.value >>> 16) & 0xff;
        out[o + 2] = (p.value >>> 8) & 0xff;
        out[o + 3] = p.value & 0xff;
        o += 4;
      } else {
        out.set(p.bytes, o);
        o += p.bytes.length;
      }
    }
    return out;
  }
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
