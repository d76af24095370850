/**
 * Codec micro-benchmarks with benny: QUIC varints (RFC 9000 §16), QPACK field sections (RFC 9204), MessagePack
 * envelopes (@msgpack/msgpack), the WebSocket transport's framing, and @quiver/sync delta encoding. Codecs a
 * package does not export (yet) are reported as missing instead of failing the suite. Then the cost of
 * OpenTelemetry tracing on the session layer (off, registered but unsampled, sampled; see lib/tracing-cost.ts).
 */
import b from 'benny';
import type { BenchContext, BenchSuite, ResultRow, SuiteResult } from '../lib/harness.js';
import { numArg } from '../lib/pair.js';
import { round } from '../lib/suite-util.js';
import { measureTracingCost } from '../lib/tracing-cost.js';

interface Case {
  name: string;
  /** Chart label. */
  short: string;
  fn: () => unknown;
  /** Bytes handled per call, for MB/s. */
  bytes?: number;
}

type Group = { group: string; cases: Case[] } | { group: string; missing: string };

function sink(v: unknown): void {
  // Keeps results observable so that the calls are not optimised away.
  if (v === sink) throw new Error('unreachable');
}

async function varintGroup(): Promise<Group> {
  const wt = (await import('@quiver/webtransport')) as Record<string, unknown>;
  const enc = wt.encodeVarint as ((v: number) => Uint8Array) | undefined;
  const dec = wt.decodeVarint as ((b: Uint8Array, o: number) => { value: number } | undefined) | undefined;
  if (!enc || !dec)
    return { group: 'varint', missing: '@quiver/webtransport exports no encodeVarint/decodeVarint' };
  const values = [5, 300, 70_000, 2 ** 31, 2 ** 40];
  const encoded = values.map((v) => enc(v));
  return {
    group: 'varint',
    cases: [
      { name: 'encode (1-8 bytes, mixed)', short: 'varint enc', fn: () => values.map((v) => enc(v)) },
      { name: 'decode (1-8 bytes, mixed)', short: 'varint dec', fn: () => encoded.map((e) => dec(e, 0)) },
    ],
  };
}

async function qpackGroup(): Promise<Group> {
  const wt = (await import('@quiver/webtransport')) as Record<string, unknown>;
  const enc = wt.encodeFieldSection as ((f: [string, string][], o?: unknown) => Uint8Array) | undefined;
  const dec = wt.decodeFieldSection as ((b: Uint8Array, l: unknown) => [string, string][]) | undefined;
  if (typeof enc !== 'function' || typeof dec !== 'function')
    return {
      group: 'QPACK',
      missing: '@quiver/webtransport does not export encodeFieldSection/decodeFieldSection from its index.ts',
    };
  const fields: [string, string][] = [
    [':method', 'CONNECT'],
    [':protocol', 'webtransport'],
    [':scheme', 'https'],
    [':authority', 'game.example.com:4433'],
    [':path', '/game?room=42&token=abcdef0123456789'],
    ['origin', 'https://game.example.com'],
    ['user-agent', 'Mozilla/5.0 (X11; Linux x86_64) Chrome/130.0 Safari/537.36'],
  ];
  const block = enc(fields);
  const limits = { maxFieldSectionSize: 16384 };
  dec(block, limits);
  return {
    group: 'QPACK',
    cases: [
      {
        name: 'encode CONNECT request (7 fields)',
        short: 'QPACK enc',
        fn: () => enc(fields),
        bytes: block.length,
      },
      {
        name: 'decode CONNECT request (7 fields)',
        short: 'QPACK dec',
        fn: () => dec(block, limits),
        bytes: block.length,
      },
    ],
  };
}

async function msgpackGroup(): Promise<Group> {
  const { encode, decode } = await import('@msgpack/msgpack');
  const envelope = {
    t: 'input',
    seq: 123456,
    tick: 98765,
    ack: 98760,
    data: { move: [0.25, -0.75], look: [1.2, 0.3, -0.1, 0.9], buttons: 5 },
  };
  const bytes = encode(envelope);
  return {
    group: 'MessagePack envelope',
    cases: [
      {
        name: 'encode input envelope',
        short: 'msgpack enc',
        fn: () => encode(envelope),
        bytes: bytes.length,
      },
      { name: 'decode input envelope', short: 'msgpack dec', fn: () => decode(bytes), bytes: bytes.length },
    ],
  };
}

