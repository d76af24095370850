/**
 * QPACK (RFC 9204) for a decoder that advertises SETTINGS_QPACK_MAX_TABLE_CAPACITY = 0 and
 * SETTINGS_QPACK_BLOCKED_STREAMS = 0, and an encoder that never uses the dynamic table. With capacity 0 neither the
 * encoder nor the decoder stream carries anything we must act on, and every field section stands alone: only
 * the static table (Appendix A) and literals are legal.
 *
 * Field names and values are byte strings: one JS char per octet (latin1), like Node's `http` module, so any
 * octet sequence a peer sends survives decoding unchanged. HTTP-level validation (lower-case names, forbidden
 * characters, pseudo-header rules of RFC 9114 §4.2 and §4.3) is the caller's job: such a section is a malformed
 * message (H3_MESSAGE_ERROR), not a QPACK failure.
 */
import { FieldSectionTooLargeError, QpackDecompressionError } from './errors.js';
import { huffmanDecodeString, huffmanEncodedLength, huffmanEncodeInto, latin1 } from './huffman.js';
import { encodePrefixInt, prefixIntLength, Reader } from './prefix-int.js';
import { STATIC_FIELD_INDEX, STATIC_NAME_INDEX, STATIC_TABLE } from './static-table.js';

export {
  FieldSectionTooLargeError,
  H3_EXCESSIVE_LOAD,
  QPACK_DECOMPRESSION_FAILED,
  QpackDecompressionError,
} from './errors.js';
export { huffmanDecode, huffmanEncode, huffmanEncodedLength } from './huffman.js';
export { STATIC_TABLE } from './static-table.js';

/** RFC 9114 §4.2.2: each field line costs its name and value lengths plus 32 octets. */
export const FIELD_LINE_OVERHEAD = 32;

export interface EncodeOptions {
  /** Huffman-code string literals when that is shorter (RFC 9204 §4.1.2). Default true. */
  huffman?: boolean;
}

export interface DecodeLimits {
  /** SETTINGS_MAX_FIELD_SECTION_SIZE we advertised (RFC 9114 §4.2.2); larger sections throw. */
  maxFieldSectionSize: number;
}

enum Kind {
  Indexed,
  NameRef,
  Literal,
}

/** Octets a string literal with an N-bit length prefix takes, and whether it is Huffman-coded. */
function stringPlan(
  s: string,
  prefixBits: number,
  huffman: boolean,
): [length: number, huffman: boolean, body: number] {
  const raw = s.length;
  if (huffman) {
    const coded = huffmanEncodedLength(s);
    if (coded < raw) return [prefixIntLength(coded, prefixBits) + coded, true, coded];
  }
  return [prefixIntLength(raw, prefixBits) + raw, false, raw];
}

function checkByteString(s: string, what: string): void {
  if (typeof s !== 'string') throw new TypeError(`field ${what} must be a string`);
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) > 0xff) {
      throw new RangeError(
        `field ${what} ${JSON.stringify(s)} has a char above U+00FF: encode it to octets first`,
      );
    }
  }
}

function writeString(
  out: Uint8Array,
  pos: number,
  s: string,
  prefixBits: number,
  flags: number,
  hBit: number,
  huffman: boolean,
  body: number,
): number {
  if (huffman) {
    pos = encodePrefixInt(out, pos, body, prefixBits, flags | hBit);
    return huffmanEncodeInto(s, out, pos);
  }
  pos = encodePrefixInt(out, pos, body, prefixBits, flags);
  for (let i = 0; i < s.length; i++) out[pos++] = s.charCodeAt(i);
  return pos;
}

/**
 * Encodes a field section with Required Insert Count 0 and Base 0 (RFC 9204 §4.5.1), choosing per field the
 * shortest representation that needs no dynamic table: indexed field line (§4.5.2) on a full static match, literal
 * with static name reference (§4.5.4) on a name match, otherwise literal with literal name (§4.5.6).
 * Throws RangeError for chars above U+00FF (local misuse: names and values are octet strings).
 */
export function encodeFieldSection(
  fields: ReadonlyArray<readonly [string, string]>,
  options: EncodeOptions = {},
): Uint8Array {
  const useHuffman = options.huffman !== false;
  const n = fields.length;
  const kinds = new Uint8Array(n);
  const indices = new Int32Array(n);
  // Per field: [nameHuffman, nameBody, valueHuffman, valueBody] where applicable.
  const plans: Array<[boolean, number, boolean, number]> = new Array(n);
  let total = 2;
  for (let i = 0; i < n; i++) {
    const [name, value] = fields[i];
    checkByteString(name, 'name');
    checkByteString(value, 'value');
    const full = STATIC_FIELD_INDEX.get(name)?.get(value);
    if (full !== undefined) {
      kinds[i] = Kind.Indexed;
      indices[i] = full;
      total += prefixIntLength(full, 6);
      continue;
    }
    const [vLen, vHuff, vBody] = stringPlan(value, 7, useHuffman);
    const nameIndex = STATIC_NAME_INDEX.get(name);
    if (nameIndex !== undefined) {
      kinds[i] = Kind.NameRef;
      indices[i] = nameIndex;
      plans[i] = [false, 0, vHuff, vBody];
      total += prefixIntLength(nameIndex, 4) + vLen;
      continue;
    }
    const [nLen, nHuff, nBody] = stringPlan(name, 3, useHuffman);
    kinds[i] = Kind.Literal;
    plans[i] = [nHuff, nBody, vHuff, vBody];
    total += nLen + vLen;
  }
  const out = new Uint8Array(total);
  // §4.5.1: Required Insert Count 0 (8-bit prefix), then S = 0 and Delta Base 0 (7-bit prefix).
  out[0] = 0;
  out[1] = 0;
  let pos = 2;
  for (let i = 0; i < n; i++) {
    const [name, value] = fields[i];
    switch (kinds[i]) {
      case Kind.Indexed:
        // §4.5.2: '1' T=1 (static), 6-bit index.
        pos = encodePrefixInt(out, pos, indices[i], 6, 0xc0);
        break;
      case Kind.NameRef: {
        // §4.5.4: '01' N=0 T=1, 4-bit name index; then H and a 7-bit value length.
        const p = plans[i];
        pos = encodePrefixInt(out, pos, indices[i], 4, 0x50);
        pos = writeString(out, pos, value, 7, 0, 0x80, p[2], p[3]);
        break;
      }
      default: {
        // §4.5.6: '001' N=0 H, 3-bit name length; then H and a 7-bit value length.
        const p = plans[i];
        pos = writeString(out, pos, name, 3, 0x20, 0x08, p[0], p[1]);
        pos = writeString(out, pos, value, 7, 0, 0x80, p[2], p[3]);
      }
    }
  }
  return out;
}

