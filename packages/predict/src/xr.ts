/**
 * Head and hand pose prediction for XR: a pose sampled now is shown ~20 ms later (motion-to-photon), so it is
 * pushed forward along its linear and angular velocity. Rotation is integrated on the unit quaternion sphere with
 * the exponential map (`q' = exp(ω·h) ⊗ q`, world-frame ω), never by adding to components.
 *
 * Velocities come from the runtime when it reports them (WebXR `XRPose.linearVelocity` / `angularVelocity`), else
 * from consecutive samples, low-pass filtered (exponential, time constant `filterMs`) because tracking noise
 * differentiated at 90 Hz is much larger than the motion.
 */
import { checkOption } from './errors.js';
import { addScaled, angularVelocity, integrate, lerp, type Quat, scale, sub, type Vec3 } from './math.js';

/** One tracked pose, e.g. from a WebXR `XRPose`. */
export interface PoseSample {
  /** Position (WebXR: metres). */
  position: Vec3;
  /** Orientation, a unit quaternion. */
  orientation: Quat;
  /** Linear velocity in units per second, when the runtime reports it; else estimated from samples. */
  linearVelocity?: Vec3;
  /** World-frame angular velocity in rad/s, when the runtime reports it; else estimated from samples. */
  angularVelocity?: Vec3;
}

/** Options of {@link PosePredictor}. */
export interface PosePredictorOptions {
  /** Default prediction horizon (ms, default 20). */
  horizonMs?: number;
  /** Longest horizon honoured (ms, default 100): a long stall must not fling the view. */
  maxHorizonMs?: number;
  /** Time constant of the velocity low-pass filter (ms, default 25). 0 uses the raw finite differences. */
  filterMs?: number;
  /** Samples closer than this (ms, default 1) are merged: a derivative over a tiny dt is all noise. */
  minSampleIntervalMs?: number;
  /** After this long without a sample (ms, default 200) the velocity is considered stale and reset. */
  staleMs?: number;
}

/** A pose pushed forward to the display time. */
export interface PredictedPose {
  /** Predicted position. */
  position: Vec3;
  /** Predicted orientation, a unit quaternion. */
  orientation: Quat;
}

/** Predicts head and hand poses to the display time (see the module comment). */
export class PosePredictor {
  readonly #o: Required<PosePredictorOptions>;
  #t: number | undefined;
  #p: Vec3 | undefined;
  #q: Quat | undefined;
  #v: Vec3 = { x: 0, y: 0, z: 0 };
  #w: Vec3 = { x: 0, y: 0, z: 0 };
  #hasVelocity = false;

  constructor(options: PosePredictorOptions = {}) {
    this.#o = {
      horizonMs: checkOption('horizonMs', options.horizonMs ?? 20, 0),
      maxHorizonMs: checkOption('maxHorizonMs', options.maxHorizonMs ?? 100, 0),
      filterMs: checkOption('filterMs', options.filterMs ?? 25, 0),
      minSampleIntervalMs: checkOption('minSampleIntervalMs', options.minSampleIntervalMs ?? 1, 0),
      staleMs: checkOption('staleMs', options.staleMs ?? 200, 0),
    };
  }

  /** Filtered linear velocity (units/s). */
  get linearVelocity(): Readonly<Vec3> {
    return this.#v;
  }

  /** Filtered world-frame angular velocity (rad/s). */
  get angularVelocity(): Readonly<Vec3> {
    return this.#w;
  }

  /** Adds a tracked pose sampled at `timeMs`. */
  addSample(timeMs: number, pose: PoseSample): void {
    if (!Number.isFinite(timeMs)) throw new RangeError('sample time must be finite');
    const prevT = this.#t;
    const dtMs = prevT === undefined ? Number.POSITIVE_INFINITY : timeMs - prevT;
    if (prevT !== undefined && dtMs < this.#o.minSampleIntervalMs) {
      // Out of order or too close to the previous sample: keep the newest pose but do not differentiate.
      if (dtMs >= 0) {
        this.#p = pose.position;
        this.#q = pose.orientation;
      }
      return;
    }
    let v: Vec3 | undefined = pose.linearVelocity;
    let w: Vec3 | undefined = pose.angularVelocity;
    if (dtMs <= this.#o.staleMs && this.#p && this.#q) {
      v ??= scale(sub(pose.position, this.#p), 1000 / dtMs);
      w ??= angularVelocity(this.#q, pose.orientation, dtMs / 1000);
    }
    if (v && w) {
      if (!this.#hasVelocity || this.#o.filterMs === 0) {
        this.#v = v;
        this.#w = w;
      } else {
        const a = 1 - Math.exp(-dtMs / this.#o.filterMs);
        this.#v = lerp(this.#v, v, a);
        this.#w = lerp(this.#w, w, a);
      }
      this.#hasVelocity = true;
    } else {
      this.#v = { x: 0, y: 0, z: 0 };
      this.#w = { x: 0, y: 0, z: 0 };
      this.#hasVelocity = false;
    }
    this.#t = timeMs;
    this.#p = pose.position;
    this.#q = pose.orientation;
  }

  /**
   * The pose `horizonMs` after the newest sample (default: the configured horizon), or undefined before any sample.
   * Pass `atTimeMs - sampleTime` to predict for a given display time.
   */
  predict(horizonMs = this.#o.horizonMs): PredictedPose | undefined {
    if (!this.#p || !this.#q) return undefined;
    const h = Math.max(0, Math.min(this.#o.maxHorizonMs, horizonMs)) / 1000;
    return { position: addScaled(this.#p, this.#v, h), orientation: integrate(this.#q, this.#w, h) };
  }

  /** The pose predicted for display time `displayTimeMs` (clock of the samples). */
  predictAt(displayTimeMs: number): PredictedPose | undefined {
    if (this.#t === undefined) return undefined;
    return this.predict(displayTimeMs - this.#t);
  }
}
