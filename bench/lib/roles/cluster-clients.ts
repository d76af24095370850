/**
 * The `cluster` suite's client agent: a share of the storm's `RoomsClient`s in a process of its own, so that no one
 * process hosts all of them. With 600 clients in the bench process, its event loop was seconds behind at 20 Hz and
 * still behind when a node was killed: it saw the killed node's connections drop at p90 3.8 s, and measured its
 * own lag as detection and recovery time. Times are CLOCK_MONOTONIC (`monoMs`, the same clock in every process on
 * the machine), so the suite takes the SIGKILL time in its own process and every step's time in the agents'.
 */
import { type ClientRoom, RoomsClient } from '@quiver/rooms/client';
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
  /** Seated again (`rematch`): the new room on a live node answered the join. */
  seated?: number;
  /** Gave up (`leave`) with this error. */
  lost?: string;
}

interface Check {
  at: number;
  end?: number;
  status?: number;
}

interface Player {
  room: ClientRoom;
  /** Start (monotonic ms) and duration of each matchmaking request of this client, the rematch included. */
  matchmakes: { at: number; ms?: number }[];
  /** Between rooms: a rematch under way (its room was seen gone, or its node drained). */
  moving: boolean;
  /** Its room checks (one per endpoint asked): start (monotonic ms), end, HTTP status (0: refused or failed). */
  checks: Check[];
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
  done: Promise<void>;
}[] = [];

/** Matchmakes and joins this agent's share of the storm; resolves when every one joined or failed. */
export async function joinStorm(plan: ClusterJoinPlan): Promise<ClusterJoinResult> {
  const { endpoints } = plan;
  const result: ClusterJoinResult = { joinMs: [], matchmakeMs: [], failed: 0, errors: [] };
  const errors = new Map<string, number>();
  const indices: number[] = [];
  for (let i = plan.first; i < plan.total; i += plan.stride) indices.push(i);
  await Promise.all(
    indices.map(async (i) => {
      const at = plan.startAt + (i / plan.total) * plan.spreadMs;
      await new Promise((r) => setTimeout(r, Math.max(0, at - monoMs())));
      const matchmakes: Player['matchmakes'] = [];
      let onMatchmake = () => {};
      const checks: Check[] = [];
      // Each client matchmakes through its own node first, then the others in turn (RoomsClient falls over).
      const client = new RoomsClient({
        endpoint: [...endpoints.slice(i % endpoints.length), ...endpoints.slice(0, i % endpoints.length)],
        connectors: { websocket: connectWebSocket },
        fetch: async (input: RequestInfo | URL, init?: RequestInit) => {
          if (!String(input).includes('/matchmake/')) {
            if (!String(input).includes('/rooms/')) return fetch(input, init);
            const c: Check = { at: monoMs() };
            checks.push(c);
            try {
              const res = await fetch(input, init);
              c.status = res.status;
              return res;
            } catch (err) {
              c.status = 0;
              throw err;
            } finally {
              c.end = monoMs();
            }
          }
          const m: { at: number; ms?: number } = { at: monoMs() };
          matchmakes.push(m);
          onMatchmake();
          const res = await fetch(input, init);
          m.ms = monoMs() - m.at;
          return res;
        },
      });
      const t0 = monoMs();
      try {
        const room = await client.joinOrCreate('arena', { mode: 'bench' });
        result.joinMs.push(monoMs() - t0);
        const p: Player = { room, matchmakes, moving: false, checks };
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
      return { p, steps, before, checksBefore: p.checks.length, done };
    });
  return orphans.length;
}

/** Resolves with each watched orphan's steps once every one is seated again or gave up (`timeoutMs` at most). */
export async function orphanSteps(timeoutMs: number): Promise<OrphanSteps[]> {
  await Promise.race([Promise.all(orphans.map((o) => o.done)), new Promise((r) => setTimeout(r, timeoutMs))]);
  return orphans.map(({ p, steps, before, checksBefore }) => {
    const checks = p.checks.slice(checksBefore);
    const gone = checks.find((c) => c.status === 404);
    const out: OrphanSteps = {
      ...steps,
      checks: checks.length,
      firstCheck: checks[0]?.at,
      refusedChecks: checks.filter((c) => c.status === 0).length,
      hostedAnswers: checks.filter((c) => c.status === 200).length,
      goneAt: gone?.end,
      goneCheckMs: gone?.end === undefined ? undefined : gone.end - gone.at,
    };
    // The first matchmaking request after the kill is the rematch.
    const m = p.matchmakes[before];
    return m ? { ...out, asked: m.at, requestMs: m.ms } : out;
  });
}

export async function leaveAll(): Promise<void> {
  await Promise.all(players.map((p) => p.room.leave().catch(() => {})));
}
