/**
 * Fuzz targets: one per parser of peer input. A target takes bytes and either returns or throws one of the
 * errors its parser documents; anything else (or an oracle violation, thrown as `FuzzPropertyError`) is a
 * finding. Where a parser has an encoder, the target also checks the round trip on what it accepted, and
 * incremental parsers are fed random chunkings and compared with a one-shot parse.
 */
import { isDeepStrictEqual } from 'node:util';
import { CapsuleType, H3ErrorCode } from '../src/core/codes.js';
import {
  createCapsuleParser,
  decodeCloseCapsule,
  encodeCapsule,
  encodeCloseCapsule,
} from '../src/core/capsules.js';
import {
  decodeSettings,
  encodeFrame,
  encodeGoaway,
  encodeSettings,
  type FrameAction,
  type FrameItem,
  FrameParser,
} from '../src/core/frames.js';
import {
  decodeFieldSection,
  encodeFieldSection,
  FieldSectionTooLargeError,
  huffmanDecode,
  huffmanEncode,
  QpackDecompressionError,
} from '../src/core/qpack/index.js';
import {
  ByteReader,
  decodeVarint,
  decodeVarintBig,
  encodeVarint,
  NeedMoreData,
  VarintRangeError,
} from '../src/core/varint.js';
import type { Role } from '../src/core/index.js';
import { FuzzPropertyError } from './errors.js';
import {
  APP_ACCEPT,
  APP_CLOSE,
  APP_CONNECT,
  APP_DATAGRAM,
  APP_GOAWAY,
  APP_OPEN_BIDI,
  APP_OPEN_UNI,
  APP_REJECT,
  APP_WRITE,
  CONNECT_FIELDS,
  clientSessionPrelude,
  drive,
  normalizeOutput,
  parseScript,
  Script,
  serializeScript,
  serverSessionPrelude,
  wire,
} from './h3-driver.js';
import { mutate } from './mutate.js';
import { Rng } from './rng.js';

export interface FuzzTarget {
  name: string;
  description: string;
  /** Valid encodings the mutator starts from. */
  seeds(): Uint8Array[];
  /** Returns, or throws an error `expected` accepts; anything else is a finding. */
  run(input: Uint8Array): void;
  expected(err: unknown): boolean;
  /** Inputs per target in `test/fuzz.test.ts`. */
  ciIterations: number;
  /** Inputs are cut to this length. Default 4096. */
  maxInputLength?: number;
  /** Target-specific touch-up after the generic mutations, to get past checks that would reject most inputs. */
  fixup?(input: Uint8Array, rng: Rng): Uint8Array;
  /** Replaces the generic input generation (still seeded by `rng`). */
  generate?(rng: Rng, seeds: ReadonlyArray<Uint8Array>, maxLength: number): Uint8Array;
}

/**
 * Mutations of scripts at the level of operations (drop, duplicate, swap, move between seeds, retarget a stream,
 * toggle FIN, split one delivery in two) and of the bytes inside one operation, so most inputs stay well-formed
 * scripts and reach deep into a session's life; a fifth of the inputs get the generic byte-level mutations.
 */
function mutateScriptInput(rng: Rng, seeds: ReadonlyArray<Uint8Array>, maxLength: number): Uint8Array {
  if (rng.chance(0.2)) return mutate(rng, seeds, maxLength);
  const { config, ops } = parseScript(rng.pick(seeds));
  let cfg = config;
  const rounds = 1 + Math.min(rng.int(4), rng.int(4));
  for (let r = 0; r < rounds; r++) {
    const i = rng.int(Math.max(1, ops.length));
    const o = ops[i];
    switch (rng.int(10)) {
      case 0:
      case 1:
      case 2:
        if (o && o.data.length > 0) ops[i] = { ...o, data: mutate(rng, [o.data], 0x7fff) };
        else if (o) ops[i] = { ...o, arg: rng.int(256), code: rng.int(256) };
        break;
      case 3:
        ops.splice(i, 1);
        break;
      case 4:
        if (o) ops.splice(i, 0, { ...o });
        break;
      case 5:
        if (i + 1 < ops.length) [ops[i], ops[i + 1]] = [ops[i + 1], ops[i]];
        break;
      case 6: {
        const other = parseScript(rng.pick(seeds)).ops;
        if (other.length > 0) ops.splice(rng.int(ops.length + 1), 0, rng.pick(other));
        break;
      }
      case 7:
        if (o)
          ops[i] = { ...o, sid: rng.chance(0.5) ? (o.sid + rng.pick([4, -4, 1, 2])) & 0xff : rng.int(32) };
        break;
      case 8:
        if (o) ops[i] = { ...o, op: o.op ^ 0x08 };
        break;
      default:
        if (o && (o.op & 7) <= 3 && o.data.length > 1) {
          const k = 1 + rng.int(o.data.length - 1);
          ops.splice(
            i,
            1,
            { ...o, op: o.op & ~0x08, data: o.data.slice(0, k) },
            { ...o, data: o.data.slice(k) },
          );
        } else cfg = rng.int(4);
    }
  }
  const out = serializeScript(cfg, ops);
  return out.length > maxLength ? out.subarray(0, maxLength) : out;
}

