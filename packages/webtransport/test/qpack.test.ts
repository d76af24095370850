import { describe, expect, it } from 'vitest';
import { Rng } from '../fuzz/rng.js';
import {
  decodeFieldSection,
  encodeFieldSection,
  FieldSectionTooLargeError,
  huffmanEncode,
  QPACK_DECOMPRESSION_FAILED,
  QpackDecompressionError,
  STATIC_TABLE,
} from '../src/core/qpack/index.js';
import { encodePrefixInt, prefixIntLength, Reader } from '../src/core/qpack/prefix-int.js';
import { ProtocolViolationError } from '@quiver/transport';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const LIMITS = { maxFieldSectionSize: 16384 };

function decodeError(block: Uint8Array, limits = LIMITS): QpackDecompressionError {
  try {
    decodeFieldSection(block, limits);
  } catch (err) {
    expect(err).toBeInstanceOf(QpackDecompressionError);
    return err as QpackDecompressionError;
  }
  throw new Error(`decoded without error: ${hex(block)}`);
}

/** The extended CONNECT Chromium 156 sends (notes/webtransport-wire-facts.md), in its order. */
const CHROMIUM_CONNECT: Array<[string, string]> = [
  [':scheme', 'https'],
  [':method', 'CONNECT'],
  [':authority', '127.0.0.1:4433'],
  [':path', '/echo'],
  [':protocol', 'webtransport'],
  ['sec-webtransport-http3-draft02', '1'],
  ['origin', 'http://127.0.0.1:8080'],
];

describe('prefixed integers (RFC 7541 §5.1, Appendix C.1)', () => {
  it('encodes the RFC examples', () => {
    const out = new Uint8Array(8);
    expect(hex(out.subarray(0, encodePrefixInt(out, 0, 10, 5, 0)))).toBe('0a');
    expect(hex(out.subarray(0, encodePrefixInt(out, 0, 1337, 5, 0)))).toBe('1f9a0a');
    expect(hex(out.subarray(0, encodePrefixInt(out, 0, 42, 8, 0)))).toBe('2a');
    expect(prefixIntLength(1337, 5)).toBe(3);
  });

  it('round-trips boundaries for every prefix width', () => {
    for (let n = 1; n <= 8; n++) {
      const max = (1 << n) - 1;
      for (const v of [
        0,
        max - 1,
        max,
        max + 1,
        max + 127,
        max + 128,
        2 ** 31,
        2 ** 32 + 5,
        Number.MAX_SAFE_INTEGER,
      ]) {
        if (v < 0) continue;
        const out = new Uint8Array(prefixIntLength(v, n));
        expect(encodePrefixInt(out, 0, v, n, 0)).toBe(out.length);
        const r = new Reader(out);
        expect(r.prefixInt(n)).toBe(v);
        expect(r.pos).toBe(out.length);
      }
    }
  });

  it('rejects values beyond 2^53 - 1, more than 8 continuation octets, and truncation', () => {
    expect(() => new Reader(unhex('1f ffffffffffffff7f')).prefixInt(5)).toThrow(/2\^53/);
    expect(() => new Reader(unhex('1f 808080808080808000')).prefixInt(5)).toThrow(/continuation/);
    expect(() => new Reader(unhex('1f 8080')).prefixInt(5)).toThrow(/truncated/);
    expect(() => new Reader(new Uint8Array(0)).prefixInt(5)).toThrow(/truncated/);
  });
});

describe('QPACK static table (RFC 9204 Appendix A)', () => {
  it('has 99 entries with the anchors the RFC lists', () => {
    expect(STATIC_TABLE.length).toBe(99);
    expect(STATIC_TABLE[0]).toEqual([':authority', '']);
    expect(STATIC_TABLE[15]).toEqual([':method', 'CONNECT']);
    expect(STATIC_TABLE[23]).toEqual([':scheme', 'https']);
    expect(STATIC_TABLE[25]).toEqual([':status', '200']);
    expect(STATIC_TABLE[90]).toEqual(['origin', '']);
    expect(STATIC_TABLE[98]).toEqual(['x-frame-options', 'sameorigin']);
    for (const [name] of STATIC_TABLE) expect(name).toBe(name.toLowerCase());
  });
});

