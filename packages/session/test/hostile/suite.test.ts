/**
 * The hostile-peer suite: for every decoder of the session layer and every incoming limit, an input that would
 * cost more than its bound, sent over real WebSocket and WebTransport sockets to a server in a heap-capped child
 * process. After each attack the attacker's session is closed with the documented code (or its datagram counted
 * and dropped), the server is alive, a second, well-behaved client is served; after all of them the server's RSS
 * grew by less than a constant. No timing is asserted: every wait is for an event or a counter.
 */
import { describe, expect, it } from 'vitest';
import { bundleFrame, CloseCode, datagramFrame, Kind, streamFrame } from '../../src/index.js';
import { useCleanup } from '../support/harness.js';
import {
  type ChildStats,
  partialFrames,
  servesGoodClient,
  startHostileServer,
  type Target,
} from '../support/hostile.js';
import { rawClient } from '../support/raw.js';

useCleanup();

const MiB = 1 << 20;
const RSS_GROWTH_LIMIT = 96 * MiB;

/** What the child runs with: limits small enough that each attack crosses one. */
const serverOptions = {
  maxReceiveBufferBytes: 2 * MiB,
  maxOutOfOrder: 64,
  rateLimits: { perSession: { messagesPerSecond: 500 } },
};

const hello = {
  v: 1,
  messages: [['echo', 1]],
  channels: [
    ['reliable', 1, 'reliable-ordered'],
    ['unreliable', 2, 'unreliable'],
  ],
};

type Raw = Awaited<ReturnType<typeof rawClient>>;

/** `n` nested `array16` headers each claiming 65 535 entries. */
function arrayHeaders(n: number): Uint8Array {
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) out.set([0xdc, 0xff, 0xff], i * 3);
  return out;
}

/** A stream frame whose header bytes are given as is (`u32 length | u16 headerLength | header`). */
function rawHeaderFrame(header: Uint8Array): Uint8Array {
  const out = new Uint8Array(6 + header.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, 2 + header.length);
  v.setUint16(4, header.length);
  out.set(header, 6);
  return out;
}

async function dataStream(raw: Raw, frames: Uint8Array[]): Promise<void> {
  const w = (await raw.session.createUnidirectionalStream()).getWriter();
  for (const f of frames) await w.write(f).catch(() => {});
}

async function datagrams(raw: Raw, bodies: Uint8Array[]): Promise<void> {
  const w = raw.session.datagrams.writable.getWriter();
  for (const b of bodies) await w.write(b).catch(() => {});
  w.releaseLock();
}

interface Case {
  name: string;
  /** Sends the attack on a raw connection. */
  attack(raw: Raw, t: Target): Promise<void>;
  /** The close code the attacker's session gets, or the drop counter that must grow (the session stays). */
  expect: { close: number } | { drop: string; atLeast: number };
}

