/**
 * Setup and latency in headless Chromium: the browser's native WebTransport against its native WebSocket (WSS),
 * over the same emulated link, with Chromium running inside the client namespace (`ip netns exec`) and the
 * server agent inside the server namespace. Without link support, both run on loopback and the suite says so.
 */
import { rmSync } from 'node:fs';
import { launchChromium, type LaunchedChromium } from '@quiver/testkit';
import { BROWSER_PAGE } from '../lib/browser-page.js';
import { chromiumInNamespace } from '../lib/chromium-ns.js';
import type { BenchContext, BenchSuite, ResultRow, SuiteResult } from '../lib/harness.js';
import { benchCert, listArg, numArg, RT_NOTE, realtimeArg, startPair } from '../lib/pair.js';
import { distRow, median, openPath, round } from '../lib/suite-util.js';
import { summarize } from '../lib/harness.js';
import { stalenessSamples } from '../lib/staleness.js';

/** Staleness is sampled from this long after the first send to the last send, every millisecond. */
const STALENESS_SKIP_MS = 500;

interface SetupOut {
  samples: { readyMs: number; echoMs: number }[];
  failures: number;
  firstError?: string;
}

interface LatOut {
  kind: string;
  tag: number;
  sent: number;
  received: number;
  rttMs: number[];
  /** Flat [receivedAt, sentAt] pairs of the echoes, page clock. */
  arrivals: number[];
  firstSentAt?: number;
  lastSentAt?: number;
  error?: string;
}

