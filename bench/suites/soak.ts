/**
 * Soak: many concurrent `@quiver/session` sessions, WebTransport and our WebSocket transport mixed, at a game's
 * tick rate (input up, state down), for minutes, with joins and departures throughout: every client leaves cleanly
 * after a random lifetime and is replaced, and every `--kill-every` seconds a whole client process is SIGKILLed (no
 * close frame, no CONNECTION_CLOSE) and replaced by a fresh one whose clients join over a few seconds.
 *
 * The server runs in its own process, the clients in two others. Reported: server RSS over time (and its growth
 * after warm-up), event-loop delay p99, sessions leaked (the server's sessions once every client is gone, after the
 * resume window and the QUIC idle timeout) and handles left after the server shut down.
 */
import type { BenchContext, BenchSuite, ResultRow, SuiteResult } from '../lib/harness.js';
import { summarize } from '../lib/harness.js';
import os from 'node:os';
import { type Agent, type AgentOptions, loopback } from '../lib/network.js';
import { benchCert, numArg } from '../lib/pair.js';
import type { Target } from '../lib/roles/clients.js';
import type { CohortStats } from '../lib/roles/soak-clients.js';
import type { LeftoverSession, SoakPorts, SoakSample } from '../lib/roles/soak-server.js';
import { rssAtEqualSessions, rssFit } from '../lib/soak-rss.js';
import { round } from '../lib/suite-util.js';

const SERVER = 'bench/lib/roles/soak-server.ts';
const COHORT = 'bench/lib/roles/soak-clients.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Cohort {
  agent: Agent;
  startedAt: number;
  seed: number;
  last?: CohortStats;
}

