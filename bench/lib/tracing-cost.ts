/**
 * What OpenTelemetry tracing costs the session layer, in messages per CPU-second: a client sends reliable messages
 * to a session server over the memory transport (no network, so the session layer's own work is what is measured),
 * with tracing off (no tracer), through the API with no SDK registered (the fastify plugin's default), registered
 * but unsampled (an SDK with AlwaysOff), and sampled (AlwaysOn, spans batched to an exporter that discards them).
 *
 * The goal (unsampled ≤ 3 % of the rate) is smaller than the spread of one batch's rate on a shared machine, so the
 * figure is a paired statistic with its confidence interval, and the same statistic of an A/A pair (tracing off
 * against tracing off) is reported beside it: the reader sees the method's resolution in the same run.
 *
 * - **Pairs.** Each configuration's batch runs right beside a batch with tracing off, in alternating order (AB, BA):
 *   load that comes and goes hits both halves of a pair alike. The overhead of one pair is 1 − rate ÷ rate of its
 *   off half; the figure is the median over pairs, with a distribution-free 95 % interval from order statistics.
 * - **Independent rounds.** Every round opens fresh sessions for every configuration (warmed, not counted) and closes
 *   them after: a session's own state (its RTT estimate, ack and window timing) persists for as long as it lives and
 *   made one configuration's long-lived session consistently faster or slower than another's by several percent in
 *   a whole run, a bias no number of pairs on the same sessions averages out.
 * - **Many short batches.** The interval narrows with the square root of the number of pairs, so many short batches
 *   resolve more than a few long ones in the same time.
 * - **CPU, not wall.** The rate is messages per CPU-second of the main thread, where client and server both run.
 *   Every batch starts after the previous one's acknowledgement timers have fired and a full garbage collection
 *   (neither counted), so no batch pays for another's garbage or timers.
 */
import { readFileSync } from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { SpanExporter } from '@opentelemetry/sdk-trace';
import type { SessionTracer } from '@quiver/session';
import type { ResultRow } from './harness.js';
import { median, round } from './suite-util.js';
import { quantileCi } from './stats.js';

export type Mode = 'off' | 'aa' | 'api' | 'unsampled' | 'unsampledPerMessage' | 'sampled';
const MODES: Mode[] = ['off', 'aa', 'api', 'unsampled', 'unsampledPerMessage', 'sampled'];
/** The configurations whose tracer hooks are also measured in a loop. */
const HOOKED = ['api', 'unsampled', 'unsampledPerMessage'] as const;

const LABEL: Record<Mode, string> = {
  off: 'off (no tracer)',
  aa: 'off again (A/A: the noise floor)',
  api: 'API only, no SDK',
  unsampled: 'SDK, unsampled (AlwaysOff, sampler asked per session: the default)',
  unsampledPerMessage: "SDK, unsampled (AlwaysOff, sampler asked per message: sampling 'message')",
  sampled: 'SDK, sampled (AlwaysOn)',
};

export interface TracingCost {
  rows: ResultRow[];
  ratios: Record<string, number>;
  notes: string[];
}

/**
 * CPU time of the main thread in nanoseconds. The session runs on the main thread; V8's helper threads (concurrent
 * marking, the optimising compiler) also count in `process.cpuUsage()`, and on a shared machine their share of a
 * batch varied threefold from batch to batch, far more than what is measured here. Linux gives the main thread's own
 * time, to the nanosecond, in the first field of its `schedstat`; elsewhere the whole process's time stands in.
 *
 * A running thread's `schedstat` is brought up to date only when the scheduler looks at it: at a timer tick or a
 * context switch. Read while running it lags by up to a tick (4 ms at HZ=250), so a 500-message batch read 0, 4 or
 * 8 ms and single pairs spread ±30 %. A 50 µs sleep before each read (a futex wait: the thread is switched out and
 * its runtime accounted) makes the read exact; it costs one context switch, the same in every batch.
 */
