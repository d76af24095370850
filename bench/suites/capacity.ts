/**
 * Capacity, sized as a game studio would size a server: the most sessions one server process sustains at 30 Hz,
 * with a 200-byte update to every session and a 200-byte input from every session each tick, while the server's
 * tick lateness p99 stays under 5 ms and at least 99 % of updates and of inputs arrive. For plain `ws`, our
 * WebSocket transport over TLS and WebTransport on each QUIC engine, in one run: every session count is tried for
 * every transport before the next count (interleaved, so machine noise hits all alike).
 *
 * Each step gets a fresh server agent (pinned to CPU 0 on machines with two or more) and fresh client agents (on
 * the other CPUs): one step's garbage and JIT state never leak into the next. Everything is bounded: a fixed
 * ladder of counts, one refinement step between the last pass and the first fail, one retry of a failed step.
 */
import os from 'node:os';
import type { BenchContext, BenchSuite, ResultRow, SuiteResult } from '../lib/harness.js';
import { summarize } from '../lib/harness.js';
import { type Agent, type AgentOptions, loopback } from '../lib/network.js';
import { benchCert, listArg, numArg, realtimeArg } from '../lib/pair.js';
import type {
  CapacityClientResult,
  CapacityKind,
  CapacityPlan,
  CapacityServerResult,
} from '../lib/roles/capacity.js';
import type { Target } from '../lib/roles/clients.js';
import { monoMs } from '../lib/roles/wire.js';
import { round } from '../lib/suite-util.js';

const ROLE = 'bench/lib/roles/capacity.ts';
const LATENESS_P99_MAX_MS = 5;
const DELIVERED_MIN = 0.99;
const CLOSE_WAIT_MS = 15_000;

const LABEL: Record<string, string> = {
  ws: 'ws (plain)',
  wss: 'ws over TLS',
  qws: 'Quiver WebSocket (TLS)',
};
const label = (k: CapacityKind): string => LABEL[k] ?? `WebTransport (${k.slice(3)})`;

interface Step {
  kind: CapacityKind;
  sessions: number;
  ok: boolean;
  why: string;
  server?: CapacityServerResult;
  clients: CapacityClientResult[];
  connected: number;
  engine?: string;
  /** Closing the sessions and the listener took longer than {@link CLOSE_WAIT_MS} (after the measurement). */
  closeHung?: boolean;
}

/** The WebTransport engines this build can run (the listener reports which are available). */
async function wtEngines(): Promise<string[]> {
  const wt = await import('@quiver/webtransport');
  return wt.availableEngines();
}

