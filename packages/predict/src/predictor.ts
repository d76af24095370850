/**
 * Prediction and reconciliation of the entities a client owns (Quake/Source "client-side prediction"): inputs are
 * applied locally at once; each authoritative state names the last input the server applied, so the client drops
 * the acknowledged inputs, restarts from the server's state and replays the pending ones. With a deterministic
 * simulation and no outside influence the replay lands on the predicted state bit for bit and nothing is corrected.
 *
 * What the player sees is the predicted state plus a visual offset that absorbs each correction and decays
 * exponentially, so a correction becomes a short glide instead of a pop; beyond `snapDistance` (a teleport, a
 * respawn) the view snaps.
 */
import { checkOption } from './errors.js';
import {
  add,
  decay,
  distance,
  IDENTITY,
  type Quat,
  quatAngle,
  quatMul,
  quatConj,
  scale,
  slerp,
  sub,
  type Vec3,
} from './math.js';
import type { Simulation } from './simulation.js';

/** Options of {@link Predictor}. */
export interface PredictorOptions<S> {
  /** Where the predicted entity is (metres): used to measure corrections and to smooth them. */
  position(state: S): Vec3;
  /** Its orientation, if it has one worth smoothing. */
  rotation?(state: S): Quat;
  /**
   * Whether the server's state equals what was predicted for the same input. Default: every own enumerable
   * property compared with `Object.is` (deep for nested plain objects and arrays).
   */
  equals?(a: S, b: S): boolean;
  /** Inputs kept for replay (default 256, over 4 s at 60 Hz); older ones are dropped and counted. */
  maxPending?: number;
  /** Half-life of the visual offset in ms (default 60). 0 shows corrections at once. */
  smoothingHalfLifeMs?: number;
  /** Corrections farther than this (metres, default 2) snap instead of gliding. */
  snapDistance?: number;
  /** Offsets smaller than this (metres, default 1e-4) are cleared, so the view settles exactly on the state. */
  settleDistance?: number;
}

/** What one reconciliation changed in the present predicted state. */
export interface Correction {
  /** The acknowledged input seq of the server state that caused it. */
  ackSeq: number;
  /** How far the present predicted position moved (metres). */
  distance: number;
  /** Angle the predicted rotation moved (radians), if `rotation` is given. */
  angle: number;
  /** True when the view snapped (distance > snapDistance) instead of gliding. */
  snapped: boolean;
  /** Inputs replayed on top of the server state. */
  replayed: number;
}

/** Counters of a {@link Predictor} since it was created. */
export interface PredictorStats {
  /** Local inputs applied. */
  inputs: number;
  /** Server states applied. */
  reconciliations: number;
  /** Server states that disagreed with the prediction for the same input. */
  mispredictions: number;
  /** Corrections shown at once because they exceeded `snapDistance`. */
  snaps: number;
  /** Server states older than one already applied (reordered datagrams), ignored. */
  staleStates: number;
  /** Pending inputs dropped because more than `maxPending` were unacknowledged. */
  droppedInputs: number;
  /** Largest correction distance so far (metres). */
  maxCorrection: number;
}

interface Pending<S, I> {
  seq: number;
  input: I;
  /** Predicted state after applying this input. */
  after: S;
}

