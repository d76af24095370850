/**
 * Throughput on loopback: messages per second and MB/s, and the same per CPU-second of both ends ("per core"),
 * for each transport, with the raw `node:dgram` packet ceiling and raw TCP measured in the same run. WebTransport
 * runs on each available QUIC engine (both ends on it; `--engines quinn,quiche` to choose), in the same rounds. A client
 * agent sends sink-flagged probes as fast as backpressure allows; the server agent counts what arrives. Unreliable
 * kinds (UDP, WebTransport datagrams) have no receiver backpressure: they are measured blasting and again paced at
 * 90 % of what arrived, and only arrivals count.
 */
import type { BenchContext, BenchSuite, ResultRow, SuiteResult } from '../lib/harness.js';
import { loopback } from '../lib/network.js';
import { CLIENTS, listArg, numArg, SERVERS, engineTarget, startPair } from '../lib/pair.js';
import type { ChannelKind, Target, ThroughputResult } from '../lib/roles/clients.js';
import type { ServerSnapshot, TagCounters } from '../lib/roles/servers.js';
import { median, round } from '../lib/suite-util.js';

const KINDS: ChannelKind[] = ['udp', 'tcp', 'wt-datagram', 'wt-stream', 'qws-datagram', 'qws-stream', 'ws'];
/** No receiver backpressure: also measured paced. */
const UNRELIABLE = new Set<ChannelKind>(['udp', 'wt-datagram']);
const SHORT: Record<string, string> = {
  udp: 'UDP',
  tcp: 'TCP',
  'wt-datagram': 'WT dgram',
  'wt-stream': 'WT stream',
  'qws-datagram': 'QWS dgram',
  'qws-stream': 'QWS stream',
  ws: 'ws',
};
const LABEL: Record<string, string> = {
  udp: 'node:dgram (raw UDP)',
  tcp: 'node:net (raw TCP)',
  'wt-datagram': 'WebTransport datagrams',
  'wt-stream': 'WebTransport stream',
  'qws-datagram': 'Quiver WebSocket datagrams',
  'qws-stream': 'Quiver WebSocket stream',
  ws: 'ws (plain)',
};

/** `wt-datagram@quinn`: a WebTransport kind on one QUIC engine; other kinds have no engine. */
type Variant = string;
const kindOf = (v: Variant): ChannelKind => v.split('@')[0] as ChannelKind;
const engineOf = (v: Variant): string | undefined => v.split('@')[1];
const short = (v: Variant): string => `${SHORT[kindOf(v)] ?? v}${engineOf(v) ? ` ${engineOf(v)}` : ''}`;
const label = (v: Variant): string => `${LABEL[kindOf(v)] ?? v}${engineOf(v) ? ` (${engineOf(v)})` : ''}`;

interface One {
  msgs: number;
  mbps: number;
  msgsPerCore: number;
  mbPerCore: number;
  cores: number;
  delivered: number;
}

