import { DecodeError } from './errors.js';

/**
 * MessagePack, hand-written both ways, byte for byte and value for value what `@msgpack/msgpack` does.
 *
 * **Encoding** writes exactly the bytes of the library's `Encoder({ ignoreUndefined: true })` for the same value (a
 * property test holds the two encoders to the same output on random values): the smallest integer form, `float64`
 * for any other number, strings by UTF-8 length, `bin` for typed arrays, the timestamp extension for a `Date`,
 * `ExtData` as is, object properties that are `undefined` left out, at most 100 levels deep. It is ours only for
 * **bundle size**: the library's `Encoder` pulls its extension codec, timestamp, UTF-8 and error modules into the
 * browser client, about 10 KB minified; this is a third of that, and the client's bundle 1.4 KB gzipped smaller
 * (of its 20 KB budget, #13). `@msgpack/msgpack` stays a dev dependency: the tests' reference.
 *
 * **Decoding** is our own single pass, for three reasons:
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

/**
 * A MessagePack extension value of a type other than the timestamp (-1, a `Date`): what the decoder returns for it,
 * and what the encoder writes as is. The same shape as `@msgpack/msgpack`'s `ExtData`.
 */
export class ExtData {
  constructor(
    readonly type: number,
    readonly data: Uint8Array,
  ) {}
}

/** The library's encoder depth limit, kept so that a cyclic value fails the same way (an `Error`, not a stack overflow). */
const MAX_ENCODE_DEPTH = 100;
const EXT_TIMESTAMP = -1;
const utf8 = new TextDecoder();
const utf8Encoder = new TextEncoder();

class Writer {
  buf = new Uint8Array(2048);
  view = new DataView(this.buf.buffer);
  pos = 0;
  busy = false;

