/**
 * The soak suite's server agent: one `@quiver/session` server on a WebTransport and a WebSocket (TLS) listener, as
 * a game server runs it: every session sends an input message at the tick rate and gets a state message back at
 * the same rate. Samples its own RSS, event-loop delay and session counts; after shutdown, reports the handles
 * (`process.getActiveResourcesInfo()`) it left beyond those it had before it started anything.
 */
import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import { createSessionServer, type ServerSession, type SessionServer } from '@quiver/session';
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
  /** QUIC engine of the WebTransport listener (default: the listener's). */
  engine?: 'quiche' | 'quinn';
  /**
   * TCP listen backlog of the WebSocket listener (default: Node's, 511). Given, the listener is mounted on an
   * HTTPS server of the bench's own that listens with it.
   */
  backlog?: number;
}

export interface SoakPorts {
  wt?: number;
  wtError?: string;
  /** The QUIC engine that runs the WebTransport listener. */
  engine?: string;
  qws: number;
}

export interface SoakSample {
  /** ms since the server started. */
  t: number;
  rssBytes: number;
  heapUsedBytes: number;
  /** Memory of Buffers and ArrayBuffers (outside the V8 heap). */
  externalBytes: number;
  /** Whether a full GC ran just before this sample (heapUsed is then what is retained). */
  afterGc: boolean;
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
  /** Session requests refused so far, by reason (the server's metrics). */
  rejections: Record<string, number>;
  /** The WebSocket listener's upgrade counters (requests, accepted, timedOut, abandoned...). */
  qwsUpgrades: Record<string, number>;
  /** Messages the server's sessions dropped so far, by reason (the server's metrics). */
  drops: Record<string, number>;
}

let server: SessionServer | undefined;
let listeners: (TransportListener & { close(): Promise<void> })[] = [];
let wtListener: { connectionCount?: number } | undefined;
let qwsListener: { stats?: { sessions: number } } | undefined;
let tick: NodeJS.Timeout | undefined;
let httpsServer: import('node:https').Server | undefined;
let interval: IntervalHistogram | undefined;
let overall: IntervalHistogram | undefined;
let started = 0;
let baseline = new Map<string, number>();
const counters = { inputs: 0, statesSent: 0 };
const createdAt = new WeakMap<object, number>();

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
      ...(o.engine ? { engine: o.engine } : {}),
    });
    ports.wt = wt.address.port;
    ports.engine = wt.engine;
    wtListener = wt as unknown as { connectionCount?: number };
    made.push(wt as unknown as TransportListener);
  } catch (e) {
    ports.wtError = e instanceof Error ? e.message : String(e);
  }
  const { createWebSocketListener } = await import('@quiver/websocket');
  if (o.backlog) {
    const https = await import('node:https');
    const own = https.createServer({ cert: o.certPem, key: o.keyPem });
    own.listen({ host: o.host, port: 0, backlog: o.backlog });
    await new Promise((r) => own.once('listening', r));
    httpsServer = own;
  }
  const qws = await createWebSocketListener({
    ...(httpsServer
      ? { server: httpsServer }
      : { host: o.host, port: 0, tls: { cert: o.certPem, key: o.keyPem } }),
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
    // Every bench client comes from 127.0.0.1, where a real server sees one address per player: the per-address
    // pre-authentication cap (default 16) would evict the handshakes of a cohort joining at 50/s on a loaded
    // machine, and the refused clients' retries would add load of the bench's own making.
    preAuth: { maxPendingPerIp: 4096, maxPending: 4096 },
  });
  // The tick is spread over PHASES slots, a fifth of the sessions each, as the clients spread their inputs: one
  // callback for every session made a loop turn of 1,000 sends and their writes (50-100 ms), and Node 20's libuv
  // accepts one TCP connection per turn, so joins after a kill queued behind long turns and timed out.
  const PHASES = 5;
  const phases = Array.from({ length: PHASES }, () => new Set<ServerSession>());
  let nextPhase = 0;
  server.on('session', (x) => {
    createdAt.set(x, performance.now());
    phases[nextPhase++ % PHASES].add(x);
  });
  server.on(SoakInput, () => {
    counters.inputs++;
  });
  // Every session still gets one state per tick: a late timer catches up (at most one whole tick), as the clients'.
  const slotMs = 1000 / o.hz / PHASES;
  const t0 = performance.now();
  let done = 0;
  tick = setInterval(() => {
    const due = Math.floor((performance.now() - t0) / slotMs);
    done = Math.max(done, due - PHASES);
    for (; done < due; done++) {
      const seq = Math.floor(done / PHASES) + 1;
      const slot = phases[done % PHASES];
      for (const s of slot) {
        if (s.state === 'closed') {
          slot.delete(s);
          continue;
        }
        if (s.state !== 'open') continue;
        s.send(SoakState, { seq, x: seq & 0xffff, y: s.id.length });
        counters.statesSent++;
      }
    }
  }, slotMs);
  return ports as SoakPorts;
}