export { FuzzPropertyError };

function check(ok: boolean, message: string): asserts ok {
  if (!ok) throw new FuzzPropertyError(message);
}

const te = new TextEncoder();
const concat = (parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};

/** Chunk boundaries drawn from the input's own hash, so a finding replays from its bytes alone. */
export function chunkings(input: Uint8Array, count: number): Uint8Array[][] {
  let h = 0x811c9dc5;
  for (let i = 0; i < input.length; i++) h = Math.imul(h ^ input[i], 0x01000193);
  const rng = new Rng(h >>> 0);
  const out: Uint8Array[][] = [];
  for (let c = 0; c < count; c++) {
    const chunks: Uint8Array[] = [];
    // Copies, so a parser that keeps a view of a chunk it should have copied shows up as a mismatch.
    let off = 0;
    const max = c === 0 ? 1 : rng.range(1, 32);
    while (off < input.length) {
      const n = rng.range(1, max);
      chunks.push(input.slice(off, off + n));
      off += n;
    }
    out.push(chunks);
  }
  return out;
}

const FIREFOX_EXTRA: Array<[string, string]> = [
  ['user-agent', 'Mozilla/5.0 (X11; Linux x86_64; rv:153.0) Gecko/20100101 Firefox/153.0'],
  ['accept', '*/*'],
  ['accept-language', 'en-US,en;q=0.5'],
  ['accept-encoding', 'gzip, deflate, br, zstd'],
  ['sec-fetch-dest', 'webtransport'],
  ['priority', 'u=4'],
  ['cache-control', 'no-cache'],
];

function qpackSeeds(): Uint8Array[] {
  const lists: Array<Array<[string, string]>> = [
    CONNECT_FIELDS,
    [...CONNECT_FIELDS, ...FIREFOX_EXTRA],
    [
      [':status', '200'],
      ['sec-webtransport-http3-draft', 'draft02'],
    ],
    [[':status', '404']],
    [
      [':status', '429'],
      ['retry-after', '5'],
      ['x-\u00ff', '\u0000\u0080\u00ff'],
    ],
    [],
  ];
  const out: Uint8Array[] = [];
  for (const l of lists) {
    out.push(encodeFieldSection(l));
    out.push(encodeFieldSection(l, { huffman: false }));
  }
  // Dynamic-table representations and a non-zero prefix, so their error paths are near.
  out.push(new Uint8Array([0x02, 0x00, 0x80, 0x10, 0x40, 0x01, 0x61, 0x00, 0x01, 0x62]));
  out.push(new Uint8Array([0x00, 0x85, 0xd1, 0xff, 0x23]));
  return out;
}

const huffman: FuzzTarget = {
  name: 'huffman',
  description: 'Huffman string decoding (RFC 7541 §5.2), round trip on success',
  seeds: () => [
    ...[...CONNECT_FIELDS, ...FIREFOX_EXTRA].flatMap(([n, v]) => [huffmanEncode(n), huffmanEncode(v)]),
    huffmanEncode('\u0000\u0001\n\r\u0016\u00ff\u00fe\u0080'),
    huffmanEncode(''),
    new Uint8Array([0xff, 0xff, 0xff, 0xfc]),
  ],
  run(input) {
    const out = huffmanDecode(input);
    // Padding is shorter than a byte and all ones, so a valid encoding is unique: it must re-encode exactly.
    const again = huffmanEncode(String.fromCharCode(...out));
    check(isDeepStrictEqual(again, input), 'accepted Huffman string does not re-encode to itself');
  },
  expected: (err) => err instanceof QpackDecompressionError,
  ciIterations: 20_000,
};

