/**
 * Our bounded MessagePack decoder against `@msgpack/msgpack`'s: on every value the encoder writes, and on every
 * byte string a seeded generator throws at them, both decode to the same value or both refuse it.
 */
import { isDeepStrictEqual, inspect } from 'node:util';
import { Decoder, Encoder, ExtData } from '@msgpack/msgpack';
import { createRng } from '@quiver/transport';
import { describe, expect, it } from 'vitest';
import { DecodeError } from '../src/index.js';
import { decodeValue, encodeValue } from '../src/msgpack.js';

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
