/**
 * Small vector and quaternion helpers on plain `{x, y, z}` / `{x, y, z, w}` objects (the shape of WebXR's
 * DOMPointReadOnly and three.js' Vector3/Quaternion, so poses pass in and out without copies of types).
 * Quaternions are unit, Hamilton convention, `w` scalar; angular velocities are world-frame rotation vectors (rad/s).
 */

/** A 3D vector: a position, a velocity, an axis (units are the application's). */
export interface Vec3 {
  /** First component. */
  x: number;
  /** Second component. */
  y: number;
  /** Third component. */
  z: number;
}

/** A quaternion; rotations are unit quaternions. */
export interface Quat {
  /** Vector part, first component. */
  x: number;
  /** Vector part, second component. */
  y: number;
  /** Vector part, third component. */
  z: number;
  /** Scalar part. */
  w: number;
}

/** Makes a vector; components default to 0. */
export const vec3 = (x = 0, y = 0, z = 0): Vec3 => ({ x, y, z });
/** The identity rotation (frozen). */
export const IDENTITY: Readonly<Quat> = Object.freeze({ x: 0, y: 0, z: 0, w: 1 });

/** `a + b`, a new vector. */
export function add(a: Vec3, b: Vec3): Vec3 {
  return { x: a.x + b.x, y: a.y + b.y, z: a.z + b.z };
}
/** `a - b`, a new vector. */
export function sub(a: Vec3, b: Vec3): Vec3 {
  return { x: a.x - b.x, y: a.y - b.y, z: a.z - b.z };
}
/** `a * s`, a new vector. */
export function scale(a: Vec3, s: number): Vec3 {
  return { x: a.x * s, y: a.y * s, z: a.z * s };
}
/** a + b * s */
export function addScaled(a: Vec3, b: Vec3, s: number): Vec3 {
  return { x: a.x + b.x * s, y: a.y + b.y * s, z: a.z + b.z * s };
}
/** Euclidean length of `a`. */
export function length(a: Vec3): number {
  return Math.hypot(a.x, a.y, a.z);
}
/** Euclidean distance between `a` and `b`. */
export function distance(a: Vec3, b: Vec3): number {
  return Math.hypot(a.x - b.x, a.y - b.y, a.z - b.z);
}
export function dot(a: Vec3, b: Vec3): number {
  return a.x * b.x + a.y * b.y + a.z * b.z;
}
/** Linear interpolation: `a` at t = 0, `b` at t = 1 (t is not clamped). */
export function lerp(a: Vec3, b: Vec3, t: number): Vec3 {
  return { x: a.x + (b.x - a.x) * t, y: a.y + (b.y - a.y) * t, z: a.z + (b.z - a.z) * t };
}

/**
 * Cubic Hermite between `p0` (velocity `v0`, units per second) and `p1` (`v1`) spanning `spanSec` seconds, at
 * `t` in [0, 1]. With matching velocities it reproduces any quadratic path exactly and keeps C1 continuity across
 * consecutive segments, which linear interpolation does not (its velocity jumps at every snapshot).
 */
export function hermite(p0: Vec3, v0: Vec3, p1: Vec3, v1: Vec3, t: number, spanSec: number): Vec3 {
  const t2 = t * t;
  const t3 = t2 * t;
  const h00 = 2 * t3 - 3 * t2 + 1;
  const h10 = (t3 - 2 * t2 + t) * spanSec;
  const h01 = -2 * t3 + 3 * t2;
  const h11 = (t3 - t2) * spanSec;
  return {
    x: h00 * p0.x + h10 * v0.x + h01 * p1.x + h11 * v1.x,
    y: h00 * p0.y + h10 * v0.y + h01 * p1.y + h11 * v1.y,
    z: h00 * p0.z + h10 * v0.z + h01 * p1.z + h11 * v1.z,
  };
}