const qpack: FuzzTarget = {
  name: 'qpack',
  description: 'QPACK field section decoding (RFC 9204 §4.5), round trip on success',
  seeds: qpackSeeds,
  fixup(input, rng) {
    // Most mutated prefixes are a dynamic-table reference, which ends decoding at once: mostly keep them valid
    // (Required Insert Count 0, S = 0) so the field lines get exercised.
    if (input.length >= 2 && rng.chance(0.6)) {
      input[0] = 0;
      input[1] &= 0x7f;
    }
    return input;
  },
  run(input) {
    const fields = decodeFieldSection(input, { maxFieldSectionSize: 8192 });
    for (const [name, value] of fields) {
      check(typeof name === 'string' && typeof value === 'string', 'field is not a pair of strings');
    }
    for (const huffman of [true, false]) {
      const again = decodeFieldSection(encodeFieldSection(fields, { huffman }), {
        maxFieldSectionSize: 8192,
      });
      check(
        isDeepStrictEqual(again, fields),
        `decoded fields do not survive re-encoding (huffman ${huffman})`,
      );
    }
  },
  expected: (err) => err instanceof QpackDecompressionError || err instanceof FieldSectionTooLargeError,
  ciIterations: 20_000,
};

const varint: FuzzTarget = {
  name: 'varint',
  description: 'QUIC varints (RFC 9000 §16) as number and bigint, and ByteReader',
  seeds: () =>
    [0n, 0x3fn, 0x40n, 0x3fffn, 0x4000n, (1n << 30n) - 1n, 1n << 30n, (1n << 53n) - 1n, (1n << 62n) - 1n].map(
      (v) => encodeVarint(v),
    ),
  run(input) {
    for (let off = 0; off < input.length; off++) {
      const big = decodeVarintBig(input, off);
      let num: { value: number; length: number } | undefined;
      try {
        num = decodeVarint(input, off);
      } catch (err) {
        if (!(err instanceof VarintRangeError)) throw err;
        check(
          big !== undefined && big.value > BigInt(Number.MAX_SAFE_INTEGER),
          'VarintRangeError on a safe value',
        );
        continue;
      }
      check(
        (big === undefined) === (num === undefined),
        'number and bigint decoders disagree on completeness',
      );
      if (!big || !num) continue;
      check(
        BigInt(num.value) === big.value && num.length === big.length,
        'number and bigint decoders disagree',
      );
      check(big.value >= 0n && big.value < 1n << 62n, 'value outside 62 bits');
      const enc = encodeVarint(big.value);
      const back = decodeVarintBig(enc, 0);
      check(back !== undefined && back.value === big.value && enc.length <= big.length, 'varint round trip');
    }
    const r = new ByteReader(input);
    try {
      while (r.remaining > 0) {
        const kind = r.readUint8() % 4;
        if (kind === 0) r.readVarintBig();
        else if (kind === 1) r.readVarint();
        else if (kind === 2) r.readUint32();
        else r.readBytes(r.readUint8() % 8);
      }
    } catch (err) {
      if (!(err instanceof NeedMoreData || err instanceof VarintRangeError)) throw err;
    }
  },
  expected: () => false,
  ciIterations: 20_000,
};

/** What the control stream does (RFC 9114 §6.2.1, §7.2): bounded buffered frames, DATA streamed, rest skipped. */
function controlClassify(type: bigint, length: number): FrameAction {
  if (type === 0x02n || type === 0x06n || type === 0x08n || type === 0x09n) {
    return { kind: 'error', code: 0x105n, reason: 'HTTP/2 frame' };
  }
  if (type === 0x00n) return { kind: 'stream' };
  if (type <= 0x0dn)
    return length > 1024 ? { kind: 'error', code: 0x107n, reason: 'too large' } : { kind: 'buffer' };
  return { kind: 'skip' };
}

/** A parser's output with DATA pieces merged, for comparing chunkings. */
function normalize(items: FrameItem[], atBoundary: boolean): unknown[] {
  const out: unknown[] = [];
  let data: number[] | undefined;
  for (const it of items) {
    if (it.kind === 'data') {
      data ??= [];
      for (const b of it.chunk) data.push(b);
      if (it.end) {
        out.push(['data', it.type, data]);
        data = undefined;
      }
      continue;
    }
    check(data === undefined, 'frame item inside an unfinished DATA payload');
    if (it.kind === 'frame') out.push(['frame', it.type, Array.from(it.payload)]);
    else {
      check(typeof it.code === 'bigint' && typeof it.reason === 'string', 'malformed error item');
      out.push(['error', it.code]);
    }
  }
  if (data) out.push(['partial', data]);
  out.push(['boundary', atBoundary]);
  return out;
}

function parseAll(make: () => FrameParser, chunks: Uint8Array[]): unknown[] {
  const p = make();
  const items: FrameItem[] = [];
  for (const c of chunks) p.push(c, items);
  return normalize(items, p.atFrameBoundary);
}

