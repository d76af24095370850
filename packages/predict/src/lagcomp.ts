/**
 * Server-side lag compensation (Source engine style): the server keeps a short history of hit volumes per tick and
 * tests a client's shot against the world as that client saw it, at its interpolation render time, interpolating
 * between the two stored ticks around it (sub-tick). The rewind is bounded so a client cannot shoot arbitrarily far
 * into the past by lying about what it saw.
 */
import { checkOption } from './errors.js';
import { dot, lerp, sub, type Vec3 } from './math.js';

/** An entity's hit volume at one tick: a sphere. */
export interface HitVolume {
  /** Centre of the sphere. */
  position: Vec3;
  /** Sphere radius (metres). */
  radius: number;
}

/** Options of {@link LagCompensator}. */
export interface LagCompensatorOptions {
  /** Server ticks per second. */
  tickRate: number;
  /** Ticks of history kept (default: one second's worth). */
  historyTicks?: number;
  /** Furthest rewind honoured (ms, default 350 = 250 ms of latency + 100 ms interpolation delay). */
  maxRewindMs?: number;
}

/** The nearest volume a ray entered. */
export interface RayHit {
  /** The entity hit. */
  id: string | number;
  /** Distance along the (normalized) ray to the entry point. */
  distance: number;
  /** Where the ray entered the sphere. */
  point: Vec3;
}

interface Frame {
  tick: number;
  volumes: Map<string | number, HitVolume>;
}

/** The server's history of hit volumes, and shot tests against it (see the module comment). */
export class LagCompensator {
  /** Milliseconds per server tick (1000 / `tickRate`). */
  readonly tickMs: number;
  /** Ticks of history kept (option `historyTicks`, default one second's worth). */
  readonly historyTicks: number;
  /** Furthest rewind honoured (option `maxRewindMs`, default 350 ms). */
  readonly maxRewindMs: number;
  /** Live counters. */
  readonly stats = {
    /** Rewinds served. */
    rewinds: 0,
    /** Rewinds whose tick was clamped into the allowed window. */
    clamped: 0,
  };
  #frames: Frame[] = [];

  constructor(options: LagCompensatorOptions) {
    this.tickMs = 1000 / checkOption('tickRate', options.tickRate, 1, 1000);
    this.historyTicks = checkOption('historyTicks', options.historyTicks ?? Math.ceil(1000 / this.tickMs), 2);
    this.maxRewindMs = checkOption('maxRewindMs', options.maxRewindMs ?? 350, 0);
  }

  /** Stores the hit volumes after server tick `tick` (ticks strictly increasing). */
  record(tick: number, volumes: Iterable<[string | number, HitVolume]>): void {
    const last = this.#frames[this.#frames.length - 1];
    if (last && tick <= last.tick) throw new RangeError(`tick ${tick} is not after ${last.tick}`);
    const map = new Map<string | number, HitVolume>();
    for (const [id, v] of volumes) map.set(id, { position: { ...v.position }, radius: v.radius });
    this.#frames.push({ tick, volumes: map });
    if (this.#frames.length > this.historyTicks) this.#frames.shift();
  }

  /** The newest recorded tick, or undefined. */
  get latestTick(): number | undefined {
    return this.#frames[this.#frames.length - 1]?.tick;
  }

  /**
   * The hit volumes at fractional tick `tick` (e.g. the client's render time divided by the tick length),
   * clamped to the window `[latest - maxRewind, latest]` and to the history kept.
   */
  rewind(tick: number): Map<string | number, HitVolume> {
    const frames = this.#frames;
    if (frames.length === 0) return new Map();
    const latest = frames[frames.length - 1].tick;
    const earliest = Math.max(frames[0].tick, latest - this.maxRewindMs / this.tickMs);
    let t = tick;
    if (!(t >= earliest) || t > latest) {
      this.stats.clamped++;
      t = Number.isNaN(t) ? latest : Math.min(latest, Math.max(earliest, t));
    }
    this.stats.rewinds++;
    let i = frames.length - 1;
    while (i > 0 && frames[i - 1].tick >= t) i--;
    // frames[i] is the first frame at or after t.
    const b = frames[i];
    const a = i > 0 ? frames[i - 1] : b;
    const u = b.tick === a.tick ? 1 : (t - a.tick) / (b.tick - a.tick);
    const out = new Map<string | number, HitVolume>();
    for (const [id, vb] of b.volumes) {
      const va = a.volumes.get(id);
      out.set(
        id,
        va
          ? { position: lerp(va.position, vb.position, u), radius: va.radius + (vb.radius - va.radius) * u }
          : vb,
      );
    }
    return out;
  }

  /**
   * Casts a ray (origin, direction; need not be normalized) against the world at fractional tick `tick` and
   * returns the nearest hit, ignoring `exclude` (the shooter).
   */
  raycast(origin: Vec3, direction: Vec3, tick: number, exclude?: string | number): RayHit | undefined {
    return raycastVolumes(this.rewind(tick), origin, direction, exclude);
  }
}

/** Nearest ray-sphere hit among `volumes`. */
export function raycastVolumes(
  volumes: Map<string | number, HitVolume>,
  origin: Vec3,
  direction: Vec3,
  exclude?: string | number,
): RayHit | undefined {
  const len = Math.hypot(direction.x, direction.y, direction.z);
  if (len === 0) return undefined;
  const d = { x: direction.x / len, y: direction.y / len, z: direction.z / len };
  let best: RayHit | undefined;
  for (const [id, v] of volumes) {
    if (id === exclude) continue;
    const oc = sub(origin, v.position);
    const b = dot(oc, d);
    const c = dot(oc, oc) - v.radius * v.radius;
    const disc = b * b - c;
    if (disc < 0) continue;
    const sq = Math.sqrt(disc);
    let dist = -b - sq;
    if (dist < 0) dist = -b + sq; // origin inside the sphere
    if (dist < 0) continue;
    if (!best || dist < best.distance)
      best = {
        id,
        distance: dist,
        point: { x: origin.x + d.x * dist, y: origin.y + d.y * dist, z: origin.z + d.z * dist },
      };
  }
  return best;
}