function threadCpuNs(): () => number {
  const file = `/proc/self/task/${process.pid}/schedstat`;
  const word = new Int32Array(new SharedArrayBuffer(4));
  try {
    const read = () => {
      Atomics.wait(word, 0, 0, 0.05);
      return Number(readFileSync(file, 'latin1').split(' ', 1)[0]);
    };
    if (Number.isFinite(read()) && read() > 0) return read;
  } catch {
    // not Linux: below
  }
  return () => {
    const c = process.cpuUsage();
    return (c.user + c.system) * 1000;
  };
}

/** A full collection before each batch: `global.gc` when node runs with `--expose-gc`, else turned on here. */
function collector(): () => void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) return g;
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

/**
 * The median and its 95 % confidence interval by order statistics (the binomial's normal approximation): no
 * assumption about the distribution of the per-pair figures, which has heavy tails on a shared machine.
 */
export function medianCi(values: number[]): { median: number; lo: number; hi: number } {
  const { lo, hi } = quantileCi(values, 0.5);
  return { median: median(values), lo, hi };
}

const pct = (v: number) => `${(v * 100).toFixed(1)} %`;
const fmtCi = (c: { median: number; lo: number; hi: number }) =>
  `${pct(c.median)} [${pct(c.lo)}, ${pct(c.hi)}]`;

function quantile(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  const at = (s.length - 1) * q;
  const lo = Math.floor(at);
  return s[lo] + (s[Math.min(lo + 1, s.length - 1)] - s[lo]) * (at - lo);
}

/** What one process measured: per configuration its batch rates, and its pairs' overheads against tracing off. */
export interface TracingRaw {
  rates: Partial<Record<Mode, number[]>>;
  wall: Partial<Record<Mode, number[]>>;
  paired: Partial<Record<Mode, number[]>>;
  hookNs: Partial<Record<Mode, number>>;
}

/**
 * The configurations measured together in one process. Each traced configuration gets a process of its own, as an
 * application has one tracer: in one process the session core's call sites would see five tracers, a JIT state no
 * application is in. The A/A pair shares the unsampled configuration's process (the goal's), so its interval is
 * the resolution of that very measurement.
 */
const GROUPS: Mode[][] = [['aa', 'unsampled'], ['api'], ['unsampledPerMessage'], ['sampled']];

/**
 * Runs {@link measureTracingRaw} once per group of configurations, each in an agent process pinned to one CPU
 * (`taskset`) when the machine has more than one, then the hook loops in one more. On this VM the two vCPUs slow
 * each other down (SMT siblings, or host cores shared): unpinned, the same session's 500-message batches took 12 or
 * 17 µs a message depending on whether V8's helper threads (concurrent marking and compilation) ran beside the
 * main thread on the other vCPU; pinned, ±3 %. Progress lines come on stderr.
 */
export async function measureTracingCost(opts: { rounds: number; batch: number }): Promise<TracingCost> {
  const { cpus } = await import('node:os');
  const { loopback } = await import('./network.js');
  const n = cpus().length;
  const pin = n > 1 ? { cpus: String(n - 1) } : {};
  const raw: TracingRaw = { rates: {}, wall: {}, paired: {}, hookNs: {} };
  const inAgent = async (modes: Mode[], hooks: boolean, rounds = opts.rounds) => {
    const net = loopback();
    try {
      const agent = await net.agent('client', pin);
      return await agent.call<TracingRaw>('bench/lib/tracing-cost.ts', 'measureTracingRaw', {
        ...opts,
        rounds,
        modes,
        hooks,
      });
    } finally {
      await net.close();
    }
  };
  for (const [g, modes] of GROUPS.entries()) {
    const got = await inAgent(modes, false);
    // Tracing off is measured in every process; the row shows the goal's process (the first).
    for (const key of ['rates', 'wall', 'paired'] as const)
      for (const [mode, v] of Object.entries(got[key]) as [Mode, number[]][])
        if (v.length > 0 && (mode !== 'off' || g === 0)) raw[key][mode] = v;
  }
  raw.hookNs = (await inAgent([], true, 0)).hookNs;
  const cost = summarize(raw, opts);
  cost.notes.push(
    `tracing: one process per configuration (${GROUPS.map((g) => g.join(' + ')).join('; ')}), each with its own tracing-off sessions${n > 1 ? `, pinned to CPU ${n - 1} (taskset), V8's helper threads included: unpinned, the same session's batches were bimodal (12 or 17 µs a message) as those threads ran beside the main thread on the other vCPU or not` : ''}; the tracing-off row is the first process's. The tracer hooks' loops ran in a process of their own.`,
  );
  return cost;
}

