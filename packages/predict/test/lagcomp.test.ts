import { describe, expect, it } from 'vitest';
import { InterpolationBuffer, LagCompensator, SimLink, type Vec3 } from '../src/index.js';

const TICK_RATE = 60;
const TICK_MS = 1000 / TICK_RATE;
/** The target strafes across the shooter's view at 6 m/s, 20 m away, reversing every 2 s. */
function target(tMs: number): Vec3 {
  const s = (tMs / 1000) % 4;
  const x = s < 2 ? -6 + 6 * s : 6 - 6 * (s - 2);
  return { x, y: 1, z: 20 };
}
const RADIUS = 0.4;
const SHOOTER: Vec3 = { x: 0, y: 1, z: 0 };

interface Shot {
  direction: Vec3;
  /** The server time the client was drawing when it fired. */
  renderTime: number;
}

/**
 * Server at 60 Hz sending 20 Hz snapshots over a 125 ms one-way link with jitter (250 ms RTT); the client draws the
 * target through an InterpolationBuffer and fires straight at what it draws every 300 ms. Returns hits with and
 * without rewinding.
 */
function play(
  seed: number,
  maxRewindMs = 350,
): { compensated: number; uncompensated: number; shots: number } {
  const down = new SimLink<{ t: number; p: Vec3 }>({ delayMs: 125, jitterMs: 10, lossRate: 0.02, seed });
  const up = new SimLink<Shot>({ delayMs: 125, jitterMs: 10, seed: seed + 1 });
  const lag = new LagCompensator({ tickRate: TICK_RATE, maxRewindMs });
  const buffer = new InterpolationBuffer();
  let compensated = 0;
  let uncompensated = 0;
  let shots = 0;
  let nextShot = 3000;
  for (let tick = 0; tick * TICK_MS <= 20_000; tick++) {
    const now = tick * TICK_MS;
    // Server tick: move, record, take shots that arrived.
    lag.record(tick, [['target', { position: target(now), radius: RADIUS }]]);
    for (const { payload } of up.receive(now)) {
      shots++;
      if (lag.raycast(SHOOTER, payload.direction, payload.renderTime / TICK_MS, 'shooter')) compensated++;
      if (lag.raycast(SHOOTER, payload.direction, tick, 'shooter')) uncompensated++;
    }
    if (tick % 3 === 0) down.send(now, { t: now, p: target(now) });
    // Client frame (same rate for simplicity): draw the target, fire at it.
    for (const { at, payload } of down.receive(now))
      buffer.push(payload.t, at, [['target', { position: payload.p }]]);
    const rt = buffer.update(now);
    const drawn = buffer.sample('target');
    if (rt !== undefined && drawn && now >= nextShot) {
      nextShot += 300;
      const d = {
        x: drawn.position.x - SHOOTER.x,
        y: drawn.position.y - SHOOTER.y,
        z: drawn.position.z - SHOOTER.z,
      };
      up.send(now, { direction: d, renderTime: rt });
    }
  }
  return { compensated, uncompensated, shots };
}

describe('LagCompensator', () => {
  it('hits what the client saw at 250 ms RTT and misses without rewinding', () => {
    const r = play(11);
    expect(r.shots).toBeGreaterThan(50);
    // Aimed exactly at the drawn target: every shot hits once rewound to the client's render time (sub-tick).
    expect(r.compensated).toBe(r.shots);
    // The target has moved ~1.5 m by the time the shot is processed: almost every shot misses. (Shots near the
    // reversal points can still hit.)
    expect(r.uncompensated).toBeLessThan(r.shots * 0.15);
  });

  it('bounds the rewind window', () => {
    // A window shorter than the real latency cannot reach back far enough: shots miss and rewinds are clamped.
    const lag = new LagCompensator({ tickRate: TICK_RATE, maxRewindMs: 50 });
    for (let tick = 0; tick < 120; tick++)
      lag.record(tick, [[1, { position: { x: tick, y: 0, z: 0 }, radius: 0.1 }]]);
    // 100 ticks back is far outside 50 ms (3 ticks): clamped to tick 116.
    const v = lag.rewind(19);
    expect(v.get(1)?.position.x).toBeCloseTo(119 - 50 / TICK_MS, 9);
    expect(lag.stats.clamped).toBe(1);
    // Sub-tick: halfway between ticks 118 and 119.
    expect(lag.rewind(118.5).get(1)?.position.x).toBeCloseTo(118.5, 12);
    expect(lag.rewind(500).get(1)?.position.x).toBe(119);
    expect(lag.rewind(Number.NaN).get(1)?.position.x).toBe(119);
    expect(lag.stats.clamped).toBe(3);
    expect(() => lag.record(119, [])).toThrow(RangeError);
    // The history is bounded too (one second by default).
    const defaults = new LagCompensator({ tickRate: TICK_RATE });
    expect(defaults.historyTicks).toBe(60);
    const short = play(12, 50);
    expect(short.compensated).toBeLessThan(short.shots * 0.15);
  });

  it('picks the nearest sphere along the ray and skips the shooter', () => {
    const lag = new LagCompensator({ tickRate: 10 });
    lag.record(0, [
      ['shooter', { position: { x: 0, y: 0, z: 0 }, radius: 1 }],
      ['far', { position: { x: 0, y: 0, z: 10 }, radius: 1 }],
      ['near', { position: { x: 0, y: 0, z: 5 }, radius: 1 }],
    ]);
    const hit = lag.raycast({ x: 0, y: 0, z: 0 }, { x: 0, y: 0, z: 2 }, 0, 'shooter');
    expect(hit?.id).toBe('near');
    expect(hit?.distance).toBeCloseTo(4, 12);
    expect(lag.raycast({ x: 0, y: 0, z: 0 }, { x: 0, y: 1, z: 0 }, 0, 'shooter')).toBeUndefined();
  });
});
