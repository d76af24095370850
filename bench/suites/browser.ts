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
    const wtPkg = await import('@quiver/webtransport');
    // The server listens with WebTransport on each QUIC engine this build has (`--engines quinn,quiche` to
    // choose), and the page uses each in the same rounds; the first is the default, whose figures the goals use.
    const engines =
      typeof ctx.args.engines === 'string' ? ctx.args.engines.split(',') : await wtPkg.availableEngines();
    const dflt = engines[0];
    const pair = await startPair(net, { page: BROWSER_PAGE, engines }, { realtime: realtimeArg(ctx.args) });
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
      const wtUrls = new Map<string, string>();
      for (const e of engines) {
        const port = pair.ports.wtByEngine?.[e];
        if (!port) throw new Error(`WebTransport listener (${e}) missing: ${pair.ports.wtEngineErrors?.[e]}`);
        wtUrls.set(e, `https://${net.serverAddr}:${port}/bench`);
      }
      notes.push(
        `WebTransport listeners on each QUIC engine (${engines.join(', ')}; the first is the default, whose figures the goals use), used in the same rounds.`,
      );
      const wssUrl = `wss://${net.serverAddr}:${pair.ports.wss}/bench`;
      /** `wt@<engine>` or `wss`. */
      const setupKinds = [...engines.map((e) => `wt@${e}`), 'wss'];
      const engineOf = (k: string): string | undefined => k.split('@')[1];

      // Setup, interleaved: one warm-up each (not recorded), then `count` rounds.
      const med = new Map<string, number>();
      const acc: Record<string, SetupOut> = Object.fromEntries(
        setupKinds.map((k) => [k, { samples: [], failures: 0 }]),
      );
      const call = (kind: string, n: number): Promise<SetupOut> => {
        const e = engineOf(kind);
        const url = e ? wtUrls.get(e)! : wssUrl;
        return page.evaluate(
          `window.bench.setup(${JSON.stringify(e ? 'wt' : 'wss')}, ${JSON.stringify(url)}, ${JSON.stringify(cert.hashHex)}, ${n})`,
        ) as Promise<SetupOut>;
      };
      for (const k of setupKinds) await call(k, 1);
      for (let i = 0; i < count; i++) {
        for (const k of setupKinds) {
          const r = await call(k, 1);
          acc[k].samples.push(...r.samples);
          acc[k].failures += r.failures;
          acc[k].firstError ??= r.firstError;
        }
        if ((i + 1) % 10 === 0) ctx.progress(`setup: ${i + 1}/${count} rounds`);
      }
      for (const k of setupKinds) {
        const isWt = engineOf(k) !== undefined;
        const label = isWt ? `Chromium WebTransport (${engineOf(k)})` : 'Chromium WebSocket (WSS)';
        const ready = acc[k].samples.map((s) => s.readyMs);
        const echo = acc[k].samples.map((s) => s.echoMs);
        const units = (v: number[]): number | string =>
          net.kind === 'link' && v.length ? round(median(v) / rtt, 2) : '';
        rows.push(
          distRow(`${label} ready`, `${group} setup`, ready, 'ms', {
            p50_rtt: units(ready),
            floor_rtt: isWt ? 2 : 3,
            failures: acc[k].failures,
          }),
          distRow(`${label} first echo`, `${group} setup`, echo, 'ms', {
            p50_rtt: units(echo),
            floor_rtt: isWt ? 2 : 4,
            failures: acc[k].failures,
          }),
        );
        if (acc[k].failures)
          notes.push(`${label}: ${acc[k].failures} failed, first error: ${acc[k].firstError}`);
        med.set(`${k}/ready`, median(ready));
        med.set(`${k}/echo`, median(echo));
      }
      const mr = (a: string, b: string): number =>
        round((med.get(a) ?? Number.NaN) / (med.get(b) ?? Number.NaN), 3);
      ratios.browser_ready_wt_over_wss_rtt50 = mr(`wt@${dflt}/ready`, 'wss/ready');
      ratios.browser_first_echo_wt_over_wss_rtt50 = mr(`wt@${dflt}/echo`, 'wss/echo');
      for (const e of engines) {
        ratios[`browser_ready_wt_${e}_over_wss_rtt50`] = mr(`wt@${e}/ready`, 'wss/ready');
        ratios[`browser_first_echo_wt_${e}_over_wss_rtt50`] = mr(`wt@${e}/echo`, 'wss/echo');
      }

      // Latency: WebTransport datagrams, a WebTransport stream and WSS at once, per loss level.
      const p99 = new Map<string, number>();
      const stale = new Map<string, { p99: number; delivered: number }>();
      let tag = 100;
      for (const loss of losses) {
        if (net.link) await net.link.setParams({ loss: loss / 100 });
        const g = net.kind === 'link' ? `rtt${rtt} loss${loss}%` : `loopback (loss ${loss}% not applied)`;
        ctx.progress(`latency: ${g}, ${durationMs / 1000} s at 60 Hz`);
        // Keys: `wt-datagram@<engine>`, `wt-stream@<engine>`, `wss`; the page is given the bare kind and the URL.
        const keys = [...engines.flatMap((e) => [`wt-datagram@${e}`, `wt-stream@${e}`]), 'wss'];
        const channels = keys.map((k) => ({
          kind: k.split('@')[0],
          url: engineOf(k) ? wtUrls.get(engineOf(k)!)! : wssUrl,
          hashHex: cert.hashHex,
          tag: tag++,
        }));
        const res = (await page.evaluate(
          `window.bench.latency(${JSON.stringify(channels)}, 60, ${durationMs}, 32, 3000)`,
        )) as LatOut[];
        for (const [i, r] of res.entries()) {
          const key = keys[i];
          const base =
            {
              'wt-datagram': 'Chromium WebTransport datagram',
              'wt-stream': 'Chromium WebTransport stream',
              wss: 'Chromium WebSocket (WSS)',
            }[r.kind] ?? r.kind;
          const label = engineOf(key) ? `${base} (${engineOf(key)})` : base;
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
          stale.set(`${loss}/${key}`, { p99: st.p99, delivered });
          rows.push(
            distRow(
              `${label} round-trip staleness`,
              g,
              ages,
              'ms',
              { sent: r.sent, delivered: round(delivered, 4), lost: r.sent - r.received },
              { rtt_ms: rtt, loss_pct: loss, transport: key, metric: 'staleness' },
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
              { rtt_ms: rtt, loss_pct: loss, transport: key },
            ),
          );
          p99.set(`${loss}/${key}`, summarize(r.rttMs).p99);
          await pair.server.call('bench/lib/roles/servers.ts', 'takeTag', r.tag);
        }
      }
      const ref = losses.includes(2) ? 2 : losses[losses.length - 1];
      const sr = (a: string, b: string): number =>
        round(
          (stale.get(`${ref}/${a}`)?.p99 ?? Number.NaN) / (stale.get(`${ref}/${b}`)?.p99 ?? Number.NaN),
          3,
        );
      const pr = (a: string, b: string): number =>
        round((p99.get(`${ref}/${a}`) ?? Number.NaN) / (p99.get(`${ref}/${b}`) ?? Number.NaN), 3);
      const wdg = `wt-datagram@${dflt}`;
      const wst = `wt-stream@${dflt}`;
      ratios.browser_p99_staleness_wt_datagram_over_wss_loss2_rtt50 = sr(wdg, 'wss');
      ratios.browser_p99_staleness_wt_stream_over_wss_loss2_rtt50 = sr(wst, 'wss');
      for (const [name, k] of [
        ['wt_datagram', wdg],
        ['wt_stream', wst],
        ['wss', 'wss'],
      ])
        ratios[`browser_delivered_${name}_loss2_rtt50`] = round(
          stale.get(`${ref}/${k}`)?.delivered ?? Number.NaN,
          4,
        );
      ratios.browser_p99_wt_datagram_over_wss_loss2_rtt50 = pr(wdg, 'wss');
      ratios.browser_p99_wt_stream_over_wss_loss2_rtt50 = pr(wst, 'wss');
      for (const e of engines) {
        ratios[`browser_p99_staleness_wt_${e}_datagram_over_wss_loss2_rtt50`] = sr(`wt-datagram@${e}`, 'wss');
        ratios[`browser_p99_staleness_wt_${e}_stream_over_wss_loss2_rtt50`] = sr(`wt-stream@${e}`, 'wss');
      }
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
