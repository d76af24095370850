/**
 * Remote entities are drawn a little in the past, between two snapshots the client already has ("entity
 * interpolation", Source engine). How far in the past adapts to the link: the delay is the larger of
 * `interval + k·jitter` (jitter as in RFC 3550 §6.4.1, the mean deviation of transit-time differences) and the
 * `coverage` quantile of the delay each recent snapshot would have needed to be on time, weighted by the time it
 * covers, so that `coverage` is a share of frames (this also covers gaps left by lost snapshots). The render clock follows the target by time dilation (it runs at most `maxDilation` faster or
 * slower), never jumping back, so motion stays smooth while the delay adapts.
 *
 * Positions use cubic Hermite (given velocities, else finite differences, Catmull-Rom style), rotations slerp.
 * When the render time passes the newest snapshot the entity is extrapolated from its last velocity for at most
 * `maxExtrapolationMs`, then held; when data returns, the jump between the extrapolated and the interpolated
 * pose is absorbed by a decaying visual offset.
 */
import { checkOption } from './errors.js';
import {
  add,
  addScaled,
  angularVelocity,
  decay,
  hermite,
  IDENTITY,
  integrate,
  type Quat,
  quatConj,
  quatMul,
  scale,
  slerp,
  sub,
  type Vec3,
} from './math.js';

/** One entity's state in one snapshot, as given to `push`. */
export interface EntitySample {
  /** Position, in the application's units. */
  position: Vec3;
  /** Orientation; the identity when absent. */
  rotation?: Quat;
  /** Linear velocity (units per second), when the server sends it; else estimated from neighbouring snapshots. */
  velocity?: Vec3;
}

/**
 * `interpolated`: between two snapshots. `extrapolated`: past the newest, from its velocity (at most
 * `maxExtrapolationMs`). `held`: past that limit, the entity no longer moves.
 */
export type FrameMode = 'interpolated' | 'extrapolated' | 'held';

/** An entity's pose at the render time. */
export interface SampledPose {
  /** Position, correction offset included. */
  position: Vec3;
  /** Orientation, correction offset included. */
  rotation: Quat;
  /** How the pose was obtained. */
  mode: FrameMode;
}

/** How velocities are estimated from positions (see `InterpolationOptions.velocityEstimate`). */
export type VelocityEstimate = 'parabolic' | 'secant';

/** Options of {@link InterpolationBuffer}. */
export interface InterpolationOptions {
  /**
   * How velocities are estimated when snapshots carry none (default 'parabolic': second order, exact for constant
   * acceleration; 'secant': first order, never overshoots when an entity stops dead).
   */
  velocityEstimate?: VelocityEstimate;
  /** Nominal server time between snapshots (ms). Default: measured from the snapshots themselves. */
  snapshotIntervalMs?: number;
  /** k in `interval + k·jitter` (default 3). */
  jitterFactor?: number;
  /**
   * Share of recent snapshots that must arrive before the render time needs them (default 0.99): the delay is at
   * least the quantile of their needed delays over the last `windowSnapshots`.
   */
  coverage?: number;
  /**
   * Whether gaps left by lost snapshots count towards `coverage` (default true): frames inside a loss gap are
   * interpolated too, paid for with a delay that grows by whole snapshot intervals on lossy links. false keeps the
   * delay at what jitter needs and extrapolates through losses instead (lower latency, larger errors during losses).
   */
  coverLoss?: boolean;
  /** Snapshots in the jitter and coverage windows (default 256). */
  windowSnapshots?: number;
  /** Added to the computed delay (ms, default 0). */
  extraDelayMs?: number;
  /** Bounds on the delay (ms; defaults 0 and 1000). */
  minDelayMs?: number;
  /** Upper bound on the delay (ms; default 1000). */
  maxDelayMs?: number;
  /** Longest extrapolation past the newest snapshot (ms, default 150); then the entity is held. */
  maxExtrapolationMs?: number;
  /** Most the render clock may run faster or slower than real time to follow the target (default 0.1). */
  maxDilation?: number;
  /** The render clock closes this share of its error per second, within `maxDilation` (default 2). */
  followRate?: number;
  /** The render clock jumps forward instead of dilating when it is this far behind the target (ms, default 500). */
  snapAheadMs?: number;
  /** Half-life of the visual offset after an extrapolation is corrected (ms, default 40). */
  correctionHalfLifeMs?: number;
  /** Samples kept per entity (default 32). */
  capacity?: number;
  /** Most entities tracked (default 10000); samples of further ones are dropped and counted. */
  maxEntities?: number;
}

