import { describe, expect, it } from 'vitest';
import {
  type EntitySample,
  InterpolationBuffer,
  type InterpolationOptions,
  quatAngle,
  quatFromAxisAngle,
  SimLink,
} from '../src/index.js';

/** A smooth seeded path (metres, seconds), with its velocity and a yaw that follows the heading. */
function path(t: number): EntitySample {
  const s = t / 1000;
  const position = { x: 8 * Math.sin(0.7 * s), y: 0, z: 5 * Math.sin(1.1 * s + 0.5) };
  const velocity = { x: 8 * 0.7 * Math.cos(0.7 * s), y: 0, z: 5 * 1.1 * Math.cos(1.1 * s + 0.5) };
  return { position, velocity, rotation: quatFromAxisAngle({ x: 0, y: 1, z: 0 }, 0.9 * s) };
}

interface Trace {
  buffer: InterpolationBuffer;
  frames: { interpolated: number; extrapolated: number; held: number };
  maxError: number;
  maxRotError: number;
  delays: number[];
}

/** 20 Hz snapshots over a seeded link, 60 Hz frames; counts frames after `warmupMs`. */
function simulate(
  link: SimLink<number>,
  durationMs: number,
  warmupMs: number,
  sendVelocity: boolean,
  options: InterpolationOptions = {},
): Trace {
  const buffer = new InterpolationBuffer(options);
  const frames = { interpolated: 0, extrapolated: 0, held: 0 };
  let maxError = 0;
  let maxRotError = 0;
  const delays: number[] = [];
  const clientOffset = 123_456; // the client's clock has its own epoch
  let nextSnap = 0;
  let nextFrame = 0;
  for (let now = 0; now <= durationMs; now++) {
    if (now >= nextSnap) {
      link.send(now, now);
      nextSnap += 50;
    }
    for (const { at, payload } of link.receive(now)) {
      const e = path(payload);
      buffer.push(payload, at + clientOffset, [
        ['a', sendVelocity ? e : { position: e.position, rotation: e.rotation }],
      ]);
    }
    if (now >= nextFrame) {
      nextFrame += 1000 / 60;
      const rt = buffer.update(now + clientOffset);
      const pose = buffer.sample('a');
      if (rt === undefined || !pose || now < warmupMs) continue;
      frames[pose.mode]++;
      delays.push(buffer.currentDelayMs);
      if (pose.mode === 'interpolated') {
        const truth = path(rt);
        const err = Math.hypot(pose.position.x - truth.position.x, pose.position.z - truth.position.z);
        maxError = Math.max(maxError, err);
        maxRotError = Math.max(maxRotError, quatAngle(pose.rotation, truth.rotation!));
      }
    }
  }
  return { buffer, frames, maxError, maxRotError, delays };
}

const share = (f: Trace['frames']) => f.interpolated / (f.interpolated + f.extrapolated + f.held);

