import type { ConnectOptions, Connector, QuiverSession } from '@quiver/transport';
import { type Clock, systemClock, type TimerHandle } from './clock.js';
import { ConnectError } from './errors.js';

/** One way to reach the server, tried in order by `connect()`. */
export interface TransportCandidate {
  /** e.g. `webtransport`, `websocket`. */
  name: string;
  /** Opens a session with this transport. */
  connector: Connector;
  /** A URL for this transport only (e.g. `ws://host:port/path` for WebSocket on a plain-HTTP server). */
  url?: string;
  /**
   * Options for this connector only (merged over the shared ones), e.g. `serverCertificateHashes` for
   * WebTransport.
   */
  options?: ConnectOptions;
  /**
   * How long the candidates before this one get before it starts too (overrides the race's `headStartMs` for this
   * candidate), e.g. a longer one for the HTTP fallback after WebSocket, which is slower to set up and costlier to
   * run, so that it only starts when WebSocket has had a fair chance.
   */
  headStartMs?: number;
}

/** How one transport's connection attempt ended in a race. */
export type AttemptOutcome =
  /** This transport carried the session. */
  | 'won'
  /** `ready` rejected (refused, blocked, certificate error, ...). */
  | 'failed'
  /** `ready` did not settle within `connectTimeoutMs`. */
  | 'timeout'
  /** The connector threw at once: the platform lacks it (no `WebTransport` in this browser). */
  | 'unsupported'
  /**
   * Started, but had not answered when another transport won (`error` says how long it waited and who won). On a
   * network that drops UDP this is what a blocked WebTransport looks like; a slow one looks the same, which is why a
   * preferred transport that lost is still followed in the background (see `raceTransports`).
   */
  | 'lost-race'
  /** Never started because another transport won within its head start. */
  | 'skipped';

/** What happened to one transport in a race. */
export interface TransportAttempt {
  /** The connector's name. */
  name: string;
  /** How the attempt ended. */
  outcome: AttemptOutcome;
  /** Why it failed, timed out or lost, for logs; absent for `won` and `skipped`. */
  error?: string;
  /** HTTP status of a refusal, when the transport reports one. */
  status?: number;
  /** Milliseconds from this attempt's start to its outcome (0 when skipped). */
  ms: number;
}

/** A transport that won for an origin, and when (the race's clock, `Clock.now()`: the Unix epoch by default). */
export interface RememberedWinner {
  /** The winning connector's name. */
  name: string;
  /** When it won, in the race clock's milliseconds. */
  at: number;
}

/** Remembers which transport won per origin. */
export interface WinnerMemory {
  /** The winner remembered for `origin` (scheme, host and port), however old; `undefined` if none. */
  get(origin: string): RememberedWinner | undefined;
  /** Remembers `winner` for `origin`, replacing any earlier one. */
  set(origin: string, winner: RememberedWinner): void;
}

const STORAGE_PREFIX = 'quiver:transport:';

function parseStored(raw: string | null | undefined): RememberedWinner | undefined {
  if (!raw) return undefined;
  try {
    const v = JSON.parse(raw) as Partial<RememberedWinner>;
    if (typeof v?.name === 'string' && typeof v.at === 'number' && Number.isFinite(v.at)) {
      return { name: v.name, at: v.at };
    }
  } catch {
    // An entry without a time (written by an older version as the bare name) cannot expire, so it is ignored: a
    // network that was blocked once must not pin a browser to the fallback forever.
  }
  return undefined;
}

/**
 * In-memory, and in `localStorage` where it exists (browsers), so a page reload starts with the transport that
 * worked last time instead of waiting out a blocked one again. Entries carry the time they were won at; the race
 * ignores them after `rememberWinnerMs`.
 */
export function createWinnerMemory(storage: WinnerStorage | null = defaultStorage()): WinnerMemory {
  const map = new Map<string, RememberedWinner>();
  return {
    get(origin) {
      const v = map.get(origin);
      if (v !== undefined) return v;
      try {
        return parseStored(storage?.getItem(`${STORAGE_PREFIX}${origin}`));
      } catch {
        return undefined;
      }
    },
    set(origin, winner) {
      map.set(origin, { name: winner.name, at: winner.at });
      try {
        storage?.setItem(`${STORAGE_PREFIX}${origin}`, JSON.stringify({ name: winner.name, at: winner.at }));
      } catch {
        // storage full or denied: the in-memory entry still works for this page
      }
    },
  };
}

