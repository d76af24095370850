import { describe, expect, test } from 'vitest';
import { BitReader, BitWriter } from '../src/bits.js';
import { multiDeltaBits, readMultiDelta, WIDTH_K, writeMultiDelta } from '../src/codec.js';
import { gapBitsBound } from '../src/priority.js';
import { SyncError } from '../src/errors.js';
import { defineComponent, defineSchema, SyncClient, SyncServer, t } from '../src/index.js';
import type { CompiledField } from '../src/schema.js';
import { type Peer, rng, step, TickLink } from './helpers.js';

/**
 * The shared-width delta of multi-slot fields (vec2, vec3, quat): every value round-trips exactly against every base,
 * the written length is what `multiDeltaBits` says (the budget and the prediction choice rely on it), and the form
 * chosen is the shorter one.
 */

const schema = defineSchema({
  c: defineComponent({
    v3: t.vec3({ min: [-64, 0.5, -8], max: [64, 0.5, 8], precision: [1 / 512, 1, 0.01] }),
    v2: t.vec2({ min: -1, max: 1, precision: 0.25 }),
    q: t.quat({ bits: 9 }),
    q3: t.quat({ bits: 3 }),
  }),
});
const fields = schema.compiled[0].fields;

function randomRow(
  f: CompiledField,
  rand: () => number,
  near: Uint32Array | null,
  spread: number,
): Uint32Array {
  const row = new Uint32Array(f.slotCount);
  for (let k = 0; k < f.slotCount; k++) {
    const maxQ = f.maxQ[k];
    if (near && rand() < 0.9 && !(f.kind === 'quat' && k === 0)) {
      const d = Math.round((rand() - 0.5) * 2 * spread);
      row[k] = Math.max(0, Math.min(maxQ, near[k] + d));
    } else row[k] = f.kind === 'quat' && k === 0 ? Math.floor(rand() * 4) : Math.floor(rand() * (maxQ + 1));
  }
  if (near && f.kind === 'quat' && rand() < 0.8) row[0] = near[0];
  return row;
}

const egBits = (v: number, k: number) => 2 * Math.floor(Math.log2(v + 2 ** k)) - k + 1;

/** The shorter of the two forms, computed independently of the codec. */
function shortest(f: CompiledField, value: Uint32Array, base: Uint32Array): number {
  const from = f.kind === 'quat' ? 1 : 0;
  const quatBit = f.kind === 'quat' ? 1 : 0;
  const slots = f.widths.slice(from).filter((w) => w > 0).length;
  const abs = f.widths.slice(from).reduce((a, b) => a + b, 0);
  if (f.kind === 'quat' && value[0] !== base[0]) return 1 + 2 + abs;
  let width = 0;
  for (let k = from; k < f.slotCount; k++) {
    const d = value[k] - base[k];
    const z = d >= 0 ? 2 * d : -2 * d - 1;
    width = Math.max(width, z === 0 ? 0 : Math.floor(Math.log2(z)) + 1);
  }
  const absolute = quatBit + egBits(f.jointMax, WIDTH_K) + abs;
  if (width > f.jointMax) return absolute;
  return Math.min(absolute, quatBit + egBits(width - 1, WIDTH_K) + slots * width);
}

describe('shared-width deltas of multi-slot fields', () => {
  test('every value round-trips against every base; the length is multiDeltaBits; the shorter form is chosen', () => {
    const rand = rng(19);
    for (const f of fields) {
      let deltas = 0;
      let absolutes = 0;
      for (let i = 0; i < 4000; i++) {
        const base = randomRow(f, rand, null, 0);
        const spread = 2 ** Math.floor(rand() * 18);
        const value = randomRow(f, rand, base, spread);
        if (value.every((v, k) => v === base[k])) continue;
        const w = new BitWriter(8);
        w.writeBits(0b101, 3); // unaligned start
        writeMultiDelta(w, f, value, 0, base, 0);
        expect(w.pos - 3).toBe(multiDeltaBits(f, value, 0, base, 0));
        const r = new BitReader(w.bytes());
        r.readBits(3);
        const got = Uint32Array.from(base);
        readMultiDelta(r, f, got, 0);
        expect(r.pos).toBe(w.pos);
        expect([...got]).toEqual([...value]);
        expect(w.pos - 3).toBe(shortest(f, value, base));
        const r2 = new BitReader(w.bytes());
        r2.readBits(3);
        if (f.kind === 'quat' && !r2.readBit()) continue;
        if (r2.readExpGolomb(WIDTH_K) === f.jointMax) absolutes++;
        else deltas++;
      }
      // Both forms occur for every field.
      expect(deltas).toBeGreaterThan(100);
      expect(absolutes).toBeGreaterThan(100);
    }
  });

  test('a constant axis costs nothing: a vec3 with y fixed sends two slots', () => {
    const f = fields[0];
    const base = Uint32Array.of(1000, 0, 800);
    const value = Uint32Array.of(1003, 0, 798);
    // Width code of 3 bits (exp-Golomb k = 2 of 2) + 2 x 3 bits (zigzag 6 and 3).
    expect(multiDeltaBits(f, value, 0, base, 0)).toBe(3 + 2 * 3);
  });

  test('a width past the widest slot, or a delta leaving the range, is corrupt', () => {
    const f = fields[0];
    const w = new BitWriter(8);
    w.writeExpGolomb(f.jointMax + 1, WIDTH_K);
    expect(() => readMultiDelta(new BitReader(w.bytes()), f, new Uint32Array(3), 0)).toThrow(SyncError);
    // zigzag 1 = -1 from a base of 0.
    const w2 = new BitWriter(8);
    w2.writeExpGolomb(0, WIDTH_K);
    w2.writeBits(1, 1);
    w2.writeBits(0, 1);
    let err: unknown;
    try {
      readMultiDelta(new BitReader(w2.bytes()), f, new Uint32Array(3), 0);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SyncError);
    expect((err as SyncError).code).toBe('corrupt');
    // An absolute quaternion component above its top code.
    const q = fields[2];
    const w3 = new BitWriter(8);
    w3.writeBit(0);
    w3.writeBits(3, 2);
    w3.writeBits(511, 9);
    w3.writeBits(0, 18);
    expect(() => readMultiDelta(new BitReader(w3.bytes()), q, new Uint32Array(4), 0)).toThrow(SyncError);
  });
});

