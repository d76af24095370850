import type { ConnectOptions, Connector, QuiverSession } from '@quiver/transport';
import { type Clock, systemClock, type TimerHandle } from './clock.js';
import { ConnectError } from './errors.js';

/** One way to reach the server, tried in order by `connect()`. */
export interface TransportCandidate {
  /** e.g. `webtransport`, `websocket`. */
  name: string;
  connector: Connector;
  /** A URL for this transport only (e.g. `ws://host:port/path` for WebSocket on a plain-HTTP server). */
  url?: string;
  /**
   * Options for this connector only (merged over the shared ones), e.g. `serverCertificateHashes` for
   * WebTransport.
   */
  options?: ConnectOptions;
}

export type AttemptOutcome =
  /** This transport carried the session. */
  | 'won'
  /** `ready` rejected (refused, blocked, certificate error, ...). */
  | 'failed'
  /** `ready` did not settle within `connectTimeoutMs`. */
  | 'timeout'
  /** The connector threw at once: the platform lacks it (no `WebTransport` in this browser). */
  | 'unsupported'
  /** Started, but another transport won first; closed. */
  | 'cancelled'
  /** Never started because another transport won within its head start. */
  | 'skipped';

export interface TransportAttempt {
  name: string;
  outcome: AttemptOutcome;
  error?: string;
  /** HTTP status of a refusal, when the transport reports one. */
  status?: number;
  /** Milliseconds from this attempt's start to its outcome (0 when skipped). */
  ms: number;
}

/** Remembers which transport won per origin. */
export interface WinnerMemory {
  get(origin: string): string | undefined;
  set(origin: string, name: string): void;
}

/**
 * In-memory, and in `localStorage` where it exists (browsers), so a page reload starts with the transport that
 * worked last time instead of waiting out a blocked one again.
 */
export function createWinnerMemory(
  storage: Pick<Storage, 'getItem' | 'setItem'> | null = defaultStorage(),
): WinnerMemory {
  const map = new Map<string, string>();
  return {
    get(origin) {
      const v = map.get(origin);
      if (v !== undefined) return v;
      try {
        return storage?.getItem(`quiver:transport:${origin}`) ?? undefined;
      } catch {
        return undefined;
      }
    },
    set(origin, name) {
      map.set(origin, name);
      try {
        storage?.setItem(`quiver:transport:${origin}`, name);
      } catch {
        // storage full or denied: the in-memory entry still works for this page
      }
    },
  };
}

function defaultStorage(): Pick<Storage, 'getItem' | 'setItem'> | null {
  try {
    const ls = (globalThis as { localStorage?: Storage }).localStorage;
    return ls ?? null;
  } catch {
    return null;
  }
}

/** Shared by every `connect()` that does not pass its own. */
export const defaultWinnerMemory: WinnerMemory = createWinnerMemory();

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
 * Races `candidates` for `url`: the first (or the remembered winner) starts at once, each next one after the head
 * start or as soon as the previous fails. The first session whose `ready` resolves wins; the others are closed.
 */
export function raceTransports(
  url: string,
  candidates: TransportCandidate[],
  options: FallbackOptions & { connectOptions?: ConnectOptions } = {},
): Promise<{ session: QuiverSession; attempts: TransportAttempt[] }> {
  if (candidates.length === 0) return Promise.reject(new TypeError('no transports to connect with'));
  const clock = options.clock ?? systemClock;
  const headStart = options.headStartMs ?? 400;
  const timeoutMs = options.connectTimeoutMs ?? 10_000;
  const memory = options.memory === false ? null : (options.memory ?? defaultWinnerMemory);
  const origin = originOf(url);
  const remembered = memory?.get(origin);
  const order = [...candidates];
  const wi = order.findIndex((c) => c.name === remembered);
  if (wi > 0) order.unshift(...order.splice(wi, 1));

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
      if (i + 1 < order.length) headTimer = clock.setTimeout(startNext, headStart);
    };

    const failed = (i: number, outcome: AttemptOutcome, err: unknown, t0: number) => {
      if (settled[i]) return;
      settled[i] = true;
      clock.clearTimeout(timers[i]);
      attempts[i] = {
        name: order[i].name,
        outcome,
        error: err instanceof Error ? err.message : String(err),
        status: statusOf(err),
        ms: clock.now() - t0,
      };
      try {
        sessions[i]?.close();
      } catch {
        // already closed
      }
      if (!done && started.length === i + 1) startNext();
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
            attempts[i] = { name: c.name, outcome: 'cancelled', ms: clock.now() - t0 };
            try {
              session.close();
            } catch {
              // already closed
            }
            return;
          }
          done = true;
          clock.clearTimeout(headTimer);
          attempts[i] = { name: c.name, outcome: 'won', ms: clock.now() - t0 };
          for (let j = 0; j < order.length; j++) {
            if (j === i || !started[j] || settled[j]) continue;
            settled[j] = true;
            clock.clearTimeout(timers[j]);
            attempts[j] = { name: order[j].name, outcome: 'cancelled', ms: clock.now() - startedAt[j] };
            try {
              sessions[j]?.close();
            } catch {
              // already closed
            }
          }
          memory?.set(origin, c.name);
          resolve({ session, attempts });
        },
        (err) => failed(i, 'failed', err, t0),
      );
    };

    startNext();
  });
}
