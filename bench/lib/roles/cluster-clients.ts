/**
 * The `cluster` suite's client agent: a share of the storm's `RoomsClient`s in a process of its own, so that no one
 * process hosts all of them. With 600 clients in the bench process, its event loop was seconds behind at 20 Hz and
 * still behind when a node was killed: it saw the killed node's connections drop at p90 3.8 s, and measured its
 * own lag as detection and recovery time. Times are CLOCK_MONOTONIC (`monoMs`, the same clock in every process on
 * the machine), so the suite takes the SIGKILL time in its own process and every step's time in the agents'.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { type ClientRoom, RoomsClient } from '@quiver/rooms/client';
import { connect } from '@quiver/session';
import { connectWebSocket } from '@quiver/websocket';
import { Heard, Say } from '../../../packages/redis/test/fixtures/messages.ts';
import { monoMs } from './wire.js';

export interface ClusterJoinPlan {
  /** The nodes' HTTP origins. */
  endpoints: string[];
  /** This agent's clients: global indices `first`, `first + stride`, ... below `total`. */
  first: number;
  stride: number;
  total: number;
  /** Client i matchmakes at `startAt + i / total × spreadMs` (monotonic ms). */
  startAt: number;
  spreadMs: number;
  /**
   * A/B of the rematch's room check, in one run: every other client of each process checks as the SDK did before the rematch was
   * its own check (`GET /rooms/:id`, then once it answers 404 the matchmaking request, to the same endpoint),
   * emulated by their `fetch`; the others as the SDK does now (one conditional request).
   */
  abCheck?: boolean;
}

export interface ClusterJoinResult {
  joinMs: number[];
  matchmakeMs: number[];
  failed: number;
  errors: [string, number][];
}

/** One orphan's steps after the kill (monotonic ms; absent: never happened). */
export interface OrphanSteps {
  /** The transport dropped (`disconnect`: the session is resuming). */
  down?: number;
  /** The SDK asked a live node to matchmake again: it saw the room gone from the registry. */
  asked?: number;
  /** That matchmaking request's duration (HTTP). */
  requestMs?: number;
  /**
   * Room checks (`GET /quiver/rooms/:id`, one per endpoint asked) started after the kill, and when the first
   * started; of them, how many were refused (the killed node, asked first) and how many answered "still hosted".
   */
  checks?: number;
  firstCheck?: number;
  refusedChecks?: number;
  hostedAnswers?: number;
  /** When a check answered "gone" (404), and how long that request took. */
  goneAt?: number;
  goneCheckMs?: number;
  /** The rematch's session: connecting started, and the session opened (the join follows). */
  connectAt?: number;
  connectedAt?: number;
  /** Seated again (`rematch`): the new room on a live node answered the join. */
  seated?: number;
  /** Gave up (`leave`) with this error. */
  lost?: string;
  /** Its rematch check, in an A/B run. */
  check?: 'combined' | 'separate';
}

interface Check {
  at: number;
  end?: number;
  status?: number;
  /** A rematch that is its own room check (`?replaces=`): 200 says the room is gone (and reserves a seat)... */
  conditional?: boolean;
  /** ...unless the answer is "still hosted" (200, header `quiver-rematch: hosted`, nothing reserved). */
  hosted?: boolean;
}

/**
 * A `fetch` that answers the SDK's conditional rematch (`?replaces=<roomId>`) the way the SDK asked before it: a room
 * check (`GET /rooms/:id`), and only once that says the room is gone, the plain matchmaking request.
 */
function separateCheck(inner: typeof fetch): typeof fetch {
  return async (input, init) => {
    const url = new URL(String(input));
    const roomId = url.searchParams.get('replaces');
    if (roomId === null) return inner(input, init);
    const check = await inner(`${url.origin}/quiver/rooms/${encodeURIComponent(roomId)}`, {
      signal: init?.signal,
    });
    if (check.status !== 404) {
      await check.body?.cancel();
      if (!check.ok) return new Response(null, { status: check.status });
      return new Response(JSON.stringify({ hosted: true, replaces: roomId }), {
        status: 200,
        headers: { 'quiver-rematch': 'hosted' },
      });
    }
    await check.body?.cancel();
    url.searchParams.delete('replaces');
    const res = await inner(url, init);
    const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    return new Response(JSON.stringify(body.error ? body : { ...body, replaces: roomId }), {
      status: res.status,
    });
  };
}

interface Player {
  room: ClientRoom;
  /** Rematch check of the A/B (`ClusterJoinPlan.abCheck`): `separate` for the emulated former flow. */
  check: 'combined' | 'separate';
  /** Start (monotonic ms), duration and status of each matchmaking request of this client, the rematch included. */
  matchmakes: { at: number; ms?: number; status?: number }[];
  /** Between rooms: a rematch under way (its room was seen gone, or its node drained). */
  moving: boolean;
  /** Its room checks (one per endpoint asked): start (monotonic ms), end, HTTP status (0: refused or failed). */
  checks: Check[];
  /** Its sessions opened: start and end of each connect (monotonic ms). */
  connects: Check[];
}