describe('the budget bound on slot gaps', () => {
  test('m distinct slots below span never take more gap bits than gapBitsBound(m, span, k)', () => {
    const rand = rng(1919);
    const eg = (v: number, k: number) => 2 * Math.floor(Math.log2(v + 2 ** k)) - k + 1;
    for (let i = 0; i < 3000; i++) {
      const span = 1 + Math.floor(rand() * 5000);
      const m = 1 + Math.floor(rand() * Math.min(span, 400));
      const k = Math.floor(rand() * 4);
      // Clustered or spread slots, in ascending order.
      const slots = new Set<number>();
      const cluster = rand() < 0.5;
      const start = Math.floor(rand() * (span - m + 1));
      while (slots.size < m) slots.add(cluster ? start + slots.size : Math.floor(rand() * span));
      let prev = -1;
      let bits = 0;
      for (const s of [...slots].sort((a, b) => a - b)) {
        bits += eg(s - prev - 1, k);
        prev = s;
      }
      expect(bits).toBeLessThanOrEqual(gapBitsBound(m, span, k));
    }
  });
});

describe('moving bodies (the all-changed record form) under loss and latency', () => {
  test('every applied tick equals the server state of that tick, and a lossless drain converges', () => {
    const Pose = defineComponent({
      pos: t.vec3({ min: -64, max: 64, precision: 1 / 256 }),
      rot: t.quat({ bits: 9 }),
    });
    const poseSchema = defineSchema({ pose: Pose }, { maxEntities: 64 });
    const server = new SyncServer(poseSchema);
    const rand = rng(77);
    const ids: number[] = [];
    for (let i = 0; i < 24; i++) ids.push(server.spawn({ pose: { pos: { x: i, y: 0, z: -i } } }));
    const peers: Peer<typeof poseSchema.components>[] = [];
    for (let c = 0; c < 3; c++) {
      const key = `c${c}`;
      server.addClient(key);
      const link = { loss: 0.1, burstEnter: 0.02, burstExit: 0.5, maxDelay: 6 };
      peers.push({
        key,
        client: new SyncClient(poseSchema),
        down: new TickLink(rng(100 + c), link),
        up: new TickLink(rng(200 + c), link),
        exact: true,
        known: new Set(),
      });
    }
    server.addClient('all');
    const history = new Map<number, Map<number, unknown>>();
    let bytes = 0;
    for (let now = 0; now < 300; now++) {
      for (let i = 0; i < ids.length; i++) {
        // Most move on every axis and turn (all fields change); a quarter only slide (the general form).
        const a = now * 0.05 + i;
        const turning = i % 4 !== 0;
        server.set(ids[i], 'pose', {
          pos: { x: 20 * Math.sin(a), y: 2 + Math.sin(a * 3), z: 20 * Math.cos(a) + rand() * 0.01 },
          rot: turning
            ? { x: Math.sin(a) * 0.5, y: Math.cos(a * 1.3) * 0.5, z: 0.2, w: 1 }
            : { x: 0, y: 0, z: 0, w: 1 },
        });
      }
      const before = server.stats.bytes;
      step(server, peers, history, now, false);
      server.encodeFor('all');
      bytes += server.stats.bytes - before;
    }
    // The lossless drain converges every client exactly.
    for (let now = 300; now < 320; now++) step(server, peers, history, now, true);
    for (const p of peers) expect(p.client.state()).toEqual(server.quantisedStateFor(p.key));
    expect(bytes).toBeGreaterThan(0);
  });
});