function frameSeeds(): Uint8Array[] {
  const settings = encodeSettings([
    [0x01n, 0n],
    [0x07n, 0n],
    [0x06n, 16384n],
    [0x33n, 1n],
    [0x2b603742n, 1n],
    [0xc671706an, 16n],
    [0x1f4a5b6c7d8e9f21n, 7n],
  ]);
  return [
    settings,
    encodeGoaway(4),
    encodeFrame(0x00n, te.encode('hello')),
    encodeFrame(0x01n, encodeFieldSection(CONNECT_FIELDS)),
    encodeFrame(0x21n, new Uint8Array(3)),
    encodeFrame(0x0dn, encodeVarint(8)),
    new Uint8Array([...settings, ...encodeFrame(0x3fn, new Uint8Array(0)), ...encodeGoaway(0)]),
  ];
}

function framesTarget(
  name: string,
  description: string,
  make: () => FrameParser,
  seeds: () => Uint8Array[],
): FuzzTarget {
  return {
    name,
    description,
    seeds,
    run(input) {
      const whole = parseAll(make, [input]);
      for (const chunks of chunkings(input, 3)) {
        check(isDeepStrictEqual(parseAll(make, chunks), whole), 'output depends on chunk boundaries');
      }
    },
    expected: () => false,
    ciIterations: 20_000,
  };
}

const frames = framesTarget(
  'frames',
  'HTTP/3 frame parser (RFC 9114 §7.1) with control-stream rules, chunking-independence',
  () => new FrameParser(controlClassify),
  frameSeeds,
);

const settings: FuzzTarget = {
  name: 'settings',
  description: 'SETTINGS payload (RFC 9114 §7.2.4), round trip on success',
  seeds: () => [framePayload(frameSeeds()[0]), new Uint8Array(0)],
  run(input) {
    const r = decodeSettings(input);
    if (r instanceof Map) {
      for (const [id, value] of r)
        check(typeof id === 'bigint' && typeof value === 'bigint', 'setting is not bigint');
      // Re-encoding may be shorter (non-shortest varints in the input), so compare parsed values.
      const again = decodeSettings(framePayload(encodeSettings([...r])));
      check(again instanceof Map && isDeepStrictEqual([...again], [...r]), 'SETTINGS round trip');
    } else {
      check(typeof r.code === 'bigint' && typeof r.reason === 'string', 'malformed error result');
    }
  },
  expected: () => false,
  ciIterations: 20_000,
};

/** The payload of one encoded frame or capsule (type, length, payload). */
function framePayload(frame: Uint8Array): Uint8Array {
  const r = new ByteReader(frame);
  r.readVarintBig();
  return r.readBytes(r.readVarint());
}

const capsules: FuzzTarget = {
  name: 'capsules',
  description: 'capsule parser (RFC 9297 §3.2) and CLOSE_WEBTRANSPORT_SESSION values, chunking-independence',
  seeds: () => [
    encodeCloseCapsule(0, ''),
    encodeCloseCapsule(0xffffffff, 'bye \u00e9\u{1f600}'),
    encodeCapsule(CapsuleType.DRAIN_WEBTRANSPORT_SESSION, new Uint8Array(0)),
    encodeCapsule(0x1f4a5b6c7d8e9f21n, new Uint8Array(9)),
    encodeCapsule(CapsuleType.DATAGRAM, te.encode('dgram')),
    new Uint8Array([...encodeCapsule(0x29n, new Uint8Array(5)), ...encodeCloseCapsule(7, 'x')]),
  ],
  run(input) {
    const make = () => createCapsuleParser(1024);
    const whole = parseAll(make, [input]);
    for (const chunks of chunkings(input, 3)) {
      check(isDeepStrictEqual(parseAll(make, chunks), whole), 'output depends on chunk boundaries');
    }
    const p = make();
    const items: FrameItem[] = [];
    p.push(input, items);
    for (const it of items) {
      if (it.kind !== 'frame' || it.type !== CapsuleType.CLOSE_WEBTRANSPORT_SESSION) continue;
      const c = decodeCloseCapsule(it.payload);
      if (typeof c === 'string') continue;
      check(Number.isInteger(c.code) && c.code >= 0 && c.code <= 0xffffffff, 'close code outside u32');
      const again = decodeCloseCapsule(framePayload(encodeCloseCapsule(c.code, c.reason)));
      check(
        typeof again !== 'string' && again.code === c.code && again.reason === c.reason,
        'close round trip',
      );
    }
  },
  expected: () => false,
  ciIterations: 20_000,
};