const suite: BenchSuite = {
  name: 'capacity',
  description:
    'Most sessions one server process sustains at 30 Hz (200-byte update each way per tick) with tick lateness p99 < 5 ms and ≥ 99 % delivered, per transport, interleaved; server CPU, allocation and GC per transport.',
  async run(ctx: BenchContext): Promise<SuiteResult> {
    const hz = numArg(ctx.args, 'hz', 30);
    const size = numArg(ctx.args, 'size', 200);
    const seconds = numArg(ctx.args, 'seconds', ctx.quick ? 3 : 6);
    const warm = numArg(ctx.args, 'warm', 1);
    const ladder = listArg(
      ctx.args,
      'levels',
      ctx.quick ? [10, 40, 160] : [25, 50, 100, 200, 400, 800, 1600],
    );
    const clientsPer = numArg(ctx.args, 'clients', 2);
    const engines = typeof ctx.args.engines === 'string' ? ctx.args.engines.split(',') : await wtEngines();
    const kinds: CapacityKind[] =
      typeof ctx.args.kinds === 'string'
        ? (ctx.args.kinds.split(',') as CapacityKind[])
        : ['ws', 'qws', ...engines.map((e) => `wt:${e}` as CapacityKind)];
    // The clients are the load generator: WebTransport clients of every kind run on the cheapest engine (quinn
    // shares one socket and I/O thread per client process), so that the clients' core is not what fails first.
    const clientEngine =
      typeof ctx.args['client-engine'] === 'string'
        ? ctx.args['client-engine']
        : (await wtEngines()).includes('quinn')
          ? 'quinn'
          : undefined;
    const prof = typeof ctx.args.prof === 'string' ? ctx.args.prof : undefined;
    const cpus = os.cpus().length;
    const pin = cpus >= 2 && ctx.args.pin !== 'false';
    const rt = realtimeArg(ctx.args);
    const serverOpts: AgentOptions = {
      realtime: rt,
      ...(pin ? { cpus: '0' } : {}),
      ...(prof
        ? {
            nodeArgs: [
              prof === 'heap' ? '--heap-prof' : '--cpu-prof',
              `--${prof === 'heap' ? 'heap' : 'cpu'}-prof-dir=bench/results/prof`,
            ],
          }
        : {}),
    };
    const clientOpts: AgentOptions = pin ? { cpus: `1-${cpus - 1}` } : {};
    const notes: string[] = [
      `${hz} Hz, ${size}-byte update per session per tick from the server (WebTransport and our WebSocket transport: datagrams; ws: messages) and a ${size}-byte input per session per tick from the clients; ${warm} s warm-up, ${seconds} s measured per step; loopback.`,
      `a step passes when every session connected, the server's tick lateness p99 < ${LATENESS_P99_MAX_MS} ms, and ≥ ${DELIVERED_MIN * 100} % of updates and of inputs sent in the window arrived. Capacity: the largest passing count. A failed step is retried once.`,
      `a fresh server agent per step${pin ? ' pinned to CPU 0' : ''}${rt ? ' under SCHED_RR priority 5 (as root; `--rt false` to turn off: on a busy shared machine the scheduler, not the transport, otherwise decides a 5 ms tail), a full GC before the warm-up' : ''}, ${clientsPer} client agents${pin ? ` on CPU 1-${cpus - 1}` : ''}; one QUIC connection per WebTransport session (as browsers do); WebTransport clients on the ${clientEngine ?? 'default'} engine whatever the server's (\`--client-engine\`).`,
      'CPU µs/session/tick: server user+system CPU in the window over sessions × ticks. alloc MB/s: V8 heap allocation in the window (GC statistics; Buffer memory outside the heap is not counted). GC: PerformanceObserver "gc" entries in the window.',
    ];
    if (prof) notes.push(`server agents ran with --${prof}-prof (files in bench/results/prof).`);
    const c = await benchCert();
    const net = loopback();
    const steps: Step[] = [];

    const runStep = async (kind: CapacityKind, sessions: number): Promise<Step> => {
      const agents: Agent[] = [];
      const step: Step = { kind, sessions, ok: false, why: '', clients: [], connected: 0 };
      // What the step was doing, for a timeout's message.
      let phase = 'starting agents';
      const deadline = new Promise<never>((_, rej) => {
        const t = setTimeout(() => rej(new Error(`step timed out (${phase})`)), 180_000);
        t.unref();
      });
      try {
        await Promise.race([
          deadline,
          (async () => {
            const server = await net.agent('server', serverOpts);
            agents.push(server);
            const started = await server.call<{ port: number; engine?: string }>(ROLE, 'capServeStart', {
              kind,
              host: '127.0.0.1',
              certPem: c.certPem,
              keyPem: c.keyPem,
            });
            step.engine = started.engine;
            const target: Target = {
              host: '127.0.0.1',
              ports: { ws: 0, wss: 0, tcp: 0, udp: 0 },
              certHashHex: c.hashHex,
              certPem: c.certPem,
            };
            phase = 'starting client agents';
            const clients = await Promise.all(
              Array.from({ length: clientsPer }, () => net.agent('client', clientOpts)),
            );
            agents.push(...clients);
            const shares = clients.map(
              (_, i) => Math.floor(sessions / clientsPer) + (i < sessions % clientsPer ? 1 : 0),
            );
            phase = 'connecting';
            const joined = await Promise.all(
              clients.map((a, i) =>
                a.call<{ ready: number; failed: number; firstError?: string }>(
                  ROLE,
                  'capClientConnect',
                  kind,
                  target,
                  started.port,
                  shares[i],
                  16,
                  clientEngine,
                ),
              ),
            );
            step.connected = joined.reduce((s, j) => s + j.ready, 0);
            const failed = joined.find((j) => j.firstError);
            const plan: CapacityPlan = {
              startAt: monoMs() + 500,
              hz,
              warmTicks: Math.round(warm * hz),
              measureTicks: Math.round(seconds * hz),
              size,
            };
            phase = 'running';
            await Promise.all(clients.map((a) => a.call(ROLE, 'capClientStart', plan)));
            const res = await server.call<Omit<CapacityServerResult, 'inputsReceived' | 'drops'>>(
              ROLE,
              'capServeRun',
              plan,
            );
            // Stragglers: what was sent in the window may still be in flight.
            await new Promise((r) => setTimeout(r, 500));
            phase = 'server report';
            const got = await server.call<{ inputs: number; drops: Record<string, number> }>(
              ROLE,
              'capServeInputs',
            );
            step.server = { ...res, inputsReceived: got.inputs, drops: got.drops };
            phase = 'client reports';
            step.clients = await Promise.all(
              clients.map((a) => a.call<CapacityClientResult>(ROLE, 'capClientReport')),
            );
            const lat = summarize(res.latenessMs);
            const upd = updatesDelivered(step);
            const inp = inputsDelivered(step);
            const whys: string[] = [];
            if (step.connected < sessions)
              whys.push(
                `${sessions - step.connected} did not connect${failed ? ` (${failed.firstError})` : ''}`,
              );
            if (!(lat.p99 < LATENESS_P99_MAX_MS)) whys.push(`lateness p99 ${round(lat.p99, 1)} ms`);
            if (!(upd >= DELIVERED_MIN)) whys.push(`updates ${round(upd * 100, 1)} %`);
            if (!(inp >= DELIVERED_MIN)) whys.push(`inputs ${round(inp * 100, 1)} %`);
            const d = dropsText(step);
            if (d && whys.length) whys.push(`drops: ${d}`);
            step.ok = whys.length === 0;
            step.why = whys.join(', ');
            phase = 'closing';
            // The step is measured: a close that hangs must not turn its result into a timeout. Bounded; the
            // agents are killed below in any case.
            const closing = (async () => {
              await Promise.all(clients.map((a) => a.call(ROLE, 'capClientClose').catch(() => {})));
              await server.call(ROLE, 'capServeStop').catch(() => {});
              return true;
            })();
            const closed = await Promise.race([
              closing,
              new Promise<false>((r) => setTimeout(() => r(false), CLOSE_WAIT_MS).unref()),
            ]);
            if (!closed) step.closeHung = true;
          })(),
        ]);
      } catch (e) {
        step.ok = false;
        step.why = e instanceof Error ? e.message.split('\n')[0] : String(e);
      } finally {
        // close() kills an agent that does not leave within 5 s: no step leaves a process behind.
        await Promise.all(agents.map((a) => a.close()));
      }
      ctx.progress(
        `${kind} × ${sessions}: ${step.ok ? 'pass' : `FAIL (${step.why})`}${step.server ? `, p99 lateness ${round(summarize(step.server.latenessMs).p99, 2)} ms, ${round(cpuPerSessionTick(step), 1)} µs/session/tick, late ticks ${lateTicks(step.server.latenessMs)}` : ''}${step.closeHung ? ', close did not finish' : ''}`,
      );
      steps.push(step);
      return step;
    };

    /** Runs one count; a failure is retried once (interleaving already spread noise, this takes out flukes). */
    const tryCount = async (kind: CapacityKind, n: number): Promise<boolean> => {
      if ((await runStep(kind, n)).ok) return true;
      return (await runStep(kind, n)).ok;
    };

    const best = new Map<CapacityKind, number>();
    const firstFail = new Map<CapacityKind, number>();
    try {
      for (const n of ladder) {
        for (const kind of kinds) {
          if (firstFail.has(kind)) continue;
          if (await tryCount(kind, n)) best.set(kind, n);
          else firstFail.set(kind, n);
        }
      }
      // One refinement step between the last pass and the first fail (geometric middle).
      for (const kind of kinds) {
        const hi = firstFail.get(kind);
        const lo = best.get(kind) ?? 0;
        if (hi === undefined || hi - lo < 4) continue;
        const mid = Math.round(lo > 0 ? Math.sqrt(lo * hi) : hi / 2);
        if (await tryCount(kind, mid)) best.set(kind, mid);
      }
    } finally {
      await net.close();
    }

    const rows: ResultRow[] = [];
    for (const s of steps) {
      const srvRes = s.server;
      const lat = srvRes ? summarize(srvRes.latenessMs) : undefined;
      const gc = srvRes ? summarize(srvRes.gcPausesMs) : undefined;
      const clientCpu = s.clients.reduce((a, r) => a + r.cpuUs, 0);
      rows.push({
        name: label(s.kind),
        group: `${s.sessions} sessions`,
        unit: 'ms late',
        ...(lat ?? {}),
        params: { kind: s.kind, sessions: s.sessions, engine: s.engine ?? '' },
        extra: {
          pass: `${s.ok ? 'yes' : `no: ${s.why}`}${s.closeHung ? ' (close did not finish)' : ''}`,
          connected: s.connected,
          'CPU µs/session/tick': srvRes ? round(cpuPerSessionTick(s), 1) : '',
          'server cores': srvRes ? round(srvRes.cpuUs / 1000 / srvRes.wallMs, 2) : '',
          'client cores': srvRes ? round(clientCpu / 1000 / srvRes.wallMs, 2) : '',
          'alloc MB/s': srvRes ? round(srvRes.allocatedBytes / 1e6 / (srvRes.wallMs / 1000), 1) : '',
          'GC n': gc?.samples ?? '',
          'GC max ms': gc?.samples ? round(gc.max, 1) : '',
          'GC ms/s': srvRes
            ? round(srvRes.gcPausesMs.reduce((a, b) => a + b, 0) / (srvRes.wallMs / 1000), 1)
            : '',
          'major GC': srvRes?.gcMajor ?? '',
          'updates delivered': srvRes ? round(updatesDelivered(s), 4) : '',
          'inputs delivered': srvRes ? round(inputsDelivered(s), 4) : '',
          'datagram drops': dropsText(s),
        },
      });
    }
    for (const kind of kinds) {
      const cap = best.get(kind) ?? 0;
      const at = steps.filter((s) => s.kind === kind && s.ok && s.sessions === cap).at(-1);
      rows.push({
        name: label(kind),
        group: 'capacity',
        unit: 'sessions',
        params: { kind },
        extra: {
          'sessions at 30 Hz': cap,
          'first failing count': firstFail.get(kind) ?? `> ${ladder.at(-1)}`,
          'CPU µs/session/tick': at ? round(cpuPerSessionTick(at), 1) : '',
          'alloc MB/s': at?.server
            ? round(at.server.allocatedBytes / 1e6 / (at.server.wallMs / 1000), 1)
            : '',
          'GC max ms': at?.server?.gcPausesMs.length ? round(Math.max(...at.server.gcPausesMs), 1) : '',
        },
      });
    }
    const wss = best.get('qws') ?? 0;
    const ratios: Record<string, number> = {};
    const goals: SuiteResult['goals'] = {};
    for (const e of engines) {
      const key = `wt_${e}_over_wss_sessions_30hz`;
      ratios[key] = round((best.get(`wt:${e}`) ?? 0) / wss, 3);
      goals[key] = {
        op: '>=',
        value: e === 'quiche' ? 0.5 : 1,
        note: `WebTransport (${e}) sessions / our WebSocket over TLS`,
      };
    }
    const dflt = engines[0];
    if (dflt) {
      ratios.wt_over_wss_sessions_30hz = ratios[`wt_${dflt}_over_wss_sessions_30hz`];
      goals.wt_over_wss_sessions_30hz = {
        op: '>=',
        value: dflt === 'quiche' ? 0.5 : 1,
        note: `default engine (${dflt})`,
      };
    }
    if (best.has('ws')) ratios.ws_over_wss_sessions_30hz = round((best.get('ws') ?? 0) / wss, 3);
    return {
      link: { loopback: true, hz, size, seconds, ladder, kinds },
      rows,
      ratios,
      goals,
      charts: [
        {
          file: 'sessions',
          title: `Sessions one server process sustains at ${hz} Hz (tick p99 < ${LATENESS_P99_MAX_MS} ms, ≥ 99 % delivered)`,
          categories: kinds.map((k) => label(k)),
          unit: 'sessions',
          series: [{ name: 'sessions', values: kinds.map((k) => best.get(k) ?? 0) }],
        },
      ],
      notes,
    };
  },
};

