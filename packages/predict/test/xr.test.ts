import { createRng } from '@quiver/transport';
import { describe, expect, it } from 'vitest';
import {
  distance,
  PosePredictor,
  quatAngle,
  quatExp,
  quatFromAxisAngle,
  quatMul,
  quatNormalize,
  type Quat,
  type Vec3,
} from '../src/index.js';

/** A head looking around (yaw sweep, pitch nod, some roll) while walking and bobbing; t in ms. */
function head(t: number): { position: Vec3; orientation: Quat } {
  const s = t / 1000;
  const yaw = 0.9 * Math.sin(1.3 * s) + 0.4 * Math.sin(2.9 * s);
  const pitch = 0.3 * Math.sin(2.1 * s + 1);
  const roll = 0.1 * Math.sin(3.7 * s);
  const q = quatMul(
    quatFromAxisAngle({ x: 0, y: 1, z: 0 }, yaw),
    quatMul(quatFromAxisAngle({ x: 1, y: 0, z: 0 }, pitch), quatFromAxisAngle({ x: 0, y: 0, z: 1 }, roll)),
  );
  return {
    position: { x: 0.8 * s, y: 1.6 + 0.03 * Math.sin(10 * s), z: 0.5 * Math.sin(0.7 * s) },
    orientation: q,
  };
}

function evaluate(options: { noise: number; horizonMs: number; filterMs?: number }) {
  const rand = createRng(5).next;
  const n = () => (rand() * 2 - 1) * options.noise;
  const predictor = new PosePredictor({ horizonMs: options.horizonMs, filterMs: options.filterMs });
  let errPredicted = 0;
  let errStale = 0;
  let rotPredicted = 0;
  let rotStale = 0;
  let count = 0;
  const frameMs = 1000 / 90;
  for (let i = 0; i < 90 * 30; i++) {
    const t = i * frameMs;
    const truth = head(t);
    // Tracking noise: ~1 mm and ~0.05° per axis at noise = 1.
    const sample = {
      position: {
        x: truth.position.x + n() * 1e-3,
        y: truth.position.y + n() * 1e-3,
        z: truth.position.z + n() * 1e-3,
      },
      orientation: quatNormalize(
        quatMul(quatExp({ x: n() * 1e-3, y: n() * 1e-3, z: n() * 1e-3 }), truth.orientation),
      ),
    };
    predictor.addSample(t, sample);
    if (i < 90) continue;
    const shown = head(t + options.horizonMs);
    const p = predictor.predict()!;
    errPredicted += distance(p.position, shown.position);
    errStale += distance(sample.position, shown.position);
    rotPredicted += quatAngle(p.orientation, shown.orientation);
    rotStale += quatAngle(sample.orientation, shown.orientation);
    count++;
  }
  return {
    pos: errPredicted / count,
    posStale: errStale / count,
    rot: rotPredicted / count,
    rotStale: rotStale / count,
  };
}

describe('PosePredictor', () => {
  it('predicts a moving, rotating head 20 ms ahead better than showing the last pose', () => {
    const clean = evaluate({ noise: 0, horizonMs: 20, filterMs: 0 });
    // Noise-free: velocities from finite differences; the error left is second order.
    expect(clean.rot).toBeLessThan(clean.rotStale / 5);
    expect(clean.pos).toBeLessThan(clean.posStale / 5);
    const noisy = evaluate({ noise: 1, horizonMs: 20 });
    expect(noisy.rot).toBeLessThan(noisy.rotStale / 2);
    expect(noisy.pos).toBeLessThan(noisy.posStale / 2);
    // Filtering pays under noise: raw finite differences amplify it.
    const unfiltered = evaluate({ noise: 1, horizonMs: 20, filterMs: 0 });
    expect(noisy.rot).toBeLessThan(unfiltered.rot);
  });

  it('integrates angular velocity on the sphere, uses runtime velocities and bounds the horizon', () => {
    const p = new PosePredictor({ maxHorizonMs: 50 });
    expect(p.predict()).toBeUndefined();
    const q0 = quatFromAxisAngle({ x: 1, y: 0, z: 0 }, 0.3);
    // A fast spin reported by the runtime: 10 rad/s about y.
    p.addSample(0, {
      position: { x: 0, y: 0, z: 0 },
      orientation: q0,
      linearVelocity: { x: 1, y: 0, z: 0 },
      angularVelocity: { x: 0, y: 10, z: 0 },
    });
    const out = p.predict(40)!;
    expect(
      quatAngle(out.orientation, quatMul(quatFromAxisAngle({ x: 0, y: 1, z: 0 }, 0.4), q0)),
    ).toBeLessThan(1e-12);
    expect(
      Math.hypot(out.orientation.x, out.orientation.y, out.orientation.z, out.orientation.w),
    ).toBeCloseTo(1, 14);
    expect(out.position.x).toBeCloseTo(0.04, 12);
    // Clamped at 50 ms.
    expect(p.predict(1000)!.position.x).toBeCloseTo(0.05, 12);
    expect(p.predictAt(30)!.position.x).toBeCloseTo(0.03, 12);
    expect(() => p.addSample(Number.NaN, { position: { x: 0, y: 0, z: 0 }, orientation: q0 })).toThrow(
      RangeError,
    );
  });
});