// ------------------------------------------------------------------------------------ H3Connection targets

/** Independent varint read for oracles (RFC 9000 §16). */
function readVarint(buf: Uint8Array, off: number): { value: bigint; next: number } | undefined {
  if (off >= buf.length) return undefined;
  const len = 1 << (buf[off] >> 6);
  if (off + len > buf.length) return undefined;
  let v = BigInt(buf[off] & 0x3f);
  for (let i = 1; i < len; i++) v = (v << 8n) | BigInt(buf[off + i]);
  return { value: v, next: off + len };
}

function h3Target(role: Role, seeds: () => Uint8Array[], ciIterations: number): FuzzTarget {
  return {
    name: `h3-${role}`,
    description: `whole H3Connection (${role}) fed scripted stream data, resets, stop-sendings, datagrams and app calls`,
    seeds,
    run(input) {
      drive(role, input);
    },
    expected: () => false,
    ciIterations,
    maxInputLength: 8192,
    generate: mutateScriptInput,
  };
}

function serverSeeds(): Uint8Array[] {
  const s = (config = 0x01) => serverSessionPrelude(config);
  return [
    s().bytes(),
    // What Chromium sends on the CONNECT stream, in one piece: HEADERS, then a DATA frame with a GREASE capsule.
    new Script(0x01)
      .data(2, wire.controlStream())
      .data(0, concat([wire.headers(CONNECT_FIELDS), wire.greaseCapsule()]))
      .bytes(),
    s()
      .data(4, wire.wtBidi(0, 'hello'), true)
      .data(14, wire.wtUni(0, 'uni'), true)
      .datagram(wire.datagram(0, 'dg'))
      .bytes(),
    s().data(0, wire.close(7, 'bye'), true).bytes(),
    s().data(0, wire.drain()).data(4, wire.wtBidi(0, 'x')).reset(4).stop(4).bytes(),
    // Streams and datagrams before the CONNECT (draft §4.6), then the request.
    new Script(0x01)
      .data(4, wire.wtBidi(0, 'early'))
      .datagram(wire.datagram(0, 'early'))
      .data(2, wire.controlStream())
      .data(0, wire.headers(CONNECT_FIELDS))
      .bytes(),
    s(0x00).app(APP_ACCEPT).app(APP_OPEN_BIDI).app(APP_OPEN_UNI).app(APP_DATAGRAM).app(APP_CLOSE).bytes(),
    s(0x00).app(APP_REJECT).data(4, wire.wtBidi(0, 'late')).bytes(),
    s(0x03)
      .data(4, wire.wtBidi(0, 'a'))
      .data(8, wire.wtBidi(0, 'b'))
      .data(12, wire.wtBidi(0, 'c'))
      .data(16, wire.wtBidi(0, 'd'))
      .bytes(),
    s().data(8, wire.headers(CONNECT_FIELDS)).app(APP_GOAWAY).data(12, wire.headers(CONNECT_FIELDS)).bytes(),
    s().reset(0).data(4, wire.wtBidi(0, 'gone')).bytes(),
    // A datagram carried as a capsule (RFC 9297 §3.5), then a stream refused once its session is rejected.
    s()
      .data(0, wire.capsuleData(encodeCapsule(CapsuleType.DATAGRAM, te.encode('cap'))))
      .bytes(),
    new Script(0x00)
      .data(2, wire.controlStream())
      .data(8, wire.wtUni(4, 'early'))
      .data(4, wire.headers(CONNECT_FIELDS))
      .app(APP_REJECT)
      .datagram(wire.datagram(4, 'late'))
      .bytes(),
    s()
      .data(2, new Uint8Array([0x00, 0x04]))
      .reset(6)
      .stop(3)
      .bytes(),
  ];
}

