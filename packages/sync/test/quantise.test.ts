import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { defineComponent, defineSchema, SyncClient, SyncServer, t } from '../src/index.js';
import { rng } from './helpers.js';

/**
 * Property tests of every field type's range and worst-case error, seeded, many samples each. The quaternion bounds
 * are the ones the README documents: the test reads them from its table, so the documentation cannot drift from
 * what is measured here (nor overstate the precision).
 */

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

/** Worst-case angle error in degrees per smallest-three width, as documented in the README. */
function documentedQuatBound(bits: number): number {
  const m = readme.match(new RegExp(`\\| \`t\\.quat\\(\\{ bits: ${bits} \\}\\)\` +\\| +([0-9.]+)°`));
  if (!m) throw new Error(`README has no error bound for t.quat({ bits: ${bits} })`);
  return Number(m[1]);
}

/** One component holding `field`; returns a function from a value to what every client decodes. */
function roundTrip<V>(
  field: ReturnType<typeof t.float> | ReturnType<typeof t.vec2> | ReturnType<typeof t.vec3>,
) {
  const S = defineSchema({ c: defineComponent({ v: field }) });
  const server = new SyncServer(S);
  const id = server.spawn({ c: {} });
  return {
    server,
    decode(v: V): V {
      server.set(id, 'c', { v } as never);
      return server.getQuantised(id)!.c!.v as V;
    },
  };
}

/** Gaussian samples (Box-Muller) from a seeded uniform source, for uniformly random rotations. */
function gaussian(rand: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

describe('float and vector ranges', () => {
  test('t.float({ min: 0, max: 1.08, precision: 0.3 }) never decodes above 1.08 (the step count rounds up)', () => {
    const { decode } = roundTrip<number>(t.float({ min: 0, max: 1.08, precision: 0.3 }));
    expect(decode(1.08)).toBe(1.08);
    expect(decode(5)).toBe(1.08);
    expect(decode(0)).toBe(0);
    // Four steps of 0.27 (never above the precision asked for): the error is at most 0.135.
    for (let v = 0; v <= 1.08; v += 0.001) {
      const d = decode(v);
      expect(d).toBeLessThanOrEqual(1.08);
      expect(Math.abs(d - v)).toBeLessThanOrEqual(0.135 + 1e-12);
    }
  });

  test('random ranges and precisions: decoded values stay in range, the error is at most half a step', () => {
    const rand = rng(41);
    for (let spec = 0; spec < 100; spec++) {
      const min = (rand() - 0.5) * 10 ** Math.floor(rand() * 6);
      const max = min + rand() * 10 ** Math.floor(rand() * 5);
      const precision = (max - min || 1) / (1 + Math.floor(rand() * 2000) + rand());
      const { decode } = roundTrip<number>(t.float({ min, max, precision }));
      const steps = Math.ceil((max - min) / precision - 1e-9);
      const half = steps === 0 ? 0 : (max - min) / steps / 2;
      expect(half).toBeLessThanOrEqual(precision / 2 + 1e-12);
      let worst = 0;
      for (let i = 0; i < 300; i++) {
        // Inside the range and beyond it (clamped), plus both ends exactly.
        const v = i === 0 ? min : i === 1 ? max : min + (rand() * 1.2 - 0.1) * (max - min);
        const d = decode(v);
        expect(d).toBeGreaterThanOrEqual(min);
        expect(d).toBeLessThanOrEqual(max);
        const err = Math.abs(d - Math.min(max, Math.max(min, v)));
        worst = Math.max(worst, err);
        expect(err).toBeLessThanOrEqual(half + 1e-9 * Math.max(1, Math.abs(min), Math.abs(max)));
        // Decoding is a fixed point: what a client decodes quantises to itself.
        expect(decode(d)).toBe(d);
      }
    }
  });

  test('vec2 and vec3 with per-axis ranges; a constant axis costs no bits and decodes exactly', () => {
    const plane = t.vec3({ min: [-64, 0.5, -32], max: [64, 0.5, 32], precision: [1 / 64, 1, 1 / 8] });
    const S = defineSchema({
      c: defineComponent({ p: plane, q: t.vec2({ min: [0, -1], max: [10, 1], precision: 0.01 }) }),
    });
    const f = S.compiled[0].fields;
    // 8192 steps (8193 codes), none, 512 steps.
    expect(f[0].widths).toEqual([14, 0, 10]);
    expect(f[1].widths).toEqual([10, 8]);
    const server = new SyncServer(S);
    const id = server.spawn({ c: {} });
    // Defaults: zero where the range holds it, else the minimum.
    expect(server.getQuantised(id)!.c).toEqual({ p: { x: 0, y: 0.5, z: 0 }, q: { x: 0, y: 0 } });
    const rand = rng(43);
    for (let i = 0; i < 20000; i++) {
      const p = { x: (rand() - 0.5) * 150, y: rand() * 3, z: (rand() - 0.5) * 70 };
      const q = { x: rand() * 12 - 1, y: rand() * 3 - 1.5 };
      server.set(id, 'c', { p, q });
      const d = server.getQuantised(id)!.c!;
      const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));
      expect(d.p.y).toBe(0.5);
      expect(Math.abs(d.p.x - clamp(p.x, -64, 64))).toBeLessThanOrEqual(1 / 128 + 1e-12);
      expect(Math.abs(d.p.z - clamp(p.z, -32, 32))).toBeLessThanOrEqual(1 / 16 + 1e-12);
      expect(Math.abs(d.q.x - clamp(q.x, 0, 10))).toBeLessThanOrEqual(0.005 + 1e-12);
      expect(Math.abs(d.q.y - clamp(q.y, -1, 1))).toBeLessThanOrEqual(0.005 + 1e-12);
      for (const v of [d.p.x, d.p.z, d.q.x, d.q.y]) expect(Number.isFinite(v)).toBe(true);
      expect(d.q.x >= 0 && d.q.x <= 10 && d.q.y >= -1 && d.q.y <= 1).toBe(true);
    }
    expect(server.stats.clamped).toBeGreaterThan(0);
    expect(() => t.vec3({ min: [0, 0], max: 1, precision: 0.1 } as never)).toThrow(RangeError);
  });

  test('ints: exact inside the range, clamped outside', () => {
    const { decode } = roundTrip<number>(t.float({ min: -3, max: 3, precision: 1 }));
    const S = defineSchema({ c: defineComponent({ v: t.int({ min: -7, max: 300 }) }) });
    const server = new SyncServer(S);
    const id = server.spawn({ c: {} });
    for (let v = -20; v <= 320; v++) {
      server.set(id, 'c', { v });
      expect(server.getQuantised(id)!.c!.v).toBe(Math.min(300, Math.max(-7, v)));
    }
    expect(decode(2.4)).toBe(2);
  });
});