/** What happened to the handles before any node was killed: nothing should (a node too slow to heartbeat does). */
export interface Churn {
  /** `disconnect` events: transports that dropped, or paths suspected dead and raced by a resuming reconnect. */
  disconnects: number;
  /** `rematch` events, by reason: a room seen gone while its node lived (heartbeat expired) is `node-lost`. */
  rematches: Record<string, number>;
  /** Handles gone for good. */
  left: number;
}

const churn: Churn = { disconnects: 0, rematches: {}, left: 0 };

const players: Player[] = [];
let latencies: number[] = [];
let listening = false;
let timers: ReturnType<typeof setInterval>[] = [];
let orphans: {
  p: Player;
  steps: OrphanSteps;
  before: number;
  checksBefore: number;
  connectsBefore: number;
  done: Promise<void>;
}[] = [];
/** This process's event-loop delay from the kill until every orphan is seated: the clients' own lag in the steps. */
let loopDelay: ReturnType<typeof monitorEventLoopDelay> | undefined;

/** Matchmakes and joins this agent's share of the storm; resolves when every one joined or failed. */
export async function joinStorm(plan: ClusterJoinPlan): Promise<ClusterJoinResult> {
  const { endpoints } = plan;
  const result: ClusterJoinResult = { joinMs: [], matchmakeMs: [], failed: 0, errors: [] };
  const errors = new Map<string, number>();
  const indices: number[] = [];
  for (let i = plan.first; i < plan.total; i += plan.stride) indices.push(i);
  await Promise.all(
    indices.map(async (i, local) => {
      const at = plan.startAt + (i / plan.total) * plan.spreadMs;
      await new Promise((r) => setTimeout(r, Math.max(0, at - monoMs())));
      const matchmakes: Player['matchmakes'] = [];
      let onMatchmake = () => {};
      const checks: Check[] = [];
      const connects: Check[] = [];
      // Alternating within this process (not by global index: with an even number of processes dealt round robin,
      // that put each group in processes of its own, and one process's lag on one side).
      const check: Player['check'] = plan.abCheck && local % 2 === 1 ? 'separate' : 'combined';
      const base: typeof fetch = check === 'separate' ? separateCheck(fetch) : fetch;
      // Each client matchmakes through its own node first, then the others in turn (RoomsClient falls over).
      const client = new RoomsClient({
        endpoint: [...endpoints.slice(i % endpoints.length), ...endpoints.slice(0, i % endpoints.length)],
        connectors: { websocket: connectWebSocket },
        connect: async (url, options) => {
          const c: Check = { at: monoMs() };
          connects.push(c);
          try {
            return await connect(url, options);
          } finally {
            c.end = monoMs();
          }
        },
        fetch: async (input: RequestInfo | URL, init?: RequestInit) => {
          const url = String(input);
          const matchmaking = url.includes('/matchmake/');
          // A room check: `GET /rooms/:id`, or a rematch that is its own check (`?replaces=`).
          const conditional = matchmaking && url.includes('replaces=');
          if (!matchmaking && !url.includes('/rooms/')) return base(input, init);
          const c: Check | undefined =
            !matchmaking || conditional ? { at: monoMs(), conditional } : undefined;
          if (c) checks.push(c);
          const m: Player['matchmakes'][number] | undefined = matchmaking ? { at: monoMs() } : undefined;
          if (m) matchmakes.push(m);
          if (m && !conditional) onMatchmake();
          try {
            const res = await base(input, init);
            if (c) {
              c.status = res.status;
              c.hosted = res.headers.get('quiver-rematch') === 'hosted';
              c.end = monoMs();
            }
            if (!m) return res;
            if (conditional && res.status === 200 && !c?.hosted) onMatchmake();
            // A rematch's answer is committed before its matchmaking: the request lasts until its body.
            const text = await res.text();
            m.ms = monoMs() - m.at;
            m.status = res.status;
            return new Response(text, { status: res.status, headers: res.headers });
          } catch (err) {
            if (c) {
              c.status = 0;
              c.end = monoMs();
            }
            throw err;
          }
        },
      });
      const t0 = monoMs();
      try {
        const room = await client.joinOrCreate('arena', { mode: 'bench' });
        result.joinMs.push(monoMs() - t0);
        const p: Player = { room, matchmakes, moving: false, checks, connects, check };
        players.push(p);
        room.on('disconnect', () => {
          churn.disconnects++;
        });
        room.on('rematch', ({ reason }) => {
          p.moving = false;
          churn.rematches[reason] = (churn.rematches[reason] ?? 0) + 1;
        });
        room.on('leave', () => {
          p.moving = false;
          churn.left++;
        });
        // A matchmaking request once joined is a rematch's: between rooms until `rematch` (or `leave`).
        onMatchmake = () => {
          p.moving = true;
        };
      } catch (err) {
        result.failed++;
        const key = String(err).slice(0, 160);
        errors.set(key, (errors.get(key) ?? 0) + 1);
      }
      for (const m of matchmakes) if (m.ms !== undefined) result.matchmakeMs.push(m.ms);
    }),
  );
  result.errors = [...errors];
  return result;
}