async function wsFramingGroup(): Promise<Group> {
  const ws = (await import('@quiver/websocket')) as Record<string, unknown>;
  const encodeFrames = ws.encodeFrames as ((f: unknown[]) => Uint8Array) | undefined;
  const decodeFrames = ws.decodeFrames as ((m: Uint8Array) => unknown[]) | undefined;
  if (!encodeFrames || !decodeFrames)
    return { group: 'WebSocket framing', missing: 'no encodeFrames/decodeFrames' };
  const payload = new Uint8Array(64).fill(7);
  const big = new Uint8Array(1000).fill(9);
  const dgram = [{ type: 'datagram', data: payload }];
  const stream = [{ type: 'stream', streamId: 4, data: big, fin: false }];
  const a = encodeFrames(dgram);
  const s = encodeFrames(stream);
  return {
    group: 'WebSocket framing',
    cases: [
      {
        name: 'encode 64 B datagram frame',
        short: 'WS 64 enc',
        fn: () => encodeFrames(dgram),
        bytes: a.length,
      },
      { name: 'decode 64 B datagram frame', short: 'WS 64 dec', fn: () => decodeFrames(a), bytes: a.length },
      {
        name: 'encode 1000 B stream frame',
        short: 'WS 1000 enc',
        fn: () => encodeFrames(stream),
        bytes: s.length,
      },
      {
        name: 'decode 1000 B stream frame',
        short: 'WS 1000 dec',
        fn: () => decodeFrames(s),
        bytes: s.length,
      },
    ],
  };
}

async function deltaGroup(): Promise<Group> {
  let sync: typeof import('@quiver/sync');
  try {
    sync = await import('@quiver/sync');
  } catch (e) {
    return {
      group: 'delta encoding',
      missing: `@quiver/sync unavailable: ${e instanceof Error ? e.message : e}`,
    };
  }
  const { defineComponent, defineSchema, SyncClient, SyncServer, t } = sync;
  const Body = defineComponent({
    pos: t.vec3({ min: -64, max: 64, precision: 1 / 512 }),
    rot: t.quat({ bits: 9 }),
  });
  const schema = defineSchema({ body: Body }, { maxEntities: 1024 });
  const N = 256;
  const MOVING = 32;
  const server = new SyncServer(schema, { budgetBytes: 1200 });
  const client = new SyncClient(schema);
  const ids: number[] = [];
  for (let i = 0; i < N; i++) ids.push(server.spawn({}));
  server.addClient(0);
  let step = 0;
  const move = (): void => {
    step++;
    for (let k = 0; k < MOVING; k++) {
      const i = (k * 7 + step) % N;
      const a = step * 0.05 + i;
      server.set(ids[i], 'body', {
        pos: { x: Math.cos(a) * 20, y: 0.5, z: Math.sin(a) * 20 },
        rot: { x: 0, y: Math.sin(a / 2), z: 0, w: Math.cos(a / 2) },
      });
    }
  };
  // Reach a steady state where the client acknowledges every packet, so each tick encodes a delta.
  let last: Uint8Array = new Uint8Array(0);
  for (let i = 0; i < 120; i++) {
    move();
    server.tick();
    last = server.encodeFor(0);
    client.receive(last);
    server.receiveAck(0, client.createAck());
  }
  return {
    group: 'delta encoding',
    cases: [
      {
        name: `tick + encode, ${N} entities, ${MOVING} moving, acked`,
        short: 'delta tick',
        fn: () => {
          move();
          server.tick();
          const p = server.encodeFor(0);
          client.receive(p);
          server.receiveAck(0, client.createAck());
          return p;
        },
        bytes: last.length,
      },
    ],
  };
}

