import { describe, expect, test } from 'vitest';
import { rssAtEqualSessions, rssFit } from '../lib/soak-rss.ts';

// Session counts that swing as the soak's do (kills and rejoins), not in step with time.
const counts = [600, 420, 710, 650, 380, 590, 800, 560, 470, 690, 610, 530];
const KB = 1024;

describe('rssFit', () => {
  test('a swinging session count with no growth over time gives ~0 growth and the per-session cost', () => {
    const samples = counts.map((n, i) => ({
      t: i * 5000,
      sessions: n,
      rssBytes: 200 * 2 ** 20 + n * 60 * KB,
    }));
    const f = rssFit(samples);
    expect(f.growth).toBeCloseTo(0, 6);
    expect(f.perSession / KB).toBeCloseTo(60, 6);
    expect(f.r2).toBeCloseTo(1, 6);
    // The plain last-over-first ratio of the same samples is far from 0: what the fit is for.
    expect(Math.abs(samples[11].rssBytes / samples[0].rssBytes - 1)).toBeGreaterThan(0.01);
  });

  test('growth over time is found beside the count: 10 % over the run', () => {
    const base = 200 * 2 ** 20;
    const tEnd = (counts.length - 1) * 5000;
    const samples = counts.map((n, i) => {
      const t = i * 5000;
      return { t, sessions: n, rssBytes: base + n * 60 * KB + (0.1 * (base + 600 * 60 * KB) * t) / tEnd };
    });
    const f = rssFit(samples);
    // Relative to the RSS at the mean count (~584 sessions) at the first sample.
    const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
    expect(f.growth).toBeCloseTo((0.1 * (base + 600 * 60 * KB)) / (base + mean * 60 * KB), 4);
    expect(f.perSession / KB).toBeCloseTo(60, 4);
  });

  test('a count that moves in step with time cannot be told from growth: NaN, never a made-up figure', () => {
    const samples = counts.map((_, i) => ({ t: i * 5000, sessions: 100 + i * 50, rssBytes: 1e8 + i * 1e6 }));
    expect(rssFit(samples).growth).toBeNaN();
    expect(rssFit(samples.slice(0, 3)).growth).toBeNaN();
  });
});

describe('rssAtEqualSessions', () => {
  const base = 300 * 2 ** 20;
  // Early and late thirds return to the same counts; the middle third wanders.
  const shape = [500, 560, 500, 750, 500, 620, 380, 900, 450, 500, 560, 500, 750, 500];
  test('no growth at equal counts is 0 although the count swings (and RSS lags it in between)', () => {
    const samples = shape.map((n, i) => ({
      t: i * 5000,
      sessions: n,
      // In the middle third RSS stays up after the count falls, as freed pages stay with the allocator.
      rssBytes: base + (i >= 5 && i < 9 ? 900 : n) * 70 * KB,
    }));
    const f = rssAtEqualSessions(samples);
    expect(f.matched).toBe(4);
    expect(f.growth).toBeCloseTo(0, 9);
  });

  test('10 % more RSS late at the same counts is found', () => {
    const samples = shape.map((n, i) => ({
      t: i * 5000,
      sessions: n,
      rssBytes: (base + n * 70 * KB) * (i >= shape.length - 4 ? 1.1 : 1),
    }));
    const f = rssAtEqualSessions(samples);
    expect(f.growth).toBeCloseTo(0.1, 6);
  });

  test('a count that never returns to an early level gives NaN', () => {
    const samples = shape.map((n, i) => ({ t: i * 5000, sessions: n + i * 100, rssBytes: base }));
    expect(rssAtEqualSessions(samples).growth).toBeNaN();
  });
});