/** Measures `modes` (each paired with tracing off) and, with `hooks`, the tracer hooks' loops, in this process. */
export async function measureTracingRaw(opts: {
  rounds: number;
  batch: number;
  modes: Mode[];
  hooks: boolean;
  progress?: (m: string) => void;
}): Promise<TracingRaw> {
  const progress = opts.progress ?? ((m: string) => process.stderr.write(`[micro tracing] ${m}\n`));
  const { connectMemory, createMemoryListener } = await import('@quiver/transport');
  const { connect, createSessionServer, defineMessage } = await import('@quiver/session');
  const { otelTracing } = await import('@quiver/session/otel');
  const sdk = await import('@opentelemetry/sdk-trace');
  const gc = collector();
  const cpuNs = threadCpuNs();
  const discard: SpanExporter = {
    export: (_spans, done) => done({ code: 0 }),
    shutdown: async () => {},
    forceFlush: async () => {},
  };
  const provider = (
    sampler: InstanceType<typeof sdk.AlwaysOnSampler> | InstanceType<typeof sdk.AlwaysOffSampler>,
  ) =>
    new sdk.TracerProvider({
      sampler,
      spanProcessors: [new sdk.BatchSpanProcessor({ exporter: discard, maxQueueSize: 65_536 })],
    });
  const providers = {
    unsampled: provider(new sdk.AlwaysOffSampler()),
    unsampledPerMessage: provider(new sdk.AlwaysOffSampler()),
    sampled: provider(new sdk.AlwaysOnSampler()),
  };
  const Move = defineMessage<{ x: number; y: number; seq: number }>('move');
  const tracers = new Map<Mode, SessionTracer | undefined>();
  // Only this process's configurations get a tracer: one that is never called cannot shape the JIT's view.
  for (const mode of ['off', ...opts.modes, ...(opts.hooks ? HOOKED : [])] as Mode[])
    tracers.set(
      mode,
      mode === 'off' || mode === 'aa'
        ? undefined
        : // api: the global provider with nothing registered, the API's no-op tracer.
          otelTracing(
            mode === 'api'
              ? {}
              : {
                  tracerProvider: providers[mode],
                  sampling: mode === 'unsampledPerMessage' ? 'message' : 'session',
                },
          ),
    );
  interface End {
    send: (n: number) => Promise<{ wall: number; cpu: number }>;
    close: () => Promise<void>;
  }
  let opened = 0;
  // Open sessions, closed at the end of their round (or when the run fails).
  const live = new Set<End>();
  /** A fresh server and client with `mode`'s tracing, over the memory transport. */
  const open = async (mode: Mode): Promise<End> => {
    const tracing = tracers.get(mode);
    const listener = createMemoryListener({ name: `bench-tracing-${mode}-${process.pid}-${opened++}` });
    const server = createSessionServer({
      listeners: [listener],
      messages: [Move],
      tracing,
      // A bulk sender by design: the per-session game-traffic rate limit is not what is measured.
      rateLimits: {
        perSession: { messagesPerSecond: Number.POSITIVE_INFINITY, bytesPerSecond: Number.POSITIVE_INFINITY },
      },
    });
    let received = 0;
    let waiting: { target: number; resolve: () => void } | null = null;
    server.on(Move, () => {
      received++;
      if (waiting && received >= waiting.target) {
        waiting.resolve();
        waiting = null;
      }
    });
    const client = await connect(`${listener.url}/`, { connector: connectMemory, messages: [Move], tracing });
    const end: End = {
      send: async (n) => {
        const target = received + n;
        const done = new Promise<void>((resolve) => {
          waiting = { target, resolve };
        });
        const t0 = performance.now();
        const c0 = cpuNs();
        for (let i = 0; i < n; i++) {
          client.send(Move, { x: i * 0.5, y: -i, seq: i });
          // Yield to let acks flow so the flow-control window never stalls the sender.
          if (i % 256 === 255) await client.drained(128 * 1024);
        }
        await done;
        // The spans a batch made are exported inside its own measurement, not during the next configuration's. Only
        // sampled sessions record spans: a flush of the unsampled providers (an empty queue, a few promise hops)
        // would be the harness's cost charged to their configuration, as it was (~1.5 % of a 500-message batch).
        if (mode === 'sampled') await providers.sampled.forceFlush();
        const cpu = cpuNs() - c0;
        return { wall: n / ((performance.now() - t0) / 1000), cpu: n / (cpu / 1e9) };
      },
      close: async () => {
        live.delete(end);
        await client.close();
        await server.close();
        await listener.close();
      },
    };
    live.add(end);
    return end;
  };
  const empty = (): Record<Mode, number[]> => ({
    off: [],
    aa: [],
    api: [],
    unsampled: [],
    unsampledPerMessage: [],
    sampled: [],
  });
  const rates = empty();
  const wall = empty();
  // Per configuration, 1 − rate ÷ rate with tracing off in the adjacent batch.
  const paired = empty();
  const hookNs: Partial<Record<Mode, number>> = {};
  const settle = async () => {
    // The previous batch's tail (acknowledgements after their 20 ms delay, timers) runs before this one is
    // measured, so that no configuration pays for the one before it.
    await new Promise((resolve) => setTimeout(resolve, 25));
    gc();
  };
  const others = opts.modes;
  try {
    // Warm-up: JIT and the SDK's first allocations, not counted.
    const warm = opts.rounds > 0 ? await Promise.all((['off', ...others] as Mode[]).map(open)) : [];
    for (let w = 0; w < 3; w++) for (const e of warm) await e.send(opts.batch);
    await Promise.all(warm.map((e) => e.close()));
    for (let r = 0; r < opts.rounds; r++) {
      // Per configuration a fresh pair of sessions, its own and one with tracing off, the same age: a session that
      // had sent more batches ran ~1.5 % slower than a fresh one (the A/A pair read that when one off session served
      // every configuration of a round), a bias no number of pairs removes.
      const ends = new Map<Mode, { off: End; traced: End }>();
      for (const mode of others) {
        const pair = { off: await open('off'), traced: await open(mode) };
        // A fresh session's first messages (its window and RTT estimate settling) are not counted.
        for (const e of [pair.off, pair.traced]) await e.send(Math.min(opts.batch, 256));
        ends.set(mode, pair);
      }
      const measure = async (mode: Mode, end: End) => {
        await settle();
        const measured = await end.send(opts.batch);
        rates[mode].push(measured.cpu);
        wall[mode].push(measured.wall);
        return measured.cpu;
      };
      // Each configuration runs right beside its batch with tracing off (before it in one round, after it in the
      // next): on a shared machine a thread's speed changes with what the other core runs, and two adjacent
      // batches see nearly the same conditions. The order of the configurations rotates per round.
      for (let k = 0; k < others.length; k++) {
        const mode = others[(r + k) % others.length];
        // Off first in even rounds, second in odd ones, for every configuration: the first batch after the settle
        // runs ~2 % slower, and an order tied to the rotation (as (r + k) % 2 was, with two configurations in a
        // process) put one configuration always first and read that as its overhead.
        const offFirst = r % 2 === 0;
        const pair = ends.get(mode)!;
        const a = offFirst ? await measure('off', pair.off) : await measure(mode, pair.traced);
        const b = offFirst ? await measure(mode, pair.traced) : await measure('off', pair.off);
        const [off, traced] = offFirst ? [a, b] : [b, a];
        paired[mode].push(1 - traced / off);
      }
      await Promise.all([...ends.values()].flatMap((p) => [p.off.close(), p.traced.close()]));
      if (r % 10 === 9 || r === opts.rounds - 1)
        progress(
          `tracing round ${r + 1}/${opts.rounds}: ${others.map((m) => `${m} ${fmtCi(medianCi(paired[m]))}`).join(', ')}`,
        );
    }
    // The same cost measured directly: the tracer's two hooks of one message (send, then receive around a handler),
    // in a tight loop, as the session core calls them. A loop is not disturbed by acknowledgement timers or by
    // the other configurations, so its figure is steadier than the difference of two noisy rates; divided by the
    // CPU time of a message with tracing off it gives the overhead again, assuming costs add.
    for (const mode of opts.hooks ? HOOKED : []) {
      const tracer = tracers.get(mode)!;
      const established = tracer.establish('client', {});
      established.end({});
      const session = {
        transport: () => 'memory',
        sessionId: () => 'bench',
        sampled: () => established.sampled,
      };
      const handler = (_m: string, payload: unknown) => payload !== undefined;
      const loop = (n: number) => {
        for (let i = 0; i < n; i++) {
          const t = tracer.send('reliable', 'move', 24, session);
          if (t) t.write(i)();
          tracer.receive('reliable', 'move', 24, session, undefined, handler, i);
        }
      };
      loop(50_000);
      const samples: number[] = [];
      for (let r = 0; r < 15; r++) {
        gc();
        const c0 = cpuNs();
        loop(100_000);
        samples.push((cpuNs() - c0) / 100_000);
      }
      hookNs[mode] = median(samples);
    }
  } finally {
    for (const e of [...live]) await e.close();
    for (const p of Object.values(providers)) await p.shutdown();
  }
  return { rates, wall, paired, hookNs };
}

