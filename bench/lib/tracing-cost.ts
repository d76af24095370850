/**
 * What OpenTelemetry tracing costs the session layer, in messages per CPU-second: a client sends reliable messages
 * to a session server over the memory transport (no network, so the session layer's own work is what is measured),
 * with tracing off (no tracer), through the API with no SDK registered (the fastify plugin's default), registered
 * but unsampled (an SDK with AlwaysOff), and sampled (AlwaysOn, spans batched to an exporter that discards them).
 *
 * The machine is shared, so the configurations run in one process, in many short rounds, each round running every
 * configuration once in an order that rotates from round to round; every batch starts after a full garbage
 * collection (not counted), so that one configuration's garbage is not collected in another's batch. The overhead
 * is the median over rounds of 1 − rate ÷ rate with tracing off in the same round: load that comes and goes hits
 * both sides of a pair alike, and a round that one burst spoiled moves the median little.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import type { SpanExporter } from '@opentelemetry/sdk-trace';
import type { ResultRow } from './harness.js';
import { median, round } from './suite-util.js';

type Mode = 'off' | 'api' | 'unsampled' | 'sampled';
const MODES: Mode[] = ['off', 'api', 'unsampled', 'sampled'];

const LABEL: Record<Mode, string> = {
  off: 'off (no tracer)',
  api: 'API only, no SDK',
  unsampled: 'SDK, unsampled (AlwaysOff)',
  sampled: 'SDK, sampled (AlwaysOn)',
};

export interface TracingCost {
  rows: ResultRow[];
  ratios: Record<string, number>;
  notes: string[];
}

/** A full collection before each batch: `global.gc` when node runs with `--expose-gc`, else turned on here. */
function collector(): () => void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) return g;
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

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
    sampled: provider(new sdk.AlwaysOnSampler()),
  };
  const Move = defineMessage<{ x: number; y: number; seq: number }>('move');
  const ends = new Map<
    Mode,
    { send: (n: number) => Promise<{ wall: number; cpu: number }>; close: () => Promise<void> }
  >();
  for (const mode of MODES) {
    // api: the global provider with nothing registered, the API's no-op tracer.
    const tracing =
      mode === 'off' ? undefined : otelTracing(mode === 'api' ? {} : { tracerProvider: providers[mode] });
    const listener = createMemoryListener({ name: `bench-tracing-${mode}-${process.pid}` });
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
    ends.set(mode, {
      send: async (n) => {
        const target = received + n;
        const done = new Promise<void>((resolve) => {
          waiting = { target, resolve };
        });
        const t0 = performance.now();
        const c0 = process.cpuUsage();
        for (let i = 0; i < n; i++) {
          client.send(Move, { x: i * 0.5, y: -i, seq: i });
          // Yield to let acks flow so the flow-control window never stalls the sender.
          if (i % 256 === 255) await client.drained(128 * 1024);
        }
        await done;
        const cpu = process.cpuUsage(c0);
        return { wall: n / ((performance.now() - t0) / 1000), cpu: n / ((cpu.user + cpu.system) / 1e6) };
      },
      close: async () => {
        await client.close();
        await server.close();
        await listener.close();
      },
    });
  }
  const rates: Record<Mode, number[]> = { off: [], api: [], unsampled: [], sampled: [] };
  const wall: Record<Mode, number[]> = { off: [], api: [], unsampled: [], sampled: [] };
  try {
    // Warm-up: JIT and the SDK's first allocations, not counted.
    for (let w = 0; w < 3; w++) for (const mode of MODES) await ends.get(mode)!.send(opts.batch);
    for (let r = 0; r < opts.rounds; r++) {
      // The order rotates per round, so no configuration always runs right after another.
      for (let k = 0; k < MODES.length; k++) {
        const mode = MODES[(r + k) % MODES.length];
        gc();
        const measured = await ends.get(mode)!.send(opts.batch);
        rates[mode].push(measured.cpu);
        wall[mode].push(measured.wall);
      }
      opts.progress(
        `tracing round ${r + 1}/${opts.rounds}: ${MODES.map((m) => `${m} ${Math.round(rates[m].at(-1)!)}`).join(', ')} msg per CPU-s`,
      );
    }
  } finally {
    for (const e of ends.values()) await e.close();
    for (const p of Object.values(providers)) await p.shutdown();
  }
  const perRound = (mode: Mode) => rates.off.map((off, i) => 1 - rates[mode][i] / off);
  const overhead = (mode: Mode) => median(perRound(mode));
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
      rounds: opts.rounds,
      batch: opts.batch,
      ...(mode === 'off'
        ? {}
        : {
            'overhead vs off': round(overhead(mode), 4),
            'overhead p25': round(quantile(perRound(mode), 0.25), 4),
            'overhead p75': round(quantile(perRound(mode), 0.75), 4),
          }),
    },
  }));
  return {
    rows,
    ratios: {
      tracing_unsampled_overhead: round(overhead('unsampled'), 4),
      tracing_api_only_overhead: round(overhead('api'), 4),
      tracing_sampled_overhead: round(overhead('sampled'), 4),
    },
    notes: [
      `tracing: ${opts.rounds} rounds of ${opts.batch} reliable messages (client → server handler, memory transport) per configuration, the configurations in an order that rotates per round, a full GC (not counted) before each batch. The rate is messages per CPU-second of the process (client and server both run in it: process.cpuUsage), so that other load on the machine counts less; wall msg/s is shown too, but it is bound by ack timers and the machine's load. msg/CPU-s is the median round; overhead is the median over rounds of 1 − rate ÷ rate with tracing off in the same round, p25/p75 its quartiles over rounds (the spread the machine's noise leaves). api = otelTracing() on the global provider with no SDK registered (the API's no-op tracer; the fastify plugin's default); unsampled = an SDK TracerProvider with AlwaysOffSampler on both ends (a non-recording span per message and end, nothing on the wire); sampled = AlwaysOnSampler, spans batched to an exporter that discards them (26-byte context in every message).`,
    ],
  };
}