/** Drops the transports counted, server side (`server out:congestion=3`) and client side. */
function dropsText(s: Step): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(s.server?.drops ?? {})) if (v) parts.push(`server ${k}=${v}`);
  const c: Record<string, number> = {};
  for (const r of s.clients) for (const [k, v] of Object.entries(r.drops)) c[k] = (c[k] ?? 0) + v;
  for (const [k, v] of Object.entries(c)) if (v) parts.push(`client ${k}=${v}`);
  return parts.join(' ');
}

/** The measured ticks later than the limit, as `index:ms` (index 0 is the window's first tick). */
function lateTicks(lateness: number[]): string {
  const late = lateness.flatMap((l, i) => (l >= LATENESS_P99_MAX_MS ? [`${i}:${round(l, 1)}`] : []));
  return late.length ? late.slice(0, 12).join(' ') : 'none';
}

function cpuPerSessionTick(s: Step): number {
  const r = s.server;
  if (!r || r.latenessMs.length === 0) return Number.NaN;
  return r.cpuUs / Math.max(1, r.sessionsAtStart) / r.latenessMs.length;
}

function updatesDelivered(s: Step): number {
  // Against what every requested session should have got: a session that dropped out counts as missing.
  const due = s.sessions * (s.server?.latenessMs.length ?? 0);
  const got = s.clients.reduce((a, r) => a + r.updatesReceived, 0);
  return due > 0 ? got / due : 0;
}

function inputsDelivered(s: Step): number {
  const sent = s.clients.reduce((a, r) => a + r.inputsSent, 0);
  return sent > 0 ? (s.server?.inputsReceived ?? 0) / sent : 0;
}

export default suite;
