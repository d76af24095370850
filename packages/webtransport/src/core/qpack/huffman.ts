/**
 * HPACK/QPACK Huffman string coding (RFC 7541 §5.2 and Appendix B; RFC 9204 §4.1.2).
 *
 * Strings are byte strings: one JS char per octet (latin1), so decoding never loses bytes.
 *
 * The decoder is a 4-bit state machine built once at load from the code table: a state is an internal node of the
 * code tree (256 of them for 257 leaves), and each (state, nibble) pair has a precomputed next state, the symbol
 * completed on the way (at most one, since the shortest code is 5 bits) and whether that nibble runs into EOS.
 * Header decoding happens on every session setup, so it must not walk the tree bit by bit.
 */
import { QpackDecompressionError } from './errors.js';
import { HUFFMAN_CODES, HUFFMAN_EOS } from './huffman-table.js';

const SYMBOLS = 257;

/** Entry layout of the transition table. */
const NEXT_MASK = 0xff;
const SYM_SHIFT = 8;
const SYM_MASK = 0x1ff;
const EMIT = 1 << 17;
const FAIL = 1 << 18;

interface DecoderTables {
  /** `transitions[state * 16 + nibble]`: next state | symbol << 8 | EMIT | FAIL. */
  transitions: Uint32Array;
  /** States where the input may end (RFC 7541 §5.2): the root, or an all-ones path of at most 7 bits. */
  accepting: Uint8Array;
}

function buildDecoder(): DecoderTables {
  // Tree of internal nodes; children >= 0 are internal node ids, < 0 are leaves -(symbol + 1).
  const zero: number[] = [0];
  const one: number[] = [0];
  const depth: number[] = [0];
  const allOnes: boolean[] = [true];
  const UNSET = 0;
  zero[0] = UNSET;
  one[0] = UNSET;
  let nodes = 1;
  for (let sym = 0; sym < SYMBOLS; sym++) {
    const [code, len] = HUFFMAN_CODES[sym];
    let node = 0;
    for (let bit = len - 1; bit >= 0; bit--) {
      const b = (code >>> bit) & 1;
      const children = b ? one : zero;
      if (bit === 0) {
        if (children[node] !== UNSET) throw new Error(`Huffman table is not a prefix code at symbol ${sym}`);
        children[node] = -(sym + 1);
      } else {
        let next = children[node];
        if (next === UNSET) {
          next = nodes++;
          zero[next] = UNSET;
          one[next] = UNSET;
          depth[next] = depth[node] + 1;
          allOnes[next] = allOnes[node] && b === 1;
          children[node] = next;
        } else if (next < 0) {
          throw new Error(`Huffman table is not a prefix code at symbol ${sym}`);
        }
        node = next;
      }
    }
  }
  // Node 0 is the root and no child ever points back to it, so UNSET (0) doubles as "missing". A complete code
  // leaves no child missing.
  for (let n = 0; n < nodes; n++) {
    if (zero[n] === UNSET || one[n] === UNSET) throw new Error('Huffman table is not a complete code');
  }
  const transitions = new Uint32Array(nodes * 16);
  const accepting = new Uint8Array(nodes);
  for (let n = 0; n < nodes; n++) accepting[n] = n === 0 || (allOnes[n] && depth[n] <= 7) ? 1 : 0;
  for (let state = 0; state < nodes; state++) {
    for (let nibble = 0; nibble < 16; nibble++) {
      let node = state;
      let entry = 0;
      for (let bit = 3; bit >= 0; bit--) {
        const child = (nibble >>> bit) & 1 ? one[node] : zero[node];
        if (child < 0) {
          const sym = -child - 1;
          if (sym === HUFFMAN_EOS) {
            entry |= FAIL;
            break;
          }
          entry |= EMIT | (sym << SYM_SHIFT);
          node = 0;
        } else {
          node = child;
        }
      }
      transitions[state * 16 + nibble] = entry | (entry & FAIL ? 0 : node);
    }
  }
  return { transitions, accepting };
}

const { transitions: TRANSITIONS, accepting: ACCEPTING } = buildDecoder();

/** Code and length per byte value, split out of the table for the encoder's hot loop. */
const ENC_CODE = new Uint32Array(256);
const ENC_LEN = new Uint8Array(256);
for (let sym = 0; sym < 256; sym++) {
  [ENC_CODE[sym], ENC_LEN[sym]] = HUFFMAN_CODES[sym];
}

