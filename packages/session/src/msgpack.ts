import { Decoder, Encoder } from '@msgpack/msgpack';
import { DecodeError } from './errors.js';

/**
 * MessagePack decoding whose cost is bounded by the bytes decoded.
 *
 * @msgpack/msgpack preallocates `new Array(n)` for an array header claiming `n` entries before any entry is read: a
 * 3-byte `array16` header costs 64 K slots (512 KiB), and a 63 KB frame of nested headers about 10 GB. Two guards
 * come before the library sees the bytes:
 *
 * - `checkShape` walks the value once without allocating and refuses it as soon as the entries still owed by the
 *   open arrays and maps outnumber the bytes left (every MessagePack value takes at least one byte), a string,
 *   binary or extension claims more bytes than are left, or nesting exceeds `maxDepth`. After it, the entries of
 *   every container of the document add up to at most the input length.
 * - The library's own limits (`maxArrayLength`, `maxMapLength`, `maxStrLength`, `maxBinLength`, `maxExtLength`)
 *   are set from the input length too (rounded up to a power of two: one decoder per size class), as a second line.
 *
 * So decoding `n` bytes allocates O(n): at most `n` array slots or map entries in total, strings and binaries no
 * longer than the input.
 */

/** Nesting depth of arrays and maps accepted in any MessagePack value by default (headers, payloads, HELLO). */
export const DEFAULT_MAX_DEPTH = 32;

const encoder = new Encoder({ ignoreUndefined: true });
/** Decoders by size class `k`: every limit is `2^k`, for inputs of at most `2^k` bytes. */
const decoders: Decoder[] = [];

function decoderFor(length: number): Decoder {
  const k = Math.max(4, Math.ceil(Math.log2(Math.max(1, length))));
  let d = decoders[k];
  if (!d) {
    const n = 2 ** k;
    d = new Decoder({
      maxArrayLength: n,
      maxMapLength: n,
      maxStrLength: n,
      maxBinLength: n,
      maxExtLength: n,
    });
    decoders[k] = d;
  }
  return d;
}

/** Encodes one value as MessagePack (`@msgpack/msgpack`); object properties that are `undefined` are left out. */
export function encodeValue(value: unknown): Uint8Array {
  return encoder.encode(value);
}

/** Decodes one MessagePack value; anything malformed, oversized for its input or too deep is a `DecodeError`. */
export function decodeValue(bytes: Uint8Array, maxDepth = DEFAULT_MAX_DEPTH): unknown {
  checkShape(bytes, maxDepth);
  try {
    return decoderFor(bytes.length).decode(bytes);
  } catch (err) {
    throw new DecodeError(`undecodable MessagePack: ${(err as Error).message}`);
  }
}

/**
 * Walks one MessagePack value without building it: O(input) time, O(maxDepth) memory. Throws `DecodeError` when a
 * length or count claims more than the input holds, or nesting is deeper than `maxDepth`.
 */
export function checkShape(b: Uint8Array, maxDepth: number): void {
  const end = b.length;
  let pos = 0;
  // Entries still owed by each open container, innermost last; the document itself owes one value.
  const open: number[] = [1];
  // Their sum: every owed entry needs at least one more byte.
  let owed = 1;
  const fail = (why: string): never => {
    throw new DecodeError(`undecodable MessagePack: ${why} at byte ${pos}`);
  };
  const need = (n: number): void => {
    if (n > end - pos) fail(`length ${n} runs past the end`);
  };
  const uint = (size: number): number => {
    need(size);
    let v = 0;
    for (let i = 0; i < size; i++) v = v * 256 + b[pos + i];
    pos += size;
    return v;
  };
  while (open.length > 0) {
    if (pos >= end) fail('value truncated');
    const t = b[pos++];
    open[open.length - 1]--;
    owed--;
    let entries = 0;
    if (t <= 0x7f || t >= 0xe0 || t === 0xc0 || t === 0xc2 || t === 0xc3) {
      // fixint, nil, booleans: the byte is the value
    } else if (t <= 0x8f) entries = 2 * (t & 0x0f);
    else if (t <= 0x9f) entries = t & 0x0f;
    else if (t <= 0xbf) {
      need(t & 0x1f);
      pos += t & 0x1f;
    } else {
      switch (t) {
        case 0xc4:
        case 0xd9:
          pos += skipBytes(uint(1));
          break;
        case 0xc5:
        case 0xda:
          pos += skipBytes(uint(2));
          break;
        case 0xc6:
        case 0xdb:
          pos += skipBytes(uint(4));
          break;
        case 0xc7:
          pos += skipBytes(uint(1) + 1);
          break;
        case 0xc8:
          pos += skipBytes(uint(2) + 1);
          break;
        case 0xc9:
          pos += skipBytes(uint(4) + 1);
          break;
        case 0xca:
        case 0xce:
        case 0xd2:
          pos += skipBytes(4);
          break;
        case 0xcb:
        case 0xcf:
        case 0xd3:
          pos += skipBytes(8);
          break;
        case 0xcc:
        case 0xd0:
          pos += skipBytes(1);
          break;
        case 0xcd:
        case 0xd1:
          pos += skipBytes(2);
          break;
        case 0xd4:
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8:
          pos += skipBytes(1 + 2 ** (t - 0xd4));
          break;
        case 0xdc:
          entries = uint(2);
          break;
        case 0xdd:
          entries = uint(4);
          break;
        case 0xde:
          entries = 2 * uint(2);
          break;
        case 0xdf:
          entries = 2 * uint(4);
          break;
        default:
          fail(`reserved type byte 0x${t.toString(16)}`);
      }
    }
    if (entries > 0) {
      owed += entries;
      if (owed > end - pos) fail(`${owed} entries owed with ${end - pos} bytes left`);
      if (open.length > maxDepth) fail(`nesting deeper than ${maxDepth}`);
      open.push(entries);
    }
    while (open.length > 0 && open[open.length - 1] === 0) open.pop();
  }

  function skipBytes(n: number): number {
    need(n);
    return n;
  }
}