interface Sample {
  t: number;
  p: Vec3;
  q: Quat | undefined;
  v: Vec3 | undefined;
}

interface Basis {
  t: number;
  p: Vec3;
  v: Vec3;
  q: Quat;
  w: Vec3;
}

interface Track {
  samples: Sample[];
  mode: FrameMode | undefined;
  basis: Basis | undefined;
  offset: Vec3;
  rotOffset: Quat;
}

/** Counters of an {@link InterpolationBuffer} since it was created. */
export interface InterpolationStats {
  /** Snapshots pushed (duplicates not counted). */
  snapshots: number;
  /** Snapshots that arrived after the render time had passed them. */
  late: number;
  /** Snapshots with a server time already received. */
  duplicates: number;
  /** Entity samples dropped because `maxEntities` were tracked. */
  droppedEntities: number;
  /** Times the render clock jumped forward (start, or a stall). */
  snaps: number;
  /** Entity frames by mode. */
  interpolated: number;
  /** Entity frames extrapolated past the newest snapshot. */
  extrapolated: number;
  /** Entity frames held after `maxExtrapolationMs`. */
  held: number;
}

const ZERO: Readonly<Vec3> = Object.freeze({ x: 0, y: 0, z: 0 });

/** Adaptive-delay entity interpolation for remote entities (see the module comment). */
export class InterpolationBuffer {
  /** Live counters (not a snapshot). */
  readonly stats: InterpolationStats = {
    snapshots: 0,
    late: 0,
    duplicates: 0,
    droppedEntities: 0,
    snaps: 0,
    interpolated: 0,
    extrapolated: 0,
    held: 0,
  };
  readonly #o: Required<Omit<InterpolationOptions, 'snapshotIntervalMs'>> & { snapshotIntervalMs?: number };
  #tracks = new Map<string | number, Track>();
  // Arrival statistics.
  #lastTransit: number | undefined;
  #jitter = 0;
  #interval: number;
  #newestT = Number.NEGATIVE_INFINITY;
  #transits: number[] = [];
  #needed: { delay: number; span: number }[] = [];
  // Cached quantile of #needed; cleared when a snapshot arrives.
  #neededQuantile: number | undefined;
  #minTransit = Number.POSITIVE_INFINITY;
  #serverTimes = new Set<number>();
  #serverTimeOrder: number[] = [];
  // Render clock.
  #renderTime: number | undefined;
  #lastNow: number | undefined;
  #frameDt = 0;

