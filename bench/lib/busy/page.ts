/**
 * The browser-busy page: the same probe schedule through a session on the page's main thread and through one in a
 * dedicated Worker, while the page's main thread is blocked `blockMs` in every `periodMs`. Times are epoch
 * milliseconds (`performance.timeOrigin + performance.now()`), the clock the session layer uses: the page, its
 * Worker and the server agent run on one machine and read the same system clock.
 */
import { connect, nativeWebTransportConnector, type SessionClient } from '@quiver/session';
import { connect as connectInWorker, WorkerClientSession } from '@quiver/session/worker';
import { DgramEcho, Input, MESSAGES, type Probe, ReliableEcho } from './messages.js';

export interface BusyRunConfig {
  mode: 'main' | 'worker';
  wtUrl: string;
  hashHex: string;
  workerUrl: string;
  durationMs: number;
  hz: number;
  blockMs: number;
  periodMs: number;
  warmupMs: number;
  graceMs: number;
  /** Worker mode: also record the Worker thread's event-loop gaps (a 2 ms timer in the Worker). */
  gaps?: boolean;
}

export interface EchoSamples {
  sent: number;
  /** Send to arrival in the thread running the session (the Worker, or the main thread). */
  sessionMs: number[];
  /** Send to the page's handler on the main thread. */
  pageMs: number[];
  /** Per echo, the breakdown of `sessionMs` (epoch ms on one machine's clock): page send → Worker (0 on the main
   * thread), → server agent, server agent → arrival in the session's thread. */
  crossMs: number[];
  upMs: number[];
  downMs: number[];
  /** Per echo: the page's send time and the arrival in the session's thread (epoch ms). */
  sentAt: number[];
  arrivedAt: number[];
}

export interface BusyRunResult {
  mode: 'main' | 'worker';
  transport: string | undefined;
  dgram: EchoSamples;
  reliable: EchoSamples;
  inputsSent: number;
  rttMs: number;
  minRttMs: number;
  jitterMs: number;
  /** Worker mode: how long the Worker's posts waited for the main thread (mean, max of the last second). */
  mainThreadDelay?: { avgMs: number; maxMs: number };
  /** Longest main-thread block actually seen by a 5 ms timer (checks the load was applied). */
  longestStallMs: number;
  /** Start of each main-thread block (epoch ms). */
  blocks: number[];
  /** `gaps`: the Worker thread's event-loop gaps over 6 ms, [start, length] (epoch ms). */
  workerGaps?: [number, number][];
}

const now = () => performance.timeOrigin + performance.now();
const samples = (): EchoSamples => ({
  sent: 0,
  sessionMs: [],
  pageMs: [],
  crossMs: [],
  upMs: [],
  downMs: [],
  sentAt: [],
  arrivedAt: [],
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function hashOf(hex: string): Uint8Array<ArrayBuffer> {
  const v = new Uint8Array(hex.length / 2);
  for (let i = 0; i < v.length; i++) v[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return v;
}

async function open(cfg: BusyRunConfig): Promise<{ session: SessionClient; worker?: Worker }> {
  const common = {
    transports: [
      {
        name: 'webtransport',
        connector: nativeWebTransportConnector,
        options: { serverCertificateHashes: [{ algorithm: 'sha-256' as const, value: hashOf(cfg.hashHex) }] },
      },
    ],
    messages: MESSAGES,
    reconnect: false as const,
    fallback: { memory: false as const },
    heartbeat: { intervalMs: 250 },
  };
  if (cfg.mode === 'main') return { session: await connect(cfg.wtUrl, common) };
  const worker = new Worker(cfg.workerUrl, { type: 'module' });
  return { session: await connectInWorker(cfg.wtUrl, { ...common, worker }), worker };
}

async function run(cfg: BusyRunConfig): Promise<BusyRunResult> {
  const { session, worker } = await open(cfg);
  const m: 0 | 1 = cfg.mode === 'main' ? 0 : 1;
  const inWorker = session instanceof WorkerClientSession ? session : undefined;
  const out: BusyRunResult = {
    mode: cfg.mode,
    transport: session.transport,
    dgram: samples(),
    reliable: samples(),
    inputsSent: 0,
    rttMs: 0,
    minRttMs: 0,
    jitterMs: 0,
    longestStallMs: 0,
    blocks: [],
  };
  let recording = false;
  const record = (into: EchoSamples) => (p: Probe) => {
    if (!recording || p.m !== m) return;
    const handled = now();
    // In the Worker the message arrived when the Worker posted it; on the main thread, when the handler runs.
    const arrived = inWorker ? inWorker.receivedAt : handled;
    into.sessionMs.push(arrived - p.t);
    into.pageMs.push(handled - p.t);
    const w = p.w ?? p.t;
    const a = p.a ?? arrived;
    into.crossMs.push(w - p.t);
    into.upMs.push(a - w);
    into.downMs.push(arrived - a);
    into.sentAt.push(p.t);
    into.arrivedAt.push(arrived);
  };
  session.on(DgramEcho, record(out.dgram));
  session.on(ReliableEcho, record(out.reliable));
  await sleep(cfg.warmupMs);
  if (worker && cfg.gaps) worker.postMessage({ q: 'bench-gaps-start' });

  // The load: the main thread is blocked blockMs in every periodMs, as by long frames.
  const busy = setInterval(() => {
    out.blocks.push(now());
    const t = performance.now();
    while (performance.now() - t < cfg.blockMs) {
      // blocked
    }
  }, cfg.periodMs);
  let lastTick = performance.now();
  const stallTimer = setInterval(() => {
    const t = performance.now();
    out.longestStallMs = Math.max(out.longestStallMs, t - lastTick - 5);
    lastTick = t;
  }, 5);

  recording = true;
  const start = performance.now();
  let seq = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      if (performance.now() - start >= cfg.durationMs) return resolve();
      // Timers that were due during a block run late and together: what a 60 Hz input loop does on a busy page.
      const p: Probe = { s: seq, t: now(), m };
      session.send(DgramEcho, p);
      session.send(ReliableEcho, p);
      session.send(Input, p);
      out.dgram.sent++;
      out.reliable.sent++;
      out.inputsSent++;
      seq++;
      setTimeout(tick, Math.max(0, start + seq * (1000 / cfg.hz) - performance.now()));
    };
    tick();
  });
  clearInterval(busy);
  await sleep(cfg.graceMs);
  recording = false;
  clearInterval(stallTimer);
  out.rttMs = session.rtt;
  out.minRttMs = session.minRtt;
  out.jitterMs = session.jitter;
  if (inWorker)
    out.mainThreadDelay = { avgMs: inWorker.mainThreadDelay.avgMs, maxMs: inWorker.mainThreadDelay.maxMs };
  if (worker && cfg.gaps) {
    const got = new Promise<[number, number][]>((resolve) =>
      worker.addEventListener('message', (ev: MessageEvent) => {
        const d = ev.data as { q?: string; gaps?: [number, number][] };
        if (d?.q === 'bench-gaps') resolve(d.gaps ?? []);
      }),
    );
    worker.postMessage({ q: 'bench-gaps' });
    out.workerGaps = await got;
  }
  await session.close();
  worker?.terminate();
  return out;
}

(globalThis as unknown as { busyBench: unknown }).busyBench = { run };
document.title = 'ready';