function summarize(raw: TracingRaw, opts: { rounds: number; batch: number }): TracingCost {
  const rates = raw.rates as Record<Mode, number[]>;
  const wall = raw.wall as Record<Mode, number[]>;
  const paired = raw.paired as Record<Mode, number[]>;
  const hookNs = raw.hookNs;
  const ci = (mode: Mode) => medianCi(paired[mode]);
  const rows: ResultRow[] = MODES.map((mode) => ({
    name: `session send → server handler, tracing ${LABEL[mode]}`,
    group: 'tracing',
    unit: 'msg per CPU-s',
    params: { short: `trace ${mode}` },
    extra: {
      'msg/CPU-s': round(median(rates[mode]), 0),
      'min msg/CPU-s': round(Math.min(...rates[mode]), 0),
      'max msg/CPU-s': round(Math.max(...rates[mode]), 0),
      'wall msg/s': round(median(wall[mode]), 0),
      pairs: opts.rounds,
      batch: opts.batch,
      ...(mode === 'off'
        ? {}
        : {
            'overhead vs off': round(ci(mode).median, 4),
            'CI95 lo': round(ci(mode).lo, 4),
            'CI95 hi': round(ci(mode).hi, 4),
            'A/A CI95': `${round(ci('aa').lo, 4)}..${round(ci('aa').hi, 4)}`,
            'pair p25': round(quantile(paired[mode], 0.25), 4),
            'pair p75': round(quantile(paired[mode], 0.75), 4),
          }),
    },
  }));
  // CPU time of one message with tracing off, in ns, from the median rate.
  const messageNs = 1e9 / median(rates.off);
  const fromHooks = (mode: 'api' | 'unsampled' | 'unsampledPerMessage') => (hookNs[mode] ?? 0) / messageNs;
  for (const mode of ['api', 'unsampled', 'unsampledPerMessage'] as const) {
    rows.push({
      name: `tracer hooks of one message (send + receive), ${LABEL[mode]}`,
      group: 'tracing hooks',
      unit: 'ns per message',
      params: { short: `hooks ${mode}` },
      extra: {
        'ns/message': round(hookNs[mode] ?? 0, 1),
        'message with tracing off, ns': round(messageNs, 0),
        'overhead from hooks': round(fromHooks(mode), 4),
      },
    });
  }
  return {
    rows,
    ratios: {
      tracing_unsampled_overhead_from_hooks: round(fromHooks('unsampled'), 4),
      tracing_unsampled_per_message_overhead_from_hooks: round(fromHooks('unsampledPerMessage'), 4),
      tracing_unsampled_overhead: round(ci('unsampled').median, 4),
      tracing_unsampled_overhead_ci95_lo: round(ci('unsampled').lo, 4),
      tracing_unsampled_overhead_ci95_hi: round(ci('unsampled').hi, 4),
      tracing_unsampled_per_message_overhead: round(ci('unsampledPerMessage').median, 4),
      tracing_aa_overhead: round(ci('aa').median, 4),
      tracing_aa_overhead_ci95_lo: round(ci('aa').lo, 4),
      tracing_aa_overhead_ci95_hi: round(ci('aa').hi, 4),
      tracing_api_only_overhead: round(ci('api').median, 4),
      tracing_sampled_overhead: round(ci('sampled').median, 4),
    },
    notes: [
      `tracing: ${opts.rounds} rounds; in each, per configuration a fresh pair of sessions, its own and one with tracing off (both warmed with 256 messages, not counted), then the configuration's batch of ${opts.batch} reliable messages (client → server handler, memory transport) right beside its tracing-off session's batch (tracing off first in even rounds, second in odd ones), the configurations in an order that rotates per round, 25 ms for the previous batch's acknowledgement timers and a full GC (neither counted) before each batch. The rate is messages per CPU-second of the main thread, where client and server both run (Linux: the thread's schedstat, read after a 50 µs sleep so that it is up to date rather than as of the last 4 ms tick; V8's helper threads left out, their share varied threefold between batches on a shared machine; elsewhere process.cpuUsage); wall msg/s is shown too, but it is bound by ack timers and the machine's load. msg/CPU-s is the median batch. overhead vs off is the median over pairs of 1 − rate ÷ rate of the pair's off batch, with its 95 % confidence interval by order statistics (CI95 lo..hi; pair p25/p75 are the quartiles of single pairs, the spread one pair has). A/A = a second configuration with tracing off, measured exactly like the others: its interval, shown on every row, is the method's resolution in this run; a configuration's overhead is resolved when its interval is narrower than the difference to be shown (goal: CI95 hi of unsampled ≤ 0.03). api = otelTracing() on the global provider with no SDK registered (the API's no-op tracer; the fastify plugin's default); unsampled = an SDK TracerProvider with AlwaysOffSampler on both ends, asked once per session (the default: the sessions are unsampled, so their messages make no SDK call); unsampled per message = the same with sampling 'message' (a non-recording span per message and end); nothing on the wire in either; sampled = AlwaysOnSampler, spans batched to an exporter that discards them (26-byte context in every message).`,
      `tracing hooks: the same cost measured directly, steadier than the difference of two noisy rates: the tracer's send and receive hooks of one message called in a tight loop (15 rounds of 100,000, main-thread CPU, median), divided by the CPU time of a message with tracing off (1 ÷ its median rate): *_overhead_from_hooks, assuming costs add.`,
    ],
  };
}
