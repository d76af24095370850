/**
 * The server-tick estimate driven by a real `@quiver/session` client: connected over the memory transport's seeded
 * link (delay, jitter, loss) under one ManualClock, with the server's clock offset from the client's, so the
 * estimate has to come from the session's heartbeat exchange.
 */
import { type ClientSession, connect, createSessionServer } from '@quiver/session';
import { type Clock, connectMemory, createMemoryListener, ManualClock } from '@quiver/transport';
import { describe, expect, it } from 'vitest';
import { ServerTickEstimator } from '../src/index.js';

const settle = async (rounds = 3) => {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
};

describe('ServerTickEstimator on a real session', () => {
  it("tracks the server's tick within the session's clock error bound", async () => {
    const clock = new ManualClock(1_000_000);
    // The server's clock runs 123.456 s ahead of the client's; only the heartbeat exchange can tell.
    const OFFSET = 123_456;
    const serverClock: Clock = {
      now: () => clock.now() + OFFSET,
      setTimeout: (fn, ms) => clock.setTimeout(fn, ms),
      clearTimeout: (h) => clock.clearTimeout(h),
    };
    const name = `predict-tick-${process.pid}-${Math.floor(Math.random() * 1e9)}`;
    const listener = createMemoryListener({
      name,
      clock,
      seed: 5,
      link: { delayMs: 30, jitterMs: 8, lossRate: 0.05 },
    });
    const server = createSessionServer({ listeners: [listener], clock: serverClock });
    let session: ClientSession | undefined;
    const connecting = connect(`memory://${name}/q`, {
      connector: connectMemory,
      clock,
      heartbeat: { intervalMs: 200 },
    }).then((s) => {
      session = s;
    });
    for (let i = 0; i < 10_000 && !session; i++) {
      clock.advance(1);
      await settle();
    }
    await connecting;
    const c = session!;

    const TICK_RATE = 60;
    const tickMs = 1000 / TICK_RATE;
    const serverTick = () => serverClock.now() / tickMs;
    const est = new ServerTickEstimator({ tickRate: TICK_RATE });
    let lastTick = Number.NEGATIVE_INFINITY;
    let lastInput = Number.NEGATIVE_INFINITY;
    let checked = 0;
    let maxErrTicks = 0;
    // 20 s of 60 Hz frames: sample the session's estimate every frame, as a game loop would.
    for (let frame = 0; frame < 20 * TICK_RATE; frame++) {
      clock.advance(tickMs);
      await settle();
      est.sample(clock.now(), c);
      const e = est.update(clock.now());
      if (!e) continue;
      expect(e.serverTick).toBeGreaterThanOrEqual(lastTick);
      expect(e.inputTick).toBeGreaterThanOrEqual(lastInput);
      lastTick = e.serverTick;
      lastInput = e.inputTick;
      if (frame < 5 * TICK_RATE) continue; // let the dilation converge after the first (coarse) estimate
      // The estimate's error bound is the session's: |serverTime() - truth| <= clockError. The smoothed clock
      // follows it within a few ms on top.
      const errTicks = Math.abs(e.serverTick - serverTick());
      maxErrTicks = Math.max(maxErrTicks, errTicks);
      expect(errTicks).toBeLessThanOrEqual((c.clockError + 5) / tickMs);
      // The input tick leads the server by about half the RTT plus the margin: inputs arrive in time.
      expect(e.inputTick).toBeGreaterThan(serverTick());
      checked++;
    }
    expect(checked).toBe(15 * TICK_RATE);
    expect(est.stats.samples).toBeGreaterThan(checked);
    // A 30 ms one-way link: the bound is about 30 ms (under 2 ticks), and the session really measured it.
    expect(c.clockError).toBeGreaterThanOrEqual(30);
    expect(c.clockError).toBeLessThan(40);
    expect(maxErrTicks).toBeLessThan(3);
    expect(Math.abs(c.serverTime() - serverClock.now())).toBeLessThanOrEqual(c.clockError);

    const closing = Promise.all([c.close(), server.close()]);
    for (let i = 0; i < 5000 && (c.state !== 'closed' || server.sessions.size > 0); i++) {
      clock.advance(1);
      await settle();
    }
    await closing;
    const listenerClosed = listener.close();
    clock.runAll();
    await listenerClosed;
  });
});
