/**
 * Quick QPACK speed check (not a benchmark suite; `bench/` owns those): decode and encode of Chromium's
 * extended CONNECT, and Huffman decoding throughput.
 * `npx tsx --conditions=quiver-source packages/webtransport/fuzz/qpack-speed.ts`
 */
import {
  decodeFieldSection,
  encodeFieldSection,
  huffmanDecode,
  huffmanEncode,
} from '../src/core/qpack/index.js';

const fields: Array<[string, string]> = [
  [':scheme', 'https'],
  [':method', 'CONNECT'],
  [':authority', '127.0.0.1:4433'],
  [':path', '/echo'],
  [':protocol', 'webtransport'],
  ['sec-webtransport-http3-draft02', '1'],
  ['origin', 'http://127.0.0.1:8080'],
];
const block = encodeFieldSection(fields);
const text = Array.from({ length: 1 << 20 }, (_, i) => String.fromCharCode(32 + ((i * 7919) % 95))).join('');
const coded = huffmanEncode(text);
const N = 200_000;
for (let round = 0; round < 3; round++) {
  let t = performance.now();
  for (let i = 0; i < N; i++) decodeFieldSection(block, { maxFieldSectionSize: 16384 });
  const dec = ((performance.now() - t) / N) * 1000;
  t = performance.now();
  for (let i = 0; i < N; i++) encodeFieldSection(fields);
  const enc = ((performance.now() - t) / N) * 1000;
  t = performance.now();
  for (let i = 0; i < 20; i++) huffmanDecode(coded);
  const mbs = (20 * coded.length) / ((performance.now() - t) / 1000) / 1e6;
  console.log(
    `CONNECT block ${block.length} B: decode ${dec.toFixed(2)} us, encode ${enc.toFixed(2)} us; ` +
      `Huffman decode ${mbs.toFixed(0)} MB/s of coded input (printable ASCII)`,
  );
}
