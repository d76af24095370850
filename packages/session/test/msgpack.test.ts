/**
 * Our MessagePack encoder and bounded decoder against `@msgpack/msgpack`'s: the encoders write the same bytes for
 * every random value; on every value the library writes, and on every byte string a seeded generator throws at them,
 * both decoders make the same value or both refuse it.
 */
import { isDeepStrictEqual, inspect } from 'node:util';
import { Decoder, Encoder, ExtData, ExtensionCodec, encodeTimestampExtension } from '@msgpack/msgpack';
import { createRng } from '@quiver/transport';
import { describe, expect, it } from 'vitest';
import { DecodeError } from '../src/index.js';
import { decodeValue, encodeValue, ExtData as OurExtData } from '../src/msgpack.js';

const reference = new Decoder();
const encoder = new Encoder({ ignoreUndefined: true });

function randomValue(next: () => number, depth: number): unknown {
  const pick = Math.floor(next() * (depth > 4 ? 9 : 12));
  const int = (bits: number) => Math.floor((next() - 0.5) * 2 ** bits);
  switch (pick) {
    case 0:
      return null;
    case 1:
      return next() < 0.5;
    case 2:
      return int([6, 8, 16, 32][Math.floor(next() * 4)]);
    case 3:
      return int(53);
    case 4:
      return next() * 1e6 - 5e5;
    case 5:
      return Math.fround(next());
    case 6: {
      const n = Math.floor(next() * 40);
      let s = '';
      for (let i = 0; i < n; i++)
        s += String.fromCodePoint(next() < 0.8 ? 32 + Math.floor(next() * 95) : Math.floor(next() * 0x2ffff));
      return s.replace(/[\ud800-\udfff]/g, '?');
    }
    case 7:
      return Uint8Array.from({ length: Math.floor(next() * 300) }, () => Math.floor(next() * 256));
    case 8:
      return new Date(Math.floor(next() * 4e12) - 1e12);
    case 9:
      return Array.from({ length: Math.floor(next() * 20) }, () => randomValue(next, depth + 1));
    case 10: {
      const o: Record<string, unknown> = {};
      for (let i = Math.floor(next() * 20); i > 0; i--)
        o[`k${Math.floor(next() * 1000)}`] = randomValue(next, depth + 1);
      return o;
    }
    default:
      return new ExtData(
        Math.floor(next() * 100),
        Uint8Array.from({ length: Math.floor(next() * 20) }, () => 7),
      );
  }
}

/** What each decoder makes of `bytes`: the value, or `refused` for any error. */
function both(bytes: Uint8Array): [unknown, unknown] {
  let ours: unknown;
  let theirs: unknown;
  try {
    ours = decodeValue(bytes, 1000);
  } catch (err) {
    expect(err).toBeInstanceOf(DecodeError);
    ours = 'refused';
  }
  try {
    theirs = reference.decode(bytes);
  } catch {
    theirs = 'refused';
  }
  return [ours, theirs];
}

/** `ours`, with each string that holds U+FFFD (invalid UTF-8 decoded) replaced by the library's string there. */
function withoutInvalidUtf8(ours: unknown, theirs: unknown): unknown {
  if (typeof ours === 'string') return ours.includes('\ufffd') && typeof theirs === 'string' ? theirs : ours;
  if (Array.isArray(ours) && Array.isArray(theirs))
    return ours.map((v, i) => withoutInvalidUtf8(v, theirs[i]));
  if (ours && theirs && typeof ours === 'object' && Object.getPrototypeOf(ours) === Object.prototype) {
    const t = theirs as Record<string, unknown>;
    const tk = Object.keys(t);
    const out: Record<string, unknown> = {};
    Object.keys(ours).forEach((k, i) => {
      const key = k.includes('\ufffd') && tk[i] !== undefined ? tk[i] : k;
      out[key] = withoutInvalidUtf8((ours as Record<string, unknown>)[k], t[key]);
    });
    return out;
  }
  return ours;
}

const whole = {
  depth: Number.POSITIVE_INFINITY,
  maxArrayLength: null,
  maxStringLength: null,
  breakLength: 120,
};

/** Deep equality by node:util (vitest's toEqual takes milliseconds per value here); invalid Dates equal. */
function same(a: unknown, b: unknown): void {
  if (isDeepStrictEqual(a, b)) return;
  const [x, y] = [inspect(a, whole), inspect(b, whole)];
  if (x !== y) expect.fail(`${x}\n  differs from\n${y}`);
}

