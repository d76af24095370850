/**
 * Structure-unaware mutations for the fuzzer, biased towards what breaks varint-framed protocols: boundary
 * values in every varint length (RFC 9000 §16), non-shortest encodings, truncation, splicing and repetition.
 */
import type { Rng } from './rng.js';

/** Values at the edges of each varint length, and of what JS numbers can hold. */
const VARINT_EDGES: ReadonlyArray<bigint> = [
  0n,
  1n,
  0x3fn,
  0x40n,
  0x3fffn,
  0x4000n,
  (1n << 30n) - 1n,
  1n << 30n,
  (1n << 32n) - 1n,
  1n << 32n,
  (1n << 53n) - 1n,
  1n << 53n,
  (1n << 62n) - 1n,
];

/** Bytes that are prefixes, flags or limits in QPACK and HTTP/3 encodings. */
const INTERESTING_BYTES = [
  0x00, 0x01, 0x3f, 0x40, 0x7f, 0x80, 0xc0, 0xff, 0x1f, 0x20, 0x0f, 0x10, 0x07, 0x08,
];

/** Encodes `value` as a varint of exactly `len` bytes (non-shortest when it fits a shorter one). */
export function varintOfLength(value: bigint, len: 1 | 2 | 4 | 8): Uint8Array | undefined {
  const bits = BigInt(len * 8 - 2);
  if (value >= 1n << bits) return undefined;
  const out = new Uint8Array(len);
  let v = value;
  for (let i = len - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  out[0] |= [0, 0x00, 0x40, 0, 0x80, 0, 0, 0, 0xc0][len];
  return out;
}

function randomVarint(rng: Rng): Uint8Array {
  const value = rng.chance(0.8) ? rng.pick(VARINT_EDGES) : BigInt(rng.u32());
  const lens: Array<1 | 2 | 4 | 8> = [1, 2, 4, 8];
  for (let tries = 0; tries < 4; tries++) {
    const v = varintOfLength(value, rng.pick(lens));
    if (v) return v;
  }
  return varintOfLength(value, 8) ?? new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
}

function splice(a: Uint8Array, at: number, remove: number, insert: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length - remove + insert.length);
  out.set(a.subarray(0, at), 0);
  out.set(insert, at);
  out.set(a.subarray(at + remove), at + insert.length);
  return out;
}

function mutateOnce(rng: Rng, input: Uint8Array, seeds: ReadonlyArray<Uint8Array>): Uint8Array {
  const len = input.length;
  const at = rng.int(len + 1);
  switch (rng.int(12)) {
    case 0: {
      // Bit flip.
      if (len === 0) return rng.bytes(1);
      const out = input.slice();
      const i = rng.int(len);
      out[i] ^= 1 << rng.int(8);
      return out;
    }
    case 1: {
      // Random or interesting byte.
      if (len === 0) return new Uint8Array([rng.pick(INTERESTING_BYTES)]);
      const out = input.slice();
      out[rng.int(len)] = rng.chance(0.5) ? rng.pick(INTERESTING_BYTES) : rng.int(256);
      return out;
    }
    case 2: {
      // Small arithmetic on a byte.
      if (len === 0) return input;
      const out = input.slice();
      const i = rng.int(len);
      out[i] = (out[i] + rng.range(-4, 4)) & 0xff;
      return out;
    }
    case 3:
      // Insert random bytes.
      return splice(input, at, 0, rng.bytes(rng.range(1, 8)));
    case 4: {
      // Delete a range.
      if (len === 0) return input;
      const i = rng.int(len);
      return splice(input, i, Math.min(len - i, rng.range(1, 8)), new Uint8Array(0));
    }
    case 5:
    case 6: {
      // Overwrite or insert a boundary varint, often right where a length or type would be.
      const v = randomVarint(rng);
      if (rng.chance(0.5) && len > 0) {
        const i = rng.int(len);
        return splice(input, i, Math.min(v.length, len - i), v);
      }
      return splice(input, at, 0, v);
    }
    case 7:
      // Truncate.
      return input.subarray(0, rng.int(len + 1)).slice();
    case 8: {
      // Splice in part of another seed.
      const other = rng.pick(seeds);
      if (other.length === 0) return input;
      const s = rng.int(other.length);
      const e = s + rng.range(1, other.length - s);
      return splice(input, at, rng.chance(0.5) ? Math.min(len - at, e - s) : 0, other.subarray(s, e));
    }
    case 9: {
      // Repeat a section (repeated frames, fields, capsules).
      if (len === 0) return input;
      const s = rng.int(len);
      const e = s + rng.range(1, Math.min(64, len - s));
      const section = input.subarray(s, e);
      const times = rng.range(1, 8);
      const rep = new Uint8Array(section.length * times);
      for (let t = 0; t < times; t++) rep.set(section, t * section.length);
      return splice(input, e, 0, rep);
    }
    case 10: {
      // Concatenate two seeds (several messages back to back).
      const other = rng.pick(seeds);
      return rng.chance(0.5) ? splice(input, len, 0, other) : splice(input, 0, 0, other);
    }
    default: {
      // Fill a run with one byte (all-ones padding, zero lengths).
      if (len === 0) return input;
      const out = input.slice();
      const s = rng.int(len);
      const e = Math.min(len, s + rng.range(1, 16));
      out.fill(rng.pick([0x00, 0xff, 0x80, 0x7f]), s, e);
      return out;
    }
  }
}

/**
 * One fuzz input: a seed (or, rarely, random bytes) with 1 to 8 stacked mutations, capped at `maxLength`.
 */
export function mutate(rng: Rng, seeds: ReadonlyArray<Uint8Array>, maxLength: number): Uint8Array {
  let input = seeds.length > 0 && rng.chance(0.97) ? rng.pick(seeds) : rng.bytes(rng.int(64));
  const rounds = 1 + Math.min(rng.int(8), rng.int(8));
  for (let r = 0; r < rounds; r++) input = mutateOnce(rng, input, seeds);
  return input.length > maxLength ? input.subarray(0, maxLength) : input;
}