function clientSeeds(): Uint8Array[] {
  const s = (config = 0x01) => clientSessionPrelude(config);
  return [
    s().bytes(),
    new Script(0x01)
      .data(3, wire.controlStream())
      .data(0, concat([wire.headers([[':status', '200']]), wire.drain(), wire.close(3, 'x')]))
      .bytes(),
    s()
      .data(1, wire.wtBidi(0, 'hello'), true)
      .data(15, wire.wtUni(0, 'uni'), true)
      .datagram(wire.datagram(0, 'dg'))
      .bytes(),
    s().data(0, wire.close(0, ''), true).bytes(),
    s().app(APP_OPEN_BIDI).app(APP_OPEN_UNI).app(APP_DATAGRAM).app(APP_WRITE).app(APP_CLOSE).bytes(),
    new Script(0x01)
      .data(3, wire.controlStream())
      .data(0, wire.headers([[':status', '404']]), true)
      .bytes(),
    new Script(0x01)
      .data(3, wire.controlStream())
      .data(0, wire.headers([[':status', '100']]))
      .data(0, wire.headers([[':status', '200']]))
      .bytes(),
    s()
      .app(APP_CONNECT)
      .data(4, wire.headers([[':status', '200']]))
      .data(3, encodeFrame(0x07n, encodeVarint(4)))
      .bytes(),
    // A stream for a session we never opened (H3_ID_ERROR), and GOAWAY while the CONNECT waits.
    s().data(5, wire.wtBidi(8, 'who')).bytes(),
    new Script(0x01).data(3, concat([wire.controlStream(), encodeFrame(0x07n, encodeVarint(0))])).bytes(),
    s(0x03)
      .app(APP_CONNECT)
      .app(APP_CONNECT)
      .data(0, wire.capsuleData(encodeCapsule(0n, te.encode('d'))))
      .bytes(),
    // Data for the session before the response (draft §4.6).
    new Script(0x01)
      .data(3, wire.controlStream())
      .data(1, wire.wtBidi(0, 'early'))
      .datagram(wire.datagram(0, 'e'))
      .data(0, wire.headers([[':status', '200']]))
      .bytes(),
  ];
}

/** The stream bytes of WebTransport streams after an established session 0, with an oracle for the signal. */
const wtStreams: FuzzTarget = {
  name: 'wt-stream-signal',
  description:
    'WebTransport stream signal parsing (0x41 / 0x54 + session id, draft §4.2-4.3) on a live session, both roles',
  // Selector byte: bit 0 uni, bits 1-2 which stream, bit 3 random chunks (else byte by byte), bit 4 client
  // role (streams from the server), bit 7 FIN.
  seeds: () => [
    new Uint8Array([0x80, ...wire.wtBidi(0, 'hello world')]),
    new Uint8Array([0x81, ...wire.wtUni(0, 'hello uni')]),
    new Uint8Array([0x90, ...wire.wtBidi(0, 'from the server')]),
    new Uint8Array([0x19, ...wire.wtUni(0, 'server uni')]),
    new Uint8Array([0x00, ...wire.wtBidi(4, 'other session')]),
    new Uint8Array([0x01, 0x40, 0x54, 0x80, 0, 0, 0, ...te.encode('non-shortest')]),
    new Uint8Array([0x81, 0x00, ...encodeSettings([[1n, 0n]])]),
    new Uint8Array([0x80, ...wire.headers(CONNECT_FIELDS)]),
    new Uint8Array([0x81, ...encodeVarint(0x21n + 0x1fn * 9n), 1, 2, 3]),
  ],
  run(input) {
    if (input.length === 0) return;
    const sel = input[0];
    const role: Role = sel & 0x10 ? 'client' : 'server';
    const prelude = role === 'server' ? serverSessionPrelude() : clientSessionPrelude();
    const { checker, conn } = drive(role, prelude.bytes());
    check(checker.live.has(0) && !checker.failed, 'prelude did not establish session 0');
    const uni = (sel & 1) === 1;
    // Peer streams the prelude did not use: client bidi 4.., uni 14..; server bidi 1.., uni 15...
    const streamId = (role === 'server' ? (uni ? 14 : 4) : uni ? 15 : 1) + 4 * ((sel >> 1) & 3);
    const fin = (sel & 0x80) !== 0;
    const bytes = input.subarray(1);
    const [chunks] = chunkings(bytes, 1 + (sel & 0x08 ? 1 : 0)).slice(-1);
    const seen = checker.events.length;
    const parts = chunks.length > 0 ? chunks : [new Uint8Array(0)];
    for (let i = 0; i < parts.length; i++) {
      conn.receiveStreamData(streamId, parts[i], fin && i === parts.length - 1);
      checker.drain(true);
    }
    const events = checker.events.slice(seen);
    const error = events.find((e) => e.type === 'connection-error');
    const opened = events.filter((e) => e.type === 'stream-opened');
    const isError = (code: bigint) => error?.type === 'connection-error' && error.code === code;
    const t = readVarint(bytes, 0);
    const signal = uni ? 0x54n : 0x41n;
    if (t && t.value === signal) {
      const sid = readVarint(bytes, t.next);
      if (!sid) {
        check(opened.length === 0 && !error, 'incomplete stream header acted upon');
        return;
      }
      // draft §4: not a client-initiated bidi stream id; ids beyond 2^53 cannot name a stream we could track.
      // A client opened only session 0, so any other id names a stream it never opened.
      if (
        sid.value % 4n !== 0n ||
        sid.value > BigInt(Number.MAX_SAFE_INTEGER) ||
        (role === 'client' && sid.value !== 0n)
      ) {
        check(isError(0x108n), 'bad session id is not H3_ID_ERROR');
        return;
      }
      if (sid.value !== 0n) {
        check(opened.length === 0 && !error, 'stream for a session not yet known was opened or fatal');
        return;
      }
      check(!error && opened.length === 1, 'stream for the live session not opened exactly once');
      check(
        opened[0].type === 'stream-opened' &&
          opened[0].streamId === streamId &&
          opened[0].bidirectional === !uni,
        'stream-opened mismatch',
      );
      const data = events.flatMap((e) => (e.type === 'stream-data' ? Array.from(e.data) : []));
      check(
        isDeepStrictEqual(data, Array.from(bytes.subarray(sid.next))),
        'stream payload differs from what was sent',
      );
      const last = events.filter((e) => e.type === 'stream-data').at(-1);
      check(!fin || (last?.type === 'stream-data' && last.fin), 'FIN not delivered');
      return;
    }
    check(opened.length === 0, 'stream opened without its signal');
    if (!t) return;
    if (uni) {
      // RFC 9114 §6.2: a second control, encoder or decoder stream is fatal; a push stream from a client is
      // H3_STREAM_CREATION_ERROR, one to a client that never sent MAX_PUSH_ID H3_ID_ERROR (§4.6); other types
      // are refused without harm (§6.2.3).
      if (t.value === 1n && role === 'client') check(isError(0x108n), 'push stream not H3_ID_ERROR');
      else if (t.value <= 3n) check(isError(0x103n), `stream type ${t.value} not H3_STREAM_CREATION_ERROR`);
      else check(!error, `unknown stream type ${t.value} was fatal (RFC 9114 §6.2.3)`);
    } else if (role === 'client') {
      // RFC 9114 §6.1: only WebTransport gives a server bidirectional streams.
      check(isError(0x103n), 'server bidi stream without 0x41 not H3_STREAM_CREATION_ERROR');
    }
  },
  expected: () => false,
  ciIterations: 5_000,
  // Headers sit in the first bytes; long payloads delivered byte by byte only cost time.
  maxInputLength: 1024,
};

