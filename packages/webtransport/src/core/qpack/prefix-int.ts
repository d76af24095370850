/**
 * Prefixed integers, RFC 7541 §5.1 as used by QPACK (RFC 9204 §4.1.1).
 *
 * Values are JS numbers: anything above 2^53 - 1, or spread over more than 8 continuation octets (56 bits, even
 * if the extra octets only add zeros), is rejected as an overflow — no QPACK field a decoder with capacity 0
 * accepts can be that large, and the cap bounds the work per integer.
 */
import { QpackDecompressionError } from './errors.js';

export const MAX_CONTINUATION_OCTETS = 8;

/** Octets `encodePrefixInt` writes for `value` with an N-bit prefix. */
export function prefixIntLength(value: number, prefixBits: number): number {
  const max = (1 << prefixBits) - 1;
  if (value < max) return 1;
  let rest = value - max;
  let n = 2;
  while (rest >= 128) {
    rest = Math.floor(rest / 128);
    n++;
  }
  return n;
}

/**
 * Writes `value` with an N-bit prefix at `out[pos]`; `flags` holds the bits above the prefix in the first octet.
 * Returns the offset after it.
 */
export function encodePrefixInt(
  out: Uint8Array,
  pos: number,
  value: number,
  prefixBits: number,
  flags: number,
): number {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out[pos++] = flags | value;
    return pos;
  }
  out[pos++] = flags | max;
  let rest = value - max;
  while (rest >= 128) {
    out[pos++] = (rest % 128) | 0x80;
    rest = Math.floor(rest / 128);
  }
  out[pos++] = rest;
  return pos;
}

/** A cursor over an encoded field section; `pos` advances as values are read. */
export class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}

  /** Reads an N-bit-prefix integer whose first octet is at `pos` (its high bits are the caller's business). */
  prefixInt(prefixBits: number): number {
    const buf = this.buf;
    const start = this.pos;
    if (start >= buf.length) throw new QpackDecompressionError('truncated integer (RFC 7541 §5.1)', start);
    const max = (1 << prefixBits) - 1;
    let value = buf[start] & max;
    let pos = start + 1;
    if (value === max) {
      let multiplier = 1;
      for (let i = 0; ; i++) {
        if (pos >= buf.length) throw new QpackDecompressionError('truncated integer (RFC 7541 §5.1)', pos);
        if (i >= MAX_CONTINUATION_OCTETS) {
          throw new QpackDecompressionError(
            'integer longer than 8 continuation octets (RFC 7541 §5.1)',
            start,
          );
        }
        const b = buf[pos++];
        value += (b & 0x7f) * multiplier;
        if (value > Number.MAX_SAFE_INTEGER) {
          throw new QpackDecompressionError('integer exceeds 2^53 - 1 (RFC 7541 §5.1)', start);
        }
        if ((b & 0x80) === 0) break;
        multiplier *= 128;
      }
    }
    this.pos = pos;
    return value;
  }
}
