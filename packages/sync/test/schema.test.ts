import { describe, expect, expectTypeOf, test } from 'vitest';
import {
  BitReader,
  BitWriter,
  type ComponentValue,
  defineComponent,
  defineSchema,
  type EntityValues,
  SyncError,
  SyncServer,
  t,
} from '../src/index.js';
import { rng } from './helpers.js';

const C = defineComponent({
  pos: t.vec3({ min: -10, max: 10, precision: 0.001 }),
  rot: t.quat(),
  hp: t.int({ min: 0, max: 100 }),
  alive: t.bool(),
  kind: t.enum(['a', 'b']),
  name: t.string({ maxBytes: 16 }),
  speed: t.float({ min: 0, max: 5, precision: 0.25, priority: 3 }),
});
const S = defineSchema({ c: C });

describe('schema', () => {
  test('value types are inferred from the field builders', () => {
    expectTypeOf<ComponentValue<typeof C>>().toEqualTypeOf<{
      pos: { x: number; y: number; z: number };
      rot: { x: number; y: number; z: number; w: number };
      hp: number;
      alive: boolean;
      kind: 'a' | 'b';
      name: string;
      speed: number;
    }>();
    expectTypeOf<EntityValues<typeof S.components>>().toEqualTypeOf<{ c?: ComponentValue<typeof C> }>();
  });

  test('bit widths follow the declared ranges', () => {
    const f = Object.fromEntries(S.compiled[0].fields.map((x) => [x.name, x.widths]));
    expect(f).toEqual({
      pos: [15, 15, 15],
      rot: [2, 9, 9, 9],
      hp: [7],
      alive: [1],
      kind: [1],
      name: [5],
      speed: [5],
    });
  });

  test('quantisation: clamps, rounds to the precision, and quaternions within the smallest-three error', () => {
    const server = new SyncServer(S);
    const rand = rng(9);
    for (let i = 0; i < 500; i++) {
      const q = { x: rand() - 0.5, y: rand() - 0.5, z: rand() - 0.5, w: rand() - 0.5 };
      const pos = { x: (rand() - 0.5) * 30, y: rand(), z: -rand() };
      const id = server.spawn({ c: { pos, rot: q, hp: Math.floor(rand() * 200) - 50, speed: rand() * 5 } });
      const v = server.getQuantised(id)!.c!;
      const clamp = (x: number) => Math.min(10, Math.max(-10, x));
      expect(Math.abs(v.pos.x - clamp(pos.x))).toBeLessThanOrEqual(0.0005 + 1e-9);
      expect(v.hp).toBeGreaterThanOrEqual(0);
      expect(v.hp).toBeLessThanOrEqual(100);
      const n = Math.hypot(q.x, q.y, q.z, q.w);
      const dot = Math.abs((q.x * v.rot.x + q.y * v.rot.y + q.z * v.rot.z + q.w * v.rot.w) / n);
      // 9 bits over [-1/sqrt2, 1/sqrt2]: angle error well below one degree.
      expect(2 * Math.acos(Math.min(1, dot))).toBeLessThan((1 * Math.PI) / 180);
      server.despawn(id);
    }
    expect(server.stats.clamped).toBeGreaterThan(0);
  });

  test('programming errors throw at the call: unknown enum values, strings over maxBytes, bad ranges', () => {
    const server = new SyncServer(S);
    expect(() => server.spawn({ c: { kind: 'z' as 'a' } })).toThrow(RangeError);
    expect(() => server.spawn({ c: { name: 'x'.repeat(17) } })).toThrow(RangeError);
    expect(() => server.spawn({ c: { name: 'é'.repeat(9) } })).toThrow(RangeError);
    expect(() => t.int({ min: 5, max: 1 })).toThrow(RangeError);
    expect(() => t.float({ min: 0, max: 1, precision: 0 })).toThrow(RangeError);
    expect(() => t.quat({ bits: 16 })).toThrow(RangeError);
    expect(() => t.enum([])).toThrow(RangeError);
  });

  test('the schema hash depends on every declared detail', () => {
    const a = defineSchema({ c: defineComponent({ v: t.int({ min: 0, max: 9 }) }) });
    const b = defineSchema({ c: defineComponent({ v: t.int({ min: 0, max: 10 }) }) });
    const c = defineSchema({ d: defineComponent({ v: t.int({ min: 0, max: 9 }) }) });
    const d = defineSchema({ c: defineComponent({ v: t.int({ min: 0, max: 9 }) }) }, { maxEntities: 100 });
    expect(new Set([a.hash, b.hash, c.hash, d.hash]).size).toBe(4);
    expect(defineSchema({ c: defineComponent({ v: t.int({ min: 0, max: 9 }) }) }).hash).toBe(a.hash);
  });
});

describe('bit packing', () => {
  test('random widths and exp-Golomb codes round-trip', () => {
    const rand = rng(3);
    const w = new BitWriter(4);
    const items: [number, number, number][] = [];
    for (let i = 0; i < 5000; i++) {
      if (rand() < 0.3) {
        const k = Math.floor(rand() * 9);
        const v = rand() < 0.5 ? Math.floor(rand() * 50) : Math.floor(rand() * 2 ** 30);
        items.push([0, v, k]);
        w.writeExpGolomb(v, k);
      } else {
        const n = Math.floor(rand() * 33);
        const v = n === 0 ? 0 : Math.floor(rand() * 2 ** n);
        items.push([1, v, n]);
        w.writeBits(v, n);
      }
    }
    const r = new BitReader(w.bytes());
    for (const [kind, v, n] of items) expect(kind === 0 ? r.readExpGolomb(n) : r.readBits(n)).toBe(v);
    expect(r.atPaddedEnd()).toBe(true);
    expect(() => r.readBits(9)).toThrow(SyncError);
  });

  test('rewind drops exactly the bits written after the mark', () => {
    const w = new BitWriter(2);
    w.writeBits(0b101, 3);
    const mark = w.pos;
    w.writeBits(0xffffffff, 32);
    w.rewind(mark);
    w.writeBits(0b01, 2);
    expect([...w.bytes()]).toEqual([0b10101000]);
  });
});