/** QUIC DATAGRAM payloads on a live session 0, with an oracle for the quarter stream id (RFC 9297 §2.1). */
const datagrams: FuzzTarget = {
  name: 'datagrams',
  description: 'HTTP datagram parsing (quarter stream id, RFC 9297 §2.1) on a live session',
  seeds: () => [
    new Uint8Array([6, ...wire.datagram(0, 'hello')]),
    new Uint8Array([3, ...wire.datagram(4, 'x'), 0, 2, 0x40, 0]),
    new Uint8Array([9, 0xc0, 0, 0, 0, 0, 0, 0, 0, 7, 1, 0x80]),
    new Uint8Array([8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
    // 2^60 - 1 (the largest legal quarter stream id), then 2^60 (RFC 9297 §2.1: H3_DATAGRAM_ERROR).
    new Uint8Array([8, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 8, 0xd0, 0, 0, 0, 0, 0, 0, 0]),
  ],
  run(input) {
    const { checker, conn } = drive('server', serverSessionPrelude().bytes());
    check(checker.live.has(0) && !checker.failed, 'prelude did not establish session 0');
    let pos = 0;
    while (pos < input.length) {
      const len = input[pos++];
      const d = input.slice(pos, pos + len);
      pos += d.length;
      const seen = checker.events.length;
      conn.receiveDatagram(d);
      checker.drain(true);
      const events = checker.events.slice(seen);
      const q = readVarint(d, 0);
      if (!q) {
        check(
          events.length === 1 && events[0].type === 'datagram-dropped' && events[0].reason === 'malformed',
          'malformed datagram not dropped as malformed',
        );
      } else if (q.value >= 1n << 60n) {
        // RFC 9297 §2.1: a connection error, after which the connection takes no more input.
        check(
          events.length === 1 &&
            events[0].type === 'connection-error' &&
            events[0].code === H3ErrorCode.H3_DATAGRAM_ERROR &&
            checker.failed,
          'quarter stream id >= 2^60 not a connection error of type H3_DATAGRAM_ERROR',
        );
        return;
      } else if (q.value * 4n > BigInt(Number.MAX_SAFE_INTEGER)) {
        check(
          events.length === 1 &&
            events[0].type === 'datagram-dropped' &&
            events[0].reason === 'unknown-session',
          'datagram for a stream that cannot exist not dropped as unknown-session',
        );
      } else if (q.value === 0n) {
        check(
          events.length === 1 && events[0].type === 'datagram' && events[0].sessionId === 0,
          'datagram for session 0 not delivered',
        );
        check(
          events[0].type === 'datagram' &&
            isDeepStrictEqual(Array.from(events[0].data), Array.from(d.subarray(q.next))),
          'datagram payload differs',
        );
      } else {
        // Not yet known: held for the session (draft §4.6) or dropped over the budget, counted.
        check(
          events.length === 0 ||
            (events.length === 1 &&
              events[0].type === 'datagram-dropped' &&
              events[0].reason === 'unknown-session'),
          'datagram for an unknown session mishandled',
        );
      }
    }
  },
  expected: () => false,
  ciIterations: 5_000,
};

/** The same script delivered with stream data in one piece and split at input-derived boundaries. */
function h3ChunkingTarget(role: Role, seeds: () => Uint8Array[]): FuzzTarget {
  return {
    name: `h3-chunking-${role}`,
    description: `H3Connection (${role}) output must not depend on how QUIC splits stream data (RFC 9000 §2.2)`,
    seeds,
    run(input) {
      const whole = normalizeOutput(drive(role, input).checker);
      const split = (data: Uint8Array): Uint8Array[] => chunkings(data, 2)[data[0] & 1];
      const pieces = normalizeOutput(drive(role, input, { split }).checker);
      if (!isDeepStrictEqual(pieces, whole)) {
        throw new FuzzPropertyError(
          `output depends on chunk boundaries:\n  whole ${show(whole)}\n  split ${show(pieces)}`,
        );
      }
    },
    expected: () => false,
    ciIterations: 2_000,
    maxInputLength: 4096,
    generate: mutateScriptInput,
  };
}

function show(v: unknown): string {
  return JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? `0x${x.toString(16)}` : x)).slice(0, 1500);
}