describe('angles', () => {
  test('wrap instead of clamping, decode into [-π, π) within half a step', () => {
    const rand = rng(47);
    for (const precision of [0.1, 0.7, 1, 5, 45, 180]) {
      const S = defineSchema({ c: defineComponent({ a: t.angle({ precision }) }) });
      const server = new SyncServer(S);
      const id = server.spawn({ c: {} });
      expect(server.getQuantised(id)!.c!.a).toBe(0);
      const steps = Math.ceil(360 / precision - 1e-9);
      const half = Math.PI / steps;
      let worst = 0;
      for (let i = 0; i < 8000; i++) {
        const a = (rand() - 0.5) * 40 * Math.PI;
        server.set(id, 'c', { a });
        const d = server.getQuantised(id)!.c!.a;
        expect(d).toBeGreaterThanOrEqual(-Math.PI);
        expect(d).toBeLessThan(Math.PI);
        // Distance on the circle.
        const e = Math.abs(Math.atan2(Math.sin(d - a), Math.cos(d - a)));
        worst = Math.max(worst, e);
        expect(e).toBeLessThanOrEqual(half + 1e-9);
      }
      // The bound is tight (the samples come within 5 % of it) and at most half the declared precision.
      expect(worst).toBeGreaterThan(0.95 * half);
      expect((half * 180) / Math.PI).toBeLessThanOrEqual(precision / 2 + 1e-12);
      expect(server.stats.clamped).toBe(0);
    }
  });

  test('a yaw crossing ±π is a small delta on the wire, and the client decodes it exactly', () => {
    const S = defineSchema({ c: defineComponent({ a: t.angle({ precision: 0.01 }) }) });
    /** Bytes of the update from `from` to `to` radians, after checking the client decodes it exactly. */
    const updateBytes = (from: number, to: number) => {
      const server = new SyncServer(S);
      const client = new SyncClient(S);
      server.addClient(1);
      const id = server.spawn({ c: { a: from } });
      server.tick();
      client.receive(server.encodeFor(1));
      server.receiveAck(1, client.createAck());
      server.set(id, 'c', { a: to });
      server.tick();
      const packet = server.encodeFor(1);
      client.receive(packet);
      expect(client.get(id)).toEqual(server.getQuantised(id));
      return packet.length;
    };
    // 0.003 rad across the wrap costs what 0.003 rad anywhere else costs, less than an absolute value would.
    const across = updateBytes(Math.PI - 0.001, -Math.PI + 0.002);
    expect(across).toBe(updateBytes(0.5, 0.503));
    expect(across).toBeLessThan(updateBytes(0.5, -2.5));
  });
});

describe('quaternions', () => {
  test('the identity (and an unset rotation) is exact', () => {
    for (const bits of [3, 6, 9, 12, 15]) {
      const S = defineSchema({ c: defineComponent({ r: t.quat({ bits }) }) });
      const server = new SyncServer(S);
      const unset = server.spawn({ c: {} });
      const set = server.spawn({ c: { r: { x: 0, y: 0, z: 0, w: 1 } } });
      const negated = server.spawn({ c: { r: { x: 0, y: 0, z: 0, w: -2 } } });
      for (const id of [unset, set, negated])
        expect(server.getQuantised(id)!.c!.r).toEqual({ x: 0, y: 0, z: 0, w: 1 });
    }
  });

  test.each([6, 9, 12, 15])(
    '%i-bit smallest-three: the measured worst case matches the README bound',
    (bits) => {
      const bound = documentedQuatBound(bits);
      const S = defineSchema({ c: defineComponent({ r: t.quat({ bits }) }) });
      const server = new SyncServer(S);
      const id = server.spawn({ c: {} });
      const g = gaussian(rng(500 + bits));
      let worst = 0;
      for (let i = 0; i < 100_000; i++) {
        const q = { x: g(), y: g(), z: g(), w: g() };
        const n = Math.hypot(q.x, q.y, q.z, q.w);
        server.set(id, 'c', { r: q });
        const d = server.getQuantised(id)!.c!.r;
        expect(Math.abs(Math.hypot(d.x, d.y, d.z, d.w) - 1)).toBeLessThan(1e-12);
        const dot = Math.abs((q.x * d.x + q.y * d.y + q.z * d.z + q.w * d.w) / n);
        worst = Math.max(worst, (2 * Math.acos(Math.min(1, dot)) * 180) / Math.PI);
      }
      expect(worst).toBeLessThanOrEqual(bound);
      // Not overstated the other way either: the documented bound is within 10 % of what the samples reach.
      expect(worst).toBeGreaterThan(0.9 * bound);
    },
  );
});