describe('encodeFieldSection', () => {
  it('reproduces RFC 9204 Appendix B.1 without Huffman', () => {
    expect(hex(encodeFieldSection([[':path', '/index.html']], { huffman: false }))).toBe(
      '0000510b2f696e6465782e68746d6c',
    );
  });

  it('uses an indexed field line on a full static match (§4.5.2)', () => {
    expect(
      hex(
        encodeFieldSection([
          [':method', 'CONNECT'],
          [':status', '200'],
          [':status', '500'],
        ]),
      ),
    ).toBe(
      '0000cfd9ff08', // 15 | 0xc0, 25 | 0xc0, 71 = 63 + 8
    );
  });

  it('uses a static name reference on a name match, Huffman only when shorter (§4.5.4)', () => {
    // ':authority' is index 0; 'www.example.com' Huffman-codes to 12 octets instead of 15.
    expect(hex(encodeFieldSection([[':authority', 'www.example.com']]))).toBe(
      '0000508cf1e3c2e5f23a6ba0ab90f4ff',
    );
    // A 1-octet value whose code is 8 bits ('&') is not shorter coded: stays raw.
    expect(hex(encodeFieldSection([['origin', '&']]))).toBe('00005f4b0126');
  });

  it('uses a literal name with Huffman when shorter (§4.5.6)', () => {
    // 'custom-key' -> 8 octets coded, 3-bit length prefix: 0x20 | H 0x08 | 7 = 0x2f, then 8 - 7 = 1.
    expect(hex(encodeFieldSection([['custom-key', 'custom-value']]))).toBe(
      '00002f0125a849e95ba97d7f8925a849e95bb8e8b4bf',
    );
    expect(hex(encodeFieldSection([['custom-key', 'custom-value']], { huffman: false }))).toBe(
      `00002703${hex(new TextEncoder().encode('custom-key'))}0c${hex(new TextEncoder().encode('custom-value'))}`,
    );
  });

  it('rejects chars above U+00FF (names and values are octet strings)', () => {
    expect(() => encodeFieldSection([['x', '\u20ac']])).toThrow(RangeError);
  });

  it('encodes an empty section as the bare prefix', () => {
    expect(hex(encodeFieldSection([]))).toBe('0000');
    expect(decodeFieldSection(unhex('0000'), LIMITS)).toEqual([]);
  });
});

