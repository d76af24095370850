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

type Mode = 'off' | 'aa' | 'api' | 'unsampled' | 'unsampledPerMessage' | 'sampled';
const MODES: Mode[] = ['off', 'aa', 'api', 'unsampled', 'unsampledPerMessage', 'sampled'];

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
 */
function threadCpuNs(): () => number {
  const file = `/proc/self/task/${process.pid}/schedstat`;
  try {
    const read = () => Number(readFileSync(file, 'latin1').split(' ', 1)[0]);
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

export async function measureTracingCost(opts: {
  rounds: number;
  batch: number;
  progress: (m: string) => void;
}): Promise<TracingCost> {
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
  for (const mode of MODES)
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
        // The spans a batch made are exported inside its own measurement, not during the next configuration's.
        if (mode !== 'off' && mode !== 'aa' && mode !== 'api') await providers[mode].forceFlush();
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
  const others = MODES.filter((m) => m !== 'off');
  try {
    // Warm-up: JIT and the SDK's first allocations, not counted.
    const warm = await Promise.all(MODES.map(open));
    for (let w = 0; w < 3; w++) for (const e of warm) await e.send(opts.batch);
    await Promise.all(warm.map((e) => e.close()));
    for (let r = 0; r < opts.rounds; r++) {
      const ends = new Map<Mode, End>();
      for (const mode of MODES) {
        const e = await open(mode);
        // A fresh session's first messages (its window and RTT estimate settling) are not counted.
        await e.send(Math.min(opts.batch, 256));
        ends.set(mode, e);
      }
      const measure = async (mode: Mode) => {
        await settle();
        const measured = await ends.get(mode)!.send(opts.batch);
        rates[mode].push(measured.cpu);
        wall[mode].push(measured.wall);
        return measured.cpu;
      };
      // Each configuration runs right beside a batch with tracing off (before it in one round, after it in the
      // next): on a shared machine a thread's speed changes with what the other core runs, and two adjacent
      // batches see nearly the same conditions. The order of the configurations rotates per round.
      for (let k = 0; k < others.length; k++) {
        const mode = others[(r + k) % others.length];
        const offFirst = (r + k) % 2 === 0;
        const a = await measure(offFirst ? 'off' : mode);
        const b = await measure(offFirst ? mode : 'off');
        const [off, traced] = offFirst ? [a, b] : [b, a];
        paired[mode].push(1 - traced / off);
      }
      await Promise.all([...ends.values()].map((e) => e.close()));
      if (r % 10 === 9 || r === opts.rounds - 1)
        opts.progress(
          `tracing round ${r + 1}/${opts.rounds}: ${others.map((m) => `${m} ${fmtCi(medianCi(paired[m]))}`).join(', ')}`,
        );
    }
    // The same cost measured directly: the tracer's two hooks of one message (send, then receive around a handler),
    // in a tight loop, as the session core calls them. A loop is not disturbed by acknowledgement timers or by
    // the other configurations, so its figure is steadier than the difference of two noisy rates; divided by the
    // CPU time of a message with tracing off it gives the overhead again, assuming costs add.
    for (const mode of ['api', 'unsampled', 'unsampledPerMessage'] as const) {
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
      `tracing: ${opts.rounds} rounds; in each, fresh sessions for every configuration (warmed with 256 messages, not counted), then each configuration's batch of ${opts.batch} reliable messages (client → server handler, memory transport) right beside a batch with tracing off (before it in one round, after it in the next), the configurations in an order that rotates per round, 25 ms for the previous batch's acknowledgement timers and a full GC (neither counted) before each batch. The rate is messages per CPU-second of the main thread, where client and server both run (Linux: the thread's schedstat; V8's helper threads left out, their share varied threefold between batches on a shared machine; elsewhere process.cpuUsage); wall msg/s is shown too, but it is bound by ack timers and the machine's load. msg/CPU-s is the median batch. overhead vs off is the median over pairs of 1 − rate ÷ rate of the pair's off batch, with its 95 % confidence interval by order statistics (CI95 lo..hi; pair p25/p75 are the quartiles of single pairs, the spread one pair has). A/A = a second configuration with tracing off, measured exactly like the others: its interval, shown on every row, is the method's resolution in this run; a configuration's overhead is resolved when its interval is narrower than the difference to be shown (goal: CI95 hi of unsampled ≤ 0.03). api = otelTracing() on the global provider with no SDK registered (the API's no-op tracer; the fastify plugin's default); unsampled = an SDK TracerProvider with AlwaysOffSampler on both ends, asked once per session (the default: the sessions are unsampled, so their messages make no SDK call); unsampled per message = the same with sampling 'message' (a non-recording span per message and end); nothing on the wire in either; sampled = AlwaysOnSampler, spans batched to an exporter that discards them (26-byte context in every message).`,
      `tracing hooks: the same cost measured directly, steadier than the difference of two noisy rates: the tracer's send and receive hooks of one message called in a tight loop (15 rounds of 100,000, main-thread CPU, median), divided by the CPU time of a message with tracing off (1 ÷ its median rate): *_overhead_from_hooks, assuming costs add.`,
    ],
  };
}