const suite: BenchSuite = {
  name: 'throughput',
  description:
    'Messages/s and MB/s per transport on loopback, and per CPU-second of client and server together (per core), against raw UDP and TCP in the same run.',
  async run(ctx: BenchContext): Promise<SuiteResult> {
    const seconds = numArg(ctx.args, 'seconds', ctx.quick ? 3 : 8);
    const sizes = listArg(ctx.args, 'size', ctx.quick ? [1000] : [64, 1000]);
    const rounds = numArg(ctx.args, 'rounds', ctx.quick ? 1 : 3);
    const wt = await import('@quiver/webtransport');
    const engines =
      typeof ctx.args.engines === 'string' ? ctx.args.engines.split(',') : await wt.availableEngines();
    const kinds = typeof ctx.args.kinds === 'string' ? (ctx.args.kinds.split(',') as ChannelKind[]) : KINDS;
    const variants: Variant[] = kinds.flatMap((k) =>
      k.startsWith('wt-') ? engines.map((e) => `${k}@${e}`) : [k],
    );
    const notes: string[] = [
      `loopback, one client agent and one server agent (separate processes), ${seconds} s per run, ${rounds} round(s) interleaved across transports; figures are medians over rounds.`,
      'per core: divided by the CPU time (user + system) that the client and the server agents used during the run, so a transport that needs two busy cores counts double.',
      `WebTransport on each QUIC engine (${engines.join(', ')}; the first is the default), client and server agent on the same engine.`,
      '`delivered`: arrivals over messages sent (below 1 only for the unreliable kinds, when the sender outruns the receiver); "paced": sent at 90 % of the blasting run\'s arrival rate.',
    ];
    const net = loopback();
    // `--prof cpu`: both agents write V8 CPU profiles (bench/results/prof), e.g. with `--kinds wt-datagram`.
    const prof = ctx.args.prof === 'cpu';
    const pair = await startPair(
      net,
      { engines },
      prof ? { nodeArgs: ['--cpu-prof', '--cpu-prof-dir=bench/results/prof'] } : {},
    );
    const targetOf = (v: Variant): Target => engineTarget(pair, engineOf(v));
    const results = new Map<string, One[]>();
    let tag = 0;
    const measure = async (
      variant: Variant,
      size: number,
      key: string,
      rate?: number,
    ): Promise<One | undefined> => {
      tag = (tag + 1) % 250;
      await pair.server.call(SERVERS, 'takeTag', tag);
      const before = await pair.server.call<ServerSnapshot>(SERVERS, 'snapshot');
      const r = await pair.client.call<ThroughputResult>(
        CLIENTS,
        'throughputRun',
        kindOf(variant),
        targetOf(variant),
        {
          durationMs: seconds * 1000,
          size,
          tag,
          rate,
        },
      );
      // Let what is in flight land before reading the counters.
      await new Promise((res) => setTimeout(res, 300));
      const after = await pair.server.call<ServerSnapshot>(SERVERS, 'snapshot');
      const got = await pair.server.call<{ counters?: TagCounters }>(SERVERS, 'takeTag', tag);
      if (r.error) {
        notes.push(`${key}: ${r.error}`);
        return undefined;
      }
      const msgs = got.counters?.messages ?? 0;
      const bytes = got.counters?.bytes ?? 0;
      const cpuS = (r.cpuUs + (after.cpuUs - before.cpuUs)) / 1e6;
      const wallS = r.wallMs / 1000;
      const one: One = {
        msgs: msgs / wallS,
        mbps: bytes / wallS / 1e6,
        msgsPerCore: msgs / cpuS,
        mbPerCore: bytes / cpuS / 1e6,
        cores: cpuS / wallS,
        delivered: r.sent ? msgs / r.sent : 0,
      };
      if (!results.has(key)) results.set(key, []);
      results.get(key)?.push(one);
      return one;
    };
    try {
      for (let round_ = 0; round_ < rounds; round_++) {
        for (const size of sizes) {
          for (const v of variants) {
            ctx.progress(`round ${round_ + 1}/${rounds}: ${v}, ${size} B`);
            const blast = await measure(v, size, `${size}/${v}`);
            if (blast && UNRELIABLE.has(kindOf(v)) && blast.msgs > 0) {
              const rate = Math.round(blast.msgs * 0.9);
              ctx.progress(`round ${round_ + 1}/${rounds}: ${v}, ${size} B, paced at ${rate}/s`);
              await measure(v, size, `${size}/${v}/paced`, rate);
            }
          }
        }
      }
    } finally {
      await pair.close();
      await net.close();
    }
    const rows: ResultRow[] = [];
    /** A transport's ceiling: its better operating point (blasting or paced), messages per core. */
    const best = new Map<string, number>();
    const chart = new Map<number, number[]>();
    for (const size of sizes) {
      for (const variant of variants.flatMap((v) => (UNRELIABLE.has(kindOf(v)) ? [v, `${v}/paced`] : [v]))) {
        const kind = variant.split('/')[0];
        const rs = results.get(`${size}/${variant}`);
        if (!rs?.length) continue;
        const m = (f: (o: One) => number): number => median(rs.map(f));
        const perCore = m((o) => o.msgsPerCore);
        best.set(`${size}/${kind}`, Math.max(best.get(`${size}/${kind}`) ?? 0, perCore));
        rows.push({
          name: `${label(kind)}${variant.endsWith('/paced') ? ' (paced)' : ''}`,
          group: `${size} B`,
          unit: 'msg/s',
          params: {
            size,
            transport: kindOf(kind),
            engine: engineOf(kind) ?? '',
            paced: variant.endsWith('/paced'),
          },
          extra: {
            'msg/s': round(
              m((o) => o.msgs),
              0,
            ),
            'MB/s': round(
              m((o) => o.mbps),
              2,
            ),
            'msg/s per core': round(perCore, 0),
            'MB/s per core': round(
              m((o) => o.mbPerCore),
              2,
            ),
            cores: round(
              m((o) => o.cores),
              2,
            ),
            delivered: round(
              m((o) => o.delivered),
              3,
            ),
          },
        });
      }
      chart.set(
        size,
        variants.map((v) => best.get(`${size}/${v}`) ?? Number.NaN),
      );
    }
    const ref = sizes.includes(1000) ? 1000 : sizes[sizes.length - 1];
    const ratio = (a: string, b: string): number =>
      round((best.get(`${ref}/${a}`) ?? Number.NaN) / (best.get(`${ref}/${b}`) ?? Number.NaN), 3);
    notes.push(
      `ratios: messages per core at ${ref} B, each transport at its better operating point (blasting or paced).`,
    );
    const ratios: Record<string, number> = {};
    const goals: SuiteResult['goals'] = {};
    for (const e of engines) {
      ratios[`wt_${e}_over_dgram_ceiling`] = ratio(`wt-datagram@${e}`, 'udp');
      goals[`wt_${e}_over_dgram_ceiling`] = {
        op: '>=',
        value: 0.5,
        note: `WebTransport datagrams (${e}) per core vs raw UDP`,
      };
    }
    const dflt = engines[0];
    if (dflt) {
      ratios.wt_over_dgram_ceiling = ratios[`wt_${dflt}_over_dgram_ceiling`];
      goals.wt_over_dgram_ceiling = { op: '>=', value: 0.5, note: `default engine (${dflt})` };
      for (const e of engines) ratios[`wt_stream_${e}_over_tcp`] = ratio(`wt-stream@${e}`, 'tcp');
      ratios.wt_stream_over_tcp = ratios[`wt_stream_${dflt}_over_tcp`];
    }
    ratios.quiver_ws_over_tcp = ratio('qws-stream', 'tcp');
    return {
      link: { loopback: true, seconds, sizes, rounds, engines },
      rows,
      ratios,
      goals,
      charts: [
        {
          file: 'per-core',
          title: 'Messages per CPU-second (client + server), best operating point',
          categories: variants.map(short),
          unit: 'msg/s per core',
          series: sizes.map((s) => ({ name: `${s} B`, values: chart.get(s) ?? [] })),
        },
      ],
      notes,
    };
  },
};
export default suite;