/** The part of the Web Storage API the winner memory uses (`localStorage` has it); typed here so Node needs no DOM. */
export interface WinnerStorage {
  /** The stored string, or `null` when there is none (Web Storage `getItem`). */
  getItem(key: string): string | null;
  /** Stores `value`; may throw when storage is full or denied (Web Storage `setItem`). */
  setItem(key: string, value: string): void;
}

function defaultStorage(): WinnerStorage | null {
  try {
    const ls = (globalThis as { localStorage?: WinnerStorage }).localStorage;
    return ls ?? null;
  } catch {
    return null;
  }
}

/** Shared by every `connect()` that does not pass its own. */
export const defaultWinnerMemory: WinnerMemory = createWinnerMemory();

/** Options of {@link raceTransports}. */
export interface FallbackOptions {
  /**
   * How long a transport gets on its own before the next one is started too (Happy Eyeballs, RFC 8305 §5, applied
   * to transports). A failure starts the next one at once. Default 400 ms.
   */
  headStartMs?: number;
  /** Per attempt; default 10 000 ms. */
  connectTimeoutMs?: number;
  /** Where winners are remembered; `false` disables it. Default `defaultWinnerMemory`. */
  memory?: WinnerMemory | false;
  /**
   * How long a remembered winner is used to reorder the race. Default 600 000 ms (10 min): long enough that page
   * reloads on a UDP-blocking network skip the head start, short enough that a laptop that moves to a better network
   * gets WebTransport back soon even if the background race below never catches it.
   */
  rememberWinnerMs?: number;
  /** Time and timers of the race (default the system clock); tests inject a ManualClock. */
  clock?: Clock;
}

function statusOf(err: unknown): number | undefined {
  if (err && typeof err === 'object') {
    const e = err as { status?: unknown; statusCode?: unknown };
    if (typeof e.status === 'number') return e.status;
    if (typeof e.statusCode === 'number') return e.statusCode;
  }
  // The memory and WebSocket transports reject `ready` with a `SessionRejectedError` carrying `status` (above).
  // A browser's native WebTransport exposes no status, and other transports may only report the refusal as text
  // (`ws`: "Unexpected server response: 401", WebTransport: "... status 401"), so the text is the fallback.
  const text = err instanceof Error ? err.message : String(err);
  const m = /\b(?:response|status|rejected the session)[: ]+([1-5]\d\d)\b/i.exec(text);
  return m ? Number(m[1]) : undefined;
}

/** `target` with the query of `source` (the token and other parameters `connect()` added). */
function withQueryOf(target: string, source: string): string {
  try {
    const t = new URL(target);
    for (const [k, v] of new URL(source).searchParams) t.searchParams.set(k, v);
    return t.toString();
  } catch {
    return target;
  }
}

function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}

/**
 * Races `candidates` for `url`: the first starts at once, each next one after the head start or as soon as the
 * previous fails. The first session whose `ready` resolves wins; the others are closed.
 *
 * A winner remembered for the origin (within `rememberWinnerMs`) that is not the first candidate starts at once,
 * and so does the first candidate alongside it: a remembered fallback saves the head start, but the preferred
 * transport still gets its chance each time. A preferred transport (earlier in `candidates` than the winner) that
 * has not answered when another wins is recorded `lost-race` and followed until its own `connectTimeoutMs`: if it
 * becomes ready after all, it is closed and remembered as the winner, so the next connect starts with it.
 */