describe('decodeFieldSection', () => {
  it("decodes Chromium 156's extended CONNECT, Huffman-coded and raw", () => {
    const block = encodeFieldSection(CHROMIUM_CONNECT);
    // Prefix, :scheme https (23), :method CONNECT (15), :authority name ref with a Huffman value.
    expect(hex(block.subarray(0, 5))).toBe('0000d7cf50');
    expect(block[5] & 0x80).toBe(0x80);
    expect(decodeFieldSection(block, LIMITS)).toEqual(CHROMIUM_CONNECT);
    const raw = encodeFieldSection(CHROMIUM_CONNECT, { huffman: false });
    expect(raw.length).toBeGreaterThan(block.length);
    expect(decodeFieldSection(raw, LIMITS)).toEqual(CHROMIUM_CONNECT);
  });

  it('decodes the never-indexed (N) bit and non-zero Delta Base, which carry no meaning at capacity 0', () => {
    const name = huffmanEncode(':protocol');
    const value = huffmanEncode('webtransport');
    const block = new Uint8Array([
      0x00,
      0x05, // S = 0, Delta Base 5: Base is unused without dynamic references
      0x70, // '01' N=1 T=1 index 0
      0x03,
      ...new TextEncoder().encode('a:b'),
      0x38 | 0x07, // '001' N=1 H=1, length 7 + ...
      name.length - 7,
      ...name,
      0x80 | value.length,
      ...value,
    ]);
    expect(decodeFieldSection(block, LIMITS)).toEqual([
      [':authority', 'a:b'],
      [':protocol', 'webtransport'],
    ]);
  });

  it('keeps every octet of a value (latin1 byte strings)', () => {
    const value = String.fromCharCode(...Array.from({ length: 256 }, (_, i) => i));
    for (const huffman of [true, false]) {
      expect(decodeFieldSection(encodeFieldSection([['x-bytes', value]], { huffman }), LIMITS)).toEqual([
        ['x-bytes', value],
      ]);
    }
  });

  it('round-trips seeded random field lists with the shortest encoding', () => {
    const rng = new Rng(9204);
    const names = [...new Set(STATIC_TABLE.map(([n]) => n))];
    for (let i = 0; i < 3000; i++) {
      const fields: Array<[string, string]> = [];
      const count = rng.int(12);
      for (let f = 0; f < count; f++) {
        const roll = rng.int(4);
        if (roll === 0) {
          fields.push([...rng.pick(STATIC_TABLE)]);
          continue;
        }
        const name =
          roll === 1
            ? rng.pick(names)
            : Array.from({ length: rng.int(30) }, () =>
                String.fromCharCode(rng.pick([rng.range(97, 122), rng.int(256)])),
              ).join('');
        const value = Array.from({ length: rng.int(rng.chance(0.1) ? 300 : 40) }, () =>
          String.fromCharCode(rng.chance(0.8) ? rng.range(32, 126) : rng.int(256)),
        ).join('');
        fields.push([name, value]);
      }
      const coded = encodeFieldSection(fields);
      const raw = encodeFieldSection(fields, { huffman: false });
      expect(coded.length).toBeLessThanOrEqual(raw.length);
      expect(decodeFieldSection(coded, { maxFieldSectionSize: 1 << 20 })).toEqual(fields);
      expect(decodeFieldSection(raw, { maxFieldSectionSize: 1 << 20 })).toEqual(fields);
    }
  });

  describe('errors', () => {
    it('are typed with QPACK_DECOMPRESSION_FAILED (0x200) and are protocol violations', () => {
      const err = decodeError(unhex('0100'));
      expect(err.code).toBe(QPACK_DECOMPRESSION_FAILED);
      expect(err.code).toBe(0x200);
      expect(err).toBeInstanceOf(ProtocolViolationError);
      expect(err.name).toBe('QpackDecompressionError');
    });

    it('rejects a truncated or empty prefix', () => {
      expect(decodeError(new Uint8Array(0)).message).toMatch(/truncated/);
      expect(decodeError(unhex('00')).message).toMatch(/truncated/);
      expect(decodeError(unhex('007f')).message).toMatch(/truncated/); // Delta Base continues past the end
    });

    it('rejects a non-zero Required Insert Count (§4.5.1.1) and a negative Base (§4.5.1.2)', () => {
      expect(decodeError(unhex('0100')).message).toMatch(/Required Insert Count 1/);
      expect(decodeError(unhex('ff0100')).message).toMatch(/Required Insert Count 256/);
      expect(decodeError(unhex('0080')).message).toMatch(/negative Base/);
    });

    it('rejects every dynamic table reference', () => {
      expect(decodeError(unhex('0000 80')).message).toMatch(/indexed field line references/); // §4.5.2 T=0
      expect(decodeError(unhex('0000 10')).message).toMatch(/post-base index/); // §4.5.3
      expect(decodeError(unhex('0000 4001 61')).message).toMatch(/name reference references/); // §4.5.4 T=0
      expect(decodeError(unhex('0000 0001 61')).message).toMatch(/post-base name reference/); // §4.5.5
    });

    it('rejects static indices beyond the table', () => {
      expect(decodeError(unhex('0000 ff24')).message).toMatch(/index 99/); // 63 + 36
      expect(decodeError(unhex('0000 5f54 00')).message).toMatch(/index 99/); // 15 + 84
      expect(decodeFieldSection(unhex('0000 ff23'), LIMITS)).toEqual([['x-frame-options', 'sameorigin']]);
    });

    it('rejects truncated field lines and string overruns', () => {
      expect(decodeError(unhex('0000 51')).message).toMatch(/without a value/);
      expect(decodeError(unhex('0000 5105 2f61')).message).toMatch(/overruns/);
      expect(decodeError(unhex('0000 2361 62')).message).toMatch(/overruns/); // name of 3, 2 present
      expect(decodeError(unhex('0000 23616263')).message).toMatch(/without a value/);
      expect(decodeError(unhex('0000 5f')).message).toMatch(/truncated integer/);
    });

    it('rejects absurd lengths and integer overflow', () => {
      expect(decodeError(unhex('0000 517f ffffffff0f')).message).toMatch(/overruns/);
      expect(decodeError(unhex('0000 51 7f ffffffffffffff7f')).message).toMatch(/2\^53/);
      expect(decodeError(unhex('0000 ff 808080808080808000')).message).toMatch(/continuation/);
    });

    it('rejects invalid Huffman strings in names and values (RFC 7541 §5.2)', () => {
      expect(decodeError(unhex('0000 5184ffffffff')).message).toMatch(/EOS/);
      expect(decodeError(unhex('0000 518118')).message).toMatch(/padding/);
      // Offsets point into the field section: the end of the 1-octet string at index 4.
      expect(decodeError(unhex('0000 518118')).offset).toBe(5);
      expect(decodeError(unhex('0000 80')).offset).toBe(2);
      expect(decodeError(unhex('0000 5182 1fff')).message).toMatch(/padding/);
      expect(decodeError(unhex('0000 29 ff 80')).message).toMatch(/padding/); // H name of 1 octet 0xff
      // An empty Huffman string is valid.
      expect(decodeFieldSection(unhex('0000 5180'), LIMITS)).toEqual([[':path', '']]);
    });

    it('enforces maxFieldSectionSize as name + value + 32 per field (RFC 9114 §4.2.2)', () => {
      const fields: Array<[string, string]> = [
        [':method', 'CONNECT'], // 7 + 7 + 32 = 46
        ['x-a', 'bcd'], // 3 + 3 + 32 = 38
      ];
      const block = encodeFieldSection(fields);
      expect(decodeFieldSection(block, { maxFieldSectionSize: 84 })).toEqual(fields);
      let err: unknown;
      try {
        decodeFieldSection(block, { maxFieldSectionSize: 83 });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(FieldSectionTooLargeError);
      expect((err as FieldSectionTooLargeError).limit).toBe(83);
      expect((err as FieldSectionTooLargeError).size).toBeGreaterThan(83);
      expect((err as FieldSectionTooLargeError).name).toBe('FieldSectionTooLargeError');
      // A huge literal name is refused before its value is decoded.
      const big = encodeFieldSection([['x'.repeat(5000), 'y'.repeat(100_000)]], { huffman: false });
      expect(() => decodeFieldSection(big, LIMITS)).toThrow(FieldSectionTooLargeError);
      expect(() => decodeFieldSection(block, { maxFieldSectionSize: Number.NaN })).toThrow(RangeError);
    });
  });
});
