/**
 * Networking off the main thread (issue #18): headless Chromium in the client namespace of a 50 ms RTT emulated
 * link, its page's main thread blocked 50 ms in every 100 ms, the same probe schedule through the session on the
 * page's main thread and through `@quiver/session/worker` (the session in a dedicated Worker), in one run:
 * datagram echo and reliable echo at 60 Hz, and the input-to-server latency of that 60 Hz stream.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { bundleForBrowser, launchChromium, type LaunchedChromium } from '@quiver/testkit';
import type { BusyRunConfig, BusyRunResult } from '../lib/busy/page.js';
import type { PingResult } from '../lib/roles/busy-ping.js';
import { chromiumInNamespace } from '../lib/chromium-ns.js';
import {
  type BenchContext,
  type BenchSuite,
  type ResultRow,
  type SuiteResult,
  summarize,
} from '../lib/harness.js';
import { benchCert, numArg, RT_NOTE, realtimeArg } from '../lib/pair.js';
import { inNetns, schedDiff, schedSnapshot, type ThreadLoad } from '../lib/schedstat.js';
import { distRow, openPath, round } from '../lib/suite-util.js';

const ROLE = 'bench/lib/roles/busy-server.ts';
const ECHO = 'bench/lib/roles/echo.ts';
const PING = 'bench/lib/roles/busy-ping.ts';
const PAGE_HTML =
  '<!doctype html><meta charset="utf-8"><title>loading</title><script type="module" src="/page.js"></script>';

/** What one mode gathers over its rounds. */
function newAcc() {
  return {
    dS: [] as number[],
    dP: [] as number[],
    rS: [] as number[],
    rP: [] as number[],
    input: [] as number[],
    sent: 0,
    rtt: [] as number[],
    waitMax: 0,
    stall: 0,
    /** The datagram echo's legs: page → session thread, → server agent, → back in the session thread. */
    cross: [] as number[],
    up: [] as number[],
    down: [] as number[],
    /** The link baseline: Node's UDP ping from the client namespace, during this mode's rounds. */
    ping: [] as number[],
    /** The same at real-time priority. */
    rtPing: [] as number[],
    /** `--gaps`: the Worker thread's event-loop gaps over 6 ms. */
    gapMs: [] as number[],
    /** Per round: CPU time and run-queue wait of the client side's threads (Chromium's, the pingers'). */
    sched: [] as ThreadLoad[][],
  };
}

/** Which client-side process a pid is (Chromium's by `--type`, the pingers by scheduling policy). */
function clientProcess(ns: string | undefined) {
  return (pid: string, cmd: string): string | undefined => {
    if (!ns || !inNetns(pid, ns)) return undefined;
    if (cmd.includes('network.mojom.NetworkService')) return 'network service';
    const type = /--type=([a-z-]+)/.exec(cmd)?.[1];
    if (type) return type;
    if (cmd.includes('chrom')) return 'browser';
    if (cmd.includes('agent.ts')) {
      // /proc/<pid>/stat field 41 is the scheduling policy (0 normal, 1 FIFO, 2 RR).
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const policy = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[38];
      return policy === '0' ? 'pinger' : 'pinger (real-time)';
    }
    return undefined;
  };
}

/** Sets the niceness of `pid`'s autogroup (its session); returns the autogroup's name, '' when not possible. */
function setAutogroupNice(pid: string, nice: number): string {
  try {
    writeFileSync(`/proc/${pid}/autogroup`, String(nice));
    return readFileSync(`/proc/${pid}/autogroup`, 'utf8').split(' ')[0];
  } catch {
    return '';
  }
}

