import { describe, expect, it } from 'vitest';
import {
  createRng,
  decodeVarint,
  decodeVarintBig,
  encodeVarint,
  VarintRangeError,
  varintLength,
  varintLengthFromFirstByte,
  writeVarintAt,
} from '../src/index.js';

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));

describe('QUIC varint (RFC 9000 §16)', () => {
  it('encodes the RFC 9000 Appendix A.1 examples and decodes them back', () => {
    const examples: Array<[string, bigint]> = [
      ['c2197c5eff14e88c', 151288809941952652n],
      ['9d7f3e7d', 494878333n],
      ['7bbd', 15293n],
      ['25', 37n],
    ];
    for (const [h, value] of examples) {
      expect(decodeVarintBig(hex(h), 0)).toEqual({ value, length: h.length / 2 });
      if (value < 2n ** 53n)
        expect(decodeVarint(hex(h), 0)).toEqual({ value: Number(value), length: h.length / 2 });
      expect(Buffer.from(encodeVarint(value)).toString('hex')).toBe(h);
    }
    // Non-shortest encodings are valid (A.1: 0x4025 is 37 too).
    expect(decodeVarint(hex('4025'), 0)).toEqual({ value: 37, length: 2 });
  });

  it('round-trips boundaries and random 62-bit values; numbers over 2^53 need bigint', () => {
    const r = createRng(5).next;
    const values = [
      0n,
      63n,
      64n,
      16383n,
      16384n,
      2n ** 30n - 1n,
      2n ** 30n,
      2n ** 53n - 1n,
      2n ** 53n,
      2n ** 62n - 1n,
    ];
    for (let i = 0; i < 2000; i++)
      values.push(BigInt(Math.floor(r() * 2 ** 31)) * BigInt(Math.floor(r() * 2 ** 31)));
    for (const value of values) {
      const enc = encodeVarint(value);
      expect(enc.length).toBe(varintLength(value));
      expect(decodeVarintBig(enc, 0)?.value).toBe(value);
      if (value <= BigInt(Number.MAX_SAFE_INTEGER)) expect(decodeVarint(enc, 0)?.value).toBe(Number(value));
      else expect(() => decodeVarint(enc, 0)).toThrow(VarintRangeError);
      // Every strict prefix is "need more".
      for (let n = 0; n < enc.length; n++) expect(decodeVarintBig(enc.subarray(0, n), 0)).toBeUndefined();
    }
    expect(() => encodeVarint(2n ** 62n)).toThrow(RangeError);
    expect(() => encodeVarint(-1)).toThrow(RangeError);
  });

  it('writes at an offset, refuses a buffer too small, and tells the length from the first byte', () => {
    const buf = new Uint8Array(6).fill(0xee);
    expect(writeVarintAt(buf, 1, 494878333)).toBe(5);
    expect(Buffer.from(buf).toString('hex')).toBe('ee9d7f3e7dee');
    expect(() => writeVarintAt(buf, 3, 494878333)).toThrow(RangeError);
    expect([0x25, 0x7b, 0x9d, 0xc2].map(varintLengthFromFirstByte)).toEqual([1, 2, 4, 8]);
    // A number that is not a safe integer is refused rather than rounded.
    expect(() => varintLength(2 ** 53)).toThrow(VarintRangeError);
    expect(() => varintLength(1.5)).toThrow(VarintRangeError);
  });
});
