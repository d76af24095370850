/**
 * Time and randomness are injected so that heartbeats, clock sync, reassembly timeouts and reconnection backoff
 * are deterministic under test. The shape matches the `Clock` the transport package exposes, so either can be
 * passed.
 */
export interface Clock {
  /** Milliseconds; only differences matter, except for `serverTime()` which reports the server's `now()`. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  // Monotonic and sub-millisecond (close to Date.now()), so RTT samples never run backwards.
  now: () => performance.timeOrigin + performance.now(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof globalThis.setTimeout>),
};

/** A clock that only moves when told to; timers fire in deadline order inside `advance()`. */
export class ManualClock implements Clock {
  private time: number;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  constructor(start = 0) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.time + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** Moves time forward by `ms`, firing due timers in order (timers set by timers fire too if due). */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.timers) {
        if (entry[1].at <= end && (!next || entry[1].at < next[1].at)) next = entry;
      }
      if (!next) break;
      this.timers.delete(next[0]);
      this.time = Math.max(this.time, next[1].at);
      next[1].fn();
    }
    this.time = end;
  }

  /** Fires timers until none is left; `limit` guards against timers that reschedule themselves forever. */
  runAll(limit = 100_000): number {
    let fired = 0;
    while (this.timers.size > 0) {
      let next = Number.POSITIVE_INFINITY;
      for (const t of this.timers.values()) next = Math.min(next, t.at);
      this.advance(Math.max(0, next - this.time));
      if (++fired >= limit) throw new Error(`ManualClock.runAll: more than ${limit} timers; a timer loop?`);
    }
    return fired;
  }

  get pendingTimers(): number {
    return this.timers.size;
  }
}

/** A seeded generator (mulberry32): returns floats in [0, 1). Used for backoff jitter, never for secrets. */
export type Rng = () => number;

export function createRng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Unpredictable bytes for resume tokens and session ids (Web Crypto exists in browsers and Node >= 20). */
export function randomToken(bytes = 18): string {
  const buf = new Uint8Array(bytes);
  globalThis.crypto.getRandomValues(buf);
  let s = '';
  for (const b of buf) s += b.toString(16).padStart(2, '0');
  return s;
}
