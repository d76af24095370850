/**
 * Real-time state under loss: 60 Hz small messages over an emulated 50 ms RTT link at 0, 1, 2 and 5 % random loss
 * per direction, for WebTransport datagrams, one WebTransport stream, our WebSocket transport (its datagrams,
 * which ride on the reliable WebSocket) and plain `ws`, all at once over the same link so they meet the same
 * conditions. The headline is **state staleness** (`lib/staleness.ts`): the age of the newest update the server
 * holds, sampled every millisecond while updates flow, so a lost datagram counts (the state stays old one more
 * interval) as much as a retransmission stall does. One-way delay (client -> server, on the shared monotonic
 * clock) and echo round trip over delivered messages are kept as secondary figures, labelled "delivered only".
 * Loss changes through the link's control channel without restarting anything.
 */
import type { BenchContext, BenchSuite, ResultRow, SuiteResult } from '../lib/harness.js';
import {
  CLIENTS,
  listArg,
  numArg,
  RT_NOTE,
  realtimeArg,
  SERVERS,
  engineTarget,
  startPair,
} from '../lib/pair.js';
import type { ChannelKind, LatencyChannelResult, Target } from '../lib/roles/clients.js';
import type { TagCounters } from '../lib/roles/servers.js';
import { distRow, openPath, round } from '../lib/suite-util.js';
import { summarize } from '../lib/harness.js';
import { stalenessSamples } from '../lib/staleness.js';

const ECHO = 'bench/lib/roles/echo.ts';
const KINDS: ChannelKind[] = [
  'wt-datagram',
  'wt-stream',
  'qws-datagram',
  'qhttp-datagram',
  'qhttppost-datagram',
  'ws',
];
const SHORT: Record<string, string> = {
  'wt-datagram': 'WT datagram',
  'wt-stream': 'WT stream',
  'qws-datagram': 'Quiver WS',
  'qhttp-datagram': 'Quiver HTTP',
  'qhttppost-datagram': 'Quiver HTTP POSTs',
  ws: 'ws',
};
/** Staleness is sampled from this long after the first send (start-up is not the steady state) to the last. */
const STALENESS_SKIP_MS = 500;
const STALENESS_STEP_MS = 1;
const LABEL: Record<string, string> = {
  'wt-datagram': 'WebTransport datagram',
  'wt-stream': 'WebTransport stream',
  'qws-datagram': 'Quiver WebSocket transport',
  'qhttp-datagram': 'Quiver HTTP transport (HTTP/2, upload stream)',
  'qhttppost-datagram': 'Quiver HTTP transport (HTTP/2, POSTs up)',
  ws: 'ws (plain)',
};

/** A channel of the run: a kind, and for WebTransport kinds the QUIC engine of both ends (`wt-datagram@quinn`). */
type Variant = ChannelKind | `${ChannelKind}@${string}`;
const kindOf = (v: Variant): ChannelKind => v.split('@')[0] as ChannelKind;
const engineOf = (v: Variant): string | undefined => v.split('@')[1];
const named = (table: Record<string, string>, v: Variant): string => {
  const base = table[kindOf(v)] ?? kindOf(v);
  return engineOf(v) ? `${base} (${engineOf(v)})` : base;
};