  /** Makes room for `n` more bytes at `pos`. */
  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const b = new Uint8Array((this.pos + n) * 2);
    b.set(this.buf.subarray(0, this.pos));
    this.buf = b;
    this.view = new DataView(b.buffer);
  }

  /** A type byte followed by `v` as a big-endian unsigned integer of `size` bytes (0, 1, 2 or 4). */
  private head(type: number, size: number, v = 0): void {
    this.room(5);
    const at = this.pos;
    this.buf[at] = type;
    if (size === 1) this.buf[at + 1] = v;
    else if (size === 2) this.view.setUint16(at + 1, v);
    else if (size === 4) this.view.setUint32(at + 1, v);
    this.pos = at + 1 + size;
  }

  /** A length header: `fix + n` below `fixBelow`, else the 8-bit form `t8` (if any), `t16`, or `t16 + 1` (32-bit). */
  private sized(n: number, fix: number, fixBelow: number, t8: number, t16: number): void {
    if (n < fixBelow) this.head(fix + n, 0);
    else if (t8 && n < 0x100) this.head(t8, 1, n);
    else if (n < 0x10000) this.head(t16, 2, n);
    else if (n < 2 ** 32) this.head(t16 + 1, 4, n);
    else throw new Error(`Too large: ${n}`);
  }

  private bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** A 64-bit integer: the high word floored, the low word modulo 2^32 (two's complement for negatives). */
  private int64(type: number, v: number): void {
    this.head(type, 4, Math.floor(v / 2 ** 32));
    this.room(4);
    this.view.setUint32(this.pos, v);
    this.pos += 4;
  }

  value(v: unknown, depth: number): void {
    if (depth > MAX_ENCODE_DEPTH) throw new Error(`Too deep objects in depth ${depth}`);
    if (v == null) this.head(0xc0, 0);
    else if (typeof v === 'boolean') this.head(v ? 0xc3 : 0xc2, 0);
    else if (typeof v === 'number') this.number(v);
    else if (typeof v === 'string') this.str(v);
    else if (v instanceof Date) this.ext(EXT_TIMESTAMP, timestamp(v.getTime()));
    else if (v instanceof ExtData) this.ext(v.type, v.data);
    else if (Array.isArray(v)) {
      this.sized(v.length, 0x90, 16, 0, 0xdc);
      for (const x of v) this.value(x, depth + 1);
    } else if (ArrayBuffer.isView(v)) {
      this.sized(v.byteLength, 0, 0, 0xc4, 0xc5);
      this.bytes(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    } else if (typeof v === 'object') {
      const o = v as Record<string, unknown>;
      const keys = Object.keys(o);
      let n = 0;
      for (const k of keys) if (o[k] !== undefined) n++;
      this.sized(n, 0x80, 16, 0, 0xde);
      for (const k of keys) {
        const x = o[k];
        if (x === undefined) continue;
        this.str(k);
        this.value(x, depth + 1);
      }
    } else throw new Error(`Unrecognized object: ${typeof v}`);
  }

  private number(v: number): void {
    // Uint8Array, setUint16 and setUint32 store a negative number modulo 2^8, 2^16, 2^32: its two's complement.
    if (!Number.isSafeInteger(v)) {
      this.head(0xcb, 0);
      this.room(8);
      this.view.setFloat64(this.pos, v);
      this.pos += 8;
    } else if (v >= 0) {
      if (v < 0x80) this.head(v, 0);
      else if (v < 0x100) this.head(0xcc, 1, v);
      else if (v < 0x10000) this.head(0xcd, 2, v);
      else if (v < 2 ** 32) this.head(0xce, 4, v);
      else this.int64(0xcf, v);
    } else if (v >= -0x20) this.head(v, 0);
    else if (v >= -0x80) this.head(0xd0, 1, v);
    else if (v >= -0x8000) this.head(0xd1, 2, v);
    else if (v >= -(2 ** 31)) this.head(0xd2, 4, v);
    else this.int64(0xd3, v);
  }

  /**
   * One pass: the bytes are written after the largest header the string could need (3 bytes per UTF-16 unit), then
   * moved back when its real length takes a shorter one. Above 50 units `TextEncoder` writes them, as the library
   * does (a lone surrogate becomes U+FFFD there, and WTF-8 in the short path: the same length either way).
   */
  private str(s: string): void {
    const max = 3 * s.length;
    this.room(5 + max);
    const hs = (n: number) => (n < 32 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5);
    const at = this.pos;
    const h = hs(max);
    const n =
      s.length > 50
        ? utf8Encoder.encodeInto(s, this.buf.subarray(at + h)).written
        : wtf8(s, this.buf, at + h) - at - h;
    const h2 = hs(n);
    if (h2 !== h) this.buf.copyWithin(at + h2, at + h, at + h + n);
    this.sized(n, 0xa0, 32, 0xd9, 0xda);
    this.pos += n;
  }

  private ext(type: number, data: Uint8Array): void {
    const fixed = [1, 2, 4, 8, 16].indexOf(data.length);
    if (fixed >= 0) this.head(0xd4 + fixed, 0);
    else this.sized(data.length, 0, 0, 0xc7, 0xc8);
    this.head(type, 0);
    this.bytes(data);
  }
}

/** The timestamp extension's data for `ms` since the epoch: 32, 64 or 96 bits, the smallest that holds it. */
function timestamp(ms: number): Uint8Array {
  const sec = Math.floor(ms / 1e3);
  const nsec = (ms - sec * 1e3) * 1e6;
  const fits64 = sec >= 0 && nsec >= 0 && sec < 2 ** 34;
  const out = new Uint8Array(fits64 ? (nsec === 0 && sec < 2 ** 32 ? 4 : 8) : 12);
  const v = new DataView(out.buffer);
  if (out.length === 4) v.setUint32(0, sec);
  else if (out.length === 8) {
    v.setUint32(0, (nsec << 2) | ((sec / 2 ** 32) & 3));
    v.setUint32(4, sec);
  } else {
    v.setUint32(0, nsec);
    v.setUint32(4, Math.floor(sec / 2 ** 32));
    v.setUint32(8, sec);
  }
  return out;
}

/** UTF-8 of `s` at `out[at]` (lone surrogates as three bytes, as the library writes them); returns the end. */
function wtf8(s: string, out: Uint8Array, at: number): number {
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      out[at++] = c;
      continue;
    }
    if (c < 0x800) out[at++] = 0xc0 | (c >> 6);
    else {
      if (c >= 0xd800 && c <= 0xdbff) {
        const d = s.charCodeAt(i + 1);
        if ((d & 0xfc00) === 0xdc00) {
          i++;
          c = ((c & 0x3ff) << 10) + (d & 0x3ff) + 0x10000;
        }
      }
      if (c < 0x10000) out[at++] = 0xe0 | (c >> 12);
      else {
        out[at++] = 0xf0 | (c >> 18);
        out[at++] = 0x80 | ((c >> 12) & 0x3f);
      }
      out[at++] = 0x80 | ((c >> 6) & 0x3f);
    }
    out[at++] = 0x80 | (c & 0x3f);
  }
  return at;
}

const shared = new Writer();

function encode(value: unknown, copy: boolean): Uint8Array {
  // An encode from inside an encode (a getter that sends) gets a buffer of its own.
  const w = shared.busy ? new Writer() : shared;
  w.busy = true;
  w.pos = 0;
  try {
    w.value(value, 1);
    return copy ? w.buf.slice(0, w.pos) : w.buf.subarray(0, w.pos);
  } finally {
    w.busy = false;
  }
}

/** Encodes one value as MessagePack; object properties that are `undefined` are left out. */
export function encodeValue(value: unknown): Uint8Array {
  return encode(value, true);
}

/**
 * Encodes one value into the encoder's shared buffer: the view is valid only until the next encode, for a caller
 * that copies it at once (a frame header), so that it costs no allocation of its own.
 */
export function encodeTransient(value: unknown): Uint8Array {
  return encode(value, false);
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
    if (type !== EXT_TIMESTAMP) return new ExtData(type, this.b.subarray(at, at + size));
    // Timestamp 32 (seconds), 64 (30-bit nanoseconds, 34-bit seconds) or 96 (32-bit nanoseconds, signed seconds).
    const v = this.view;
    if (size === 4) return new Date(v.getUint32(at) * 1e3);
    if (size === 8) {
      const hi = v.getUint32(at);
      return new Date(((hi & 3) * 2 ** 32 + v.getUint32(at + 4)) * 1e3 + (hi >>> 2) / 1e6);
    }
    if (size === 12)
      return new Date((v.getInt32(at + 4) * 2 ** 32 + v.getUint32(at + 8)) * 1e3 + v.getUint32(at) / 1e6);
    return this.fail(`timestamp of ${size} bytes`);
  }
}
