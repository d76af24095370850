import { createRng } from '@quiver/transport';
import { describe, expect, test } from 'vitest';
import { quantileCi, quantileDiffCi } from '../lib/stats.ts';

// Exponential latencies (mean 1): the true p99 is ln(100).
const P99 = Math.log(100);

describe('tail quantile with an interval by order statistics', () => {
  test('the 95 % interval of a p99 holds the true p99 in about 95 % of samples, and narrows with n', () => {
    const rng = createRng(11);
    const draw = () => -Math.log(1 - rng.next());
    const run = (n: number) => {
      let covered = 0;
      let width = 0;
      for (let t = 0; t < 400; t++) {
        const c = quantileCi(Array.from({ length: n }, draw), 0.99);
        if (c.lo <= P99 && P99 <= c.hi) covered++;
        expect(c.lo).toBeLessThanOrEqual(c.value);
        expect(c.value).toBeLessThanOrEqual(c.hi);
        width += c.hi - c.lo;
      }
      return { coverage: covered / 400, width: width / 400 };
    };
    const small = run(1000);
    const large = run(4000);
    expect(small.coverage).toBeGreaterThan(0.91);
    expect(small.coverage).toBeLessThan(0.99);
    expect(large.coverage).toBeGreaterThan(0.91);
    expect(large.coverage).toBeLessThan(0.99);
    // Four times the samples, about half the width.
    expect(large.width / small.width).toBeGreaterThan(0.35);
    expect(large.width / small.width).toBeLessThan(0.65);
  });

  test('the interval of a difference of p99s holds the true difference in at least 95 % of samples', () => {
    const rng = createRng(12);
    const exp = () => -Math.log(1 - rng.next());
    let covered = 0;
    for (let t = 0; t < 400; t++) {
      // b's latencies are 0.5 slower, with twice as many samples (the probe's cross-node ones).
      const a = Array.from({ length: 2000 }, exp);
      const b = Array.from({ length: 4000 }, () => 0.5 + exp());
      const d = quantileDiffCi(b, a, 0.99);
      expect(d.lo).toBeLessThanOrEqual(d.value);
      expect(d.value).toBeLessThanOrEqual(d.hi);
      if (d.lo <= 0.5 && 0.5 <= d.hi) covered++;
    }
    expect(covered / 400).toBeGreaterThanOrEqual(0.95);
  });

  test('too few samples for the tail: the upper side is the sample maximum', () => {
    const v = Array.from({ length: 50 }, (_, i) => i);
    const c = quantileCi(v, 0.99);
    expect(c.hi).toBe(49);
    expect(c.value).toBe(49);
  });
});