/** Reads a string literal whose H bit is `hBit` of the first octet and whose length has an N-bit prefix. */
function readString(r: Reader, prefixBits: number, hBit: number): string {
  const start = r.pos;
  const huffman = (r.buf[start] & hBit) !== 0;
  const length = r.prefixInt(prefixBits);
  const from = r.pos;
  if (length > r.buf.length - from) {
    throw new QpackDecompressionError(`string literal of ${length} octets overruns the field section`, start);
  }
  r.pos = from + length;
  return huffman ? huffmanDecodeString(r.buf, from, from + length) : latin1(r.buf, from, from + length);
}

function staticEntry(index: number, at: number): readonly [string, string] {
  const entry = STATIC_TABLE[index];
  if (entry === undefined) {
    throw new QpackDecompressionError(`static table index ${index} out of range (RFC 9204 Appendix A)`, at);
  }
  return entry;
}

function dynamicReference(what: string, at: number): never {
  throw new QpackDecompressionError(
    `${what} references the dynamic table, whose capacity we set to 0 (RFC 9204 §2.2.3, §3.2.3)`,
    at,
  );
}

/**
 * Decodes one encoded field section (the payload of a HEADERS frame). Every representation of RFC 9204 §4.5 is
 * understood; those that need the dynamic table are errors because our capacity is 0. Throws
 * `QpackDecompressionError` for malformed or forbidden input and `FieldSectionTooLargeError` once the decoded
 * size (RFC 9114 §4.2.2) exceeds `limits.maxFieldSectionSize`. Work is linear in the block's length.
 */
export function decodeFieldSection(block: Uint8Array, limits: DecodeLimits): Array<[string, string]> {
  const limit = limits.maxFieldSectionSize;
  if (!(limit >= 0)) throw new RangeError('maxFieldSectionSize must be a non-negative number');
  const r = new Reader(block);
  // §4.5.1.1: with MaxEntries 0 the only valid encoded Required Insert Count is 0.
  const ric = r.prefixInt(8);
  if (ric !== 0) dynamicReference(`Required Insert Count ${ric}`, 0);
  // §4.5.1.2: with Required Insert Count 0, S = 1 would make Base negative. Delta Base itself is unused.
  if (r.pos >= block.length)
    throw new QpackDecompressionError('truncated field section prefix (RFC 9204 §4.5.1)', r.pos);
  if (block[r.pos] & 0x80) throw new QpackDecompressionError('negative Base (RFC 9204 §4.5.1.2)', r.pos);
  r.prefixInt(7);
  const fields: Array<[string, string]> = [];
  let size = 0;
  while (r.pos < block.length) {
    const at = r.pos;
    const b = block[at];
    let name: string;
    let value: string;
    if (b & 0x80) {
      // §4.5.2 Indexed Field Line: '1' T index(6+).
      if ((b & 0x40) === 0) dynamicReference('indexed field line', at);
      [name, value] = staticEntry(r.prefixInt(6), at);
    } else if (b & 0x40) {
      // §4.5.4 Literal Field Line with Name Reference: '01' N T index(4+), value.
      if ((b & 0x10) === 0) dynamicReference('literal field line name reference', at);
      name = staticEntry(r.prefixInt(4), at)[0];
      if (size + name.length + FIELD_LINE_OVERHEAD > limit) {
        throw new FieldSectionTooLargeError(size + name.length + FIELD_LINE_OVERHEAD, limit);
      }
      if (r.pos >= block.length) throw new QpackDecompressionError('field line without a value', r.pos);
      value = readString(r, 7, 0x80);
    } else if (b & 0x20) {
      // §4.5.6 Literal Field Line with Literal Name: '001' N H length(3+) name, value.
      name = readString(r, 3, 0x08);
      if (size + name.length + FIELD_LINE_OVERHEAD > limit) {
        throw new FieldSectionTooLargeError(size + name.length + FIELD_LINE_OVERHEAD, limit);
      }
      if (r.pos >= block.length) throw new QpackDecompressionError('field line without a value', r.pos);
      value = readString(r, 7, 0x80);
    } else if (b & 0x10) {
      dynamicReference('indexed field line with post-base index (§4.5.3)', at);
    } else {
      dynamicReference('literal field line with post-base name reference (§4.5.5)', at);
    }
    size += name.length + value.length + FIELD_LINE_OVERHEAD;
    if (size > limit) throw new FieldSectionTooLargeError(size, limit);
    fields.push([name, value]);
  }
  return fields;
}