const suite: BenchSuite = {
  name: 'latency',
  description:
    '60 Hz state updates per transport at 0-5 % loss on a 50 ms RTT link: staleness of the state the server holds (sampled every 1 ms, lost updates included), and one-way and echo latency over delivered messages; p50/p90/p99/max in ms.',
  async run(ctx: BenchContext): Promise<SuiteResult> {
    const rtt = numArg(ctx.args, 'rtt', 50);
    const losses = listArg(ctx.args, 'loss', ctx.quick ? [0, 2] : [0, 1, 2, 5]);
    const durationMs = numArg(ctx.args, 'seconds', ctx.quick ? 10 : 40) * 1000;
    const hz = numArg(ctx.args, 'hz', 60);
    const size = numArg(ctx.args, 'size', 32);
    const notes: string[] = [
      `${hz} Hz, ${size}-byte messages, ${durationMs / 1000} s per loss level, all transports at once over the same link; loss is random, per packet and direction.`,
      `staleness (the headline): the age of the newest update the server holds (by send time), sampled every ${STALENESS_STEP_MS} ms from ${STALENESS_SKIP_MS} ms after the first send to the last send; a lost update leaves the previous one in place, so loss counts. \`delivered\` beside it is the fraction of updates that arrived.`,
      'one-way (delivered only): client to server, on the shared monotonic clock; echo (delivered only): round trip as the client sees it. These percentiles leave lost messages out (`lost` counts them), so they flatter a lossy transport: secondary figures.',
    ];
    const opened = await openPath(ctx, { name: `rtt${rtt}`, rttMs: rtt }, notes);
    const { net } = opened ?? (await openPath(ctx, { name: 'loopback', rttMs: 0 }, notes))!;
    const linkDesc = net.describe();
    const realtime = realtimeArg(ctx.args);
    const wt = await import('@quiver/webtransport');
    // WebTransport kinds on each QUIC engine this build has, both ends on it, all at once over the same link
    // (`--engines quinn,quiche` to choose); the first is the default, whose figures are the goal's.
    const engines =
      typeof ctx.args.engines === 'string' ? ctx.args.engines.split(',') : await wt.availableEngines();
    const dflt = engines[0];
    const variants: Variant[] = KINDS.flatMap((k): Variant[] =>
      k.startsWith('wt-') ? engines.map((e): Variant => `${k}@${e}`) : [k],
    );
    notes.push(
      `WebTransport on each QUIC engine (${engines.join(', ')}; the first is the default, whose figures the goal uses), server and client on the same engine, all channels at once.`,
    );
    const pair = await startPair(net, { engines }, { realtime });
    const targetOf = (v: Variant): Target => engineTarget(pair, engineOf(v));
    if (realtime) notes.push(RT_NOTE);
    const echoPorts = await pair.server.call<{ tcpPort: number; udpPort: number }>(
      ECHO,
      'startEcho',
      net.serverAddr,
    );
    const rows: ResultRow[] = [];
    const p99 = new Map<string, number>();
    const stale = new Map<string, { p50: number; p99: number; delivered: number }>();
    const chartSeries = new Map<string, number[]>();
    const groups: string[] = [];
    try {
      let tagBase = 0;
      for (const loss of losses) {
        const group = net.kind === 'link' ? `rtt${rtt} loss${loss}%` : `loopback (loss ${loss}% not applied)`;
        groups.push(group);
        if (net.link) await net.link.setParams({ loss: loss / 100 });
        if (net.link) {
          // Calibration: raw UDP echoes show that the link delays and drops as configured.
          const cal = await pair.client.call<{ sent: number; received: number; rttMs: number[] }>(
            ECHO,
            'udpEcho',
            net.serverAddr,
            echoPorts.udpPort,
            400,
            2,
            500,
          );
          const expected = (1 - loss / 100) ** 2;
          notes.push(
            `link check at ${loss}% loss: raw UDP echo delivered ${round(cal.received / cal.sent, 3)} (expected ${round(expected, 3)}), min RTT ${round(Math.min(...cal.rttMs), 1)} ms (configured ${rtt} ms)`,
          );
        }
        ctx.progress(`${group}: ${durationMs / 1000} s of ${hz} Hz on ${variants.length} channels`);
        const res = await pair.client.call<LatencyChannelResult[]>(
          CLIENTS,
          'latencyRun',
          variants.map(kindOf),
          variants.map(targetOf),
          {
            hz,
            durationMs,
            size,
            graceMs: 3000,
            tagBase,
          },
        );
        tagBase += variants.length;
        for (const [i, r] of res.entries()) {
          const v = variants[i];
          const server = await pair.server.call<{
            counters?: TagCounters;
            oneWayMs: number[];
            arrivals: number[];
          }>(SERVERS, 'takeTag', r.tag);
          const label = named(LABEL, v);
          if (r.error) notes.push(`${group} ${label}: ${r.error}`);
          const delivered = r.sent ? server.oneWayMs.length / r.sent : 0;
          const params = { rtt_ms: rtt, loss_pct: loss, transport: v };
          const ages =
            r.firstSentAt === undefined || r.lastSentAt === undefined
              ? []
              : stalenessSamples(server.arrivals, {
                  from: r.firstSentAt + STALENESS_SKIP_MS,
                  to: r.lastSentAt,
                  stepMs: STALENESS_STEP_MS,
                  streamStart: r.firstSentAt,
                });
          const st = summarize(ages);
          stale.set(`${loss}/${v}`, { p50: st.p50, p99: st.p99, delivered });
          rows.push(
            distRow(
              `${label} staleness`,
              group,
              ages,
              'ms',
              {
                sent: r.sent,
                delivered: round(delivered, 4),
                lost: r.sent - server.oneWayMs.length,
              },
              { ...params, metric: 'staleness' },
            ),
            distRow(
              `${label} one-way (delivered only)`,
              group,
              server.oneWayMs,
              'ms',
              {
                sent: r.sent,
                delivered: round(delivered, 4),
                lost: r.sent - server.oneWayMs.length,
              },
              params,
            ),
            distRow(
              `${label} echo (delivered only)`,
              group,
              r.rttMs,
              'ms',
              {
                sent: r.sent,
                delivered: round(r.sent ? r.received / r.sent : 0, 4),
                lost: r.sent - r.received,
              },
              params,
            ),
          );
          p99.set(`${loss}/${v}`, summarize(server.oneWayMs).p99);
          const short = named(SHORT, v);
          if (!chartSeries.has(short)) chartSeries.set(short, []);
          chartSeries.get(short)?.push(st.p99);
        }
      }
      if (net.link) {
        const st = await net.link.stats();
        notes.push(
          `link counters: up ${st.up.rxPackets} packets, ${st.up.droppedLoss} dropped by loss, ${st.up.droppedQueue} by queue; down ${st.down.rxPackets}, ${st.down.droppedLoss}, ${st.down.droppedQueue}`,
        );
      }
    } finally {
      await pair.server.call(ECHO, 'stopEcho').catch(() => {});
      await pair.close();
      await net.close();
    }
    const ref = losses.includes(2) ? 2 : losses[losses.length - 1];
    if (ref !== 2) notes.push(`loss 2 % not measured: the ratio uses loss ${ref} %`);
    if (net.kind !== 'link')
      notes.push('no emulated link: measured on loopback without loss, the ratio says little');
    const r = (a: string, b: string): number =>
      round((p99.get(a) ?? Number.NaN) / (p99.get(b) ?? Number.NaN), 3);
    const sr = (a: string, b: string, p: 'p50' | 'p99' = 'p99'): number =>
      round((stale.get(`${ref}/${a}`)?.[p] ?? Number.NaN) / (stale.get(`${ref}/${b}`)?.[p] ?? Number.NaN), 3);
    const dv = (k: string): number => round(stale.get(`${ref}/${k}`)?.delivered ?? Number.NaN, 4);
    const wdg = `wt-datagram@${dflt}`;
    const wst = `wt-stream@${dflt}`;
    const perEngine: Record<string, number> = {};
    for (const e of engines) {
      perEngine[`p99_staleness_wt_${e}_datagram_over_ws_loss2_rtt50`] = sr(`wt-datagram@${e}`, 'ws');
      perEngine[`p99_staleness_wt_${e}_stream_over_ws_loss2_rtt50`] = sr(`wt-stream@${e}`, 'ws');
      perEngine[`delivered_wt_${e}_datagram_loss2_rtt50`] = dv(`wt-datagram@${e}`);
    }
    return {
      link: { ...linkDesc, lossesPct: losses, hz, size, durationMs, engines },
      rows,
      ratios: {
        p99_staleness_wt_datagram_over_ws_loss2_rtt50: sr(wdg, 'ws'),
        p50_staleness_wt_datagram_over_ws_loss2_rtt50: sr(wdg, 'ws', 'p50'),
        p99_staleness_wt_datagram_over_quiver_ws_loss2_rtt50: sr(wdg, 'qws-datagram'),
        p99_staleness_wt_stream_over_ws_loss2_rtt50: sr(wst, 'ws'),
        delivered_wt_datagram_loss2_rtt50: dv(wdg),
        delivered_wt_stream_loss2_rtt50: dv(wst),
        delivered_quiver_ws_loss2_rtt50: dv('qws-datagram'),
        delivered_ws_loss2_rtt50: dv('ws'),
        p99_delivered_only_wt_datagram_over_ws_loss2_rtt50: r(`${ref}/${wdg}`, `${ref}/ws`),
        p99_delivered_only_wt_stream_over_ws_loss2_rtt50: r(`${ref}/${wst}`, `${ref}/ws`),
        ...perEngine,
        p99_delivered_only_http_over_quiver_ws_loss2_rtt50: r(`${ref}/qhttp-datagram`, `${ref}/qws-datagram`),
        p99_delivered_only_http_posts_over_quiver_ws_loss2_rtt50: r(
          `${ref}/qhttppost-datagram`,
          `${ref}/qws-datagram`,
        ),
      },
      goals: {
        p99_staleness_wt_datagram_over_ws_loss2_rtt50: {
          op: '<=',
          value: 0.5,
          note: `p99 age of the state held, lost updates included, plain ws; default engine (${dflt})`,
        },
      },
      charts: [
        {
          file: 'p99',
          title: `p99 state staleness at ${rtt} ms RTT by loss (lost updates included)`,
          categories: groups,
          unit: 'ms',
          series: [...chartSeries].map(([name, values]) => ({ name, values })),
        },
      ],
      notes,
    };
  },
};
export default suite;