export function raceTransports(
  url: string,
  candidates: TransportCandidate[],
  options: FallbackOptions & { connectOptions?: ConnectOptions } = {},
): Promise<{
  /** The winner's session, `ready` already resolved. */
  session: QuiverSession;
  /** What happened to every candidate, in race order. */
  attempts: TransportAttempt[];
}> {
  if (candidates.length === 0) return Promise.reject(new TypeError('no transports to connect with'));
  const clock = options.clock ?? systemClock;
  const headStart = options.headStartMs ?? 400;
  const timeoutMs = options.connectTimeoutMs ?? 10_000;
  const ttl = options.rememberWinnerMs ?? 600_000;
  const memory = options.memory === false ? null : (options.memory ?? defaultWinnerMemory);
  const origin = originOf(url);
  const remembered = memory?.get(origin);
  const age = remembered ? clock.now() - remembered.at : Number.NaN;
  // A time in the future came from another clock (or a changed system clock): not trusted either.
  const fresh = remembered !== undefined && age >= 0 && age < ttl;
  const order = [...candidates];
  const wi = fresh ? order.findIndex((c) => c.name === remembered.name) : -1;
  if (wi > 0) order.unshift(...order.splice(wi, 1));
  // With a remembered fallback first, the preferred transport (now second) starts together with it.
  const startTogether = wi > 0 ? 2 : 1;
  const rank = (c: TransportCandidate) => candidates.indexOf(c);

  return new Promise((resolve, rejectPromise) => {
    const attempts: TransportAttempt[] = order.map((c) => ({ name: c.name, outcome: 'skipped', ms: 0 }));
    const sessions: (QuiverSession | undefined)[] = [];
    const timers: (TimerHandle | undefined)[] = [];
    const started: boolean[] = [];
    const startedAt: number[] = [];
    const settled: boolean[] = [];
    let done = false;
    let headTimer: TimerHandle | undefined;

    const finishIfAllFailed = () => {
      if (done || settled.filter(Boolean).length < order.length) return;
      done = true;
      const last = [...attempts].reverse().find((a) => a.status !== undefined);
      rejectPromise(
        new ConnectError(
          `could not connect to ${url}: ${attempts.map((a) => `${a.name} ${a.outcome}${a.error ? ` (${a.error})` : ''}`).join(', ')}`,
          attempts,
          last?.status,
        ),
      );
    };

    const startNext = () => {
      const i = started.length;
      if (done || i >= order.length) return;
      clock.clearTimeout(headTimer);
      start(i);
      // A connector that threw at once has already moved the race on (`failed` started the next one).
      if (done || started.length > i + 1) return;
      if (i + 1 < startTogether) {
        startNext();
        return;
      }
      if (i + 1 < order.length)
        headTimer = clock.setTimeout(startNext, order[i + 1].headStartMs ?? headStart);
    };

    const closeQuietly = (s: QuiverSession | undefined) => {
      try {
        s?.close();
      } catch {
        // already closed
      }
    };

    const failed = (i: number, outcome: AttemptOutcome, err: unknown, t0: number) => {
      if (settled[i]) return;
      settled[i] = true;
      clock.clearTimeout(timers[i]);
      closeQuietly(sessions[i]);
      // After the race, a failing background attempt keeps its `lost-race` record: that is what the caller saw.
      if (done) return;
      attempts[i] = {
        name: order[i].name,
        outcome,
        error: err instanceof Error ? err.message : String(err),
        status: statusOf(err),
        ms: clock.now() - t0,
      };
      const nonePending = started.every((_, j) => settled[j]);
      if (started.length === i + 1 || nonePending) startNext();
      finishIfAllFailed();
    };

    const start = (i: number) => {
      started[i] = true;
      const t0 = clock.now();
      startedAt[i] = t0;
      const c = order[i];
      let session: QuiverSession;
      try {
        session = c.connector(c.url ? withQueryOf(c.url, url) : url, {
          ...options.connectOptions,
          ...c.options,
        });
      } catch (err) {
        failed(i, 'unsupported', err, t0);
        return;
      }
      sessions[i] = session;
      session.closed.catch(() => {});
      timers[i] = clock.setTimeout(
        () => failed(i, 'timeout', new Error(`no connection within ${timeoutMs} ms`), t0),
        timeoutMs,
      );
      session.ready.then(
        () => {
          if (settled[i]) return;
          settled[i] = true;
          clock.clearTimeout(timers[i]);
          if (done) {
            // A preferred transport followed after losing: it works after all (the network let it through, or it
            // was only slow). Not needed for this session, but the next connect should start with it.
            closeQuietly(session);
            memory?.set(origin, { name: c.name, at: clock.now() });
            return;
          }
          done = true;
          clock.clearTimeout(headTimer);
          const now = clock.now();
          attempts[i] = { name: c.name, outcome: 'won', ms: now - t0 };
          for (let j = 0; j < order.length; j++) {
            if (j === i || !started[j] || settled[j]) continue;
            const waited = now - startedAt[j];
            attempts[j] = {
              name: order[j].name,
              outcome: 'lost-race',
              error: `no response within ${Math.round(waited)} ms; ${c.name} won`,
              ms: waited,
            };
            if (rank(order[j]) < rank(c)) continue; // followed until its own timeout (above)
            settled[j] = true;
            clock.clearTimeout(timers[j]);
            closeQuietly(sessions[j]);
          }
          memory?.set(origin, { name: c.name, at: now });
          resolve({ session, attempts });
        },
        (err) => failed(i, 'failed', err, t0),
      );
    };

    startNext();
  });
}