const cases: Case[] = [
  {
    name: 'a 63 KB HELLO of MessagePack array headers',
    attack: (raw) => raw.bytes(rawHeaderFrame(arrayHeaders(21_000))),
    expect: { close: CloseCode.BAD_MESSAGE },
  },
  {
    name: 'a HELLO nested deeper than maxDepth',
    attack: (raw) => raw.bytes(rawHeaderFrame(new Uint8Array(60_000).fill(0x91))),
    expect: { close: CloseCode.BAD_MESSAGE },
  },
  {
    name: 'a HELLO claiming 1 MiB (over preAuth.maxHelloBytes)',
    attack: (raw) => raw.bytes(Uint8Array.of(0, 0x10, 0, 0, 0, 1)),
    expect: { close: CloseCode.MESSAGE_TOO_LARGE },
  },
  {
    name: 'a HELLO announcing 300 channels (over the 256 bound)',
    attack: (raw) =>
      raw.frame([
        Kind.HELLO,
        { v: 1, channels: Array.from({ length: 300 }, (_, i) => [`c${i}`, i + 1, 'unreliable']) },
      ]),
    expect: { close: CloseCode.BAD_MESSAGE },
  },
  {
    name: 'a message payload of array headers',
    attack: async (raw) => {
      await raw.frame([Kind.HELLO, hello]);
      await dataStream(raw, [
        ...streamFrame([Kind.OPEN, 1]),
        ...streamFrame([Kind.DATA, 1, 1, 0], arrayHeaders(20_000)),
      ]);
    },
    expect: { close: CloseCode.BAD_MESSAGE },
  },
  {
    name: 'a message payload nested deeper than maxDepth',
    attack: async (raw) => {
      await raw.frame([Kind.HELLO, hello]);
      const deep = new Uint8Array(50_001).fill(0x91);
      deep[50_000] = 0xc0;
      await dataStream(raw, [...streamFrame([Kind.OPEN, 1]), ...streamFrame([Kind.DATA, 1, 1, 0], deep)]);
    },
    expect: { close: CloseCode.BAD_MESSAGE },
  },
  {
    name: 'a frame claiming 100 MB',
    attack: async (raw) => {
      await raw.frame([Kind.HELLO, hello]);
      await dataStream(raw, [...streamFrame([Kind.OPEN, 1]), Uint8Array.of(0x05, 0xf5, 0xe1, 0x00)]);
    },
    expect: { close: CloseCode.MESSAGE_TOO_LARGE },
  },
  {
    name: 'partial 1 MiB frames on 90 streams (over maxReceiveBufferBytes)',
    attack: async (_raw, t) => {
      const r = await partialFrames(t, 90);
      if (r.completed || r.info?.closeCode !== CloseCode.RATE_LIMITED)
        throw new Error(`partial frames not stopped: ${JSON.stringify(r)}`);
    },
    expect: { close: 0 },
  },
  {
    name: 'more out-of-order reliable messages than maxOutOfOrder',
    attack: async (raw) => {
      await raw.frame([Kind.HELLO, hello]);
      const frames = [...streamFrame([Kind.OPEN, 1])];
      for (let seq = 2; seq < 200; seq++)
        frames.push(...streamFrame([Kind.DATA, 1, seq, 0], Uint8Array.of(1)));
      await dataStream(raw, frames);
    },
    expect: { close: CloseCode.BAD_MESSAGE },
  },
  {
    name: 'a flood of frames over messagesPerSecond',
    attack: async (raw) => {
      await raw.frame([Kind.HELLO, hello]);
      // Batches of 1000 PINGs until the server cuts the session (at most 200 batches): what trips the limit is
      // sending faster than the rate, so the sender keeps going rather than betting on one burst's timing.
      const batch = new Uint8Array(32 * 1000);
      let off = 0;
      for (let i = 0; i < 1000; i++) {
        const f = streamFrame([Kind.PING, 70_000 + i, 0])[0];
        batch.set(f, off);
        off += f.length;
      }
      let cut = false;
      raw.closed.then(() => {
        cut = true;
      });
      for (let i = 0; i < 200 && !cut; i++) await raw.bytes(batch.subarray(0, off)).catch(() => {});
    },
    expect: { close: CloseCode.RATE_LIMITED },
  },
  {
    name: 'datagrams of array headers',
    attack: async (raw) => {
      await raw.frame([Kind.HELLO, hello]);
      const body = arrayHeaders(390);
      const d = new Uint8Array(2 + body.length);
      d[0] = body.length >>> 8;
      d[1] = body.length & 0xff;
      d.set(body, 2);
      await datagrams(
        raw,
        Array.from({ length: 10 }, () => d),
      );
    },
    expect: { drop: 'malformed', atLeast: 1 },
  },
  {
    name: 'datagram bundles whose count claims 65 535 bodies',
    attack: async (raw) => {
      await raw.frame([Kind.HELLO, hello]);
      const good = bundleFrame([datagramFrame([Kind.PING, 1, 0]), datagramFrame([Kind.PING, 2, 0])]);
      // Rewrite the count (the header is `[10, 2]`: fixarray, 10, 2) as a uint16 65 535.
      const head = Uint8Array.of(0, 5, 0x92, 10, 0xcd, 0xff, 0xff);
      const bad = Uint8Array.of(...head, ...good.subarray(2 + 3));
      await datagrams(
        raw,
        Array.from({ length: 10 }, () => bad),
      );
    },
    expect: { drop: 'malformed', atLeast: 1 },
  },
  {
    name: 'fragments each claiming a 65 535-piece message',
    attack: async (raw) => {
      await raw.frame([Kind.HELLO, hello]);
      const bodies: Uint8Array[] = [];
      for (let id = 0; id < 200; id++)
        bodies.push(datagramFrame([Kind.DGRAM, 2, 1, 0, 1, id, 0, 65_535], new Uint8Array(1000)));
      await datagrams(raw, bodies);
    },
    expect: { drop: 'reassembly-overflow', atLeast: 1 },
  },
];

async function runCase(c: Case, t: Target, server: Awaited<ReturnType<typeof startHostileServer>>) {
  const before = await server.stats();
  const raw = await rawClient(t.connector, t.url, t.connectOptions);
  raw.drainControl();
  const closed = raw.closed.then((i) => i.closeCode ?? 0);
  await c.attack(raw, t);
  if ('close' in c.expect) {
    if (c.expect.close !== 0) {
      const code = await closed;
      const s = code === c.expect.close ? null : await server.stats();
      expect(
        code,
        `${c.name}: ${JSON.stringify(s && { errors: s.errors, rejections: s.metrics.rejections })}`,
      ).toBe(c.expect.close);
    }
  } else {
    const reason = c.expect.drop;
    const min = (before.metrics.drops[reason] ?? 0) + c.expect.atLeast;
    let now: ChildStats = await server.stats();
    // Datagrams are read as they come: wait for the counter (bounded number of IPC round trips, no timing).
    for (let i = 0; i < 500 && (now.metrics.drops[reason] ?? 0) < min; i++) now = await server.stats();
    expect(now.metrics.drops[reason] ?? 0, c.name).toBeGreaterThanOrEqual(min);
  }
  raw.session.close();
  expect(server.alive(), server.exitInfo()).toBe(true);
  await servesGoodClient(t);
}

describe('hostile-peer suite', () => {
  for (const transport of ['websocket', 'webtransport'] as const) {
    it(`every decoder and limit holds on ${transport}; RSS bounded, others served`, async () => {
      const server = await startHostileServer(serverOptions);
      const t = server[transport];
      await servesGoodClient(t);
      const start = await server.stats();
      for (const c of cases) {
        await runCase(c, t, server);
      }
      const end = await server.stats();
      expect(end.rss - start.rss).toBeLessThan(RSS_GROWTH_LIMIT);
      expect(end.arrayBuffers - start.arrayBuffers).toBeLessThan(RSS_GROWTH_LIMIT);
    });
  }
});