const suite: BenchSuite = {
  name: 'micro',
  description:
    'Codec micro-benchmarks (benny): operations per second of varint, QPACK, MessagePack, WebSocket framing and delta encoding; messages per second of a session with OpenTelemetry tracing off, unsampled and sampled.',
  async run(ctx: BenchContext): Promise<SuiteResult> {
    const maxTime = ctx.quick ? 0.5 : 3;
    const minSamples = ctx.quick ? 5 : 20;
    const rows: ResultRow[] = [];
    const notes: string[] = [
      `benny (benchmark.js): maxTime ${maxTime} s, minSamples ${minSamples} per case; margin is the relative margin of error (%).`,
    ];
    const ops = new Map<string, number>();
    // `--only codecs` or `--only tracing`: one part of the suite.
    const only = typeof ctx.args.only === 'string' ? ctx.args.only : undefined;
    if (only !== undefined && only !== 'codecs' && only !== 'tracing')
      throw new RangeError(`--only must be codecs or tracing, got ${only}`);
    const codecGroups =
      only === 'tracing' ? [] : [varintGroup, qpackGroup, msgpackGroup, wsFramingGroup, deltaGroup];
    for (const make of codecGroups) {
      const g = await make();
      if ('missing' in g) {
        notes.push(`${g.group}: not measured (${g.missing})`);
        ctx.progress(`${g.group}: missing (${g.missing})`);
        rows.push({ name: '(missing)', group: g.group, unit: 'ops/s', extra: { note: g.missing } });
        continue;
      }
      ctx.progress(`${g.group}: ${g.cases.length} case(s)`);
      // benny announces each suite on console.log; stdout is reserved for the result table.
      const log = console.log;
      console.log = (...a: unknown[]) => ctx.progress(a.map(String).join(' '));
      let summary: Awaited<ReturnType<typeof b.suite>>;
      try {
        summary = await b.suite(
          g.group,
          ...g.cases.map((c) => b.add(c.name, () => sink(c.fn()))),
          b.configure({ cases: { maxTime, minSamples } }),
        );
      } finally {
        console.log = log;
      }
      for (const r of summary.results) {
        const c = g.cases.find((x) => x.name === r.name)!;
        ops.set(`${g.group}/${r.name}`, r.ops);
        rows.push({
          name: r.name,
          group: g.group,
          unit: 'ops/s',
          params: { short: c.short },
          extra: {
            'ops/s': round(r.ops, 0),
            'margin %': round(r.margin, 2),
            samples: r.samples,
            ...(c.bytes ? { bytes: c.bytes, 'MB/s': round((r.ops * c.bytes) / 1e6, 1) } : {}),
          },
        });
      }
    }
    const codecRows = [...rows];
    const tracing =
      only === 'codecs'
        ? undefined
        : await measureTracingCost({
            // Many short pairs: the interval of the median narrows with the square root of their number.
            rounds: numArg(ctx.args, 'rounds', ctx.quick ? 80 : 400),
            batch: numArg(ctx.args, 'batch', 500),
          });
    if (tracing) {
      notes.push(...tracing.notes);
      rows.push(...tracing.rows);
    }
    return {
      rows,
      ratios: tracing?.ratios ?? {},
      goals: {
        tracing_unsampled_overhead: {
          op: '<=',
          value: 0.03,
          note: 'issue #16: tracing registered but unsampled costs at most 3 % of messages per second',
        },
        tracing_unsampled_overhead_ci95_hi: {
          op: '<=',
          value: 0.03,
          note: 'issue #16, resolved: the 95 % interval of the unsampled overhead lies below 3 % (the A/A interval beside it shows the resolution)',
        },
      },
      // No chart when only the tracing part ran.
      charts:
        codecRows.length === 0
          ? []
          : [
              {
                file: 'ops',
                title: 'Codec operations per second',
                categories: codecRows
                  .filter((r) => r.extra?.['ops/s'] !== undefined)
                  .map((r) => String(r.params?.short ?? r.name)),
                unit: 'ops/s',
                logY: true,
                series: [
                  {
                    name: 'ops/s',
                    values: codecRows
                      .filter((r) => r.extra?.['ops/s'] !== undefined)
                      .map((r) => Number(r.extra!['ops/s'])),
                  },
                ],
              },
            ],
      notes,
    };
  },
};
export default suite;