describe('MessagePack decoding', () => {
  it('decodes every value the encoder writes exactly as @msgpack/msgpack does', () => {
    const next = createRng(1).next;
    for (let i = 0; i < 3000; i++) {
      const v = randomValue(next, 0);
      const bytes = encoder.encode(v);
      const [ours, theirs] = both(bytes);
      same(ours, theirs);
      same(ours, v);
    }
    // The edges of every integer width, both signs, and 64-bit integers as numbers.
    for (const n of [
      0,
      127,
      128,
      255,
      256,
      65535,
      65536,
      2 ** 32 - 1,
      2 ** 32,
      2 ** 53 - 1,
      -1,
      -32,
      -33,
      -128,
      -129,
      -32768,
      -32769,
      -(2 ** 31),
      -(2 ** 31) - 1,
      -(2 ** 53) + 1,
    ]) {
      expect(decodeValue(encodeValue(n))).toBe(n);
    }
    expect(decodeValue(Uint8Array.of(0xcf, 0, 0, 0, 1, 0, 0, 0, 2))).toBe(2 ** 32 + 2);
    expect(decodeValue(Uint8Array.of(0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe))).toBe(-2);
  });

  it('agrees with @msgpack/msgpack on mutated and random bytes: same value, or both refuse', () => {
    const next = createRng(2).next;
    let refused = 0;
    for (let i = 0; i < 5000; i++) {
      const bytes = encoder.encode(randomValue(next, 0)).slice();
      const flips = 1 + Math.floor(next() * 3);
      for (let f = 0; f < flips && bytes.length > 0; f++)
        bytes[Math.floor(next() * bytes.length)] = Math.floor(next() * 256);
      const cut = next() < 0.2 ? bytes.subarray(0, Math.floor(next() * bytes.length)) : bytes;
      const [ours, theirs] = both(cut);
      if (theirs === 'refused') refused++;
      // Where the library builds a value, ours is the same, except inside invalid UTF-8: ours decodes it as the
      // WHATWG decoder does (U+FFFD), the library's short-string path byte by byte.
      same(withoutInvalidUtf8(ours, theirs), theirs);
    }
    expect(refused).toBeGreaterThan(100);
  });

  it('refuses __proto__ keys, non-scalar keys, trailing bytes and reserved bytes with a DecodeError', () => {
    const proto = Uint8Array.of(0x81, 0xa9, ...new TextEncoder().encode('__proto__'), 0x01);
    expect(() => decodeValue(proto)).toThrow(DecodeError);
    expect(() => decodeValue(Uint8Array.of(0x81, 0x90, 0x01))).toThrow(/map key/);
    expect(() => decodeValue(Uint8Array.of(0x01, 0x02))).toThrow(/extra bytes/);
    expect(() => decodeValue(Uint8Array.of(0xc1))).toThrow(/reserved/);
  });
});

/** Any value an application may hand `send`, with the edges of every MessagePack form the encoder picks. */
function wildValue(next: () => number, depth: number): unknown {
  const pick = (xs: readonly unknown[]) => xs[Math.floor(next() * xs.length)];
  const len = () =>
    pick([0, 1, 2, 3, 4, 8, 15, 16, 17, 31, 32, 50, 51, 255, 256, Math.floor(next() * 600)]) as number;
  switch (Math.floor(next() * (depth > 3 ? 10 : 13))) {
    case 0:
      return pick([
        null,
        undefined,
        true,
        false,
        0,
        -0,
        Number.NaN,
        Infinity,
        -Infinity,
        2 ** 53,
        -(2 ** 53),
      ]);
    case 1: {
      // Integers at and around every width's edges, both signs.
      const edge = pick([
        2 ** 5,
        2 ** 7,
        2 ** 8,
        2 ** 15,
        2 ** 16,
        2 ** 31,
        2 ** 32,
        2 ** 34,
        2 ** 53 - 1,
      ]) as number;
      return (next() < 0.5 ? -1 : 1) * (edge + Math.floor(next() * 5) - 2);
    }
    case 2:
      return Math.floor((next() - 0.5) * 2 ** (1 + Math.floor(next() * 53)));
    case 3:
      return next() < 0.5 ? Math.fround((next() - 0.5) * 1e6) : (next() - 0.5) * 10 ** (next() * 40 - 20);
    case 4: {
      // Strings of every UTF-8 width, with lone surrogates, on both sides of the 50-unit TextEncoder switch.
      const n = len();
      let s = '';
      while (s.length < n) {
        const r = next();
        s +=
          r < 0.6
            ? String.fromCharCode(32 + Math.floor(next() * 95))
            : r < 0.75
              ? String.fromCharCode(0x80 + Math.floor(next() * 0x780))
              : r < 0.88
                ? String.fromCharCode(0x800 + Math.floor(next() * 0xf7ff))
                : r < 0.96
                  ? String.fromCodePoint(0x10000 + Math.floor(next() * 0xfffff))
                  : String.fromCharCode(0xd800 + Math.floor(next() * 0x800));
      }
      return s;
    }
    case 5: {
      const bytes = Uint8Array.from({ length: len() + 8 }, () => Math.floor(next() * 256));
      const at = Math.floor(next() * 4) * 2;
      const n = Math.floor((bytes.length - at) / 8) * 8 * (next() < 0.5 ? 1 : 0);
      return pick([
        bytes,
        bytes.subarray(at),
        new Int16Array(bytes.buffer, at, n / 2),
        new Float64Array(bytes.buffer, 0, n / 8),
        new DataView(bytes.buffer, at),
        Buffer.from(bytes.buffer, at),
      ]);
    }
    case 6:
      // Before 1970, at each timestamp form's edge (2^32 and 2^34 seconds), whole seconds, invalid.
      return new Date(
        pick([
          0,
          -1,
          -1000,
          (2 ** 32 - 1) * 1000,
          2 ** 32 * 1000,
          (2 ** 34 - 1) * 1000 + 999,
          2 ** 34 * 1000,
          8.64e15,
          -8.64e15,
          Number.NaN,
          Math.floor((next() - 0.3) * 2e13),
          Math.floor(next() * 2e9) * 1000,
        ]) as number,
      );
    case 7: {
      const n = pick([0, 1, 2, 3, 4, 5, 8, 16, 17, 255, 256, 70_000]) as number;
      const data = Uint8Array.from({ length: n }, (_, i) => i * 7);
      return new OurExtData(Math.floor(next() * 256) - 128, data);
    }
    case 8:
      return pick([
        new Map([[1, 2]]),
        new Set([1]),
        new ArrayBuffer(3),
        Object.create(null),
        new (class A {})(),
      ]);
    case 9:
      return Array.from({ length: pick([0, 15, 16, 3]) as number }, () => pick([1, 'a', null, undefined]));
    case 10: {
      const a = Array.from({ length: len() % 40 }, () => wildValue(next, depth + 1));
      if (next() < 0.1) a[a.length + 2] = 1; // holes
      return a;
    }
    default: {
      const o: Record<string, unknown> = {};
      for (let i = pick([0, 1, 15, 16, 17, 5]) as number; i > 0; i--)
        o[next() < 0.2 ? String(Math.floor(next() * 100)) : `k${Math.floor(next() * 1000)}é`] =
          next() < 0.15 ? undefined : wildValue(next, depth + 1);
      return o;
    }
  }
}

