import { describe, expect, it } from 'vitest';
import { Rng } from '../fuzz/rng.js';
import {
  huffmanDecode,
  huffmanEncode,
  huffmanEncodedLength,
  QpackDecompressionError,
} from '../src/core/qpack/index.js';
import { HUFFMAN_CODES, HUFFMAN_EOS } from '../src/core/qpack/huffman-table.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const bytesOf = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));
const strOf = (b: Uint8Array): string => Buffer.from(b).toString('latin1');

const codes = HUFFMAN_CODES.map(([code, len]) => ({ code, len }));

describe('Huffman table (RFC 7541 Appendix B)', () => {
  it('has 257 symbols, lengths 5..30, EOS last and all ones', () => {
    expect(HUFFMAN_CODES.length).toBe(257);
    expect(HUFFMAN_EOS).toBe(256);
    expect(codes[256]).toEqual({ code: 0x3fffffff, len: 30 });
    for (const { code, len } of codes) {
      expect(len).toBeGreaterThanOrEqual(5);
      expect(len).toBeLessThanOrEqual(30);
      expect(code).toBeLessThan(2 ** len);
    }
  });

  it('is a complete code: Kraft sum exactly 1', () => {
    // Sum of 2^(30 - len) as integers, so the check is exact.
    const sum = codes.reduce((acc, { len }) => acc + 2 ** (30 - len), 0);
    expect(sum).toBe(2 ** 30);
  });

  it('is prefix-free', () => {
    const padded = codes.map(({ code, len }, sym) => ({ sym, len, lo: code * 2 ** (30 - len) }));
    padded.sort((a, b) => a.lo - b.lo);
    for (let i = 1; i < padded.length; i++) {
      const prev = padded[i - 1];
      // Intervals [lo, lo + 2^(30-len)) of a prefix code never overlap.
      expect(prev.lo + 2 ** (30 - prev.len)).toBeLessThanOrEqual(padded[i].lo);
    }
  });

  it('is canonical, so one wrong length or code anywhere would show', () => {
    const order = codes.map((c, sym) => ({ ...c, sym })).sort((a, b) => a.len - b.len || a.sym - b.sym);
    let next = 0;
    let prevLen = order[0].len;
    for (const [i, c] of order.entries()) {
      if (i > 0) {
        next = (next + 1) * 2 ** (c.len - prevLen);
        prevLen = c.len;
      }
      expect(c.code, `symbol ${c.sym}`).toBe(next);
    }
  });

  it('matches spot checks from Appendix B', () => {
    const spot: Array<[string | number, number, number]> = [
      [' ', 0x14, 6],
      ['0', 0x0, 5],
      ['a', 0x3, 5],
      ['z', 0x7b, 7],
      ['~', 0x1ffd, 13],
      [0, 0x1ff8, 13],
      [10, 0x3ffffffc, 30],
      [255, 0x3ffffee, 26],
      [128, 0xfffe6, 20],
    ];
    for (const [sym, code, len] of spot) {
      const s = typeof sym === 'string' ? sym.charCodeAt(0) : sym;
      expect(codes[s], `symbol ${s}`).toEqual({ code, len });
    }
  });
});

describe('Huffman coding (RFC 7541 §5.2)', () => {
  // RFC 7541 Appendix C.4 and C.6.
  const vectors: Array<[string, string]> = [
    ['www.example.com', 'f1e3 c2e5 f23a 6ba0 ab90 f4ff'],
    ['no-cache', 'a8eb 1064 9cbf'],
    ['custom-key', '25a8 49e9 5ba9 7d7f'],
    ['custom-value', '25a8 49e9 5bb8 e8b4 bf'],
    ['302', '6402'],
    ['private', 'aec3 771a 4b'],
    ['Mon, 21 Oct 2013 20:13:21 GMT', 'd07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff'],
    ['https://www.example.com', '9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3'],
    ['307', '640e ff'],
    ['gzip', '9bd9 ab'],
    [
      'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1',
      '94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07',
    ],
  ];

  for (const [text, encoded] of vectors) {
    it(`encodes and decodes ${JSON.stringify(text)}`, () => {
      expect(hex(huffmanEncode(text))).toBe(encoded.replace(/\s+/g, ''));
      expect(huffmanEncodedLength(text)).toBe(unhex(encoded).length);
      expect(strOf(huffmanDecode(unhex(encoded)))).toBe(text);
    });
  }

  it('round-trips every single octet and the empty string', () => {
    expect(huffmanDecode(new Uint8Array(0)).length).toBe(0);
    for (let b = 0; b < 256; b++) {
      const s = String.fromCharCode(b);
      const enc = huffmanEncode(s);
      expect(Array.from(huffmanDecode(enc))).toEqual([b]);
    }
  });

  it('round-trips seeded random octet strings, long codes included', () => {
    const rng = new Rng(7541);
    for (let i = 0; i < 2000; i++) {
      const len = rng.int(i < 1000 ? 40 : 3000);
      // Half the strings are drawn from the 30- and 28-bit region to exercise the split writes.
      const s = Array.from({ length: len }, () =>
        String.fromCharCode(rng.chance(0.5) ? rng.pick([10, 13, 22, 0, 1, 2, 255, 254]) : rng.int(256)),
      ).join('');
      const enc = huffmanEncode(s);
      expect(enc.length).toBe(huffmanEncodedLength(s));
      expect(strOf(huffmanDecode(enc))).toBe(s);
    }
  });

  it('rejects EOS inside the string', () => {
    // 30 one-bits form EOS.
    expect(() => huffmanDecode(unhex('ffffffff'))).toThrow(QpackDecompressionError);
    // 'a' (00011) then EOS then padding.
    const withEos = unhex('1fffffff fe'.replace(' ', ''));
    expect(() => huffmanDecode(withEos)).toThrow(/EOS/);
  });

  it('rejects padding longer than 7 bits', () => {
    // 'a' = 00011 + 111 pads to one octet; another 0xff is 11 bits of padding.
    expect(strOf(huffmanDecode(unhex('1f')))).toBe('a');
    expect(() => huffmanDecode(unhex('1fff'))).toThrow(/padding/);
    expect(() => huffmanDecode(unhex('ff'))).toThrow(/padding/);
  });

  it('rejects padding that is not a prefix of EOS', () => {
    expect(() => huffmanDecode(unhex('18'))).toThrow(/padding/); // 'a' + 000
    expect(() => huffmanDecode(unhex('1e'))).toThrow(/padding/); // 'a' + 110
    // Cut inside a long code: 16 leading ones of symbol 1 (23 bits) are more than 7 bits of padding.
    const cut = huffmanEncode('\u0001').subarray(0, 2);
    expect(() => huffmanDecode(cut)).toThrow(QpackDecompressionError);
  });

  it('decodes a table-driven 1 MB string of every octet', () => {
    const rng = new Rng(1);
    const s = strOf(rng.bytes(1 << 20));
    expect(strOf(huffmanDecode(huffmanEncode(s)))).toBe(s);
    expect(bytesOf(s).length).toBe(1 << 20);
  });
});
