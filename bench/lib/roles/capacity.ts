/**
 * The capacity suite's two roles, as a game server and its players would use each transport:
 *   - server (`capServe*`): one tick loop at `hz` sends every session a `size`-byte update per tick (an unreliable
 *     datagram on WebTransport and our WebSocket transport, a message on plain `ws`) and counts the inputs that
 *     arrive; it measures how late each tick starts, its own CPU, GC pauses and allocation;
 *   - client (`capClient*`): opens sessions, sends one `size`-byte input per session per tick, counts updates.
 * Both sides count only messages whose send time (CLOCK_MONOTONIC, shared by every process, see wire.ts) falls in
 * the measured window, so the delivered fractions compare like with like. Every loop ends by itself at the plan's
 * end, whatever the orchestrator does.
 */
import https from 'node:https';
import { type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';
import type { QuiverSession, TransportListener } from '@quiver/transport';
import WebSocket, { WebSocketServer } from 'ws';
import type { Target } from './clients.js';
import { encodeProbe, monoMs } from './wire.js';

/**
 * `wt:<engine>` is WebTransport on that QUIC engine; `qws` our WebSocket transport over TLS; `ws` plain ws; `wss`
 * plain ws over TLS (what TLS alone costs, against which our framing's share shows).
 */
export type CapacityKind = 'ws' | 'wss' | 'qws' | `wt:${string}`;

export interface CapacityPlan {
  /** CLOCK_MONOTONIC ms of tick 0 (see wire.ts monoMs). */
  startAt: number;
  hz: number;
  /** Ticks before the measured window (connections settle, JIT warms up). */
  warmTicks: number;
  measureTicks: number;
  /** Bytes of each update and each input. */
  size: number;
}

export function planWindow(p: CapacityPlan): { from: number; to: number; endAt: number } {
  const period = 1000 / p.hz;
  const from = p.startAt + p.warmTicks * period;
  const to = from + p.measureTicks * period;
  return { from, to, endAt: to };
}

const TAG_UPDATE = 11;
const TAG_INPUT = 12;

/** Send time of a probe (wire.ts layout, bytes 8..16, f64 BE) without a DataView per message. */
const f64 = new Float64Array(1);
const f64b = new Uint8Array(f64.buffer);
function sentAtOf(m: Uint8Array): number {
  if (m.length < 16) return Number.NaN;
  for (let i = 0; i < 8; i++) f64b[7 - i] = m[8 + i];
  return f64[0];
}

// --- server ---

interface Peer {
  send(m: Uint8Array): boolean;
}

const srv = {
  peers: new Set<Peer>(),
  sessions: new Set<QuiverSession>(),
  closers: [] as (() => Promise<void>)[],
  window: { from: Number.POSITIVE_INFINITY, to: Number.NEGATIVE_INFINITY },
  inputsInWindow: 0,
  inputsTotal: 0,
  engine: '' as string,
};

function onInput(m: Uint8Array): void {
  srv.inputsTotal++;
  const t = sentAtOf(m);
  if (t >= srv.window.from && t < srv.window.to) srv.inputsInWindow++;
}

async function serveQuiver(l: TransportListener): Promise<void> {
  const reader = l.incomingSessions.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const s: QuiverSession = value.accept();
      srv.sessions.add(s);
      const w = s.datagrams.writable.getWriter();
      let open = true;
      const peer: Peer = {
        send(m) {
          if (!open) return false;
          w.write(m).catch(() => {});
          return true;
        },
      };
      srv.peers.add(peer);
      const gone = (): void => {
        open = false;
        srv.peers.delete(peer);
      };
      s.closed.then(gone, gone);
      void (async () => {
        const r = s.datagrams.readable.getReader();
        try {
          for (;;) {
            const d = await r.read();
            if (d.done) break;
            onInput(d.value);
          }
        } catch {}
      })();
    }
  } catch {}
}

export interface CapacityServerOptions {
  kind: CapacityKind;
  host: string;
  certPem: string;
  keyPem: string;
}

