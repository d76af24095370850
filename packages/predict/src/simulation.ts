/**
 * The fixed-tick simulation shared by server and client.
 *
 * Determinism: `step` must be a pure function of (state, input, dt): no clock, no `Math.random` (pass a seed in the
 * state), no iteration over objects whose key order depends on history. IEEE-754 double arithmetic (+ - * / and
 * `Math.sqrt`) is exactly reproducible on every engine; `Math.sin`, `Math.exp` and friends are only guaranteed to
 * repeat on the same engine build, so a server on Node and a client on another browser engine can differ in the
 * last bit after those. Round stored state with `Math.fround` (or quantize to the wire format) where client and
 * server may run different engines, so both start every step from the same bits.
 */
import { checkOption } from './errors.js';

/** What {@link defineSimulation} takes: the tick rate and the step function. */
export interface SimulationDefinition<S, I> {
  /** Ticks per second (e.g. 60). */
  tickRate: number;
  /** One tick: returns the next state. Must not mutate `state` (the predictor keeps past states to rewind to). */
  step(state: S, input: I, dt: number): S;
}

/** A fixed-tick simulation, the same object on server and client. */
export interface Simulation<S, I> {
  /** Ticks per second (1 to 1000). */
  readonly tickRate: number;
  /** Seconds per tick, the `dt` handed to `step`. */
  readonly dt: number;
  /** Milliseconds per tick. */
  readonly tickMs: number;
  /** One tick with the fixed `dt`: returns the next state. */
  step(state: S, input: I): S;
  /** Applies `inputs` in order, one tick each. */
  run(state: S, inputs: Iterable<I>): S;
}

/** Defines a simulation; throws RangeError for a tick rate outside 1 to 1000. */
export function defineSimulation<S, I>(definition: SimulationDefinition<S, I>): Simulation<S, I> {
  const tickRate = checkOption('tickRate', definition.tickRate, 1, 1000);
  const dt = 1 / tickRate;
  const step = definition.step;
  return {
    tickRate,
    dt,
    tickMs: 1000 / tickRate,
    step: (state, input) => step(state, input, dt),
    run(state, inputs) {
      let s = state;
      for (const input of inputs) s = step(s, input, dt);
      return s;
    },
  };
}

/** Options of {@link FixedTicker}. */
export interface FixedTickerOptions {
  /**
   * At most this many ticks per `advance` (default 8). After a long stall (a background tab, a GC pause) the
   * excess time is dropped and counted rather than simulated in one burst that would stall the next frame too.
   */
  maxTicksPerAdvance?: number;
}

/** Turns variable frame times into whole ticks (the "fix your timestep" accumulator). */
export class FixedTicker {
  /** Milliseconds per tick. */
  readonly tickMs: number;
  /** Most ticks one `advance` returns (option, default 8). */
  readonly maxTicksPerAdvance: number;
  /** Ticks handed out so far. */
  tick = 0;
  /** Time dropped because a frame would have needed more than `maxTicksPerAdvance` ticks. */
  droppedMs = 0;
  #accumulator = 0;

  constructor(tickRate: number, options: FixedTickerOptions = {}) {
    this.tickMs = 1000 / checkOption('tickRate', tickRate, 1, 1000);
    this.maxTicksPerAdvance = checkOption('maxTicksPerAdvance', options.maxTicksPerAdvance ?? 8, 1);
  }

  /** Adds `elapsedMs` of frame time and returns how many ticks to run now. */
  advance(elapsedMs: number): number {
    if (!(elapsedMs >= 0)) throw new RangeError(`elapsedMs must be >= 0, got ${elapsedMs}`);
    this.#accumulator += elapsedMs;
    let n = Math.floor(this.#accumulator / this.tickMs);
    if (n > this.maxTicksPerAdvance) {
      this.droppedMs += (n - this.maxTicksPerAdvance) * this.tickMs;
      n = this.maxTicksPerAdvance;
    }
    this.#accumulator -= Math.floor(this.#accumulator / this.tickMs) * this.tickMs;
    this.tick += n;
    return n;
  }

  /** Fraction of the next tick already elapsed, in [0, 1): blend the last two tick states by it when rendering. */
  get alpha(): number {
    return this.#accumulator / this.tickMs;
  }
}
