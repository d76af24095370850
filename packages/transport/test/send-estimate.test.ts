/** The send-delay estimator, sans-IO: drain rate measured from what left the queue, stalls, RTT inflation. */
import { describe, expect, it } from 'vitest';
import { SendDelayEstimator } from '../src/index.js';

describe('SendDelayEstimator', () => {
  it('measures the drain rate of a backlogged queue and turns depth into wait', () => {
    const e = new SendDelayEstimator();
    // 10 000 bytes written at t=0; the queue drains 1000 bytes per 100 ms (10 000 B/s).
    e.wrote(10_000);
    e.estimate(0, 10_000, 0);
    let last = e.estimate(100, 9000, 0);
    for (let t = 200, q = 8000; t <= 500; t += 100, q -= 1000) last = e.estimate(t, q, 0);
    expect(last.sendRate).toBeCloseTo(10_000, 6);
    // 5000 bytes left at 10 000 B/s: 500 ms.
    expect(last.queuedBytes).toBe(5000);
    expect(last.delayMs).toBeCloseTo(500, 6);
  });

  it('reports a queue that holds bytes and drains nothing as an infinite wait, and recovers when it drains', () => {
    const e = new SendDelayEstimator();
    e.wrote(4000);
    e.estimate(0, 4000, 0);
    e.estimate(100, 3000, 0);
    expect(e.estimate(200, 2000, 0).delayMs).toBeCloseTo(200, 6);
    expect(e.estimate(300, 2000, 0).delayMs).toBe(Number.POSITIVE_INFINITY);
    expect(e.estimate(400, 2000, 0).delayMs).toBe(Number.POSITIVE_INFINITY);
    // Draining again: the rate measured before the stall still holds (a stall is not a zero rate).
    const after = e.estimate(500, 1000, 0);
    expect(after.sendRate).toBeCloseTo(10_000, 6);
    expect(after.delayMs).toBeCloseTo(100, 6);
  });

  it('adds RTT above the minimum as network queueing; an unanswered probe raises it without lowering the minimum', () => {
    const e = new SendDelayEstimator();
    expect(e.estimate(0, 0, 50).networkQueueMs).toBe(0);
    expect(e.estimate(10, 0, 250).networkQueueMs).toBe(200);
    // A probe sent 30 ms ago is only a floor: the minimum stays 50.
    expect(e.estimate(20, 0, 60, 30).networkQueueMs).toBe(10);
    expect(e.minRttMs).toBe(50);
    expect(e.estimate(30, 0, 60, 900).networkQueueMs).toBe(850);
  });

  it('forgets a drain rate not measured for a second: the fallback rate takes over until a backlog measures again', () => {
    const e = new SendDelayEstimator();
    // Under a cap: 1000 B/s measured from a backlog.
    e.wrote(3000);
    e.estimate(0, 3000, 0);
    e.estimate(100, 2900, 0);
    expect(e.estimate(200, 2800, 0, 0, 50_000).sendRate).toBeCloseTo(1000, 6);
    // The rest drains by 300 (a last sample: 28 000 B/s, averaged in) and the queue stays empty (the sender holds
    // back): nothing measures the rate any more.
    const last = e.estimate(300, 0, 0, 0, 50_000).sendRate;
    expect(last).toBeCloseTo(0.75 * 1000 + 0.25 * 28_000, 6);
    expect(e.estimate(1000, 0, 0, 0, 50_000).sendRate).toBeCloseTo(last, 6);
    expect(e.estimate(1300, 0, 0, 0, 50_000).sendRate).toBeCloseTo(last, 6);
    expect(e.estimate(1301, 0, 0, 0, 50_000).sendRate).toBe(50_000);
    // A new backlog measures afresh, not averaged with the old rate.
    e.wrote(5000);
    e.estimate(1400, 5000, 0, 0, 50_000);
    expect(e.estimate(1500, 3000, 0, 0, 50_000).sendRate).toBeCloseTo(20_000, 6);
  });

  it('uses the fallback rate until a drain was measured, and 0 wait for an empty queue', () => {
    const e = new SendDelayEstimator();
    expect(e.estimate(0, 0, 0).delayMs).toBe(0);
    e.wrote(2000);
    expect(e.estimate(1, 2000, 0, 0, 20_000).delayMs).toBeCloseTo(100, 6);
    expect(e.estimate(2, 2000, 0).delayMs).toBe(Number.POSITIVE_INFINITY);
  });
});
