import { createRng } from '@quiver/transport';
import { describe, expect, it } from 'vitest';
import { FixedTicker, ServerTickEstimator } from '../src/index.js';

describe('ServerTickEstimator', () => {
  it('follows a noisy clock estimate smoothly and monotonically, leading by RTT/2 + margin', () => {
    const est = new ServerTickEstimator({ tickRate: 60, maxDilation: 0.05 });
    const rand = createRng(9).next;
    const trueOffset = 50_000; // server clock = local + 50 s
    let lastTick = Number.NEGATIVE_INFINITY;
    let lastInput = Number.NEGATIVE_INFINITY;
    let maxStep = 0;
    let finalErr = Number.NaN;
    let lead = 0;
    for (let local = 0; local <= 30_000; local += 1000 / 60) {
      if (Math.floor(local) % 500 < 17) {
        // The session's estimate: off by up to its error bound (RTT/2 = 50 ms), converging as better samples come.
        const bound = local < 5000 ? 50 : 5;
        est.addSample(local, local + trueOffset + (rand() * 2 - 1) * bound, bound, 100);
      }
      const e = est.update(local);
      if (!e) continue;
      expect(e.serverTick).toBeGreaterThanOrEqual(lastTick);
      expect(e.inputTick).toBeGreaterThanOrEqual(lastInput);
      if (Number.isFinite(lastTick)) maxStep = Math.max(maxStep, e.serverTick - lastTick);
      lastTick = e.serverTick;
      lastInput = e.inputTick;
      finalErr = e.serverTime - (local + trueOffset);
      lead = e.leadMs;
    }
    // No jumps: a frame never advances the tick by more than 1 + maxDilation ticks.
    expect(maxStep).toBeLessThanOrEqual(1.05 + 1e-9);
    expect(Math.abs(finalErr)).toBeLessThan(6);
    // RTT/2 = 50 ms plus two ticks of margin.
    expect(lead).toBeCloseTo(50 + 2000 / 60, 6);
    expect(est.stats.snaps).toBe(0);
  });

  it('jumps forward after a long stall but never goes back', () => {
    const est = new ServerTickEstimator({ tickRate: 20 });
    expect(est.update(0)).toBeUndefined();
    est.addSample(0, 1000, 10);
    expect(est.update(0)?.serverTime).toBe(1000);
    // The estimate moves 2 s ahead: jump.
    est.addSample(100, 3100, 10);
    expect(est.update(100)?.serverTime).toBe(3100);
    expect(est.stats.snaps).toBe(1);
    // The estimate moves 2 s back: keep going forward, only slower.
    est.addSample(200, 1200, 10);
    const a = est.update(200)!.serverTime;
    const b = est.update(300)!.serverTime;
    expect(b).toBeGreaterThan(a);
    expect(b - a).toBeCloseTo(95, 9);
  });
});

describe('ServerTickEstimator.sample', () => {
  it('reads a session-shaped clock source and waits for its first estimate', () => {
    const est = new ServerTickEstimator({ tickRate: 30, inputMarginMs: 0 });
    const session = { serverTime: () => 10_000, clockError: Number.POSITIVE_INFINITY, rtt: 80 };
    est.sample(0, session);
    expect(est.update(0)).toBeUndefined();
    session.clockError = 40;
    est.sample(0, session);
    const e = est.update(0)!;
    expect(e.serverTick).toBeCloseTo(300, 9);
    expect(e.leadMs).toBe(40);
    expect(e.inputTick).toBe(Math.floor(10_040 / (1000 / 30)));
  });
});

describe('FixedTicker', () => {
  it('turns frame times into whole ticks and drops a stall beyond the cap', () => {
    const t = new FixedTicker(60, { maxTicksPerAdvance: 4 });
    expect(t.advance(10)).toBe(0);
    expect(t.advance(10)).toBe(1);
    expect(t.alpha).toBeCloseTo((20 - 1000 / 60) / (1000 / 60), 9);
    expect(t.advance(1000)).toBe(4);
    expect(t.droppedMs).toBeGreaterThan(900);
    expect(t.tick).toBe(5);
    expect(() => t.advance(-1)).toThrow(RangeError);
  });
});