export function sampleSoakServer(o: { gc?: boolean } = {}): SoakSample {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (o.gc && gc) gc();
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
    externalBytes: mem.external,
    afterGc: !!(o.gc && gc),
    eldP99Ms: (interval?.percentile(99) ?? 0) / 1e6,
    eldMaxMs: (interval?.max ?? 0) / 1e6,
    sessions: s?.sessions.size ?? 0,
    open,
    disconnected,
    byTransport,
    wtConnections: wtListener?.connectionCount ?? 0,
    qwsSessions: qwsListener?.stats?.sessions ?? 0,
    qwsUpgrades: qwsStats() ?? {},
    inputs: counters.inputs,
    statesSent: counters.statesSent,
    cpuUs: u.user + u.system,
    rejections: { ...(s?.metrics.rejections ?? {}) },
    drops: { ...(s?.metrics.drops ?? {}) },
  };
  interval?.reset();
  return out;
}

/** What a session still on the server is doing: for telling a leak (a dead link never noticed) from a backlog. */
export interface LeftoverSession {
  state: string;
  transport: string;
  /** ms since the session was created. */
  ageMs: number;
  /** Whether it still has a link, and ms since anything arrived on it. */
  link: boolean;
  silentMs?: number;
  heartbeatPending?: boolean;
}

/** The sessions still on the server, described (the first `max`). */
export function leftoverSessions(max = 20): LeftoverSession[] {
  const out: LeftoverSession[] = [];
  const now = performance.now();
  for (const x of server?.sessions.values() ?? []) {
    if (out.length >= max) break;
    const link = (x as unknown as { link: { lastReceived: number; heartbeatTimer?: unknown } | null }).link;
    out.push({
      state: x.state,
      transport: x.lastTransport,
      ageMs: Math.round(now - (createdAt.get(x) ?? now)),
      link: link !== null,
      silentMs: link ? Math.round(performance.timeOrigin + now - link.lastReceived) : undefined,
      heartbeatPending: link ? link.heartbeatTimer !== undefined : undefined,
    });
  }
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
  if (httpsServer) {
    const own = httpsServer;
    own.closeAllConnections();
    await new Promise((r) => own.close(r));
    httpsServer = undefined;
  }
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

/** Writes a heap snapshot (after a full GC) to `path`; for telling retained growth from fragmentation. */
export async function soakHeapSnapshot(path: string): Promise<string> {
  const { writeHeapSnapshot } = await import('node:v8');
  return writeHeapSnapshot(path);
}

/** The QUIC connections the WebTransport listener still holds (the first 5), with their state: private fields. */
export function quicConnections(): unknown[] {
  interface QuicheConn {
    isEstablished(): boolean;
    isDraining(): boolean;
    isClosed(): boolean;
    timeout(): number | null;
  }
  interface Held {
    sessions?: Map<unknown, unknown>;
    pendingRequests?: Set<unknown>;
    quic?: { closed?: boolean; localClose?: boolean; timerAt?: number; timer?: unknown; conn?: QuicheConn };
  }
  const l = wtListener as unknown as { conns?: Set<Held>; lingerTimers?: Map<Held, unknown> } | undefined;
  const out: unknown[] = [];
  for (const c of l?.conns ?? []) {
    const q = c.quic;
    const qc = q?.conn;
    out.push({
      sessions: c.sessions?.size,
      pending: c.pendingRequests?.size,
      closed: q?.closed,
      localClose: q?.localClose,
      timerInMs: q?.timerAt === undefined ? undefined : Math.round(q.timerAt - performance.now()),
      hasTimer: !!q?.timer,
      established: qc?.isEstablished(),
      draining: qc?.isDraining(),
      quicheClosed: qc?.isClosed(),
      quicheTimeout: qc?.timeout(),
      lingering: l?.lingerTimers?.has(c),
    });
    if (out.length >= 5) break;
  }
  return out;
}

/** The WebSocket listener's upgrade counters (requests, accepted, timed out, abandoned...), for diagnosis. */
export function qwsStats(): Record<string, number> | undefined {
  return (qwsListener as { stats?: Record<string, number> } | undefined)?.stats;
}
