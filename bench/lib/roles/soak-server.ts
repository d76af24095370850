/**
 * The soak suite's server agent: one `@quiver/session` server on a WebTransport and a WebSocket (TLS) listener, as
 * a game server runs it: every session sends an input message at the tick rate and gets a state message back at
 * the same rate. Samples its own RSS, event-loop delay and session counts; after shutdown, reports the handles
 * (`process.getActiveResourcesInfo()`) it left beyond those it had before it started anything.
 */
import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import { createSessionServer, type SessionServer } from '@quiver/session';
import type { TransportListener } from '@quiver/transport';
import { SOAK_MESSAGES, SoakInput, SoakState } from './soak-messages.js';

export interface SoakServerOptions {
  host: string;
  certPem: string;
  keyPem: string;
  /** Tick rate of the state messages (Hz). */
  hz: number;
  /** How long a session whose transport vanished waits for a resume. */
  resumeWindowMs: number;
  /** QUIC idle timeout: how soon a vanished WebTransport client is noticed. */
  idleTimeoutMs: number;
}

export interface SoakPorts {
  wt?: number;
  wtError?: string;
  qws: number;
}

export interface SoakSample {
  /** ms since the server started. */
  t: number;
  rssBytes: number;
  heapUsedBytes: number;
  /** Event-loop delay since the previous sample (ms). */
  eldP99Ms: number;
  eldMaxMs: number;
  sessions: number;
  open: number;
  disconnected: number;
  byTransport: Record<string, number>;
  wtConnections: number;
  qwsSessions: number;
  inputs: number;
  statesSent: number;
  cpuUs: number;
}

let server: SessionServer | undefined;
let listeners: (TransportListener & { close(): Promise<void> })[] = [];
let wtListener: { connectionCount?: number } | undefined;
let qwsListener: { stats?: { sessions: number } } | undefined;
let tick: NodeJS.Timeout | undefined;
let interval: IntervalHistogram | undefined;
let overall: IntervalHistogram | undefined;
let started = 0;
let baseline = new Map<string, number>();
const counters = { inputs: 0, statesSent: 0 };

function resources(): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) m.set(r, (m.get(r) ?? 0) + 1);
  return m;
}

export async function startSoakServer(o: SoakServerOptions): Promise<SoakPorts> {
  baseline = resources();
  started = performance.now();
  interval = monitorEventLoopDelay({ resolution: 10 });
  overall = monitorEventLoopDelay({ resolution: 10 });
  interval.enable();
  overall.enable();
  const ports: Partial<SoakPorts> = {};
  const made: TransportListener[] = [];
  try {
    const { createWebTransportListener } = await import('@quiver/webtransport');
    const wt = await createWebTransportListener({
      host: o.host,
      port: 0,
      cert: o.certPem,
      key: o.keyPem,
      idleTimeoutMs: o.idleTimeoutMs,
      maxConnections: 4096,
      maxPendingRequests: 1024,
    });
    ports.wt = wt.address.port;
    wtListener = wt as unknown as { connectionCount?: number };
    made.push(wt as unknown as TransportListener);
  } catch (e) {
    ports.wtError = e instanceof Error ? e.message : String(e);
  }
  const { createWebSocketListener } = await import('@quiver/websocket');
  const qws = await createWebSocketListener({
    host: o.host,
    port: 0,
    tls: { cert: o.certPem, key: o.keyPem },
    maxPendingRequests: 1024,
  });
  ports.qws = qws.address.port;
  qwsListener = qws as unknown as { stats?: { sessions: number } };
  made.push(qws as unknown as TransportListener);
  listeners = made as typeof listeners;
  server = createSessionServer({
    listeners: made,
    messages: SOAK_MESSAGES,
    resumeWindowMs: o.resumeWindowMs,
    maxSessions: 100_000,
  });
  server.on(SoakInput, () => {
    counters.inputs++;
  });
  let seq = 0;
  tick = setInterval(() => {
    seq++;
    for (const s of server!.sessions.values()) {
      if (s.state !== 'open') continue;
      s.send(SoakState, { seq, x: seq & 0xffff, y: s.id.length });
      counters.statesSent++;
    }
  }, 1000 / o.hz);
  return ports as SoakPorts;
}

export function sampleSoakServer(): SoakSample {
  const s = server;
  let open = 0;
  let disconnected = 0;
  const byTransport: Record<string, number> = {};
  for (const x of s?.sessions.values() ?? []) {
    if (x.state === 'open') open++;
    else if (x.state === 'disconnected') disconnected++;
    const t = (x as unknown as { lastTransport?: string }).lastTransport ?? 'unknown';
    byTransport[t] = (byTransport[t] ?? 0) + 1;
  }
  const mem = process.memoryUsage();
  const u = process.cpuUsage();
  const out: SoakSample = {
    t: performance.now() - started,
    rssBytes: mem.rss,
    heapUsedBytes: mem.heapUsed,
    eldP99Ms: (interval?.percentile(99) ?? 0) / 1e6,
    eldMaxMs: (interval?.max ?? 0) / 1e6,
    sessions: s?.sessions.size ?? 0,
    open,
    disconnected,
    byTransport,
    wtConnections: wtListener?.connectionCount ?? 0,
    qwsSessions: qwsListener?.stats?.sessions ?? 0,
    inputs: counters.inputs,
    statesSent: counters.statesSent,
    cpuUs: u.user + u.system,
  };
  interval?.reset();
  return out;
}

/** Event-loop delay over the whole run (ms). */
export function overallEventLoopDelay(): { p50: number; p99: number; max: number } {
  const h = overall;
  return {
    p50: (h?.percentile(50) ?? 0) / 1e6,
    p99: (h?.percentile(99) ?? 0) / 1e6,
    max: (h?.max ?? 0) / 1e6,
  };
}

/**
 * Closes the session server and the listeners, then lists what is still active beyond the baseline taken before
 * anything started (timers, sockets, UDP handles...): it must be nothing.
 */
export async function stopSoakServer(): Promise<{ handlesLeft: string[] }> {
  if (tick) clearInterval(tick);
  tick = undefined;
  await server?.close();
  await Promise.all(listeners.map((l) => l.close().catch(() => {})));
  server = undefined;
  listeners = [];
  wtListener = undefined;
  qwsListener = undefined;
  interval?.disable();
  overall?.disable();
  // Let close callbacks run: a handle still there after a few turns of the loop is a leak, not a race.
  for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 10));
  const left: string[] = [];
  for (const [r, n] of resources()) {
    const extra = n - (baseline.get(r) ?? 0);
    for (let i = 0; i < extra; i++) left.push(r);
  }
  return { handlesLeft: left };
}