export const TARGETS: ReadonlyArray<FuzzTarget> = [
  huffman,
  qpack,
  varint,
  frames,
  settings,
  capsules,
  wtStreams,
  datagrams,
  h3Target('server', serverSeeds, 4_000),
  h3Target('client', clientSeeds, 4_000),
  h3ChunkingTarget('server', serverSeeds),
  h3ChunkingTarget('client', clientSeeds),
];

/**
 * Targets broken on purpose, so `test/fuzz.test.ts` can prove the harness reports an unexpected exception and
 * terminates an input that never returns. Not part of `all`.
 */
const SELFTEST_TARGETS_MUTABLE: FuzzTarget[] = [
  {
    name: 'selftest-crash',
    description: 'throws TypeError on inputs starting with 0x42, a documented error on 0x43',
    seeds: () => [new Uint8Array([0x41, 0x42, 0x43])],
    run(input) {
      if (input[0] === 0x42) throw new TypeError('selftest crash');
      if (input[0] === 0x43) throw new QpackDecompressionError('selftest documented error', 0);
    },
    expected: (err) => err instanceof QpackDecompressionError,
    ciIterations: 2000,
  },
  {
    name: 'selftest-hang',
    description: 'never returns on inputs starting with 0x42 and 0x42',
    seeds: () => [new Uint8Array([0x41, 0x42, 0x42])],
    run(input) {
      if (input[0] === 0x42 && input[1] === 0x42) for (;;);
    },
    expected: () => false,
    ciIterations: 2000,
  },
];

/** Exhausts the worker's heap on inputs starting with 0x42 0x42 (to test crash recovery with a small heap). */
SELFTEST_TARGETS_MUTABLE.push({
  name: 'selftest-oom',
  description: 'runs out of memory on inputs starting with 0x42 and 0x42',
  seeds: () => [new Uint8Array([0x41, 0x42, 0x42])],
  run(input) {
    if (input[0] !== 0x42 || input[1] !== 0x42) return;
    const hoard: number[][] = [];
    for (;;) hoard.push(new Array(1 << 16).fill(hoard.length));
  },
  expected: () => false,
  ciIterations: 200,
});

export const SELFTEST_TARGETS: ReadonlyArray<FuzzTarget> = SELFTEST_TARGETS_MUTABLE;

export function getTarget(name: string): FuzzTarget {
  const t = TARGETS.find((x) => x.name === name) ?? SELFTEST_TARGETS.find((x) => x.name === name);
  if (!t) throw new Error(`unknown fuzz target ${name}; known: ${TARGETS.map((x) => x.name).join(', ')}`);
  return t;
}
