/**
 * The soak suite's client agent: a cohort of `@quiver/session` clients, a configurable fraction on WebTransport
 * and the rest on our WebSocket transport, each sending an input message at the tick rate. Clients also leave and
 * are replaced throughout (a clean close after a random lifetime, then a fresh join); the orchestrator kills the
 * whole agent with SIGKILL for the abrupt departures.
 */
import { type ClientSession, connect } from '@quiver/session';
import { createRng } from '@quiver/transport';
import type { Target } from './clients.js';
import { SOAK_MESSAGES, SoakInput, SoakState } from './soak-messages.js';

export interface CohortOptions {
  target: Target;
  /** Sessions this cohort keeps open. */
  count: number;
  /** Fraction of them on WebTransport (the rest on our WebSocket transport). */
  wtFraction: number;
  hz: number;
  /** Joins are spread over this long at the start. */
  spreadMs: number;
  /** Each client leaves cleanly after a lifetime drawn uniformly from this range, and a new one joins. */
  lifetimeMs: [number, number];
  seed: number;
  /** QUIC engine of the WebTransport clients (default: the client's). */
  engine?: 'quiche' | 'quinn';
}

interface KindStats {
  joined: number;
  failed: number;
  closedCleanly: number;
  lostUnexpectedly: number;
  statesReceived: number;
  inputsSent: number;
}

export interface CohortStats {
  open: { wt: number; qws: number };
  wt: KindStats;
  qws: KindStats;
  firstError: { wt?: string; qws?: string };
  /** User + system CPU of this client process so far (µs). */
  cpuUs: number;
  /** RSS of this client process (bytes). */
  rssBytes: number;
}

const empty = (): KindStats => ({
  joined: 0,
  failed: 0,
  closedCleanly: 0,
  lostUnexpectedly: 0,
  statesReceived: 0,
  inputsSent: 0,
});
const stats: CohortStats = {
  open: { wt: 0, qws: 0 },
  wt: empty(),
  qws: empty(),
  firstError: {},
  cpuUs: 0,
  rssBytes: 0,
};
let running = false;
const timers = new Set<NodeJS.Timeout>();
/**
 * The inputs of every playing client, sent by one ticker: a timer per client (500 per process) cost the load
 * generator, which shares the machine's cores with the server it measures, more than the sends themselves.
 */
const PHASES = 5;
const playing = Array.from({ length: PHASES }, () => new Set<() => void>());
let nextPhase = 0;
let ticking = false;

function hashOption(hex: string) {
  return [{ algorithm: 'sha-256' as const, value: new Uint8Array(Buffer.from(hex, 'hex')) }];
}

// Loaded once: under tsx every runtime import() is a blocking round trip to the loader thread (postMessage was 4 %
// of a client process's time with one per join).
let wtModule: Promise<typeof import('@quiver/webtransport')> | undefined;
let qwsModule: Promise<typeof import('@quiver/websocket')> | undefined;

async function join(kind: 'wt' | 'qws', o: CohortOptions): Promise<ClientSession> {
  const t = o.target;
  // The session's own per-attempt deadline (`fallback.connectTimeoutMs`, default 10 s) caps the transport's: both
  // 15 s, as the handshake's.
  const common = {
    messages: SOAK_MESSAGES,
    reconnect: false as const,
    handshakeTimeoutMs: 15_000,
    fallback: { connectTimeoutMs: 15_000 },
  };
  if (kind === 'wt') {
    wtModule ??= import('@quiver/webtransport');
    const { connectWebTransport } = await wtModule;
    return connect(`https://${t.host}:${t.ports.wt}/soak`, {
      ...common,
      connector: connectWebTransport,
      connectOptions: {
        serverCertificateHashes: hashOption(t.certHashHex),
        connectTimeoutMs: 15_000,
        ...(o.engine ? { engine: o.engine } : {}),
      },
    });
  }
  qwsModule ??= import('@quiver/websocket');
  const { connectWebSocket } = await qwsModule;
  return connect(`https://${t.host}:${t.ports.qws}/soak`, {
    ...common,
    connector: connectWebSocket,
    connectOptions: { serverCertificateHashes: hashOption(t.certHashHex), connectTimeoutMs: 15_000 },
  });
}

/** One seat of the cohort: a client joins, plays until its lifetime ends, leaves, and the next one joins. */
async function seat(kind: 'wt' | 'qws', o: CohortOptions, rng: () => number, delayMs: number): Promise<void> {
  await new Promise((r) => setTimeout(r, delayMs));
  const s = stats[kind];
  let backoff = 1000;
  while (running) {
    let c: ClientSession;
    try {
      c = await join(kind, o);
    } catch (e) {
      s.failed++;
      stats.firstError[kind] ??= e instanceof Error ? e.message : String(e);
      // A refused or failed join is retried after a pause that doubles (to 16 s, with jitter), as a player's page
      // would: retrying every second made a saturated server's failures feed its own load.
      await new Promise((r) => setTimeout(r, backoff * (0.5 + rng())));
      backoff = Math.min(backoff * 2, 16_000);
      continue;
    }
    backoff = 1000;
    s.joined++;
    stats.open[kind]++;
    let seq = 0;
    const off = c.on(SoakState, () => {
      s.statesReceived++;
    });
    const input = () => {
      c.send(SoakInput, { seq: ++seq, x: seq & 0xff, y: 1 });
      s.inputsSent++;
    };
    const slot = playing[nextPhase++ % PHASES];
    slot.add(input);
    const lifetime = o.lifetimeMs[0] + rng() * (o.lifetimeMs[1] - o.lifetimeMs[0]);
    const ended = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(true), lifetime);
      timers.add(t);
      c.on('close', () => {
        clearTimeout(t);
        timers.delete(t);
        resolve(false);
      });
    });
    slot.delete(input);
    off();
    stats.open[kind]--;
    if (ended) {
      await c.close().catch(() => {});
      s.closedCleanly++;
    } else {
      s.lostUnexpectedly++;
    }
  }
}

/** Starts the cohort in the background; `cohortStats()` reports on it. */
export function startCohort(o: CohortOptions): void {
  running = true;
  // Clients are spread over PHASES slots of the tick, so that inputs do not all arrive in one burst. A late timer
  // catches up (at most one whole tick), so a loaded client process still sends at the tick rate when it can.
  if (!ticking) {
    ticking = true;
    const slotMs = 1000 / o.hz / PHASES;
    const t0 = performance.now();
    let done = 0;
    setInterval(() => {
      const due = Math.floor((performance.now() - t0) / slotMs);
      done = Math.max(done, due - PHASES);
      for (; done < due; done++) for (const send of playing[done % PHASES]) send();
    }, slotMs);
  }
  const rng = createRng(o.seed);
  const wt = o.target.ports.wt ? Math.round(o.count * o.wtFraction) : 0;
  for (let i = 0; i < o.count; i++) {
    const kind = wtSeats(i, o.count, wt) ? 'wt' : 'qws';
    void seat(kind, o, () => rng.next(), (i * o.spreadMs) / o.count);
  }
}

/** Spreads `wt` WebTransport seats evenly among `count`. */
function wtSeats(i: number, count: number, wt: number): boolean {
  return Math.floor(((i + 1) * wt) / count) > Math.floor((i * wt) / count);
}

export function cohortStats(): CohortStats {
  const u = process.cpuUsage();
  stats.cpuUs = u.user + u.system;
  stats.rssBytes = process.memoryUsage.rss();
  return JSON.parse(JSON.stringify(stats));
}
