import { describe, expect, it } from 'vitest';
import {
  angularVelocity,
  hermite,
  IDENTITY,
  integrate,
  quatAngle,
  quatExp,
  quatFromAxisAngle,
  quatLog,
  quatMul,
  rotate,
  slerp,
} from '../src/index.js';

const Y = { x: 0, y: 1, z: 0 };

describe('hermite', () => {
  it('hits the endpoints and reproduces a quadratic path exactly with its velocities', () => {
    // p(t) = p0 + v0 t + a t^2 / 2 over 0.1 s.
    const a = { x: 3, y: -9.81, z: 1 };
    const v0 = { x: 2, y: 5, z: -1 };
    const at = (t: number) => ({
      x: v0.x * t + (a.x * t * t) / 2,
      y: v0.y * t + (a.y * t * t) / 2,
      z: v0.z * t + (a.z * t * t) / 2,
    });
    const vel = (t: number) => ({ x: v0.x + a.x * t, y: v0.y + a.y * t, z: v0.z + a.z * t });
    const T = 0.1;
    for (const u of [0, 0.25, 0.5, 0.9, 1]) {
      const p = hermite(at(0), vel(0), at(T), vel(T), u, T);
      const q = at(u * T);
      expect(p.x).toBeCloseTo(q.x, 12);
      expect(p.y).toBeCloseTo(q.y, 12);
      expect(p.z).toBeCloseTo(q.z, 12);
    }
  });

  it('beats linear interpolation on a circle', () => {
    const r = 5;
    const w = 2; // rad/s
    const pos = (t: number) => ({ x: r * Math.cos(w * t), y: 0, z: r * Math.sin(w * t) });
    const vel = (t: number) => ({ x: -r * w * Math.sin(w * t), y: 0, z: r * w * Math.cos(w * t) });
    const T = 0.1;
    const mid = hermite(pos(0), vel(0), pos(T), vel(T), 0.5, T);
    const truth = pos(T / 2);
    const herr = Math.hypot(mid.x - truth.x, mid.z - truth.z);
    const lin = { x: (pos(0).x + pos(T).x) / 2, z: (pos(0).z + pos(T).z) / 2 };
    const lerr = Math.hypot(lin.x - truth.x, lin.z - truth.z);
    expect(herr).toBeLessThan(lerr / 50);
  });
});

describe('quaternions', () => {
  it('slerp moves at constant angular speed along the short arc', () => {
    const a = quatFromAxisAngle(Y, 0.2);
    const b = quatFromAxisAngle(Y, 1.4);
    for (const t of [0, 0.3, 0.5, 1])
      expect(quatAngle(slerp(a, b, t), quatFromAxisAngle(Y, 0.2 + 1.2 * t))).toBeLessThan(1e-7);
    // -b is the same orientation: slerp must not take the long way round.
    const nb = { x: -b.x, y: -b.y, z: -b.z, w: -b.w };
    expect(quatAngle(slerp(a, nb, 0.5), quatFromAxisAngle(Y, 0.8))).toBeLessThan(1e-7);
    // Nearly equal orientations fall back to nlerp without NaN.
    const c = quatFromAxisAngle(Y, 0.2 + 1e-9);
    const m = slerp(a, c, 0.5);
    expect(Number.isNaN(m.w)).toBe(false);
    expect(Math.hypot(m.x, m.y, m.z, m.w)).toBeCloseTo(1, 12);
  });

  it('exp and log are inverse and integrate angular velocity exactly for constant rotation', () => {
    const r = { x: 0.3, y: -1.1, z: 0.7 };
    const back = quatLog(quatExp(r));
    expect(back.x).toBeCloseTo(r.x, 12);
    expect(back.y).toBeCloseTo(r.y, 12);
    expect(back.z).toBeCloseTo(r.z, 12);
    const q0 = quatFromAxisAngle({ x: 1, y: 0, z: 0 }, 0.5);
    const omega = { x: 0, y: 2, z: 0 };
    // 100 small steps equal one big step for a constant world-frame rate.
    let q = q0;
    for (let i = 0; i < 100; i++) q = integrate(q, omega, 0.001);
    expect(quatAngle(q, integrate(q0, omega, 0.1))).toBeLessThan(1e-9);
    expect(quatAngle(q, quatMul(quatFromAxisAngle(Y, 0.2), q0))).toBeLessThan(1e-9);
    const w = angularVelocity(q0, q, 0.1);
    expect(w.y).toBeCloseTo(2, 9);
    expect(Math.abs(w.x) + Math.abs(w.z)).toBeLessThan(1e-9);
    expect(quatAngle(quatExp({ x: 0, y: 0, z: 0 }), IDENTITY)).toBe(0);
  });

  it('rotates vectors', () => {
    const v = rotate(quatFromAxisAngle(Y, Math.PI / 2), { x: 1, y: 0, z: 0 });
    expect(v.x).toBeCloseTo(0, 12);
    expect(v.z).toBeCloseTo(-1, 12);
  });
});