/**
 * The default state comparison: `Object.is`, else same own enumerable keys compared recursively; typed arrays and
 * other ArrayBuffer views byte by byte.
 */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (ArrayBuffer.isView(a) && ArrayBuffer.isView(b)) {
    const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    if (x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
    return true;
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  for (const k of ka)
    if (!deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  return true;
}

/**
 * Client-side prediction with server reconciliation: applies local inputs at once, replays the unacknowledged ones
 * on each server state, and smooths the visible correction.
 */
export class Predictor<S, I> {
  /** Live counters (not a snapshot). */
  readonly stats: PredictorStats = {
    inputs: 0,
    reconciliations: 0,
    mispredictions: 0,
    snaps: 0,
    staleStates: 0,
    droppedInputs: 0,
    maxCorrection: 0,
  };
  #state: S;
  #pending: Pending<S, I>[] = [];
  #ackSeq = -1;
  #offset: Vec3 = { x: 0, y: 0, z: 0 };
  #rotOffset: Quat = { ...IDENTITY };
  #listeners = new Set<(c: Correction) => void>();
  readonly #o: Required<Omit<PredictorOptions<S>, 'rotation'>> & Pick<PredictorOptions<S>, 'rotation'>;

  constructor(
    /** The simulation the server runs too; predictions are only as good as it is deterministic. */
    readonly simulation: Simulation<S, I>,
    initial: S,
    options: PredictorOptions<S>,
  ) {
    this.#state = initial;
    this.#o = {
      position: options.position,
      rotation: options.rotation,
      equals: options.equals ?? deepEqual,
      maxPending: checkOption('maxPending', options.maxPending ?? 256, 1),
      smoothingHalfLifeMs: checkOption('smoothingHalfLifeMs', options.smoothingHalfLifeMs ?? 60, 0),
      snapDistance: checkOption('snapDistance', options.snapDistance ?? 2, 0),
      settleDistance: checkOption('settleDistance', options.settleDistance ?? 1e-4, 0),
    };
  }

  /** The predicted present state. */
  get state(): S {
    return this.#state;
  }

  /** The last input seq the server acknowledged; -1 before any. */
  get ackSeq(): number {
    return this.#ackSeq;
  }

  /** Inputs applied locally and not yet acknowledged by the server. */
  get pendingCount(): number {
    return this.#pending.length;
  }

  /** Calls `fn` on every correction (for a debug overlay); returns the unsubscribe function. */
  onCorrection(fn: (c: Correction) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Applies one local input (seq strictly increasing) and returns the new predicted state. */
  apply(seq: number, input: I): S {
    const last = this.#pending.length ? this.#pending[this.#pending.length - 1].seq : this.#ackSeq;
    if (!(seq > last)) throw new RangeError(`input seq ${seq} is not after ${last}`);
    this.#state = this.simulation.step(this.#state, input);
    this.#pending.push({ seq, input, after: this.#state });
    if (this.#pending.length > this.#o.maxPending) {
      this.#pending.shift();
      this.stats.droppedInputs++;
    }
    this.stats.inputs++;
    return this.#state;
  }

  /**
   * Applies an authoritative state: `serverState` is the owned entity after the server applied input `ackSeq`.
   * Returns the correction made, or undefined when the prediction was right (or the state is stale).
   */
  reconcile(serverState: S, ackSeq: number): Correction | undefined {
    if (ackSeq <= this.#ackSeq) {
      this.stats.staleStates++;
      return undefined;
    }
    this.stats.reconciliations++;
    this.#ackSeq = ackSeq;
    let i = 0;
    while (i < this.#pending.length && this.#pending[i].seq < ackSeq) i++;
    const acked = i < this.#pending.length && this.#pending[i].seq === ackSeq ? this.#pending[i] : undefined;
    // Drop everything up to and including ackSeq.
    const remaining = this.#pending.slice(acked ? i + 1 : i);
    this.#pending = remaining;
    if (acked && this.#o.equals(acked.after, serverState)) return undefined;
    this.stats.mispredictions++;
    const before = this.#state;
    let s = serverState;
    for (const p of remaining) {
      s = this.simulation.step(s, p.input);
      p.after = s;
    }
    this.#state = s;
    const oldPos = this.#o.position(before);
    const newPos = this.#o.position(s);
    const dist = distance(oldPos, newPos);
    let angle = 0;
    let oldRot: Quat | undefined;
    let newRot: Quat | undefined;
    if (this.#o.rotation) {
      oldRot = this.#o.rotation(before);
      newRot = this.#o.rotation(s);
      angle = quatAngle(oldRot, newRot);
    }
    const snapped = dist > this.#o.snapDistance;
    if (snapped) {
      this.#offset = { x: 0, y: 0, z: 0 };
      this.#rotOffset = { ...IDENTITY };
      this.stats.snaps++;
    } else {
      // Keep showing where the entity was drawn: the offset absorbs the jump and then decays.
      this.#offset = add(this.#offset, sub(oldPos, newPos));
      if (oldRot && newRot) this.#rotOffset = quatMul(quatMul(this.#rotOffset, oldRot), quatConj(newRot));
    }
    if (dist > this.stats.maxCorrection) this.stats.maxCorrection = dist;
    const c: Correction = { ackSeq, distance: dist, angle, snapped, replayed: remaining.length };
    for (const fn of this.#listeners) fn(c);
    return c;
  }

  /** Decays the visual offset over `dtMs` of frame time; call once per rendered frame. */
  smooth(dtMs: number): void {
    const k = decay(dtMs, this.#o.smoothingHalfLifeMs);
    this.#offset = scale(this.#offset, k);
    if (Math.hypot(this.#offset.x, this.#offset.y, this.#offset.z) < this.#o.settleDistance)
      this.#offset = { x: 0, y: 0, z: 0 };
    this.#rotOffset = slerp(IDENTITY, this.#rotOffset, k);
    if (1 - Math.abs(this.#rotOffset.w) < 1e-9) this.#rotOffset = { ...IDENTITY };
  }

  /** The not yet decayed part of the corrections (metres): what separates the view from the prediction. */
  get visualOffset(): Readonly<Vec3> {
    return this.#offset;
  }

  /** Where to draw the entity: the predicted position plus the decaying visual offset. */
  renderPosition(): Vec3 {
    return add(this.#o.position(this.#state), this.#offset);
  }

  /** How to orient it: the predicted rotation with the decaying rotational offset (identity without `rotation`). */
  renderRotation(): Quat {
    if (!this.#o.rotation) return { ...IDENTITY };
    return quatMul(this.#rotOffset, this.#o.rotation(this.#state));
  }
}
