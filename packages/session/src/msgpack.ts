import { EXT_TIMESTAMP, Encoder, ExtData, decodeTimestampExtension } from '@msgpack/msgpack';
import { DecodeError } from './errors.js';

/**
 * MessagePack decoding whose cost is bounded by the bytes decoded.
 *
 * Encoding is `@msgpack/msgpack`'s. Decoding is our own single pass, for three reasons:
 *
 * - **Bounded work.** The library preallocates `new Array(n)` for an array header claiming `n` entries before any
 *   entry is read: a 3-byte `array16` header costs 64 K slots (512 KiB), and a 63 KB frame of nested headers about
 *   10 GB. Here a container's claimed count is checked against the bytes left (every entry takes at least one byte)
 *   and entries are appended as they are read, so decoding `n` bytes allocates O(n): at most `n` array slots or map
 *   entries in total, strings and binaries no longer than the input, nesting at most `maxDepth`.
 * - **Bundle size.** The library's decoder is about 3.5 KB of the browser client's 20 KB gzipped budget (#13).
 * - **One pass.** The previous guard walked every value once before the library decoded it again.
 *
 * The values match the library's default decoder: maps become plain objects (string or number keys; `__proto__`
 * refused), `bin` becomes a `Uint8Array` view of the input, 64-bit integers become numbers, the timestamp extension
 * becomes a `Date` and other extensions an `ExtData`. A differential test holds the two decoders to the same result.
 */

/** Nesting depth of arrays and maps accepted in any MessagePack value by default (headers, payloads, HELLO). */
export const DEFAULT_MAX_DEPTH = 32;
/** The most `maxDepth` may be: the decoder recurses once per level, far below any JavaScript stack limit. */
export const MAX_DEPTH_LIMIT = 1000;

const encoder = new Encoder({ ignoreUndefined: true });
const utf8 = new TextDecoder();

/** Encodes one value as MessagePack (`@msgpack/msgpack`); object properties that are `undefined` are left out. */
export function encodeValue(value: unknown): Uint8Array {
  return encoder.encode(value);
}

/** Decodes one MessagePack value; anything malformed, oversized for its input or too deep is a `DecodeError`. */
export function decodeValue(bytes: Uint8Array, maxDepth = DEFAULT_MAX_DEPTH): unknown {
  const r = new Reader(bytes, Math.min(maxDepth, MAX_DEPTH_LIMIT));
  const v = r.value(0);
  if (r.pos !== bytes.length) r.fail(`${bytes.length - r.pos} extra bytes`);
  return v;
}

class Reader {
  pos = 0;
  private readonly view: DataView;

  constructor(
    private readonly b: Uint8Array,
    private readonly maxDepth: number,
  ) {
    this.view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  fail(why: string): never {
    throw new DecodeError(`undecodable MessagePack: ${why} at byte ${this.pos}`);
  }

  /** Moves past `n` bytes and returns where they start; throws when fewer are left. */
  private take(n: number): number {
    const at = this.pos;
    if (n > this.b.length - at) this.fail(`length ${n} runs past the end`);
    this.pos = at + n;
    return at;
  }

  private uint(size: number): number {
    const at = this.take(size);
    const v = this.view;
    return size === 1 ? v.getUint8(at) : size === 2 ? v.getUint16(at) : v.getUint32(at);
  }

  value(depth: number): unknown {
    const b = this.b;
    if (this.pos >= b.length) this.fail('value truncated');
    const t = b[this.pos++];
    if (t <= 0x7f) return t;
    if (t >= 0xe0) return t - 0x100;
    if (t <= 0x8f) return this.map(t & 0x0f, depth);
    if (t <= 0x9f) return this.array(t & 0x0f, depth);
    if (t <= 0xbf) return this.str(t & 0x1f);
    const v = this.view;
    switch (t) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xc4:
      case 0xc5:
      case 0xc6: {
        const n = this.uint(1 << (t - 0xc4));
        const at = this.take(n);
        return b.subarray(at, at + n);
      }
      case 0xc7:
      case 0xc8:
      case 0xc9:
        return this.ext(this.uint(1 << (t - 0xc7)));
      case 0xca:
        return v.getFloat32(this.take(4));
      case 0xcb:
        return v.getFloat64(this.take(8));
      case 0xcc:
      case 0xcd:
      case 0xce:
        return this.uint(1 << (t - 0xcc));
      case 0xcf: {
        const at = this.take(8);
        return v.getUint32(at) * 0x100000000 + v.getUint32(at + 4);
      }
      case 0xd0:
        return v.getInt8(this.take(1));
      case 0xd1:
        return v.getInt16(this.take(2));
      case 0xd2:
        return v.getInt32(this.take(4));
      case 0xd3: {
        const at = this.take(8);
        return v.getInt32(at) * 0x100000000 + v.getUint32(at + 4);
      }
      case 0xd4:
      case 0xd5:
      case 0xd6:
      case 0xd7:
      case 0xd8:
        return this.ext(1 << (t - 0xd4));
      case 0xd9:
      case 0xda:
      case 0xdb:
        return this.str(this.uint(1 << (t - 0xd9)));
      case 0xdc:
      case 0xdd:
        return this.array(this.uint(t === 0xdc ? 2 : 4), depth);
      case 0xde:
      case 0xdf:
        return this.map(this.uint(t === 0xde ? 2 : 4), depth);
      default:
        return this.fail(`reserved type byte 0x${t.toString(16)}`);
    }
  }

  /** Refuses a container before building it when its entries cannot fit in what is left, or it nests too deep. */
  private open(entries: number, depth: number): void {
    if (entries > this.b.length - this.pos)
      this.fail(`${entries} entries claimed with ${this.b.length - this.pos} bytes left`);
    if (depth >= this.maxDepth) this.fail(`nesting deeper than ${this.maxDepth}`);
  }

  private array(n: number, depth: number): unknown[] {
    this.open(n, depth);
    const out: unknown[] = [];
    for (let i = 0; i < n; i++) out.push(this.value(depth + 1));
    return out;
  }

  private map(n: number, depth: number): Record<string, unknown> {
    this.open(2 * n, depth);
    const out: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) {
      const key = this.value(depth + 1);
      if (typeof key !== 'string' && typeof key !== 'number') this.fail(`map key of type ${typeof key}`);
      if (key === '__proto__') this.fail('map key __proto__');
      out[key] = this.value(depth + 1);
    }
    return out;
  }

  private str(n: number): string {
    const at = this.take(n);
    const b = this.b;
    // Short ASCII (map keys, names) is faster by hand than a TextDecoder call.
    if (n <= 16) {
      let s = '';
      for (let i = at; i < at + n; i++) {
        if (b[i] >= 0x80) return utf8.decode(b.subarray(at, at + n));
        s += String.fromCharCode(b[i]);
      }
      return s;
    }
    return utf8.decode(b.subarray(at, at + n));
  }

  private ext(size: number): unknown {
    const type = this.view.getInt8(this.take(1));
    const at = this.take(size);
    const data = this.b.subarray(at, at + size);
    if (type !== EXT_TIMESTAMP) return new ExtData(type, data);
    try {
      return decodeTimestampExtension(data);
    } catch (err) {
      return this.fail((err as Error).message);
    }
  }
}
