/**
 * Session establishment: time from the connect call to `ready` (WebTransport, our WebSocket transport) or `open`
 * (plain `ws`, `ws` over TLS), and to the echo of the first application message, over fresh connections on
 * loopback and on emulated links of 20, 50 and 100 ms RTT. Also in RTT units next to the protocol floors:
 * WebTransport over HTTP/3 is ready after 2 RTT (QUIC handshake, then the extended CONNECT,
 * draft-ietf-webtrans-http3 §3.2) and can echo a message written on a stream opened before `ready` after 2 RTT
 * (§4.5 lets the client send before the response); WSS opens after 3 RTT (TCP, TLS 1.3, HTTP upgrade,
 * RFC 6455 §4) and echoes after 4.
 */
import type { BenchContext, BenchSuite, ResultRow, SuiteResult } from '../lib/harness.js';
import { CLIENTS, numArg, RT_NOTE, realtimeArg, engineTarget, startPair } from '../lib/pair.js';
import type { SetupResult, Target } from '../lib/roles/clients.js';
import { distRow, median, openPath, type PathSpec, round } from '../lib/suite-util.js';

const KINDS = ['wt', 'qws', 'qhttp', 'qhttppost', 'ws', 'wss'] as const;
type Kind = (typeof KINDS)[number];
const LABEL: Record<Kind, string> = {
  wt: 'WebTransport (h3)',
  qws: 'Quiver WebSocket transport (TLS)',
  qhttp: 'Quiver HTTP transport (HTTP/2, TLS, upload stream)',
  qhttppost: 'Quiver HTTP transport (HTTP/2, TLS, POSTs up)',
  ws: 'ws (plain)',
  wss: 'ws over TLS (WSS)',
};
/** RTTs to `ready`/`open` and to the first echo that the protocols cannot beat. */
const SHORT: Record<Kind, string> = {
  wt: 'WebTransport',
  qws: 'Quiver WS (TLS)',
  qhttp: 'Quiver HTTP (h2)',
  qhttppost: 'Quiver HTTP (h2, POSTs)',
  ws: 'ws',
  wss: 'WSS',
};
const FLOOR: Record<Kind, { ready: number; echo: number }> = {
  wt: { ready: 2, echo: 2 },
  qws: { ready: 3, echo: 4 },
  // TCP, TLS, the event-stream GET; the first message then goes up in a POST on the same HTTP/2 connection.
  qhttp: { ready: 3, echo: 4 },
  qhttppost: { ready: 3, echo: 4 },
  ws: { ready: 2, echo: 3 },
  wss: { ready: 3, echo: 4 },
};

/** A transport of the run: a kind, and for WebTransport the QUIC engine of both ends (`wt@quinn`). */
type Variant = Kind | `wt@${string}`;
const kindOf = (v: Variant): Kind => (v.startsWith('wt@') ? 'wt' : (v as Kind));
const engineOf = (v: Variant): string | undefined => (v.startsWith('wt@') ? v.slice(3) : undefined);
const labelOf = (v: Variant): string =>
  engineOf(v) ? `${LABEL.wt.slice(0, -1)}, ${engineOf(v)})` : LABEL[v as Kind];
const shortOf = (v: Variant): string => (engineOf(v) ? `${SHORT.wt} (${engineOf(v)})` : SHORT[v as Kind]);

