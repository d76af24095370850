/**
 * Bounds-checked byte cursors over QUIC variable-length integers (RFC 9000 §16); the varint codec itself is
 * `@quiver/transport`'s, re-exported here.
 *
 * Stream ids, lengths and session ids fit a JS number long before they could reach 2^53 (we bound every length far
 * below that), but frame types, setting ids, stream types and error codes are routinely 8-byte GREASE values
 * (RFC 9114 §7.2.8, §8.1; Firefox sends them), so those are read as bigint.
 */

import { decodeVarint, decodeVarintBig, varintLength, writeVarintAt } from '@quiver/transport';

export {
  decodeVarint,
  decodeVarintBig,
  encodeVarint,
  MAX_VARINT,
  VarintRangeError,
  varintLength,
  varintLengthFromFirstByte,
  writeVarintAt,
} from '@quiver/transport';

/** Thrown by {@link ByteReader} when the input ends inside a field: the caller waits for more bytes. */
export class NeedMoreData extends Error {
  /** `'NeedMoreData'`. */
  override readonly name = 'NeedMoreData';
  constructor() {
    super('need more data');
  }
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