  constructor(options: InterpolationOptions = {}) {
    const velocityEstimate = options.velocityEstimate ?? 'parabolic';
    if (velocityEstimate !== 'parabolic' && velocityEstimate !== 'secant')
      throw new RangeError(
        `option velocityEstimate must be 'parabolic' or 'secant', got ${velocityEstimate}`,
      );
    this.#o = {
      velocityEstimate,
      snapshotIntervalMs:
        options.snapshotIntervalMs === undefined
          ? undefined
          : checkOption('snapshotIntervalMs', options.snapshotIntervalMs, 0.1),
      coverLoss: options.coverLoss ?? true,
      jitterFactor: checkOption('jitterFactor', options.jitterFactor ?? 3, 0),
      coverage: checkOption('coverage', options.coverage ?? 0.99, 0, 1),
      windowSnapshots: checkOption('windowSnapshots', options.windowSnapshots ?? 256, 2),
      extraDelayMs: checkOption('extraDelayMs', options.extraDelayMs ?? 0, 0),
      minDelayMs: checkOption('minDelayMs', options.minDelayMs ?? 0, 0),
      maxDelayMs: checkOption('maxDelayMs', options.maxDelayMs ?? 1000, 0),
      maxExtrapolationMs: checkOption('maxExtrapolationMs', options.maxExtrapolationMs ?? 150, 0),
      maxDilation: checkOption('maxDilation', options.maxDilation ?? 0.1, 0, 0.9),
      followRate: checkOption('followRate', options.followRate ?? 2, 0),
      snapAheadMs: checkOption('snapAheadMs', options.snapAheadMs ?? 500, 0),
      correctionHalfLifeMs: checkOption('correctionHalfLifeMs', options.correctionHalfLifeMs ?? 40, 0),
      capacity: checkOption('capacity', options.capacity ?? 32, 3),
      maxEntities: checkOption('maxEntities', options.maxEntities ?? 10000, 1),
    };
    this.#interval = this.#o.snapshotIntervalMs ?? 50;
  }

  /** RFC 3550 interarrival jitter estimate (ms). */
  get jitterMs(): number {
    return this.#jitter;
  }

  /** Server time between snapshots (ms), given or measured. */
  get intervalMs(): number {
    return this.#interval;
  }

  /** The delay the render clock is steering towards (ms behind the newest server time). */
  get targetDelayMs(): number {
    const o = this.#o;
    let d = this.#interval + o.jitterFactor * this.#jitter;
    // The quantile means something only once the window holds 1 / (1 - coverage) samples (100 for 99 %).
    const enough = Math.min(o.windowSnapshots, Math.ceil(1 / Math.max(1e-9, 1 - o.coverage)));
    if (this.#neededQuantile === undefined && this.#needed.length >= enough && o.coverage > 0) {
      // Weighted by the server time each gap spans: a gap left by two lost snapshots exposes twice the frames.
      const sorted = [...this.#needed].sort((a, b) => a.delay - b.delay);
      let total = 0;
      for (const n of sorted) total += n.span;
      let acc = 0;
      let q = sorted[sorted.length - 1].delay;
      for (const n of sorted) {
        acc += n.span;
        if (acc >= o.coverage * total) {
          q = n.delay;
          break;
        }
      }
      this.#neededQuantile = q;
    }
    if (this.#neededQuantile !== undefined && this.#neededQuantile > d) d = this.#neededQuantile;
    return Math.min(o.maxDelayMs, Math.max(o.minDelayMs, d + o.extraDelayMs));
  }

  /** The server time being drawn (ms), undefined before the first snapshot. */
  get renderTime(): number | undefined {
    return this.#renderTime;
  }

  /** Newest server time received minus the render time (ms): the delay actually applied right now. */
  get currentDelayMs(): number {
    return this.#renderTime === undefined ? Number.NaN : this.#estimatedServerNow() - this.#renderTime;
  }

  #estimatedServerNow(): number {
    return (this.#lastNow ?? 0) - this.#minTransit;
  }

  /**
   * Adds a snapshot taken at `serverTimeMs` (server clock) that arrived at `localTimeMs` (client clock; the two
   * clocks need not agree, only their rates).
   */
  push(serverTimeMs: number, localTimeMs: number, entities: Iterable<[string | number, EntitySample]>): void {
    if (!Number.isFinite(serverTimeMs) || !Number.isFinite(localTimeMs))
      throw new RangeError('snapshot times must be finite');
    if (this.#serverTimes.has(serverTimeMs)) {
      this.stats.duplicates++;
      return;
    }
    this.#serverTimes.add(serverTimeMs);
    this.#serverTimeOrder.push(serverTimeMs);
    if (this.#serverTimeOrder.length > this.#o.windowSnapshots)
      this.#serverTimes.delete(this.#serverTimeOrder.shift()!);
    this.stats.snapshots++;
    if (this.#renderTime !== undefined && serverTimeMs < this.#renderTime) this.stats.late++;
    const transit = localTimeMs - serverTimeMs;
    if (this.#lastTransit !== undefined) {
      // RFC 3550 §6.4.1: J += (|D| - J) / 16.
      this.#jitter += (Math.abs(transit - this.#lastTransit) - this.#jitter) / 16;
    }
    this.#lastTransit = transit;
    this.#transits.push(transit);
    if (this.#transits.length > this.#o.windowSnapshots) this.#transits.shift();
    let min = Number.POSITIVE_INFINITY;
    for (const t of this.#transits) if (t < min) min = t;
    this.#minTransit = min;
    if (serverTimeMs > this.#newestT) {
      if (Number.isFinite(this.#newestT)) {
        if (this.#o.snapshotIntervalMs === undefined) {
          const gap = serverTimeMs - this.#newestT;
          // Gaps of several intervals are losses, not a slower rate.
          if (gap < 1.5 * this.#interval || this.stats.snapshots < 4)
            this.#interval += (gap - this.#interval) / 8;
        }
        // To be drawn without extrapolating, the render time had to stay at the previous newest snapshot until
        // this one arrived: the delay needed, relative to the fastest transit seen.
        const span = serverTimeMs - this.#newestT;
        let needed = localTimeMs - min - this.#newestT;
        // Without coverLoss only the jitter part of a gap counts: frames inside gaps left by lost snapshots are
        // left to bounded extrapolation rather than paid for with a longer delay on every frame.
        if (!this.#o.coverLoss && span > 1.5 * this.#interval) needed -= span - this.#interval;
        this.#needed.push({ delay: needed, span: this.#o.coverLoss ? span : this.#interval });
        this.#neededQuantile = undefined;
        if (this.#needed.length > this.#o.windowSnapshots) this.#needed.shift();
      }
      this.#newestT = serverTimeMs;
    }
    for (const [id, e] of entities) {
      let track = this.#tracks.get(id);
      if (!track) {
        if (this.#tracks.size >= this.#o.maxEntities) {
          this.stats.droppedEntities++;
          continue;
        }
        track = {
          samples: [],
          mode: undefined,
          basis: undefined,
          offset: { ...ZERO },
          rotOffset: { ...IDENTITY },
        };
        this.#tracks.set(id, track);
      }
      const s: Sample = { t: serverTimeMs, p: e.position, q: e.rotation, v: e.velocity };
      const arr = track.samples;
      let i = arr.length;
      while (i > 0 && arr[i - 1].t > serverTimeMs) i--;
      arr.splice(i, 0, s);
      if (arr.length > this.#o.capacity) arr.shift();
    }
  }

  /** Forgets an entity (it left the area of interest or was destroyed). */
  remove(id: string | number): boolean {
    return this.#tracks.delete(id);
  }

  /** Whether samples of entity `id` are held. */
  has(id: string | number): boolean {
    return this.#tracks.has(id);
  }

  /** Ids of the entities held (a live iterator over the buffer's keys). */
  get entityIds(): IterableIterator<string | number> {
    return this.#tracks.keys();
  }

  /**
   * Advances the render clock to local time `localNowMs` (call once per frame, before sampling). Returns the
   * render time, or undefined before the first snapshot.
   */
  update(localNowMs: number): number | undefined {
    if (!Number.isFinite(this.#minTransit)) {
      this.#lastNow = localNowMs;
      return undefined;
    }
    const dt = this.#lastNow === undefined ? 0 : Math.max(0, localNowMs - this.#lastNow);
    this.#lastNow = localNowMs;
    this.#frameDt = dt;
    const target = localNowMs - this.#minTransit - this.targetDelayMs;
    if (this.#renderTime === undefined || target - this.#renderTime > this.#o.snapAheadMs) {
      this.#renderTime = target;
      this.stats.snaps++;
      return target;
    }
    const err = target - (this.#renderTime + dt);
    const o = this.#o;
    const rate = 1 + Math.max(-o.maxDilation, Math.min(o.maxDilation, (err * o.followRate) / 1000));
    this.#renderTime += dt * rate;
    return this.#renderTime;
  }

  /**
   * The pose of entity `id` at the current render time (after {@link update}), or undefined if unknown. Call it
   * once per frame for every drawn entity: the correction offset decays by the frame's time at each call, and the
   * frame is counted in `stats`.
   */
  sample(id: string | number): SampledPose | undefined {
    const track = this.#tracks.get(id);
    const rt = this.#renderTime;
    if (!track || rt === undefined || track.samples.length === 0) return undefined;
    const raw = this.#raw(track, rt);
    // Data came back after an extrapolation: continue from what was shown and let the difference decay.
    const prev = track.basis;
    const k = decay(this.#frameDt, this.#o.correctionHalfLifeMs);
    track.offset = scale(track.offset, k);
    track.rotOffset = slerp(IDENTITY, track.rotOffset, k);
    if (
      this.#o.correctionHalfLifeMs > 0 &&
      track.mode !== undefined &&
      track.mode !== 'interpolated' &&
      prev &&
      raw.basis?.t !== prev.t
    ) {
      const cont = this.#evalBasis(prev, rt);
      track.offset = add(track.offset, sub(cont.p, raw.position));
      track.rotOffset = quatMul(quatMul(track.rotOffset, cont.q), quatConj(raw.rotation));
    }
    track.mode = raw.mode;
    track.basis = raw.basis;
    this.stats[raw.mode]++;
    return {
      position: add(raw.position, track.offset),
      rotation: quatMul(track.rotOffset, raw.rotation),
      mode: raw.mode,
    };
  }

  #evalBasis(b: Basis, rt: number): { p: Vec3; q: Quat } {
    const dt = Math.min(this.#o.maxExtrapolationMs, Math.max(0, rt - b.t)) / 1000;
    return { p: addScaled(b.p, b.v, dt), q: integrate(b.q, b.w, dt) };
  }

  #raw(
    track: Track,
    rt: number,
  ): { position: Vec3; rotation: Quat; mode: FrameMode; basis: Basis | undefined } {
    const s = track.samples;
    const n = s.length;
    let j = n;
    while (j > 0 && s[j - 1].t >= rt) j--;
    // s[j] is the first sample at or after rt.
    if (j < n && j > 0) {
      const a = s[j - 1];
      const b = s[j];
      const span = (b.t - a.t) / 1000;
      const u = (rt - a.t) / (b.t - a.t);
      const va = a.v ?? velocityAt(s, j - 1, this.#o.velocityEstimate);
      const vb = b.v ?? velocityAt(s, j, this.#o.velocityEstimate);
      const rotation = a.q && b.q ? slerp(a.q, b.q, u) : (b.q ?? a.q ?? { ...IDENTITY });
      return {
        position: hermite(a.p, va, b.p, vb, u, span),
        rotation,
        mode: 'interpolated',
        basis: undefined,
      };
    }
    if (j === n && s[n - 1].t === rt) {
      const last = s[n - 1];
      return {
        position: last.p,
        rotation: last.q ?? { ...IDENTITY },
        mode: 'interpolated',
        basis: undefined,
      };
    }
    if (j === 0) {
      return { position: s[0].p, rotation: s[0].q ?? { ...IDENTITY }, mode: 'held', basis: undefined };
    }
    const last = s[n - 1];
    const q = last.q ?? { ...IDENTITY };
    if (n < 2 && !last.v) return { position: last.p, rotation: q, mode: 'held', basis: undefined };
    const prev = n >= 2 ? s[n - 2] : undefined;
    const v = last.v ?? velocityAt(s, n - 1, this.#o.velocityEstimate);
    const w = prev?.q && last.q ? angularVelocity(prev.q, last.q, (last.t - prev.t) / 1000) : { ...ZERO };
    const basis: Basis = { t: last.t, p: last.p, v, q, w };
    const e = this.#evalBasis(basis, rt);
    const mode: FrameMode = rt - last.t <= this.#o.maxExtrapolationMs ? 'extrapolated' : 'held';
    return { position: e.p, rotation: e.q, mode, basis };
  }
}

/**
 * Velocity at sample i from the parabola through it and its neighbours (second order, for uneven spacing too: a
 * lost snapshot leaves a wider gap). At the ends the parabola's end slope is used, which removes the half-interval
 * lag of a plain secant; `secant` mode uses first-order differences instead (no overshoot when an entity stops dead).
 */
function velocityAt(s: Sample[], i: number, mode: VelocityEstimate): Vec3 {
  const n = s.length;
  if (n < 2) return { ...ZERO };
  const slope = (a: Sample, b: Sample) => scale(sub(b.p, a.p), 1000 / (b.t - a.t));
  if (mode === 'secant' || n === 2) {
    const lo = s[Math.max(0, i - 1)];
    const hi = s[Math.min(n - 1, i + 1)];
    return hi.t === lo.t ? { ...ZERO } : slope(lo, hi);
  }
  // Three consecutive samples around i: (a, b, c) and which of them i is.
  const j = Math.min(n - 2, Math.max(1, i));
  const a = s[j - 1];
  const b = s[j];
  const c = s[j + 1];
  const h1 = b.t - a.t;
  const h2 = c.t - b.t;
  if (h1 <= 0 || h2 <= 0) return { ...ZERO };
  const s1 = slope(a, b);
  const s2 = slope(b, c);
  const w = 1 / (h1 + h2);
  if (i === j) return scale(add(scale(s1, h2), scale(s2, h1)), w);
  if (i > j) return add(s2, scale(sub(s2, s1), h2 * w));
  return sub(s1, scale(sub(s2, s1), h1 * w));
}