/** Octets the Huffman encoding of the byte string `s` takes (RFC 7541 §5.2: padded to a whole octet). */
export function huffmanEncodedLength(s: string): number {
  let bits = 0;
  for (let i = 0; i < s.length; i++) bits += ENC_LEN[s.charCodeAt(i) & 0xff];
  return (bits + 7) >>> 3;
}

/**
 * Writes the Huffman encoding of the byte string `s` at `out[offset]`, padded with the most significant bits of
 * EOS (all ones, RFC 7541 §5.2). Returns the offset after it. `out` must have `huffmanEncodedLength(s)` bytes free.
 */
export function huffmanEncodeInto(s: string, out: Uint8Array, offset: number): number {
  let acc = 0; // pending bits, right-aligned; fewer than 8 between symbols
  let bits = 0;
  let pos = offset;
  for (let i = 0; i < s.length; i++) {
    const sym = s.charCodeAt(i) & 0xff;
    let code = ENC_CODE[sym];
    let len = ENC_LEN[sym];
    // Codes reach 30 bits: feed them in pieces of at most 24 so `acc` stays within 31 bits for the bit operators.
    while (len > 0) {
      const take = len > 24 ? len - 24 : len;
      const rest = len - take;
      acc = (acc << take) | (code >>> rest);
      code &= rest === 0 ? 0 : (1 << rest) - 1;
      len = rest;
      bits += take;
      while (bits >= 8) {
        bits -= 8;
        out[pos++] = (acc >>> bits) & 0xff;
      }
      acc &= (1 << bits) - 1;
    }
  }
  if (bits > 0) out[pos++] = ((acc << (8 - bits)) | (0xff >>> bits)) & 0xff;
  return pos;
}

/** Huffman-encodes a byte string (one char per octet). */
export function huffmanEncode(s: string): Uint8Array {
  const out = new Uint8Array(huffmanEncodedLength(s));
  huffmanEncodeInto(s, out, 0);
  return out;
}

let scratch = new Uint8Array(1024);

/**
 * Decodes `src[start, end)` into `scratch` and returns the number of octets produced. Errors (RFC 7541 §5.2): an
 * EOS symbol in the string, padding longer than 7 bits, or padding that is not a prefix of EOS (not all ones).
 * Error offsets are indices into `src`.
 */
function decodeToScratch(src: Uint8Array, start: number, end: number): number {
  // At most one symbol per 5 bits.
  const max = Math.ceil(((end - start) * 8) / 5);
  if (scratch.length < max) scratch = new Uint8Array(Math.max(max, scratch.length * 2));
  const out = scratch;
  let n = 0;
  let state = 0;
  for (let i = start; i < end; i++) {
    const byte = src[i];
    let e = TRANSITIONS[(state << 4) | (byte >>> 4)];
    if (e & FAIL) throw new QpackDecompressionError('Huffman string contains EOS (RFC 7541 §5.2)', i);
    if (e & EMIT) out[n++] = (e >>> SYM_SHIFT) & SYM_MASK;
    state = e & NEXT_MASK;
    e = TRANSITIONS[(state << 4) | (byte & 0x0f)];
    if (e & FAIL) throw new QpackDecompressionError('Huffman string contains EOS (RFC 7541 §5.2)', i);
    if (e & EMIT) out[n++] = (e >>> SYM_SHIFT) & SYM_MASK;
    state = e & NEXT_MASK;
  }
  if (!ACCEPTING[state]) {
    throw new QpackDecompressionError(
      'Huffman padding longer than 7 bits or not a prefix of EOS (RFC 7541 §5.2)',
      end,
    );
  }
  return n;
}

/** Decodes a Huffman-coded octet string; throws `QpackDecompressionError` on invalid input. */
export function huffmanDecode(src: Uint8Array): Uint8Array {
  const n = decodeToScratch(src, 0, src.length);
  return scratch.slice(0, n);
}

/** Decodes `src[start, end)` as a Huffman-coded byte string (one char per octet). */
export function huffmanDecodeString(src: Uint8Array, start: number, end: number): string {
  const n = decodeToScratch(src, start, end);
  return latin1(scratch, 0, n);
}

/** Bytes → byte string; chunked so `fromCharCode.apply` stays far below engine argument limits. */
export function latin1(bytes: Uint8Array, start: number, end: number): string {
  if (end - start <= 4096)
    return String.fromCharCode.apply(null, bytes.subarray(start, end) as unknown as number[]);
  let s = '';
  for (let i = start; i < end; i += 4096) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, Math.min(end, i + 4096)) as unknown as number[]);
  }
  return s;
}
