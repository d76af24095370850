/**
 * Two sans-IO H3 connections back to back in memory: each side's commands become the other side's inputs, with
 * stream writes cut at random (seeded) chunk boundaries, so parsers see every kind of split.
 */
import {
  createH3Connection,
  type H3Connection,
  type H3ConnectionOptions,
  type H3Event,
  type QuicCommand,
} from '../src/index.js';
import { decodeFieldSection } from '../src/core/qpack/index.js';
import { decodeVarint } from '../src/index.js';

export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Side {
  conn: H3Connection;
  events: H3Event[];
  /** Every command this side produced, in order. */
  sent: QuicCommand[];
  closes: Array<{ code: bigint; reason: string }>;
}

export interface Pair {
  client: Side;
  server: Side;
  /** Moves commands until both sides are quiet. */
  pump(): void;
  /** Delivers one side's pending commands to the other, returns how many moved. */
  deliver(from: Side, to: Side): number;
}

function splitRandomly(data: Uint8Array, random: () => number): Uint8Array[] {
  // Whole writes too: QUIC often delivers a write in one piece, and that must work as well as any split.
  if (data.length <= 1 || random() < 0.3) return [data];
  const parts: Uint8Array[] = [];
  let off = 0;
  while (off < data.length) {
    const n = 1 + Math.floor(random() * Math.min(data.length - off, random() < 0.5 ? 3 : 64));
    parts.push(data.slice(off, off + n));
    off += n;
  }
  return parts;
}

export function feed(conn: H3Connection, cmd: QuicCommand, random: () => number): void {
  switch (cmd.type) {
    case 'stream-write': {
      const parts = splitRandomly(cmd.data, random);
      for (let i = 0; i < parts.length; i++) {
        conn.receiveStreamData(cmd.streamId, parts[i], cmd.fin && i === parts.length - 1);
      }
      if (parts.length === 0) conn.receiveStreamData(cmd.streamId, new Uint8Array(0), cmd.fin);
      return;
    }
    case 'stream-reset':
      conn.receiveStreamReset(cmd.streamId, cmd.code);
      return;
    case 'stream-stop-sending':
      conn.receiveStopSending(cmd.streamId, cmd.code);
      return;
    case 'datagram':
      conn.receiveDatagram(cmd.data);
      return;
    case 'connection-close':
      return;
  }
}

export function createPair(
  opts: { seed?: number; client?: Partial<H3ConnectionOptions>; server?: Partial<H3ConnectionOptions> } = {},
): Pair {
  const random = seededRandom(opts.seed ?? 1);
  const mk = (role: 'client' | 'server', o?: Partial<H3ConnectionOptions>): Side => ({
    conn: createH3Connection({ role, seed: Math.floor(random() * 2 ** 31), ...o }),
    events: [],
    sent: [],
    closes: [],
  });
  const client = mk('client', opts.client);
  const server = mk('server', opts.server);
  const deliver = (from: Side, to: Side): number => {
    const cmds = from.conn.drainCommands();
    for (const c of cmds) {
      from.sent.push(c);
      if (c.type === 'connection-close') from.closes.push({ code: c.code, reason: c.reason });
      else feed(to.conn, c, random);
    }
    from.events.push(...from.conn.drainEvents());
    to.events.push(...to.conn.drainEvents());
    return cmds.length;
  };
  const pump = () => {
    for (let i = 0; i < 1000; i++) {
      if (deliver(client, server) + deliver(server, client) === 0) return;
    }
    throw new Error('pump did not settle');
  };
  return { client, server, pump, deliver };
}

/** Starts both sides and exchanges SETTINGS. */
export function startedPair(seed = 1): Pair {
  const p = createPair({ seed });
  p.client.conn.start();
  p.server.conn.start();
  p.pump();
  return p;
}

/** A started pair with one established session; returns its id. */
export function establishedPair(seed = 1): Pair & { sessionId: number } {
  const p = startedPair(seed);
  const sessionId = p.client.conn.connect({
    authority: 'example.test:443',
    path: '/echo',
    origin: 'https://example.test',
  });
  p.pump();
  p.server.conn.acceptSession(sessionId);
  p.pump();
  return Object.assign(p, { sessionId });
}

export function ofType<T extends H3Event['type']>(
  events: H3Event[],
  type: T,
): Array<Extract<H3Event, { type: T }>> {
  return events.filter((e): e is Extract<H3Event, { type: T }> => e.type === type);
}

export function bytes(...values: number[]): Uint8Array {
  return Uint8Array.from(values);
}

export function hex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, '');
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** Concatenated stream-data payload per stream id from a list of events, and whether FIN was seen. */
export function streamPayloads(events: H3Event[]): Map<number, { data: number[]; fin: boolean }> {
  const out = new Map<number, { data: number[]; fin: boolean }>();
  for (const e of events) {
    if (e.type !== 'stream-data') continue;
    let s = out.get(e.streamId);
    if (!s) {
      s = { data: [], fin: false };
      out.set(e.streamId, s);
    }
    s.data.push(...e.data);
    if (e.fin) s.fin = true;
  }
  return out;
}

// --- helpers for raw requests ---

export function varint(n: number): number[] {
  if (n < 0x40) return [n];
  if (n < 0x4000) return [0x40 | (n >> 8), n & 0xff];
  return [0x80 | (n >>> 24), (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

/** A QPACK field section of literal field lines with literal names (RFC 9204 §4.5.6), no Huffman. */
export function literalBlock(fields: Array<[string, string]>): number[] {
  const out = [0, 0];
  const str = (s: string, prefixBits: number, flags: number) => {
    const b = [...new TextEncoder().encode(s)];
    const max = (1 << prefixBits) - 1;
    if (b.length < max) out.push(flags | b.length);
    else {
      out.push(flags | max);
      let rest = b.length - max;
      while (rest >= 128) {
        out.push((rest & 0x7f) | 0x80);
        rest >>= 7;
      }
      out.push(rest);
    }
    out.push(...b);
  };
  for (const [n, v] of fields) {
    str(n, 3, 0x20);
    str(v, 7, 0);
  }
  return out;
}

/** Decodes the :status of a response that is one HEADERS frame. */
export function responseStatus(data: Uint8Array): string | undefined {
  const first = decodeVarint(data, 0);
  const len = first && decodeVarint(data, first.length);
  if (!first || !len || first.value !== 1) return undefined;
  const block = data.subarray(first.length + len.length, first.length + len.length + len.value);
  return new Map(decodeFieldSection(block, { maxFieldSectionSize: 16384 })).get(':status');
}