const suite: BenchSuite = {
  name: 'setup',
  description:
    'Time to ready/open and to the first echoed message over fresh connections, per transport and link RTT (ms, and RTT units next to the floors).',
  async run(ctx: BenchContext): Promise<SuiteResult> {
    const count = numArg(ctx.args, 'count', ctx.quick ? 10 : 40);
    const paths: PathSpec[] = ctx.quick
      ? [
          { name: 'loopback', rttMs: 0 },
          { name: 'rtt50', rttMs: 50 },
        ]
      : [
          { name: 'loopback', rttMs: 0 },
          { name: 'rtt20', rttMs: 20 },
          { name: 'rtt50', rttMs: 50 },
          { name: 'rtt100', rttMs: 100 },
        ];
    const wt = await import('@quiver/webtransport');
    // Each QUIC engine this build has, both ends on it, in the same rounds (`--engines quinn,quiche` to choose);
    // the first is the default, whose figures are the goals' (`ready_wt_over_wss_rtt50`).
    const engines =
      typeof ctx.args.engines === 'string' ? ctx.args.engines.split(',') : await wt.availableEngines();
    const variants: Variant[] = KINDS.flatMap((k): Variant[] =>
      k === 'wt' ? engines.map((e): Variant => `wt@${e}`) : [k],
    );
    const rows: ResultRow[] = [];
    const notes: string[] = [
      `${count} fresh connections per transport and path (after one unrecorded warm-up each), transports interleaved round-robin so machine load affects all alike.`,
      'ready: connect call to `ready` (session transports) or `open` (ws); echo: connect call to the echo of a 32-byte message written at once (on a bidirectional stream requested before `ready`) or on `open` (ws).',
      'Floors in RTT: WebTransport ready 2, echo 2; WSS, our WebSocket transport (TLS) and our HTTP transport (HTTP/2, TLS) open 3, echo 4; plain ws open 2, echo 3.',
    ];
    const medians = new Map<string, number>();
    const charts = { ready: new Map<string, number[]>(), echo: new Map<string, number[]>() };
    const done: string[] = [];
    for (const spec of paths) {
      const opened = await openPath(ctx, spec, notes);
      if (!opened) continue;
      const { net } = opened;
      done.push(spec.name);
      ctx.progress(`${spec.name}: starting server and client agents (${net.kind})`);
      const pair = await startPair(net, { engines }, { realtime: realtimeArg(ctx.args) });
      const targetOf = (v: Variant): Target => engineTarget(pair, engineOf(v));
      if (realtimeArg(ctx.args) && !notes.includes(RT_NOTE)) notes.push(RT_NOTE);
      try {
        // One unrecorded round first: module loading and JIT warm-up are not connection setup.
        for (const v of variants)
          await pair.client.call<SetupResult>(CLIENTS, 'setupRun', kindOf(v), targetOf(v), 1);
        const results = new Map<Variant, SetupResult>(variants.map((v) => [v, { samples: [], failures: 0 }]));
        for (let i = 0; i < count; i++) {
          for (const k of variants) {
            const r = await pair.client.call<SetupResult>(CLIENTS, 'setupRun', kindOf(k), targetOf(k), 1);
            const acc = results.get(k)!;
            acc.samples.push(...r.samples);
            acc.failures += r.failures;
            acc.firstError ??= r.firstError;
          }
          if ((i + 1) % 10 === 0 || i + 1 === count) ctx.progress(`${spec.name}: ${i + 1}/${count} rounds`);
        }
        for (const k of variants) {
          const r = results.get(k)!;
          const ready = r.samples.map((s) => s.readyMs);
          const echo = r.samples.map((s) => s.echoMs);
          const params = { rtt_ms: spec.rttMs, transport: k };
          const units = (v: number[]): number | string =>
            spec.rttMs > 0 && v.length ? round(median(v) / spec.rttMs, 2) : '';
          rows.push(
            distRow(
              `${labelOf(k)} ready`,
              spec.name,
              ready,
              'ms',
              { p50_rtt: units(ready), floor_rtt: FLOOR[kindOf(k)].ready, failures: r.failures },
              params,
            ),
            distRow(
              `${labelOf(k)} first echo`,
              spec.name,
              echo,
              'ms',
              { p50_rtt: units(echo), floor_rtt: FLOOR[kindOf(k)].echo, failures: r.failures },
              params,
            ),
          );
          if (r.failures)
            notes.push(`${spec.name} ${k}: ${r.failures} failed connection(s), first error: ${r.firstError}`);
          medians.set(`${spec.name}/${k}/ready`, ready.length ? median(ready) : Number.NaN);
          medians.set(`${spec.name}/${k}/echo`, echo.length ? median(echo) : Number.NaN);
          if (!charts.ready.has(k)) charts.ready.set(k, []);
          if (!charts.echo.has(k)) charts.echo.set(k, []);
          charts.ready.get(k)!.push(medians.get(`${spec.name}/${k}/ready`)!);
          charts.echo.get(k)!.push(medians.get(`${spec.name}/${k}/echo`)!);
        }
        if (pair.ports.wtError) notes.push(`WebTransport listener missing: ${pair.ports.wtError}`);
        const engineNote = `WebTransport on each QUIC engine (${engines.join(', ')}; the first is the default, whose figures are the goals'), server and client agents on the same engine, in the same rounds.`;
        if (!notes.includes(engineNote)) notes.push(engineNote);
      } finally {
        await pair.close();
        await net.close();
      }
    }
    const ref = done.includes('rtt50') ? 'rtt50' : 'loopback';
    if (ref !== 'rtt50')
      notes.push('the rtt50 ratios below were measured on loopback (no emulated link here)');
    const ratio = (a: string, b: string): number =>
      round((medians.get(a) ?? Number.NaN) / (medians.get(b) ?? Number.NaN), 3);
    const dflt = engines[0];
    const perEngine: Record<string, number> = {};
    for (const e of engines) {
      perEngine[`ready_wt_${e}_over_wss_rtt50`] = ratio(`${ref}/wt@${e}/ready`, `${ref}/wss/ready`);
      perEngine[`first_echo_wt_${e}_over_wss_rtt50`] = ratio(`${ref}/wt@${e}/echo`, `${ref}/wss/echo`);
    }
    return {
      link: { paths: paths.map((p) => p.name), measured: done, count, engines },
      rows,
      ratios: {
        ready_wt_over_wss_rtt50: ratio(`${ref}/wt@${dflt}/ready`, `${ref}/wss/ready`),
        first_echo_wt_over_wss_rtt50: ratio(`${ref}/wt@${dflt}/echo`, `${ref}/wss/echo`),
        ...perEngine,
        ready_http_over_quiver_ws_rtt50: ratio(`${ref}/qhttp/ready`, `${ref}/qws/ready`),
        first_echo_http_over_quiver_ws_rtt50: ratio(`${ref}/qhttp/echo`, `${ref}/qws/echo`),
        first_echo_http_posts_over_quiver_ws_rtt50: ratio(`${ref}/qhttppost/echo`, `${ref}/qws/echo`),
      },
      goals: {
        ready_wt_over_wss_rtt50: { op: '<=', value: 0.7, note: `2 RTT against 3; default engine (${dflt})` },
        first_echo_wt_over_wss_rtt50: {
          op: '<=',
          value: 0.52,
          note: `2 RTT against 4; default engine (${dflt})`,
        },
      },
      charts: [
        {
          file: 'ready',
          title: 'Median time to ready/open',
          categories: done,
          unit: 'ms',
          series: variants.map((k) => ({ name: shortOf(k), values: charts.ready.get(k) ?? [] })),
        },
        {
          file: 'first-echo',
          title: 'Median time to the first echoed message',
          categories: done,
          unit: 'ms',
          series: variants.map((k) => ({ name: shortOf(k), values: charts.echo.get(k) ?? [] })),
        },
      ],
      notes,
    };
  },
};
export default suite;