/**
 * The library's encoder, taught our `ExtData`: one extension encoder per type (negative types replace the library's
 * built-in ones; -1 keeps encoding a `Date` as the timestamp first).
 */
const extensionCodec = new ExtensionCodec();
for (let type = -128; type < 128; type++)
  extensionCodec.register({
    type,
    encode: (v) =>
      type === -1 && v instanceof Date
        ? encodeTimestampExtension(v)
        : v instanceof OurExtData && v.type === type
          ? v.data
          : null,
    decode: () => null,
  });
const referenceEncoder = new Encoder({ ignoreUndefined: true, extensionCodec });

/** Our bytes and the library's for `v`, each `refused` when that encoder throws. */
function encodings(v: unknown): [Uint8Array | string, Uint8Array | string] {
  const attempt = (f: () => Uint8Array) => {
    try {
      return f();
    } catch {
      return 'refused';
    }
  };
  return [attempt(() => encodeValue(v)), attempt(() => referenceEncoder.encode(v))];
}

const sameBytes = (a: Uint8Array | string, b: Uint8Array | string) =>
  typeof a === 'string' || typeof b === 'string' ? a === b : Buffer.compare(a, b) === 0;

describe('MessagePack encoding', () => {
  it('writes the same bytes as @msgpack/msgpack (ignoreUndefined) for random values', () => {
    const next = createRng(3).next;
    for (let i = 0; i < 4000; i++) {
      const v = wildValue(next, 0);
      const [ours, theirs] = encodings(v);
      if (!sameBytes(ours, theirs))
        expect.fail(`${inspect(v, whole)}: ours ${inspect(ours)} theirs ${inspect(theirs)}`);
    }
  });

  it('writes the same bytes for the large forms (16- and 32-bit lengths) and refuses what the library refuses', () => {
    const big = (n: number, c: string) => c.repeat(n);
    const keys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]));
    const nest = (n: number): unknown => (n === 0 ? 1 : [nest(n - 1)]);
    const cyclic: unknown[] = [];
    cyclic.push(cyclic);
    for (const v of [
      big(70_000, 'a'),
      big(30_000, 'é'),
      big(25_000, '\ud83d\ude00'),
      new Uint8Array(70_000).fill(9),
      Array.from({ length: 70_000 }, (_, i) => i),
      keys(70_000),
      { [big(40, 'x')]: big(300, 'y'), n: [1, { m: undefined }] },
      nest(99),
      nest(100),
      cyclic,
      10n,
      () => 1,
      Symbol('s'),
    ]) {
      const [ours, theirs] = encodings(v);
      expect(sameBytes(ours, theirs), inspect(v).slice(0, 80)).toBe(true);
    }
  });

  it('encodes from inside an encode (a getter) without corrupting the outer value', () => {
    const inner = {
      get x() {
        return encodeValue({ inner: [1, 2, 3] });
      },
    };
    const bytes = encodeValue({ a: 'outer', inner, b: [4, 5] });
    expect(bytes).toEqual(referenceEncoder.encode({ a: 'outer', inner, b: [4, 5] }));
  });
});
