/**
 * Time and randomness are injected everywhere in Quiver so that protocol cores and simulations are reproducible:
 * a {@link ManualClock} plus a seeded {@link createRng} make a whole run deterministic.
 */

declare const timerBrand: unique symbol;
/** Opaque handle returned by {@link Clock.setTimeout}. */
export type TimerHandle = {
  /** A type-level brand only: no such property exists at run time. */
  readonly [timerBrand]: true;
};

/** Time and timers, injected so that protocol code runs on a manual clock in tests. */
export interface Clock {
  /** Milliseconds; monotonic. The epoch is the clock's own (the Unix epoch for {@link systemClock}). */
  now(): number;
  /** Calls `fn` once after `ms` milliseconds of this clock. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Cancels a timer; `undefined` and fired timers are ignored. */
  clearTimeout(handle: TimerHandle | undefined): void;
}

/**
 * The real clock. `now()` is `performance.timeOrigin + performance.now()`: close to `Date.now()` but monotonic, so
 * that RTT samples and delivery schedules never run backwards when the wall clock is adjusted.
 */
export const systemClock: Clock = {
  now: () => performance.timeOrigin + performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, Math.max(0, ms)) as unknown as TimerHandle,
  clearTimeout: (handle) => {
    if (handle !== undefined) clearTimeout(handle as unknown as ReturnType<typeof setTimeout>);
  },
};

interface ManualTimer {
  at: number;
  seq: number;
  fn: () => void;
}

/**
 * A clock that only moves when told to. Timers fire in (due time, creation order) order, with `now()` set to their
 * due time, so a simulation driven by it is reproducible to the millisecond fraction.
 */
export class ManualClock implements Clock {
  #now: number;
  #seq = 0;
  // Kept sorted by (at, seq); simulations hold few timers at once, so insertion into an array is cheap enough.
  #timers: ManualTimer[] = [];

  constructor(startMs = 0) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  /** Timers scheduled and not yet fired or cleared. */
  get pending(): number {
    return this.#timers.length;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer: ManualTimer = {
      at: this.#now + Math.max(0, Number.isFinite(ms) ? ms : 0),
      seq: this.#seq++,
      fn,
    };
    let lo = 0;
    let hi = this.#timers.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const t = this.#timers[mid];
      if (t.at < timer.at || (t.at === timer.at && t.seq < timer.seq)) lo = mid + 1;
      else hi = mid;
    }
    this.#timers.splice(lo, 0, timer);
    return timer as unknown as TimerHandle;
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (handle === undefined) return;
    const i = this.#timers.indexOf(handle as unknown as ManualTimer);
    if (i >= 0) this.#timers.splice(i, 1);
  }

  /**
   * Moves time forward by `ms`, firing every timer due on the way (including timers those timers schedule, if due
   * before the target). Returns the number of timers fired.
   */
  advance(ms: number): number {
    if (!(ms >= 0)) throw new RangeError(`ManualClock.advance: ms must be >= 0, got ${ms}`);
    const target = this.#now + ms;
    let fired = 0;
    while (this.#timers.length > 0 && this.#timers[0].at <= target) {
      const timer = this.#timers.shift()!;
      this.#now = timer.at;
      fired++;
      timer.fn();
    }
    this.#now = target;
    return fired;
  }

  /** Fires the next due timer (moving time to it); false when none is pending. */
  runNext(): boolean {
    const timer = this.#timers.shift();
    if (!timer) return false;
    this.#now = Math.max(this.#now, timer.at);
    timer.fn();
    return true;
  }

  /**
   * Fires timers until none is pending. `limit` guards against timers that keep rescheduling themselves forever.
   */
  runAll(limit = 1_000_000): number {
    let fired = 0;
    while (this.runNext()) {
      if (++fired >= limit)
        throw new Error(`ManualClock.runAll: more than ${limit} timers fired; a timer loop?`);
    }
    return fired;
  }
}

/**
 * A deterministic source of numbers in [0, 1). The methods do not use `this`, so they can be passed on alone:
 * `const random = createRng(7).next` is a `() => number`.
 */
export interface Rng {
  /** A float in [0, 1) with 32 bits of randomness, like `Math.random()`. */
  next(): number;
  /** An integer in [0, n). */
  int(n: number): number;
  /** A 32-bit unsigned integer. */
  uint32(): number;
}

/**
 * mulberry32 (Tommy Ettinger, public domain): 32 bits of state, passes gjrand/PractRand to 2^32 outputs, which is
 * plenty for loss and jitter simulation. Not for cryptography.
 */
export function createRng(seed: number): Rng {
  let state = seed >>> 0;
  const uint32 = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  return {
    uint32,
    next: () => uint32() / 4294967296,
    int: (n) => Math.floor((uint32() / 4294967296) * n),
  };
}

/** A {@link Clock} that counts its scheduled timers, for leak checks: `pending` must return to 0 after a close. */
export interface TrackedClock extends Clock {
  /** Timers scheduled and neither fired nor cleared yet. */
  readonly pending: number;
}

/** Wraps `clock` (default {@link systemClock}) so that its live timers are counted. */
export function trackTimers(clock: Clock = systemClock): TrackedClock {
  const live = new Set<TimerHandle>();
  return {
    now: () => clock.now(),
    setTimeout(fn, ms) {
      const handle: TimerHandle = clock.setTimeout(() => {
        live.delete(handle);
        fn();
      }, ms);
      live.add(handle);
      return handle;
    },
    clearTimeout(handle) {
      if (handle === undefined) return;
      live.delete(handle);
      clock.clearTimeout(handle);
    },
    get pending() {
      return live.size;
    },
  };
}