/**
 * The handles in a room now: not gone for good, not between rooms. A handle that left, or whose rematch is under
 * way, still names its old room's node (`processId` changes on `rematch`): it is not that node's client.
 */
const seated = () => players.filter((p) => !p.room.left && !p.moving);

/** Clients per hosting node. */
export function hosted(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of seated()) {
    const n = p.room.processId ?? '?';
    out[n] = (out[n] ?? 0) + 1;
  }
  return out;
}

/** Every client sends `Say` (its send time) at `hz`; its room broadcasts it to the others (`Heard`). */
export function startMessages(hz: number): void {
  latencies = [];
  if (!listening) {
    listening = true;
    for (const p of players) p.room.on(Heard, (m) => latencies.push(monoMs() - Number(m.text)));
  }
  timers = players.map((p) =>
    setInterval(() => {
      if (!p.room.left) p.room.send(Say, { text: String(monoMs()) });
    }, 1000 / hz),
  );
}

/**
 * Stops sending, waits for the traffic in flight to arrive (nothing received for 500 ms, `maxWaitMs` at most),
 * and returns the in-room latencies: the kill then finds this process idle, not working through a backlog.
 */
export async function stopMessages(maxWaitMs: number): Promise<number[]> {
  for (const t of timers) clearInterval(t);
  timers = [];
  for (let seen = -1, waited = 0; seen !== latencies.length && waited < maxWaitMs; waited += 500) {
    seen = latencies.length;
    await new Promise((r) => setTimeout(r, 500));
  }
  return latencies;
}

/** What happened to the handles so far (called before the kill). */
export function handleChurn(): Churn & { moving: number } {
  return { ...churn, moving: players.filter((p) => p.moving).length };
}

/** Watches the clients hosted by `node` (about to be killed); returns how many. */
export function watchOrphans(node: string): number {
  orphans = seated()
    .filter((p) => p.room.processId === node)
    .map((p) => {
      const steps: OrphanSteps = {};
      const before = p.matchmakes.length;
      const done = new Promise<void>((resolve) => {
        p.room.on('disconnect', () => {
          steps.down ??= monoMs();
        });
        p.room.on('rematch', () => {
          steps.seated = monoMs();
          resolve();
        });
        p.room.on('error', (err: unknown) => {
          steps.lost = String(err).slice(0, 160);
        });
        p.room.on('leave', () => {
          steps.lost ??= 'left';
          resolve();
        });
      });
      return { p, steps, before, checksBefore: p.checks.length, connectsBefore: p.connects.length, done };
    });
  loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  return orphans.length;
}

/** Resolves with each watched orphan's steps once every one is seated again or gave up (`timeoutMs` at most). */
export async function orphanSteps(
  timeoutMs: number,
): Promise<{ steps: OrphanSteps[]; loopDelayMs: { p99: number; max: number } }> {
  await Promise.race([Promise.all(orphans.map((o) => o.done)), new Promise((r) => setTimeout(r, timeoutMs))]);
  loopDelay?.disable();
  const loopDelayMs = {
    p99: (loopDelay?.percentile(99) ?? Number.NaN) / 1e6,
    max: (loopDelay?.max ?? Number.NaN) / 1e6,
  };
  const steps = orphans.map(({ p, steps, before, checksBefore, connectsBefore }) => {
    const checks = p.checks.slice(checksBefore);
    const opened = p.connects[connectsBefore];
    const gone = checks.find((c) => (c.conditional ? c.status === 200 && !c.hosted : c.status === 404));
    const out: OrphanSteps = {
      ...steps,
      check: p.check,
      checks: checks.length,
      firstCheck: checks[0]?.at,
      refusedChecks: checks.filter((c) => c.status === 0).length,
      hostedAnswers: checks.filter((c) => (c.conditional ? c.hosted : c.status === 200)).length,
      goneAt: gone?.end,
      goneCheckMs: gone?.end === undefined ? undefined : gone.end - gone.at,
      connectAt: opened?.at,
      connectedAt: opened?.end,
    };
    // The first matchmaking request after the kill that a node answered with a reservation is the rematch.
    const m = p.matchmakes.slice(before).find((x) => x.status === 200);
    return m ? { ...out, asked: m.at, requestMs: m.ms } : out;
  });
  return { steps, loopDelayMs };
}

export async function leaveAll(): Promise<void> {
  await Promise.all(players.map((p) => p.room.leave().catch(() => {})));
}