/** Mean CPU and wait per thread name over rounds, the threads that waited ≥ 2 ms/s or are the session's own. */
function schedRows(rounds: ThreadLoad[][]): ThreadLoad[] {
  const by = new Map<string, ThreadLoad>();
  for (const r of rounds)
    for (const t of r) {
      const x = by.get(t.name) ?? { name: t.name, threads: t.threads, cpuMsPerS: 0, waitMsPerS: 0 };
      x.cpuMsPerS += t.cpuMsPerS / rounds.length;
      x.waitMsPerS += t.waitMsPerS / rounds.length;
      by.set(t.name, x);
    }
  return [...by.values()]
    .filter((t) => t.waitMsPerS >= 2 || /DedicatedWorker|renderer\/chromium/.test(t.name))
    .sort((x, y) => y.waitMsPerS - x.waitMsPerS);
}

const suite: BenchSuite = {
  name: 'browser-busy',
  description:
    'Headless Chromium on a 50 ms RTT link with its main thread blocked 50 ms in every 100 ms: datagram and reliable echo p99 and 60 Hz input-to-server latency, session on the main thread against session in a Worker, in one run.',
  async run(ctx: BenchContext): Promise<SuiteResult> {
    const rtt = numArg(ctx.args, 'rtt', 50);
    const seconds = numArg(ctx.args, 'seconds', ctx.quick ? 10 : 30);
    const rounds = numArg(ctx.args, 'rounds', ctx.quick ? 1 : 3);
    const blockMs = numArg(ctx.args, 'block', 50);
    const periodMs = numArg(ctx.args, 'period', 100);
    const gaps = ctx.args.gaps === true;
    // `--nice N`: the autogroup niceness of the client side's sessions (Chromium's, the pingers'); 0 leaves them as
    // started. An experiment to tell CPU wait from code: on a shared machine it gives the client side a larger share.
    const nice = numArg(ctx.args, 'nice', 0);
    const rawFile = typeof ctx.args.raw === 'string' ? ctx.args.raw : undefined;
    const raw: unknown[] = [];
    const notes: string[] = [];
    const opened = await openPath(ctx, { name: `rtt${rtt}`, rttMs: rtt }, notes);
    const { net } = opened ?? (await openPath(ctx, { name: 'loopback', rttMs: 0 }, notes))!;
    const linkRtt = net.kind === 'link' ? rtt : 0;
    const cert = await benchCert();
    const bundle = (f: string) =>
      bundleForBrowser(fileURLToPath(new URL(`../lib/busy/${f}.ts`, import.meta.url)), { sourcemap: false });
    const files = { '/': PAGE_HTML, '/page.js': await bundle('page'), '/worker.js': await bundle('worker') };
    const server = await net.agent('server', { realtime: realtimeArg(ctx.args) });
    if (realtimeArg(ctx.args)) notes.push(`${RT_NOTE} (the server agent; Chromium runs at normal priority)`);
    let browser: LaunchedChromium | undefined;
    let wrapper: string | undefined;
    const rows: ResultRow[] = [];
    const ratios: Record<string, number> = {};
    const group = net.kind === 'link' ? `rtt${rtt}, busy ${blockMs}/${periodMs} ms` : 'loopback, busy';
    const acc = { main: newAcc(), worker: newAcc() };
    try {
      const ports = await server.call<{ https: number; wt: number }>(ROLE, 'startBusyServer', {
        host: net.serverAddr,
        certPem: cert.certPem,
        keyPem: cert.keyPem,
        files,
      });
      // The link baseline: a raw UDP ping at 60 Hz from a Node agent in the client namespace (normal priority,
      // as Chromium) to an echo in the server agent, during every round: the same link, the same machine load.
      const echo = await server.call<{ udpPort: number }>(ECHO, 'startEcho', net.serverAddr);
      const pinger = await net.agent('client');
      // The same ping at real-time priority, as the link's forwarder and the server agent run: what the link alone
      // adds, without the wait for a CPU that normal-priority processes (Chromium, the pinger above) have.
      const rtPinger = await net.agent('client', { realtime: realtimeArg(ctx.args) });
      wrapper = net.link ? chromiumInNamespace(net.link.clientNs) : undefined;
      ctx.progress(`launching Chromium${net.link ? ` in ${net.link.clientNs}` : ''}`);
      browser = await launchChromium({
        executablePath: wrapper,
        args: [`--ignore-certificate-errors-spki-list=${cert.spkiHashBase64}`],
      });
      const origin = `https://${net.serverAddr}:${ports.https}`;
      const page = await browser.newPage(`${origin}/`);
      const procLabel = clientProcess(net.link?.clientNs);
      if (nice !== 0) {
        const groups = new Set<string>();
        for (const { pid } of schedSnapshot(procLabel).samples.values())
          groups.add(setAutogroupNice(pid, nice));
        groups.delete('');
        notes.push(
          `client side (Chromium, pingers) at autogroup niceness ${nice} (--nice; ${groups.size} autogroups): an experiment, not the default`,
        );
      }
      await page.waitForFunction('document.title === "ready"');
      notes.push(`Chromium ${browser.version}${net.link ? ` in namespace ${net.link.clientNs}` : ''}.`);
      for (let r = 0; r < rounds; r++) {
        // Alternating, so that a drift in machine load during the run touches both modes alike.
        for (const mode of r % 2 === 0 ? (['main', 'worker'] as const) : (['worker', 'main'] as const)) {
          ctx.progress(`round ${r + 1}/${rounds}: session on ${mode}, ${seconds} s at 60 Hz`);
          const cfg: BusyRunConfig = {
            mode,
            wtUrl: `https://${net.serverAddr}:${ports.wt}/bench`,
            hashHex: cert.hashHex,
            workerUrl: `${origin}/worker.js`,
            durationMs: seconds * 1000,
            hz: 60,
            blockMs,
            periodMs,
            warmupMs: 1500,
            graceMs: 1000,
            gaps,
          };
          const pingCount = Math.round(((cfg.warmupMs + cfg.durationMs) * cfg.hz) / 1000);
          const pingArgs = [net.serverAddr, echo.udpPort, pingCount, cfg.hz];
          // CPU use and wait over the measured window only (the page's Worker exists only during its round).
          const sched = new Promise<ThreadLoad[]>((resolve) =>
            setTimeout(() => {
              const before = schedSnapshot(procLabel);
              setTimeout(() => resolve(schedDiff(before, schedSnapshot(procLabel))), cfg.durationMs - 500);
            }, cfg.warmupMs + 500),
          );
          const [res, ping, rtPing] = await Promise.all([
            page.evaluate(`window.busyBench.run(${JSON.stringify(cfg)})`) as Promise<BusyRunResult>,
            pinger.call<PingResult>(PING, 'ping', ...pingArgs),
            rtPinger.call<PingResult>(PING, 'ping', ...pingArgs),
          ]);
          const a = acc[mode];
          a.sched.push(await sched);
          a.cross.push(...res.dgram.crossMs);
          a.up.push(...res.dgram.upMs);
          a.down.push(...res.dgram.downMs);
          for (const [, v] of ping.samples) a.ping.push(v);
          for (const [, v] of rtPing.samples) a.rtPing.push(v);
          for (const [, g] of res.workerGaps ?? []) a.gapMs.push(g);
          if (rawFile) raw.push({ round: r, mode, res, ping: ping.samples, rtPing: rtPing.samples });
          a.dS.push(...res.dgram.sessionMs);
          a.dP.push(...res.dgram.pageMs);
          a.rS.push(...res.reliable.sessionMs);
          a.rP.push(...res.reliable.pageMs);
          a.sent += res.dgram.sent;
          a.rtt.push(res.rttMs);
          a.waitMax = Math.max(a.waitMax, res.mainThreadDelay?.maxMs ?? 0);
          a.stall = Math.max(a.stall, res.longestStallMs);
          a.input.push(...(await server.call<number[]>(ROLE, 'takeInputs', mode === 'main' ? 0 : 1)));
          if (res.transport !== 'webtransport') notes.push(`${mode}: ran over ${res.transport}`);
        }
      }
      await page.close();
    } finally {
      await browser?.close();
      await server.call(ROLE, 'stopBusyServer').catch(() => {});
      await server.call(ECHO, 'stopEcho').catch(() => {});
      await server.close();
      await net.close();
      if (wrapper) rmSync(wrapper, { force: true });
    }

    const label = { main: 'session on the main thread', worker: 'session in a Worker' } as const;
    const p99 = (v: number[]) => summarize(v).p99;
    for (const mode of ['main', 'worker'] as const) {
      const a = acc[mode];
      const extra = (got: number) => ({
        sent: a.sent,
        delivered: round(a.sent ? got / a.sent : 0, 4),
        session_rtt_ms: round(a.rtt.reduce((x, y) => x + y, 0) / Math.max(1, a.rtt.length), 1),
        longest_block_ms: round(a.stall, 0),
      });
      const params = { rtt_ms: linkRtt, block_ms: blockMs, period_ms: periodMs, session: mode };
      rows.push(
        distRow(`datagram echo, ${label[mode]}`, group, a.dS, 'ms', extra(a.dS.length), params),
        distRow(`reliable echo, ${label[mode]}`, group, a.rS, 'ms', extra(a.rS.length), params),
        distRow(`input to server (60 Hz), ${label[mode]}`, group, a.input, 'ms', { sent: a.sent }, params),
        distRow(
          `datagram echo to page handler, ${label[mode]}`,
          group,
          a.dP,
          'ms',
          extra(a.dP.length),
          params,
        ),
        distRow(
          `reliable echo to page handler, ${label[mode]}`,
          group,
          a.rP,
          'ms',
          extra(a.rP.length),
          params,
        ),
        distRow(
          `datagram echo: page → session thread, ${label[mode]}`,
          group,
          a.cross,
          'ms',
          undefined,
          params,
        ),
        distRow(
          `datagram echo: session thread → server, ${label[mode]}`,
          group,
          a.up,
          'ms',
          undefined,
          params,
        ),
        distRow(
          `datagram echo: server → session thread, ${label[mode]}`,
          group,
          a.down,
          'ms',
          undefined,
          params,
        ),
        distRow(
          `link baseline: Node UDP ping in the client namespace, during ${label[mode]} rounds`,
          group,
          a.ping,
          'ms',
          undefined,
          params,
        ),
        distRow(
          `link baseline at real-time priority, during ${label[mode]} rounds`,
          group,
          a.rtPing,
          'ms',
          undefined,
          params,
        ),
      );
      for (const t of schedRows(a.sched))
        rows.push({
          name: `CPU: ${t.name}${t.threads > 1 ? ` (${t.threads} threads)` : ''}, ${label[mode]}`,
          group,
          unit: 'ms/s',
          extra: { cpu_ms_per_s: round(t.cpuMsPerS, 1), cpu_wait_ms_per_s: round(t.waitMsPerS, 1) },
          params,
        });
      if (gaps && mode === 'worker')
        rows.push(
          distRow('Worker thread event-loop gaps over 6 ms', group, a.gapMs, 'ms', undefined, params),
        );
    }
    const m = acc.main;
    const w = acc.worker;
    ratios.busy_p99_worker_over_main = round(p99(w.dS) / p99(m.dS), 3);
    ratios.busy_p99_reliable_worker_over_main = round(p99(w.rS) / p99(m.rS), 3);
    ratios.busy_input_p99_worker_over_main = round(p99(w.input) / p99(m.input), 3);
    ratios.busy_page_handler_p99_worker_over_main = round(p99(w.dP) / p99(m.dP), 3);
    // The goal's RTT is the link's, measured in this run by the UDP ping during the Worker rounds (its median),
    // not the nominal setting; on loopback there is no link, and the goals compare to 0 as before.
    const measuredRtt = net.kind === 'link' ? summarize(w.ping).p50 : 0;
    ratios.busy_link_rtt_p50_ms = round(measuredRtt, 2);
    ratios.busy_link_rtt_p99_ms = round(net.kind === 'link' ? p99(w.ping) : 0, 2);
    ratios.busy_worker_dgram_p99_minus_rtt_ms = round(p99(w.dS) - measuredRtt, 1);
    ratios.busy_worker_reliable_p99_minus_rtt_ms = round(p99(w.rS) - measuredRtt, 1);
    ratios.busy_worker_dgram_p99_minus_link_p99_ms = round(p99(w.dS) - p99(w.ping), 1);
    ratios.busy_worker_max_main_thread_wait_ms = round(w.waitMax, 1);
    // What the ratio goal can reach with this run's parameters: a Worker answering at the link's own p99 over the
    // main thread's p99 (RTT + the block when the block is as long as the RTT: an echo of a message sent between
    // blocks comes back during the next one and waits for its end). And the ratio of the delays each adds to the
    // link's RTT, which has no such floor.
    ratios.busy_p99_floor_worker_over_main = round(p99(w.ping) / p99(m.dS), 3);
    ratios.busy_added_p99_worker_over_main = round((p99(w.dS) - measuredRtt) / (p99(m.dS) - measuredRtt), 3);
    notes.push(
      `Each mode sends the same 60 Hz schedule from the page's main thread (timers that fell due during a block fire late, together, as a game's input loop would) while a timer blocks that thread ${blockMs} ms in every ${periodMs} ms.`,
      'Echo rows: from the send on the page to the echo’s arrival in the thread that runs the session: the Worker (when the Worker posted it to the page, `WorkerClientSession.receivedAt`) or the main thread (its handler). That is when the value is in the session, for `latest()`, interpolation stamps and sync acks; the rows “to page handler” add the wait for the blocked main thread, which no session placement removes.',
      'Input to server: from the page’s send time to the message’s arrival in the server agent. The page, its Worker and the agent read one machine’s clock (epoch milliseconds, `performance.timeOrigin + performance.now()`), so one-way times need no clock sync.',
      'Legs: page → session thread (the Worker stamps the probe when it takes the page’s post), → server agent (stamped on the echo), server → session thread. Link baseline: a raw 60 Hz UDP ping from Node agents in the client namespace during the same rounds, at normal priority (as Chromium) and at real-time priority (as the link’s forwarder); the goal’s RTT is the normal-priority ping’s median. CPU rows: each client-side thread’s CPU time and run-queue wait per second over the measured window (`/proc/…/schedstat`); a wait of tens of ms per second shows as a tail of that size that no code in the thread can remove.',
      '`busy_p99_worker_over_main` is the datagram echo p99 (to the session) in the Worker over the same on the main thread; `busy_worker_dgram_p99_minus_rtt_ms` is the Worker’s datagram echo p99 minus the link’s measured RTT (goal ≤ 10 ms).',
      '`busy_p99_floor_worker_over_main` is about the lowest value `busy_p99_worker_over_main` can take in this run: the link’s own p99 (the Node ping during the Worker rounds) over the main thread’s datagram echo p99. When the block is as long as the RTT, every echo of a message sent between blocks arrives during the next block, so the main thread’s p99 is about RTT + block and the floor about (RTT + link jitter) ÷ (RTT + block): 0.52 at 50 ms and 50 ms on an idle machine, above the 0.5 goal. `busy_added_p99_worker_over_main` is the ratio of the delays each mode adds to the link’s RTT at p99, which has no such floor.',
    );
    if (rawFile) writeFileSync(rawFile, JSON.stringify(raw));
    if (net.kind !== 'link')
      notes.push(
        'no emulated link: measured on loopback, so the RTT is about 0 and the RTT goals compare to 0',
      );
    return {
      link: { ...net.describe(), seconds, rounds, blockMs, periodMs, hz: 60 },
      rows,
      ratios,
      goals: {
        busy_p99_worker_over_main: { op: '<=', value: 0.5, note: 'issue #18' },
        busy_worker_dgram_p99_minus_rtt_ms: {
          op: '<=',
          value: 10,
          note: 'issue #18: Worker p99 ≤ RTT + 10 ms',
        },
        busy_worker_reliable_p99_minus_rtt_ms: { op: '<=', value: 10, note: 'issue #18, reliable echo' },
      },
      notes,
    };
  },
};
export default suite;