const suite: BenchSuite = {
  name: 'browser',
  description:
    'Headless Chromium over the emulated link: native WebTransport against native WebSocket (WSS), time to ready/open and first echo, and at 60 Hz under loss the staleness of the echoed state the page holds (sampled every 1 ms, lost updates included) and the echo latency of delivered messages.',
  async run(ctx: BenchContext): Promise<SuiteResult> {
    const rtt = numArg(ctx.args, 'rtt', 50);
    const count = numArg(ctx.args, 'count', ctx.quick ? 10 : 30);
    const losses = listArg(ctx.args, 'loss', [0, 2]);
    const durationMs = numArg(ctx.args, 'seconds', ctx.quick ? 8 : 30) * 1000;
    const notes: string[] = [];
    const opened = await openPath(ctx, { name: `rtt${rtt}`, rttMs: rtt }, notes);
    const { net } = opened ?? (await openPath(ctx, { name: 'loopback', rttMs: 0 }, notes))!;
    const cert = await benchCert();
    const pair = await startPair(net, { page: BROWSER_PAGE }, { realtime: realtimeArg(ctx.args) });
    if (realtimeArg(ctx.args)) notes.push(`${RT_NOTE} (the server agent; Chromium runs at normal priority)`);
    const rows: ResultRow[] = [];
    const ratios: Record<string, number> = {};
    let browser: LaunchedChromium | undefined;
    let wrapper: string | undefined;
    const group = net.kind === 'link' ? `rtt${rtt}` : 'loopback';
    try {
      const executablePath = net.link ? chromiumInNamespace(net.link.clientNs) : undefined;
      wrapper = executablePath;
      ctx.progress(`launching Chromium${net.link ? ` in ${net.link.clientNs}` : ''}`);
      browser = await launchChromium({
        executablePath,
        args: [`--ignore-certificate-errors-spki-list=${cert.spkiHashBase64}`],
      });
      const origin = `https://${net.serverAddr}:${pair.ports.wss}`;
      const page = await browser.newPage(`${origin}/`);
      await page.waitForFunction('document.title === "ready"');
      notes.push(
        `Chromium ${browser.version}${net.link ? ` in namespace ${net.link.clientNs}` : ''}; page served by the server agent at ${origin}/ (certificate accepted by SPKI pin; WebTransport by serverCertificateHashes).`,
      );
      if (!pair.ports.wt) throw new Error(`WebTransport listener missing: ${pair.ports.wtError}`);
      notes.push(`WebTransport listener on the ${pair.ports.wtEngine} QUIC engine.`);
      const wtUrl = `https://${net.serverAddr}:${pair.ports.wt}/bench`;
      const wssUrl = `wss://${net.serverAddr}:${pair.ports.wss}/bench`;

      // Setup, interleaved: one warm-up each (not recorded), then `count` rounds.
      const med = new Map<string, number>();
      const acc: Record<'wt' | 'wss', SetupOut> = {
        wt: { samples: [], failures: 0 },
        wss: { samples: [], failures: 0 },
      };
      const call = (kind: 'wt' | 'wss', n: number): Promise<SetupOut> =>
        page.evaluate(
          `window.bench.setup(${JSON.stringify(kind)}, ${JSON.stringify(kind === 'wt' ? wtUrl : wssUrl)}, ${JSON.stringify(cert.hashHex)}, ${n})`,
        ) as Promise<SetupOut>;
      await call('wt', 1);
      await call('wss', 1);
      for (let i = 0; i < count; i++) {
        for (const k of ['wt', 'wss'] as const) {
          const r = await call(k, 1);
          acc[k].samples.push(...r.samples);
          acc[k].failures += r.failures;
          acc[k].firstError ??= r.firstError;
        }
        if ((i + 1) % 10 === 0) ctx.progress(`setup: ${i + 1}/${count} rounds`);
      }
      for (const k of ['wt', 'wss'] as const) {
        const label = k === 'wt' ? 'Chromium WebTransport' : 'Chromium WebSocket (WSS)';
        const ready = acc[k].samples.map((s) => s.readyMs);
        const echo = acc[k].samples.map((s) => s.echoMs);
        const units = (v: number[]): number | string =>
          net.kind === 'link' && v.length ? round(median(v) / rtt, 2) : '';
        rows.push(
          distRow(`${label} ready`, `${group} setup`, ready, 'ms', {
            p50_rtt: units(ready),
            floor_rtt: k === 'wt' ? 2 : 3,
            failures: acc[k].failures,
          }),
          distRow(`${label} first echo`, `${group} setup`, echo, 'ms', {
            p50_rtt: units(echo),
            floor_rtt: k === 'wt' ? 2 : 4,
            failures: acc[k].failures,
          }),
        );
        if (acc[k].failures)
          notes.push(`${label}: ${acc[k].failures} failed, first error: ${acc[k].firstError}`);
        med.set(`${k}/ready`, median(ready));
        med.set(`${k}/echo`, median(echo));
      }
      ratios.browser_ready_wt_over_wss_rtt50 = round(med.get('wt/ready')! / med.get('wss/ready')!, 3);
      ratios.browser_first_echo_wt_over_wss_rtt50 = round(med.get('wt/echo')! / med.get('wss/echo')!, 3);

      // Latency: WebTransport datagrams, a WebTransport stream and WSS at once, per loss level.
      const p99 = new Map<string, number>();
      const stale = new Map<string, { p99: number; delivered: number }>();
      let tag = 100;
      for (const loss of losses) {
        if (net.link) await net.link.setParams({ loss: loss / 100 });
        const g = net.kind === 'link' ? `rtt${rtt} loss${loss}%` : `loopback (loss ${loss}% not applied)`;
        ctx.progress(`latency: ${g}, ${durationMs / 1000} s at 60 Hz`);
        const channels = [
          { kind: 'wt-datagram', url: wtUrl, hashHex: cert.hashHex, tag: tag++ },
          { kind: 'wt-stream', url: wtUrl, hashHex: cert.hashHex, tag: tag++ },
          { kind: 'wss', url: wssUrl, hashHex: cert.hashHex, tag: tag++ },
        ];
        const res = (await page.evaluate(
          `window.bench.latency(${JSON.stringify(channels)}, 60, ${durationMs}, 32, 3000)`,
        )) as LatOut[];
        for (const r of res) {
          const label =
            {
              'wt-datagram': 'Chromium WebTransport datagram',
              'wt-stream': 'Chromium WebTransport stream',
              wss: 'Chromium WebSocket (WSS)',
            }[r.kind] ?? r.kind;
          if (r.error) notes.push(`${g} ${label}: ${r.error}`);
          const delivered = r.sent ? r.received / r.sent : 0;
          const ages =
            r.firstSentAt === undefined || r.lastSentAt === undefined
              ? []
              : stalenessSamples(r.arrivals, {
                  from: r.firstSentAt + STALENESS_SKIP_MS,
                  to: r.lastSentAt,
                  streamStart: r.firstSentAt,
                });
          const st = summarize(ages);
          stale.set(`${loss}/${r.kind}`, { p99: st.p99, delivered });
          rows.push(
            distRow(
              `${label} round-trip staleness`,
              g,
              ages,
              'ms',
              { sent: r.sent, delivered: round(delivered, 4), lost: r.sent - r.received },
              { rtt_ms: rtt, loss_pct: loss, transport: r.kind, metric: 'staleness' },
            ),
            distRow(
              `${label} echo (delivered only)`,
              g,
              r.rttMs,
              'ms',
              {
                sent: r.sent,
                delivered: round(r.sent ? r.received / r.sent : 0, 4),
                lost: r.sent - r.received,
              },
              { rtt_ms: rtt, loss_pct: loss, transport: r.kind },
            ),
          );
          p99.set(`${loss}/${r.kind}`, summarize(r.rttMs).p99);
          await pair.server.call('bench/lib/roles/servers.ts', 'takeTag', r.tag);
        }
      }
      const ref = losses.includes(2) ? 2 : losses[losses.length - 1];
      const sr = (a: string, b: string): number =>
        round(stale.get(`${ref}/${a}`)!.p99 / stale.get(`${ref}/${b}`)!.p99, 3);
      ratios.browser_p99_staleness_wt_datagram_over_wss_loss2_rtt50 = sr('wt-datagram', 'wss');
      ratios.browser_p99_staleness_wt_stream_over_wss_loss2_rtt50 = sr('wt-stream', 'wss');
      for (const k of ['wt-datagram', 'wt-stream', 'wss'])
        ratios[`browser_delivered_${k.replace('-', '_')}_loss2_rtt50`] = round(
          stale.get(`${ref}/${k}`)?.delivered ?? Number.NaN,
          4,
        );
      ratios.browser_p99_wt_datagram_over_wss_loss2_rtt50 = round(
        p99.get(`${ref}/wt-datagram`)! / p99.get(`${ref}/wss`)!,
        3,
      );
      ratios.browser_p99_wt_stream_over_wss_loss2_rtt50 = round(
        p99.get(`${ref}/wt-stream`)! / p99.get(`${ref}/wss`)!,
        3,
      );
      if (net.kind !== 'link')
        notes.push(
          'no emulated link: measured on loopback, the rtt50 ratios were measured without delay or loss',
        );
      notes.push(
        `round-trip staleness (the headline): the age, by the page's send time, of the newest echoed update the page holds, sampled every 1 ms from ${STALENESS_SKIP_MS} ms after the first send to the last; loss on either way leaves the previous update in place, so it counts. Round trip because the page clock is not the server clock.`,
        'echo (delivered only): round trips of the messages that came back; lost ones are left out (`lost`), so these flatter a lossy transport: secondary figures. `browser_p99_wt_datagram_over_wss_loss2_rtt50` is that delivered-only ratio.',
      );
      notes.push(
        'In the page, createBidirectionalStream() resolves only once the session is ready (W3C WebTransport), so a browser echo cannot beat ready + 1 RTT (3 RTT floor, against 4 for WSS); the Node client of the setup suite writes before ready.',
      );
      await page.close();
    } finally {
      await browser?.close();
      await pair.close();
      await net.close();
      if (wrapper) rmSync(wrapper, { force: true });
    }
    return {
      link: { ...net.describe(), count, lossesPct: losses, durationMs },
      rows,
      ratios,
      goals: {
        browser_ready_wt_over_wss_rtt50: { op: '<=', value: 0.7, note: 'as setup' },
        browser_first_echo_wt_over_wss_rtt50: { op: '<=', value: 0.52, note: 'as setup' },
        browser_p99_staleness_wt_datagram_over_wss_loss2_rtt50: {
          op: '<=',
          value: 0.5,
          note: 'p99 age of the echoed state held, lost updates included',
        },
        browser_p99_wt_datagram_over_wss_loss2_rtt50: {
          op: '<=',
          value: 0.5,
          note: 'echo p99 over delivered messages only',
        },
      },
      charts: [
        {
          file: 'setup',
          title: 'Chromium: median time to ready/open and first echo',
          categories: ['ready/open', 'first echo'],
          unit: 'ms',
          series: [
            {
              name: 'WebTransport',
              values: rows
                .filter((r) => r.name.startsWith('Chromium WebTransport ') && r.group?.endsWith('setup'))
                .map((r) => r.p50 ?? Number.NaN),
            },
            {
              name: 'WebSocket (WSS)',
              values: rows
                .filter((r) => r.name.startsWith('Chromium WebSocket') && r.group?.endsWith('setup'))
                .map((r) => r.p50 ?? Number.NaN),
            },
          ],
        },
      ],
      notes,
    };
  },
};
export default suite;
