import { createRng } from '@quiver/transport';
import { describe, expect, test } from 'vitest';
import { medianCi } from '../lib/tracing-cost.ts';

describe('median with a 95 % interval by order statistics', () => {
  test('the interval holds the true median in about 95 % of samples, and narrows with the square root of n', () => {
    const rng = createRng(7);
    // Heavy-tailed per-pair figures around a true median of 0.02, as a shared machine gives them.
    const draw = () => 0.02 + 0.1 * Math.tan(Math.PI * (rng.next() - 0.5));
    const width = (n: number) => {
      let covered = 0;
      let total = 0;
      for (let t = 0; t < 400; t++) {
        const c = medianCi(Array.from({ length: n }, draw));
        if (c.lo <= 0.02 && 0.02 <= c.hi) covered++;
        expect(c.lo).toBeLessThanOrEqual(c.median);
        expect(c.median).toBeLessThanOrEqual(c.hi);
        total += c.hi - c.lo;
      }
      expect(covered / 400).toBeGreaterThan(0.91);
      expect(covered / 400).toBeLessThan(0.99);
      return total / 400;
    };
    const w100 = width(100);
    const w400 = width(400);
    // Four times the pairs, half the width (within sampling noise).
    expect(w400 / w100).toBeGreaterThan(0.4);
    expect(w400 / w100).toBeLessThan(0.6);
  });
});