/** Starts the one listener `kind` needs; returns its port and, for WebTransport, the engine that runs it. */
export async function capServeStart(o: CapacityServerOptions): Promise<{ port: number; engine?: string }> {
  if (o.kind.startsWith('wt:')) {
    const engine = o.kind.slice(3);
    const wt = await import('@quiver/webtransport');
    const l = await wt.createWebTransportListener({
      host: o.host,
      port: 0,
      cert: o.certPem,
      key: o.keyPem,
      maxConnections: 8192,
      maxPendingRequests: 4096,
      engine: engine as import('@quiver/webtransport').EngineName,
    });
    srv.engine = l.engine;
    void serveQuiver(l);
    srv.closers.push(() => l.close());
    return { port: l.address.port, engine: srv.engine };
  }
  if (o.kind === 'qws') {
    const qws = await import('@quiver/websocket');
    const l = await qws.createWebSocketListener({
      host: o.host,
      port: 0,
      tls: { cert: o.certPem, key: o.keyPem },
      maxPendingRequests: 4096,
    });
    void serveQuiver(l);
    srv.closers.push(() => l.close());
    return { port: l.address.port };
  }
  const tls = o.kind === 'wss' ? https.createServer({ cert: o.certPem, key: o.keyPem }) : undefined;
  if (tls) await new Promise<void>((r) => tls.listen(0, o.host, r));
  const wss = tls
    ? new WebSocketServer({ server: tls, perMessageDeflate: false })
    : new WebSocketServer({ host: o.host, port: 0, perMessageDeflate: false });
  wss.on('connection', (sock) => {
    const peer: Peer = {
      send(m) {
        if (sock.readyState !== WebSocket.OPEN) return false;
        sock.send(m);
        return true;
      },
    };
    srv.peers.add(peer);
    sock.on('message', (data: Buffer) => onInput(data));
    sock.on('error', () => {});
    sock.on('close', () => srv.peers.delete(peer));
  });
  if (!tls) await new Promise<void>((r) => wss.once('listening', r));
  srv.closers.push(async () => {
    for (const c of wss.clients) c.terminate();
    await new Promise<void>((r) => wss.close(() => r()));
    if (tls) await new Promise<void>((r) => tls.close(() => r()));
  });
  return { port: ((tls ?? wss).address() as { port: number }).port };
}

export function capServePeers(): number {
  return srv.peers.size;
}

export interface CapacityServerResult {
  /** How late each measured tick started, ms. */
  latenessMs: number[];
  sessionsAtStart: number;
  sessionsAtEnd: number;
  updatesSent: number;
  /** Updates not handed to the transport (the session had closed). */
  updatesRefused: number;
  inputsReceived: number;
  cpuUs: number;
  wallMs: number;
  gcPausesMs: number[];
  gcMajor: number;
  /** Bytes allocated on the V8 heap in the window (from GC statistics; Buffers' external memory excluded). */
  allocatedBytes: number;
  engine: string;
  /** Datagrams the server's sessions dropped, by direction and reason. */
  drops: Record<string, number>;
}

interface GcStat {
  beforeGC: { heapStatistics: { usedHeapSize: number } };
  afterGC: { heapStatistics: { usedHeapSize: number } };
}

/**
 * Runs the plan's ticks and resolves after the last measured one. Ticks are scheduled against absolute times,
 * so a late tick does not shift the ones after it: lateness is now minus the tick's due time.
 */