describe('InterpolationBuffer', () => {
  // The ">= 99 % of frames interpolated" claim (README) holds for every seed here, not for one lucky draw.
  const SEEDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];

  for (const seed of SEEDS)
    it(`interpolates >= 99 % of frames at 30 ms jitter after warm-up (seed ${seed})`, () => {
      const t = simulate(new SimLink({ delayMs: 40, jitterMs: 30, seed }), 60_000, 5_000, false);
      expect(share(t.frames)).toBeGreaterThanOrEqual(0.99);
    });

  for (const seed of SEEDS)
    it(`covers 5 % bursty loss with >= 99 % of frames interpolated (seed ${seed})`, () => {
      const link = new SimLink<number>({
        delayMs: 40,
        jitterMs: 10,
        lossRate: 0.05,
        meanBurstLength: 1.5,
        seed,
      });
      expect(share(simulate(link, 60_000, 10_000, false).frames)).toBeGreaterThanOrEqual(0.99);
    });

  it('adapts its delay to 30 ms of jitter and interpolates >= 99 % of frames after warm-up', () => {
    const t = simulate(new SimLink({ delayMs: 40, jitterMs: 30, seed: 7 }), 60_000, 5_000, false);
    expect(share(t.frames)).toBeGreaterThanOrEqual(0.99);
    // The jitter estimate saw the link: RFC 3550 J of uniform [0, 30) jitter is about 10 ms.
    expect(t.buffer.jitterMs).toBeGreaterThan(5);
    expect(t.buffer.jitterMs).toBeLessThan(20);
    // Positions within a few cm of the truth at the drawn time (finite differences, no velocities sent).
    expect(t.maxError).toBeLessThan(0.05);
    expect(t.maxRotError).toBeLessThan(1e-6);
  });

  it('uses less delay on a steady link than on a jittery one', () => {
    const steady = simulate(new SimLink({ delayMs: 40, seed: 3 }), 20_000, 5_000, true);
    const jittery = simulate(new SimLink({ delayMs: 40, jitterMs: 30, seed: 3 }), 20_000, 5_000, true);
    const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
    expect(share(steady.frames)).toBeGreaterThanOrEqual(0.99);
    expect(mean(steady.delays)).toBeLessThan(mean(jittery.delays) - 15);
    // With velocities sent, Hermite is nearly exact.
    expect(steady.maxError).toBeLessThan(0.005);
  });

  it('covers lost snapshots by default, or extrapolates through them with less delay (coverLoss: false)', () => {
    const lossy = () =>
      new SimLink<number>({ delayMs: 40, jitterMs: 10, lossRate: 0.05, meanBurstLength: 1.5, seed: 4 });
    const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
    const covered = simulate(lossy(), 60_000, 10_000, false);
    const fast = simulate(lossy(), 60_000, 10_000, false, { coverLoss: false });
    expect(share(covered.frames)).toBeGreaterThanOrEqual(0.99);
    expect(share(fast.frames)).toBeLessThan(0.98);
    expect(fast.frames.extrapolated).toBeGreaterThan(covered.frames.extrapolated);
    expect(mean(fast.delays)).toBeLessThan(mean(covered.delays) - 30);
  });

  it('extrapolates for a bounded time when snapshots stop, then corrects smoothly', () => {
    // Straight line at 2 m/s along x, a stall of 600 ms, then the entity resumes 0.5 m to the side.
    const pos = (t: number) => ({ x: (2 * t) / 1000, y: 0, z: t >= 1500 ? 0.5 : 0 });
    const trace = (correctionHalfLifeMs: number) => {
      const buffer = new InterpolationBuffer({
        snapshotIntervalMs: 50,
        maxExtrapolationMs: 100,
        correctionHalfLifeMs,
      });
      const seen: { mode: string; x: number; z: number; rt: number; now: number }[] = [];
      for (let now = 0; now <= 3000; now += 10) {
        if (now % 50 === 0 && (now < 900 || now >= 1500))
          buffer.push(now, now + 20, [[1, { position: pos(now) }]]);
        const rt = buffer.update(now);
        const p = buffer.sample(1);
        if (rt !== undefined && p) seen.push({ mode: p.mode, x: p.position.x, z: p.position.z, rt, now });
      }
      return { buffer, seen };
    };
    const { buffer, seen } = trace(50);
    const extrapolated = seen.filter((s) => s.mode === 'extrapolated');
    expect(extrapolated.length).toBeGreaterThan(0);
    expect(seen.filter((s) => s.mode === 'held').length).toBeGreaterThan(0);
    expect(buffer.stats.extrapolated).toBe(extrapolated.length);
    // Never further than maxExtrapolation past the last snapshot (850 ms): 1.7 m + 0.2 m.
    const before = seen.filter((s) => s.now < 1500);
    expect(Math.max(...before.map((s) => s.x))).toBeLessThanOrEqual(1.9 + 1e-9);
    const steps = seen.slice(1).map((s, i) => Math.hypot(s.x - seen[i].x, s.z - seen[i].z));
    const back = before.length; // index of the first frame with the new data
    // When data returns the view does not jump; the ~1 m of catching up is spread over frames.
    expect(steps[back - 1]).toBeLessThan(0.01);
    expect(Math.max(...steps)).toBeLessThan(0.2);
    // Without the decaying offset the same return is a jump of most of a metre.
    const raw = trace(0).seen;
    expect(Math.hypot(raw[back].x - raw[back - 1].x, raw[back].z - raw[back - 1].z)).toBeGreaterThan(0.9);
    // And it ends on the truth.
    const last = seen[seen.length - 1];
    expect(Math.abs(last.x - pos(last.rt).x)).toBeLessThan(1e-3);
    expect(Math.abs(last.z - 0.5)).toBeLessThan(1e-3);
  });

  it('counts duplicates and late snapshots, bounds entities, rejects bad times', () => {
    const buffer = new InterpolationBuffer({ maxEntities: 2 });
    buffer.push(0, 10, [
      [1, { position: { x: 0, y: 0, z: 0 } }],
      [2, { position: { x: 0, y: 0, z: 0 } }],
      [3, { position: { x: 0, y: 0, z: 0 } }],
    ]);
    buffer.push(0, 11, [[1, { position: { x: 1, y: 0, z: 0 } }]]);
    expect(buffer.stats.duplicates).toBe(1);
    expect(buffer.stats.droppedEntities).toBe(1);
    buffer.push(50, 60, [[1, { position: { x: 1, y: 0, z: 0 } }]]);
    buffer.update(2000);
    buffer.push(40, 2000, [[1, { position: { x: 1, y: 0, z: 0 } }]]);
    expect(buffer.stats.late).toBe(1);
    expect(() => buffer.push(Number.NaN, 0, [])).toThrow(RangeError);
    expect(buffer.sample(99)).toBeUndefined();
  });
});
