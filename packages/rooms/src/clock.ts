import type { Clock, TimerHandle } from '@quiver/session';

/**
 * A room's timers on the injected clock, all cleared when the room is disposed: a disposed room never runs
 * another callback.
 */
export class RoomClock {
  private readonly timers = new Set<TimerHandle>();
  private disposed = false;

  constructor(
    private readonly clock: Clock,
    private readonly onError: (err: Error) => void,
  ) {}

  /** Milliseconds, from the injected clock. */
  now(): number {
    return this.clock.now();
  }

  /** Runs `fn` once after `ms`; an exception goes to the room's error handler. Undefined once the room is disposed. */
  setTimeout(fn: () => void, ms: number): TimerHandle | undefined {
    if (this.disposed) return undefined;
    const h = this.clock.setTimeout(() => {
      this.timers.delete(h);
      this.run(fn);
    }, ms);
    this.timers.add(h);
    return h;
  }

  /** Cancels a timer of `setTimeout`; undefined or already-run handles are ignored. */
  clear(handle: TimerHandle | undefined): void {
    if (handle === undefined) return;
    this.timers.delete(handle);
    this.clock.clearTimeout(handle);
  }

  /** Repeats `fn` every `ms`; returns a function that stops it. */
  setInterval(fn: () => void, ms: number): () => void {
    let handle: TimerHandle | undefined;
    let stopped = false;
    const step = () => {
      if (stopped) return;
      handle = this.setTimeout(() => {
        if (stopped) return;
        step(); // scheduled first, so a callback that throws does not stop the interval
        fn();
      }, ms);
    };
    step();
    return () => {
      stopped = true;
      this.clear(handle);
    };
  }

  /**
   * Calls `fn(deltaMs)` every `intervalMs` on a fixed schedule: each step is due at start + n * interval, so the
   * simulation does not drift when a callback is late; `deltaMs` is the time since the previous call.
   */
  setSimulationInterval(fn: (deltaMs: number) => void, intervalMs: number): () => void {
    if (!(intervalMs > 0)) throw new RangeError('intervalMs must be > 0');
    const start = this.clock.now();
    let n = 0;
    let last = start;
    let handle: TimerHandle | undefined;
    let stopped = false;
    const schedule = () => {
      n++;
      handle = this.setTimeout(
        () => {
          if (stopped) return;
          const now = this.clock.now();
          const dt = now - last;
          last = now;
          schedule();
          fn(dt);
        },
        Math.max(0, start + n * intervalMs - this.clock.now()),
      );
    };
    schedule();
    return () => {
      stopped = true;
      this.clear(handle);
    };
  }

  /** @internal */
  dispose(): void {
    this.disposed = true;
    for (const h of this.timers) this.clock.clearTimeout(h);
    this.timers.clear();
  }

  /** Timers scheduled and not yet run or cleared. */
  get pending(): number {
    return this.timers.size;
  }

  private run(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.onError(err as Error);
    }
  }
}
