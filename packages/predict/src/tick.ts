/**
 * The client's estimate of the server tick, driven by the session layer's clock estimate
 * (`session.serverTime()`, `session.clockError`): a smooth, monotonic server clock that follows the estimate by
 * time dilation (running up to `maxDilation` fast or slow) instead of jumping, and the input-lead tick the client
 * stamps its inputs with so they reach the server before it simulates that tick: `RTT/2 + margin` ahead.
 */
import { checkOption } from './errors.js';

/** Options of {@link ServerTickEstimator}. */
export interface ServerTickEstimatorOptions {
  /** Server ticks per second (1 to 1000), as the server simulates. */
  tickRate: number;
  /** Most the estimated clock may run fast or slow while converging (default 0.05, i.e. ±5 %). */
  maxDilation?: number;
  /** Share of the clock error closed per second, within `maxDilation` (default 2). */
  followRate?: number;
  /** Jump forward instead of dilating when behind by more than this (ms, default 250). Never jumps back. */
  snapThresholdMs?: number;
  /** Lead on top of RTT/2 (ms, default two ticks): room for jitter so inputs are not late. */
  inputMarginMs?: number;
}

/** What the session layer offers (`@quiver/session`'s client: `serverTime()`, `clockError`, optionally `rtt`). */
export interface ServerClockSource {
  /** Estimated server clock now (ms). */
  serverTime(): number;
  /** Bound on the error of `serverTime()` (ms); Infinity before any estimate. */
  readonly clockError: number;
  /** Smoothed RTT (ms), when known. */
  readonly rtt?: number;
}

/** What {@link ServerTickEstimator.update} returns for one frame. */
export interface TickEstimate {
  /** Estimated server clock now (ms), smooth and monotonic. */
  serverTime: number;
  /** Fractional server tick now. */
  serverTick: number;
  /** The tick the client's next input is for: the server will simulate it when the input has just arrived. */
  inputTick: number;
  /** How far the input tick leads the server (ms). */
  leadMs: number;
}

/** The client's smooth estimate of the server clock and tick (see the module comment). */
export class ServerTickEstimator {
  /** Milliseconds per server tick (1000 / `tickRate`). */
  readonly tickMs: number;
  /** Live counters. */
  readonly stats = {
    /** Clock samples taken (`addSample`, `sample`). */
    samples: 0,
    /** Times the estimated clock jumped forward instead of dilating. */
    snaps: 0,
  };
  readonly #o: Required<Omit<ServerTickEstimatorOptions, 'tickRate'>>;
  #targetOffset: number | undefined;
  #targetLead = 0;
  #shown: number | undefined;
  #lead = 0;
  #lastLocal: number | undefined;

  constructor(options: ServerTickEstimatorOptions) {
    this.tickMs = 1000 / checkOption('tickRate', options.tickRate, 1, 1000);
    this.#o = {
      maxDilation: checkOption('maxDilation', options.maxDilation ?? 0.05, 0, 0.45),
      followRate: checkOption('followRate', options.followRate ?? 2, 0),
      snapThresholdMs: checkOption('snapThresholdMs', options.snapThresholdMs ?? 250, 0),
      inputMarginMs: checkOption('inputMarginMs', options.inputMarginMs ?? 2 * this.tickMs, 0),
    };
  }

  /**
   * A clock sample: at local time `localNowMs` the server's clock was estimated at `serverTimeMs` within
   * `errorBoundMs` (the session's `clockError`, half the RTT of its best exchange). `rttMs` (smoothed RTT) sets the
   * lead; without it the lead assumes `RTT = 2 · errorBound`.
   */
  addSample(localNowMs: number, serverTimeMs: number, errorBoundMs: number, rttMs?: number): void {
    if (!Number.isFinite(localNowMs) || !Number.isFinite(serverTimeMs) || !Number.isFinite(errorBoundMs))
      return;
    this.stats.samples++;
    this.#targetOffset = serverTimeMs - localNowMs;
    const rtt = rttMs !== undefined && Number.isFinite(rttMs) ? rttMs : 2 * errorBoundMs;
    this.#targetLead = Math.max(0, rtt / 2) + this.#o.inputMarginMs;
    if (this.#shown === undefined) {
      this.#shown = serverTimeMs;
      this.#lead = this.#targetLead;
      this.#lastLocal = localNowMs;
    }
  }

  /**
   * Samples a session's clock estimate at local time `localNowMs` (the session's own clock). Samples taken before the
   * session has an estimate (`clockError` is Infinity) are ignored.
   */
  sample(localNowMs: number, source: ServerClockSource): void {
    const error = source.clockError;
    if (!Number.isFinite(error)) return;
    this.addSample(localNowMs, source.serverTime(), error, source.rtt);
  }

  /** Advances to local time `localNowMs`; undefined before the first sample. */
  update(localNowMs: number): TickEstimate | undefined {
    if (this.#shown === undefined || this.#targetOffset === undefined || this.#lastLocal === undefined)
      return undefined;
    const dt = Math.max(0, localNowMs - this.#lastLocal);
    this.#lastLocal = Math.max(this.#lastLocal, localNowMs);
    const { maxDilation, followRate, snapThresholdMs } = this.#o;
    const target = this.#lastLocal + this.#targetOffset;
    const err = target - (this.#shown + dt);
    if (err > snapThresholdMs) {
      this.#shown = target;
      this.stats.snaps++;
    } else {
      this.#shown += dt * (1 + Math.max(-maxDilation, Math.min(maxDilation, (err * followRate) / 1000)));
    }
    // The lead slews at most maxDilation·dt, so the input tick (server tick + lead) stays monotonic too.
    const leadErr = this.#targetLead - this.#lead;
    const step = dt * maxDilation;
    this.#lead += Math.max(-step, Math.min(step, leadErr));
    const serverTick = this.#shown / this.tickMs;
    return {
      serverTime: this.#shown,
      serverTick,
      inputTick: Math.floor((this.#shown + this.#lead) / this.tickMs),
      leadMs: this.#lead,
    };
  }
}