/** Hamilton product `a * b`: the rotation `b` followed by `a`. */
export function quatMul(a: Quat, b: Quat): Quat {
  return {
    x: a.w * b.x + a.x * b.w + a.y * b.z - a.z * b.y,
    y: a.w * b.y - a.x * b.z + a.y * b.w + a.z * b.x,
    z: a.w * b.z + a.x * b.y - a.y * b.x + a.z * b.w,
    w: a.w * b.w - a.x * b.x - a.y * b.y - a.z * b.z,
  };
}
/** Conjugate of `q`: the inverse rotation when `q` is a unit quaternion. */
export function quatConj(q: Quat): Quat {
  return { x: -q.x, y: -q.y, z: -q.z, w: q.w };
}
export function quatDot(a: Quat, b: Quat): number {
  return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
}
/** `q` scaled to unit length; the identity for a zero or non-finite `q`. */
export function quatNormalize(q: Quat): Quat {
  const n = Math.hypot(q.x, q.y, q.z, q.w);
  if (n === 0 || !Number.isFinite(n)) return { ...IDENTITY };
  return { x: q.x / n, y: q.y / n, z: q.z / n, w: q.w / n };
}
/** Rotation by `angle` radians about `axis` (normalised here); the identity for a zero axis. */
export function quatFromAxisAngle(axis: Vec3, angle: number): Quat {
  const n = length(axis);
  if (n === 0) return { ...IDENTITY };
  const s = Math.sin(angle / 2) / n;
  return { x: axis.x * s, y: axis.y * s, z: axis.z * s, w: Math.cos(angle / 2) };
}
/** Rotates `v` by unit quaternion `q`. */
export function rotate(q: Quat, v: Vec3): Vec3 {
  const r = quatMul(quatMul(q, { x: v.x, y: v.y, z: v.z, w: 0 }), quatConj(q));
  return { x: r.x, y: r.y, z: r.z };
}

/** The angle in radians between two orientations (q and -q are the same orientation). */
export function quatAngle(a: Quat, b: Quat): number {
  // atan2 of the relative rotation's vector and scalar parts keeps full precision near 0, where acos(dot) does not.
  const r = quatMul(quatConj(a), b);
  return 2 * Math.atan2(Math.hypot(r.x, r.y, r.z), Math.abs(r.w));
}

/**
 * Exponential map: the unit quaternion of a rotation vector `r` (axis * angle, radians). Integrating an angular
 * velocity as `exp(ω·dt) ⊗ q` stays on the unit sphere, where adding `½ω⊗q·dt` to the components does not.
 */
export function quatExp(r: Vec3): Quat {
  const angle = length(r);
  if (angle < 1e-12) return quatNormalize({ x: r.x / 2, y: r.y / 2, z: r.z / 2, w: 1 });
  const s = Math.sin(angle / 2) / angle;
  return { x: r.x * s, y: r.y * s, z: r.z * s, w: Math.cos(angle / 2) };
}

/** Logarithm map, inverse of {@link quatExp}: the rotation vector (angle in [0, π]) of a unit quaternion. */
export function quatLog(q: Quat): Vec3 {
  // q and -q are one rotation; pick the hemisphere with w >= 0 so the angle is the short way round.
  const sgn = q.w < 0 ? -1 : 1;
  const x = q.x * sgn;
  const y = q.y * sgn;
  const z = q.z * sgn;
  const w = Math.min(1, q.w * sgn);
  const s = Math.hypot(x, y, z);
  if (s < 1e-12) return { x: 2 * x, y: 2 * y, z: 2 * z };
  const angle = 2 * Math.atan2(s, w);
  return { x: (x / s) * angle, y: (y / s) * angle, z: (z / s) * angle };
}

/** World-frame angular velocity (rad/s) that turns `from` into `to` in `dtSec`. */
export function angularVelocity(from: Quat, to: Quat, dtSec: number): Vec3 {
  return scale(quatLog(quatMul(to, quatConj(from))), 1 / dtSec);
}

/** `q` turned by world-frame angular velocity `omega` (rad/s) for `dtSec`. */
export function integrate(q: Quat, omega: Vec3, dtSec: number): Quat {
  return quatNormalize(quatMul(quatExp(scale(omega, dtSec)), q));
}

/**
 * Spherical linear interpolation along the shorter arc; constant angular speed in `t`. Falls back to normalized
 * lerp when the orientations are within ~0.06° (sin θ would lose precision there).
 */
export function slerp(a: Quat, b: Quat, t: number): Quat {
  let cos = quatDot(a, b);
  let bx = b.x;
  let by = b.y;
  let bz = b.z;
  let bw = b.w;
  if (cos < 0) {
    cos = -cos;
    bx = -bx;
    by = -by;
    bz = -bz;
    bw = -bw;
  }
  if (cos > 0.9999995) {
    return quatNormalize({
      x: a.x + (bx - a.x) * t,
      y: a.y + (by - a.y) * t,
      z: a.z + (bz - a.z) * t,
      w: a.w + (bw - a.w) * t,
    });
  }
  const theta = Math.acos(cos);
  const sin = Math.sin(theta);
  const wa = Math.sin((1 - t) * theta) / sin;
  const wb = Math.sin(t * theta) / sin;
  return { x: a.x * wa + bx * wb, y: a.y * wa + by * wb, z: a.z * wa + bz * wb, w: a.w * wa + bw * wb };
}

/** Factor by which an exponentially decaying quantity shrinks over `dtMs` with the given half-life. */
export function decay(dtMs: number, halfLifeMs: number): number {
  if (halfLifeMs <= 0) return 0;
  return 2 ** (-dtMs / halfLifeMs);
}