export async function capServeRun(
  plan: CapacityPlan,
): Promise<Omit<CapacityServerResult, 'inputsReceived' | 'drops'>> {
  const period = 1000 / plan.hz;
  const w = planWindow(plan);
  srv.window = { from: w.from, to: w.to };
  srv.inputsInWindow = 0;
  const latenessMs: number[] = [];
  const gcPausesMs: number[] = [];
  let gcMajor = 0;
  let measuring = false;
  const obs = new PerformanceObserver((list) => {
    if (!measuring) return;
    for (const e of list.getEntries() as (PerformanceEntry & { detail?: { kind?: number } })[]) {
      gcPausesMs.push(e.duration);
      // NODE_PERFORMANCE_GC_MAJOR = 4 (perf_hooks constants).
      if (e.detail?.kind === 4) gcMajor++;
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  const profiler = new v8.GCProfiler();
  let cpu0 = process.cpuUsage();
  let t0 = 0;
  let heap0 = 0;
  let sessionsAtStart = 0;
  let updatesSent = 0;
  let updatesRefused = 0;
  const total = plan.warmTicks + plan.measureTicks;
  // Start-up garbage (module loading, handshakes) is collected before the warm-up, not in the window.
  (globalThis as { gc?: () => void }).gc?.();
  await new Promise<void>((resolve) => {
    let k = 0;
    const tick = (): void => {
      const due = plan.startAt + k * period;
      const now = monoMs();
      const inWindow = k >= plan.warmTicks;
      if (k === plan.warmTicks) {
        measuring = true;
        sessionsAtStart = srv.peers.size;
        heap0 = process.memoryUsage().heapUsed;
        profiler.start();
        cpu0 = process.cpuUsage();
        t0 = now;
      }
      if (inWindow) latenessMs.push(now - due);
      for (const p of srv.peers) {
        // A distinct update per session, as a game's per-player state delta would be.
        const m = encodeProbe(TAG_UPDATE, k, plan.size, 0, due);
        if (p.send(m)) {
          if (inWindow) updatesSent++;
        } else if (inWindow) updatesRefused++;
      }
      k++;
      if (k >= total) {
        resolve();
        return;
      }
      setTimeout(tick, Math.max(0, plan.startAt + k * period - monoMs()));
    };
    setTimeout(tick, Math.max(0, plan.startAt - monoMs()));
  });
  const wallMs = monoMs() - t0;
  const cu = process.cpuUsage(cpu0);
  const heap1 = process.memoryUsage().heapUsed;
  const prof = profiler.stop() as unknown as { statistics: GcStat[] };
  measuring = false;
  // Let the observer deliver the window's last entries.
  await new Promise((r) => setImmediate(r));
  obs.disconnect();
  let allocated = 0;
  let after = heap0;
  for (const s of prof.statistics) {
    allocated += Math.max(0, s.beforeGC.heapStatistics.usedHeapSize - after);
    after = s.afterGC.heapStatistics.usedHeapSize;
  }
  allocated += Math.max(0, heap1 - after);
  return {
    latenessMs,
    sessionsAtStart,
    sessionsAtEnd: srv.peers.size,
    updatesSent,
    updatesRefused,
    cpuUs: cu.user + cu.system,
    wallMs,
    gcPausesMs,
    gcMajor,
    allocatedBytes: allocated,
    engine: srv.engine,
  };
}

/** Inputs that arrived with a send time in the window (call after the clients' grace period), and drops. */
export async function capServeInputs(): Promise<{ inputs: number; drops: Record<string, number> }> {
  return { inputs: srv.inputsInWindow, drops: await dropsOf(srv.sessions) };
}

export async function capServeStop(): Promise<void> {
  const cs = srv.closers.splice(0);
  await Promise.all(cs.map((c) => c().catch(() => {})));
  srv.peers.clear();
  srv.sessions.clear();
}

// --- client ---

interface ClientSession {
  send(m: Uint8Array): void;
  close(): Promise<void>;
  session?: QuiverSession;
}

/** Datagrams a set of sessions dropped, by direction and reason (summed over sessions). */
async function dropsOf(sessions: Iterable<QuiverSession>): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const s of sessions) {
    const st = await s.getStats().catch(() => undefined);
    if (!st) continue;
    for (const [dir, m] of [
      ['out', st.datagrams.droppedOutgoing],
      ['in', st.datagrams.droppedIncoming],
    ] as const)
      for (const [k, v] of Object.entries(m)) out[`${dir}:${k}`] = (out[`${dir}:${k}`] ?? 0) + (v ?? 0);
  }
  return out;
}

const cli = {
  sessions: [] as ClientSession[],
  window: { from: Number.POSITIVE_INFINITY, to: Number.NEGATIVE_INFINITY },
  updatesInWindow: 0,
  inputsInWindow: 0,
  failed: 0,
  firstError: undefined as string | undefined,
  timer: undefined as NodeJS.Timeout | undefined,
  cpu0: process.cpuUsage(),
};

function onUpdate(m: Uint8Array): void {
  const t = sentAtOf(m);
  if (t >= cli.window.from && t < cli.window.to) cli.updatesInWindow++;
}

function hashOption(hex: string) {
  return [{ algorithm: 'sha-256' as const, value: new Uint8Array(Buffer.from(hex, 'hex')) }];
}

async function openOne(
  kind: CapacityKind,
  t: Target,
  port: number,
  clientEngine?: string,
): Promise<ClientSession> {
  if (kind === 'ws' || kind === 'wss') {
    const ws =
      kind === 'ws'
        ? new WebSocket(`ws://${t.host}:${port}/cap`, { perMessageDeflate: false })
        : new WebSocket(`wss://${t.host}:${port}/cap`, { perMessageDeflate: false, ca: t.certPem });
    ws.binaryType = 'nodebuffer';
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.on('error', () => {});
    ws.on('message', (d: Buffer) => onUpdate(d));
    return {
      send: (m) => {
        if (ws.readyState === WebSocket.OPEN) ws.send(m);
      },
      close: async () => ws.terminate(),
    };
  }
  let s: QuiverSession;
  if (kind === 'qws') {
    const { connectWebSocket } = await import('@quiver/websocket');
    s = connectWebSocket(`https://${t.host}:${port}/cap`, {
      serverCertificateHashes: hashOption(t.certHashHex),
      connectTimeoutMs: 30_000,
    });
  } else {
    const { connectWebTransport } = await import('@quiver/webtransport');
    s = connectWebTransport(`https://${t.host}:${port}/cap`, {
      serverCertificateHashes: hashOption(t.certHashHex),
      connectTimeoutMs: 30_000,
      ...(clientEngine ? { engine: clientEngine as import('@quiver/webtransport').EngineName } : {}),
    });
  }
  await s.ready;
  const w = s.datagrams.writable.getWriter();
  void (async () => {
    const r = s.datagrams.readable.getReader();
    try {
      for (;;) {
        const d = await r.read();
        if (d.done) break;
        onUpdate(d.value);
      }
    } catch {}
  })();
  return {
    session: s,
    send: (m) => {
      w.write(m).catch(() => {});
    },
    close: async () => {
      try {
        s.close({ closeCode: 0, reason: '' });
      } catch {}
      await Promise.race([s.closed.catch(() => {}), new Promise((r) => setTimeout(r, 2000))]);
    },
  };
}

/** Opens `count` sessions, `concurrency` handshakes at a time; failures are counted, not thrown. */
export async function capClientConnect(
  kind: CapacityKind,
  t: Target,
  port: number,
  count: number,
  concurrency = 16,
  /** The QUIC engine of the WebTransport clients (the load generator), whatever the server's. Default: the default. */
  clientEngine?: string,
): Promise<{ ready: number; failed: number; firstError?: string }> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      next++;
      try {
        cli.sessions.push(await openOne(kind, t, port, clientEngine));
      } catch (e) {
        cli.failed++;
        cli.firstError ??= e instanceof Error ? e.message : String(e);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return { ready: cli.sessions.length, failed: cli.failed, firstError: cli.firstError };
}

/** Sends one input per session per tick from the plan's start, half a tick after the server's, until its end. */
export function capClientStart(plan: CapacityPlan): void {
  const period = 1000 / plan.hz;
  const w = planWindow(plan);
  cli.window = { from: w.from, to: w.to };
  cli.updatesInWindow = 0;
  cli.inputsInWindow = 0;
  let k = 0;
  const total = plan.warmTicks + plan.measureTicks;
  const tick = (): void => {
    cli.timer = undefined;
    const t = plan.startAt + (k + 0.5) * period;
    if (k === plan.warmTicks) cli.cpu0 = process.cpuUsage();
    const inWindow = t >= w.from && t < w.to;
    for (const s of cli.sessions) {
      s.send(encodeProbe(TAG_INPUT, k, plan.size, 0, t));
      if (inWindow) cli.inputsInWindow++;
    }
    k++;
    if (k < total) cli.timer = setTimeout(tick, Math.max(0, plan.startAt + (k + 0.5) * period - monoMs()));
  };
  cli.timer = setTimeout(tick, Math.max(0, plan.startAt + 0.5 * period - monoMs()));
}

export interface CapacityClientResult {
  sessions: number;
  inputsSent: number;
  updatesReceived: number;
  cpuUs: number;
  /** Datagrams the client sessions dropped (`out:<reason>`, `in:<reason>`), over the whole step. */
  drops: Record<string, number>;
}

export async function capClientReport(): Promise<CapacityClientResult> {
  const cu = process.cpuUsage(cli.cpu0);
  return {
    sessions: cli.sessions.length,
    inputsSent: cli.inputsInWindow,
    updatesReceived: cli.updatesInWindow,
    cpuUs: cu.user + cu.system,
    drops: await dropsOf(cli.sessions.flatMap((c) => (c.session ? [c.session] : []))),
  };
}

export async function capClientClose(): Promise<void> {
  if (cli.timer) clearTimeout(cli.timer);
  cli.timer = undefined;
  await Promise.all(cli.sessions.splice(0).map((s) => s.close()));
}
