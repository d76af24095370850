import { expect, test } from 'vitest';
import { CubeWorld } from '../suites/_sync-cubes.ts';
import { arenaTrace, crowdTrace, xrTrace } from '../suites/_sync-scenes.ts';

function run(seed: number, steps: number, settle = 600) {
  const w = new CubeWorld(seed);
  w.settle(settle);
  const moving: number[] = [];
  for (let i = 0; i < steps; i++) {
    w.step();
    moving.push(w.dirty.length / w.n);
  }
  return { w, moving };
}

test('the cube scene is deterministic per seed and differs across seeds', () => {
  const a = run(7, 120, 120).w;
  const b = run(7, 120, 120).w;
  const c = run(8, 120, 120).w;
  expect([...a.px]).toEqual([...b.px]);
  expect([...a.qx]).toEqual([...b.qx]);
  expect([...a.px]).not.toEqual([...c.px]);
});

test('cubes settle into piles, the player knocks them over and they tumble: a small, non-zero moving share', () => {
  const { w, moving } = run(1, 1200);
  const share = moving.reduce((x, y) => x + y, 0) / moving.length;
  expect(share).toBeGreaterThan(0.01);
  expect(share).toBeLessThan(0.3);
  // 3-D: some cubes rest on others, and rotations are general (not about one axis).
  let stacked = 0;
  let tilted = 0;
  for (let i = 0; i < w.n - 1; i++) {
    if (w.py[i] > 0.9) stacked++;
    if (Math.abs(w.qx[i]) > 0.1 && Math.abs(w.qz[i]) > 0.1) tilted++;
    expect(Math.abs(Math.hypot(w.qx[i], w.qy[i], w.qz[i], w.qw[i]) - 1)).toBeLessThan(1e-9);
  }
  expect(stacked).toBeGreaterThan(50);
  expect(tilted).toBeGreaterThan(100);
  // Most cubes are exactly at rest at any moment (asleep: settled, not creeping).
  let resting = 0;
  for (let i = 0; i < w.n - 1; i++) if (!w.awake[i]) resting++;
  expect(resting / (w.n - 1)).toBeGreaterThan(0.7);
});

test('scene traces: 10 % of the crowd walks, arena players and XR poses move', () => {
  const crowd = crowdTrace(3, 3600);
  const walking = crowd.moving.reduce((a, b) => a + b, 0) / crowd.moving.length;
  expect(walking).toBeGreaterThan(0.07);
  expect(walking).toBeLessThan(0.13);
  const arena = arenaTrace(3, 600);
  expect(arena.moving.reduce((a, b) => a + b, 0) / arena.moving.length).toBeGreaterThan(0.5);
  const xr = xrTrace(3, 60);
  expect(xr.n).toBe(12);
  expect(xr.frames.every((f) => f.idx.length === 12)).toBe(true);
  expect(crowdTrace(3, 100).frames[99].vals).toEqual(crowd.frames[99].vals);
});