const suite: BenchSuite = {
  name: 'soak',
  description:
    'Many sessions (WebTransport and WebSocket mixed) at 20 Hz for minutes with joins and SIGKILLed client processes throughout: server RSS over time, event-loop delay, sessions leaked, handles left.',
  async run(ctx: BenchContext): Promise<SuiteResult> {
    const sessions = numArg(ctx.args, 'sessions', ctx.quick ? 60 : 1000);
    const seconds = numArg(ctx.args, 'seconds', ctx.quick ? 30 : 600);
    const wtFraction = numArg(ctx.args, 'wt', 0.1);
    const hz = numArg(ctx.args, 'hz', 20);
    const killEveryS = numArg(ctx.args, 'kill-every', ctx.quick ? 10 : 60);
    const spreadS = numArg(ctx.args, 'spread', ctx.quick ? 3 : 10);
    const sampleS = numArg(ctx.args, 'sample', ctx.quick ? 1 : 5);
    const resumeWindowMs = numArg(ctx.args, 'resume', 3000);
    const idleMs = numArg(ctx.args, 'idle', 3000);
    const lifetimeS = numArg(ctx.args, 'lifetime', ctx.quick ? 8 : 60);
    const warmupFraction = 0.25;
    // The QUIC engine of the WebTransport share, on the server and in the client agents (default: the package's).
    const engineArg = ctx.args.engine;
    if (engineArg !== undefined && engineArg !== 'quiche' && engineArg !== 'quinn')
      throw new Error(`--engine must be quiche or quinn, not ${engineArg}`);
    const engine = engineArg as 'quiche' | 'quinn' | undefined;
    // The WebSocket listener's TCP accept queue (0: Node's 511).
    const backlog = numArg(ctx.args, 'backlog', 0);
    const snapshots = ctx.args.snapshots === 'true';
    // Two cores shared by the server and its load generator: the server gets CPU 0 to itself (as far as this
    // process tree goes) and the client processes CPU 1, so that the figures are the server's, not the clients'.
    const cpus = os.cpus().length;
    const pin = cpus >= 2 && ctx.args.pin !== 'false';
    // Other work on a shared machine (tests, compilers, browsers of ~10 sessions: load 15-25 on 2 cores here) left
    // the server ~0.1 core and its event loop seconds late, so that it accepted 4-6 connections a second and the
    // soak measured the scheduler. `nice -n` cannot help: with autogroups CFS shares the CPUs between sessions
    // first. As root each agent runs in a session of its own whose autogroup has niceness -10 (about 9 times the
    // weight of another session), not a real-time policy that would starve the rest for minutes.
    const root = typeof process.getuid === 'function' && process.getuid() === 0;
    const nice = numArg(ctx.args, 'nice', root ? -10 : 0);
    const prof = ctx.args.prof === 'cpu' || ctx.args.prof === 'heap' ? ctx.args.prof : undefined;
    const profArgs = prof ? [`--${prof}-prof`, `--${prof}-prof-dir=bench/results/prof`] : [];
    const serverOpts: AgentOptions = { ...(pin ? { cpus: '0' } : {}), nice, nodeArgs: profArgs };
    const clientOpts: AgentOptions = { ...(pin ? { cpus: `1-${cpus - 1}` } : {}), nice };
    const net = loopback();
    const cert = await benchCert();
    const server = await net.agent('server', serverOpts);
    const ports = await server.call<SoakPorts>(SERVER, 'startSoakServer', {
      host: net.serverAddr,
      certPem: cert.certPem,
      keyPem: cert.keyPem,
      hz,
      resumeWindowMs,
      idleTimeoutMs: idleMs,
      engine,
      ...(backlog ? { backlog } : {}),
    });
    const target: Target = {
      host: net.serverAddr,
      ports: { wt: ports.wt, wtError: ports.wtError, qws: ports.qws } as Target['ports'],
      certHashHex: cert.hashHex,
      certPem: cert.certPem,
    };
    const notes: string[] = [
      `${sessions} sessions in two client processes (${round(wtFraction * 100, 1)} % on WebTransport (QUIC engine ${ports.engine ?? 'none'}), the rest on our WebSocket transport over TLS), loopback, ${hz} Hz input up and state down per session, ${seconds} s.`,
      `Joins throughout: each client leaves cleanly after 0.5-1.5 × ${lifetimeS} s and a new one joins; every ${killEveryS} s the older client process is SIGKILLed and a fresh one joins its ${sessions / 2} clients over ${spreadS} s.`,
      `Server: resume window ${resumeWindowMs} ms, QUIC idle timeout ${idleMs} ms. RSS growth after warm-up (${warmupFraction * 100} % of the run): \`rss_growth_at_equal_sessions\` (the goal) is the median, over the last third of the samples after warm-up, of RSS over the mean RSS of the first third's samples with the same session count (±2 %); \`rss_growth_fit\` the time term of a fit RSS = a + b·sessions + c·t (b: \`rss_per_session_kb\`); \`rss_growth_after_warmup\` the mean RSS of the last 10 % of the samples over the first 10 % after warm-up, whatever the counts.`,
    ];
    notes.push(
      pin
        ? `${cpus} CPUs: server process pinned to CPU 0, client processes to CPU ${cpus === 2 ? '1' : `1-${cpus - 1}`} (taskset). RSS, heap, CPU and event-loop figures are the server process's only. The machine is shared: other work is not pinned away from CPU 0.`
        : `${cpus} CPU(s), not pinned: server and clients compete for the same cores.`,
    );
    notes.push(
      nice
        ? `Server and client agents each in a session (autogroup) of its own at niceness ${nice} (\`--nice 0\`: own sessions at the default weight): the machine is shared, and in the bench's session other sessions' work left the server ~0.1 core.`
        : "Agents at the bench process's priority.",
    );
    if (prof) notes.push(`server agent ran with --${prof}-prof (files in bench/results/prof).`);
    if (ports.wtError) notes.push(`WebTransport did not listen: ${ports.wtError}`);
    if (seconds < 300)
      notes.push(
        'A run this short is mostly warm-up (JIT, buffer pools, the first kill cycles): its RSS growth is not a leak measure; the goal is meant for the full 10-minute run.',
      );
    const samples: SoakSample[] = [];
    const cohorts: Cohort[] = [];
    const killed: CohortStats[] = [];
    let seed = ctx.seed * 1000;
    const startCohort = async (): Promise<Cohort> => {
      const agent = await net.agent('client', clientOpts);
      const c: Cohort = { agent, startedAt: performance.now(), seed: ++seed };
      await agent.call(COHORT, 'startCohort', {
        target,
        count: Math.round(sessions / 2),
        wtFraction,
        hz,
        spreadMs: spreadS * 1000,
        lifetimeMs: [lifetimeS * 500, lifetimeS * 1500],
        seed: c.seed,
        engine,
      });
      return c;
    };
    // A swamped client process answers late: its last figures stand rather than stall the sampling.
    const statsOf = (c: Cohort): Promise<CohortStats | undefined> =>
      Promise.race([
        c.agent.call<CohortStats>(COHORT, 'cohortStats').catch(() => c.last),
        sleep(5000).then(() => c.last),
      ]);
    const t0 = performance.now();
    let kills = 0;
    let leaked = -1;
    let handlesLeft: string[] = [];
    let overall = { p50: 0, p99: 0, max: 0 };
    const gcSamples: SoakSample[] = [];
    let drainMs = -1;
    const snapshot = async (tag: string) => {
      if (!snapshots) return;
      const file = await server.call<string>(
        SERVER,
        'soakHeapSnapshot',
        `bench/results/prof/soak-${tag}.heapsnapshot`,
      );
      notes.push(`heap snapshot (${tag}): ${file}`);
    };
    try {
      cohorts.push(await startCohort(), await startCohort());
      let nextKill = t0 + killEveryS * 1000;
      while (performance.now() - t0 < seconds * 1000) {
        await sleep(sampleS * 1000);
        samples.push(await server.call<SoakSample>(SERVER, 'sampleSoakServer'));
        for (const c of cohorts) c.last = await statsOf(c);
        const s = samples[samples.length - 1];
        if (gcSamples.length === 0 && s.t >= seconds * 1000 * warmupFraction) {
          // Retained memory after warm-up: a full GC first, so that heap growth later is what stays reachable.
          gcSamples.push(await server.call<SoakSample>(SERVER, 'sampleSoakServer', { gc: true }));
          await snapshot('warm');
        }
        ctx.progress(
          `${round(s.t / 1000, 0)} s: ${s.open} open + ${s.disconnected} awaiting resume (${JSON.stringify(s.byTransport)}), RSS ${round(s.rssBytes / 2 ** 20, 1)} MB, loop delay p99 ${round(s.eldP99Ms, 1)} ms`,
        );
        if (performance.now() >= nextKill && performance.now() - t0 < seconds * 1000 - spreadS * 1000) {
          const victim = cohorts.shift()!;
          if (victim.last) killed.push(victim.last);
          victim.agent.kill();
          kills++;
          cohorts.push(await startCohort());
          nextKill += killEveryS * 1000;
        }
      }
      gcSamples.push(await server.call<SoakSample>(SERVER, 'sampleSoakServer', { gc: true }));
      await snapshot('end');
      // Every client gone at once, abruptly: the server must forget every session on its own.
      for (const c of cohorts) {
        c.last = await statsOf(c);
        if (c.last) killed.push(c.last);
        c.agent.kill();
      }
      cohorts.length = 0;
      // A vanished client is noticed by the QUIC idle timeout (at least 3 PTO, RFC 9000 §10.1, so longer on a loaded
      // server), by the session heartbeat timeout (15 s) or by TCP; then the resume window runs. What is still
      // there 60 s after all that is leaked; how long the drain took tells a backlog from a leak.
      const killedAt = performance.now();
      const deadline = killedAt + resumeWindowMs + idleMs + 15_000 + 60_000;
      let last = await server.call<SoakSample>(SERVER, 'sampleSoakServer');
      while (
        performance.now() < deadline &&
        (last.sessions > 0 || last.wtConnections > 0 || last.qwsSessions > 0)
      ) {
        await sleep(1000);
        last = await server.call<SoakSample>(SERVER, 'sampleSoakServer');
        ctx.progress(
          `draining: ${last.open} open + ${last.disconnected} awaiting resume (${JSON.stringify(last.byTransport)}), ${last.wtConnections} QUIC connection(s), ${last.qwsSessions} WebSocket session(s)`,
        );
      }
      if (last.sessions > 0) {
        const left = await server.call<LeftoverSession[]>(SERVER, 'leftoverSessions', 10);
        notes.push(`sessions left at the deadline (first 10): ${JSON.stringify(left)}`);
        ctx.progress(`left: ${JSON.stringify(left)}`);
      }
      if (last.wtConnections > 0) {
        const q = await server.call<unknown[]>(SERVER, 'quicConnections');
        notes.push(`QUIC connections left at the deadline (first 5): ${JSON.stringify(q)}`);
        ctx.progress(`QUIC connections left: ${JSON.stringify(q)}`);
      }
      leaked = last.sessions;
      if (last.sessions === 0 && last.wtConnections === 0 && last.qwsSessions === 0)
        drainMs = performance.now() - killedAt;
      if (last.wtConnections || last.qwsSessions)
        notes.push(
          `transport state left at the deadline: ${last.wtConnections} QUIC connection(s), ${last.qwsSessions} WebSocket session(s)`,
        );
      samples.push(last);
      overall = await server.call(SERVER, 'overallEventLoopDelay');
      handlesLeft = (await server.call<{ handlesLeft: string[] }>(SERVER, 'stopSoakServer')).handlesLeft;
    } finally {
      for (const c of cohorts) c.agent.kill();
      await server.close();
      await net.close();
    }

    const run = samples.filter((s) => s.t <= seconds * 1000);
    const warm = run.filter((s) => s.t >= seconds * 1000 * warmupFraction);
    const head = warm.slice(0, Math.max(1, Math.ceil(warm.length * 0.1)));
    const tail = run.slice(-Math.max(1, Math.ceil(run.length * 0.1)));
    const mean = (xs: SoakSample[]) => xs.reduce((a, s) => a + s.rssBytes, 0) / Math.max(1, xs.length);
    const growth = head.length && tail.length ? mean(tail) / mean(head) - 1 : Number.NaN;
    const fit = rssFit(warm);
    const equal = rssAtEqualSessions(warm);
    const total = (k: 'wt' | 'qws', f: keyof CohortStats['wt']) => killed.reduce((a, c) => a + c[k][f], 0);
    const rows: ResultRow[] = [];
    const mb = (b: number) => round(b / 2 ** 20, 1);
    const [gcWarm, gcEnd] = gcSamples;
    const heapGrowth = gcWarm && gcEnd ? gcEnd.heapUsedBytes / gcWarm.heapUsedBytes - 1 : Number.NaN;
    const first = run[0];
    const lastRun = run[run.length - 1];
    const serverCpu =
      first && lastRun && lastRun.t > first.t
        ? (lastRun.cpuUs - first.cpuUs) / 1000 / (lastRun.t - first.t)
        : 0;
    const clientCpuUs = killed.reduce((a, c) => a + (c.cpuUs ?? 0), 0);
    const openWarm = warm.map((s) => s.open).sort((a, b) => a - b);
    const achieved = openWarm.length ? openWarm[Math.floor(openWarm.length / 2)] : 0;
    rows.push({
      name: 'server RSS',
      group: 'memory',
      unit: 'MB',
      ...summarize(run.map((s) => s.rssBytes / 2 ** 20)),
      extra: {
        'after warm-up': mb(mean(head)),
        end: mb(mean(tail)),
        'growth %': round(growth * 100, 2),
        'heap after GC, warm': gcWarm ? mb(gcWarm.heapUsedBytes) : -1,
        'heap after GC, end': gcEnd ? mb(gcEnd.heapUsedBytes) : -1,
        'heap after GC growth %': round(heapGrowth * 100, 2),
        'external after GC, warm': gcWarm ? mb(gcWarm.externalBytes) : -1,
        'external after GC, end': gcEnd ? mb(gcEnd.externalBytes) : -1,
        'growth at equal sessions %': round(equal.growth * 100, 2),
        'samples matched': equal.matched,
        'fit growth %': round(fit.growth * 100, 2),
        'KB per session (fit)': round(fit.perSession / 1024, 1),
        'fit r2': round(fit.r2, 3),
      },
    });
    rows.push({
      name: 'CPU',
      group: 'cpu',
      unit: 'cores',
      extra: {
        'server (mean over the run)': round(serverCpu, 2),
        'clients (all processes, mean)': round(clientCpuUs / 1e6 / Math.max(1, seconds), 2),
        'client process RSS max MB': mb(Math.max(0, ...killed.map((c) => c.rssBytes ?? 0))),
      },
    });
    rows.push({
      name: 'server event-loop delay p99 (per sample)',
      group: 'event loop',
      unit: 'ms',
      ...summarize(run.map((s) => s.eldP99Ms)),
      extra: { 'whole run p99': round(overall.p99, 1), 'whole run max': round(overall.max, 1) },
    });
    for (const k of ['wt', 'qws'] as const) {
      const first = killed.map((c) => c.firstError[k]).find((e) => e);
      rows.push({
        name: k === 'wt' ? 'WebTransport clients' : 'WebSocket clients',
        group: 'clients',
        unit: 'sessions',
        extra: {
          joined: total(k, 'joined'),
          'failed joins': total(k, 'failed'),
          'left cleanly': total(k, 'closedCleanly'),
          'lost unexpectedly': total(k, 'lostUnexpectedly'),
          'inputs sent': total(k, 'inputsSent'),
          'states received': total(k, 'statesReceived'),
          'states per input': round(total(k, 'statesReceived') / Math.max(1, total(k, 'inputsSent')), 3),
        },
      });
      if (first) notes.push(`${k}: first failed join: ${first}`);
    }
    rows.push({
      name: 'server sessions',
      group: 'sessions',
      unit: 'sessions',
      ...summarize(run.map((s) => s.sessions)),
      extra: {
        'open after warm-up, median': achieved,
        'open after warm-up, max': openWarm.length ? openWarm[openWarm.length - 1] : 0,
        'drain after last kill s': drainMs < 0 ? -1 : round(drainMs / 1000, 1),
        'process kills': kills,
        'leaked after all clients gone': leaked,
        'handles left': handlesLeft.length,
      },
    });
    // Unreliable state the server held back or dropped: `stale` is the freshness guard (the send estimate said it
    // would arrive more than maxUnreliableAgeMs late), `congestion` a full datagram queue.
    const drops = run[run.length - 1]?.drops ?? {};
    if (Object.keys(drops).length)
      notes.push(`messages the server dropped (by reason): ${JSON.stringify(drops)}`);
    const rejections = samples[samples.length - 1]?.rejections ?? {};
    if (Object.keys(rejections).length)
      notes.push(`session requests refused by the server: ${JSON.stringify(rejections)}`);
    // Upgrades the listener saw against joins the clients attempted: a gap is connections that never got past
    // the kernel's accept queue or TLS (the server's event loop too slow to accept them).
    const upgrades = samples[samples.length - 1]?.qwsUpgrades;
    if (upgrades) notes.push(`WebSocket upgrades seen by the server: ${JSON.stringify(upgrades)}`);
    // The WebSocket admission rate: Node 20's libuv (1.46) accepts one TCP connection per event-loop iteration
    // (libuv PR 3696), so a saturated loop admits a few per second however long the listen queue is.
    const joinRate = (k: 'wt' | 'qws') => round(total(k, 'joined') / Math.max(1, seconds), 2);
    notes.push(
      `joins per second over the run: WebTransport ${joinRate('wt')}, WebSocket ${joinRate('qws')}; WebSocket upgrade requests per second: ${round((upgrades?.requests ?? 0) / Math.max(1, seconds), 2)}.`,
    );
    if (handlesLeft.length) notes.push(`handles left after shutdown: ${handlesLeft.join(', ')}`);
    const label = (s: SoakSample) => `${round(s.t / 1000, 0)}s`;
    const every = Math.max(1, Math.ceil(run.length / 40));
    const plotted = run.filter((_, i) => i % every === 0);
    return {
      link: {
        loopback: true,
        sessions,
        seconds,
        wtFraction,
        engine: ports.engine ?? '',
        hz,
        killEveryS,
        resumeWindowMs,
        idleMs,
      },
      rows,
      ratios: {
        rss_growth_at_equal_sessions: round(equal.growth, 4),
        rss_growth_fit: round(fit.growth, 4),
        rss_per_session_kb: round(fit.perSession / 1024, 1),
        rss_growth_after_warmup: round(growth, 4),
        sessions_leaked: leaked,
        sessions_open_after_warmup: achieved,
        heap_growth_after_gc: round(heapGrowth, 4),
        handles_left: handlesLeft.length,
        eld_p99_ms: round(overall.p99, 1),
      },
      goals: {
        rss_growth_at_equal_sessions: {
          op: '<',
          value: 0.05,
          note: 'issue 11 (RSS growth after warm-up, at equal session count)',
        },
        sessions_leaked: { op: '<=', value: 0, note: 'issue 11' },
        handles_left: { op: '<=', value: 0, note: 'issue 11' },
      },
      charts: [
        {
          file: 'rss',
          title: `Server RSS, ${sessions} sessions at ${hz} Hz`,
          kind: 'line',
          categories: plotted.map(label),
          unit: 'MB',
          series: [
            { name: 'RSS', values: plotted.map((s) => mb(s.rssBytes)) },
            { name: 'heap used', values: plotted.map((s) => mb(s.heapUsedBytes)) },
          ],
        },
        {
          file: 'sessions',
          title: 'Server sessions and event-loop delay p99',
          kind: 'line',
          categories: plotted.map(label),
          unit: 'sessions / ms',
          series: [
            { name: 'open', values: plotted.map((s) => s.open) },
            { name: 'awaiting resume', values: plotted.map((s) => s.disconnected) },
            { name: 'loop delay p99 ms', values: plotted.map((s) => round(s.eldP99Ms, 1)) },
          ],
        },
      ],
      notes,
    };
  },
};
export default suite;
