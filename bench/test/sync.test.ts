import { expect, test } from 'vitest';
import { CubeScene } from '../suites/sync.ts';

function run(seed: number, steps: number) {
  const s = new CubeScene(seed);
  let moving = 0;
  for (let i = 0; i < steps; i++) {
    s.step();
    moving += s.dirty.length;
  }
  return { s, moving: moving / steps / s.n };
}

test('the cube scene is deterministic per seed and differs across seeds', () => {
  const a = run(7, 300).s;
  const b = run(7, 300).s;
  const c = run(8, 300).s;
  expect([...a.x]).toEqual([...b.x]);
  expect([...a.yaw]).toEqual([...b.yaw]);
  expect([...a.x]).not.toEqual([...c.x]);
});

test('cubes are disturbed by the pusher and settle: a small, non-zero moving fraction', () => {
  const { s, moving } = run(1, 1200);
  expect(moving).toBeGreaterThan(0.005);
  expect(moving).toBeLessThan(0.2);
  // Most cubes are at rest at any moment (velocity exactly zero: settled, not creeping).
  let resting = 0;
  for (let i = 0; i < s.n - 1; i++) if (s.vx[i] === 0 && s.vz[i] === 0 && s.w[i] === 0) resting++;
  expect(resting / (s.n - 1)).toBeGreaterThan(0.8);
});
