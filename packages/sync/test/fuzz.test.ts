import { describe, expect, test } from 'vitest';
import { defineComponent, defineSchema, SyncClient, SyncError, SyncServer, t } from '../src/index.js';
import { rng, schema } from './helpers.js';

type S = typeof schema.components;

/** A server and a client that have exchanged a few packets, plus the packets that got them there. */
function established(seed: number) {
  const rand = rng(seed);
  const server = new SyncServer(schema);
  server.addClient('c');
  const client = new SyncClient(schema);
  const ids: number[] = [];
  for (let i = 0; i < 30; i++)
    ids.push(
      server.spawn({
        transform: { pos: { x: rand() * 50, y: 0, z: rand() * 50 } },
        stats: { hp: i, name: `e${i}`, kind: 'c' },
      }),
    );
  const packets: Uint8Array[] = [];
  for (let k = 0; k < 5; k++) {
    for (const id of ids)
      if (rand() < 0.5) server.set(id, 'transform', { pos: { x: rand() * 50, y: 1, z: 2 } });
    if (k === 3) server.despawn(ids.pop()!);
    server.tick();
    const p = server.encodeFor('c');
    packets.push(p);
    client.receive(p);
    server.receiveAck('c', client.createAck());
  }
  // One more packet the client has not seen yet: a delta against the last acked baseline.
  for (const id of ids)
    if (rand() < 0.5) server.set(id, 'transform', { pos: { x: rand() * 50, y: 3, z: 4 } });
  server.spawn({ tag: { team: 2 }, stats: { name: 'new' } });
  server.tick();
  const next = server.encodeFor('c');
  return { rand, server, client, next, packets };
}

function snapshot(client: SyncClient<S>) {
  return { tick: client.tick, state: client.state(), ack: client.createAck() };
}

describe('decoder fuzzing: bad packets are rejected with a typed error and leave the state unchanged', () => {
  test('every truncation of a valid packet is rejected as truncated', () => {
    const { client, next } = established(1);
    const before = snapshot(client);
    for (let len = 0; len < next.length; len++) {
      const err = catchError(() => client.receive(next.subarray(0, len)));
      expect(err, `length ${len}`).toBeInstanceOf(SyncError);
      expect(['truncated', 'corrupt']).toContain((err as SyncError).code);
      expect(snapshot(client)).toEqual(before);
    }
    expect(client.stats.rejected.truncated).toBeGreaterThan(0);
    // The intact packet still applies afterwards.
    expect(client.receive(next)).toBe(true);
  });

  for (let seed = 1; seed <= 6; seed++) {
    test(`random bit flips, byte garbage and extensions (seed ${seed})`, () => {
      const { rand, next, packets, client: first } = established(seed);
      let client = first;
      const before = snapshot(client);
      let rejected = 0;
      let decoded = 0;
      for (let i = 0; i < 600; i++) {
        const bad = next.slice();
        const mode = i % 4;
        if (mode === 0) {
          // Flip 1..4 bits after the schema hash (flips in the hash are covered by schema-mismatch).
          const flips = 1 + Math.floor(rand() * 4);
          for (let f = 0; f < flips; f++) {
            const bit = 32 + Math.floor(rand() * (bad.length * 8 - 32));
            bad[bit >>> 3] ^= 0x80 >>> (bit & 7);
          }
        } else if (mode === 1) {
          for (let b = 8; b < bad.length; b++) if (rand() < 0.2) bad[b] = Math.floor(rand() * 256);
        } else if (mode === 2) {
          const extra = new Uint8Array(bad.length + 1 + Math.floor(rand() * 8));
          extra.set(bad);
          for (let b = bad.length; b < extra.length; b++) extra[b] = 1 + Math.floor(rand() * 255);
          const err = catchError(() => client.receive(extra));
          expect((err as SyncError).code).toBe('corrupt');
          expect(snapshot(client)).toEqual(before);
          rejected++;
          continue;
        } else {
          for (let b = 8; b < bad.length; b++) bad[b] = Math.floor(rand() * 256);
        }
        let threw: unknown;
        try {
          client.receive(bad);
        } catch (e) {
          threw = e;
        }
        if (threw !== undefined) {
          expect(threw).toBeInstanceOf(SyncError);
          expect(snapshot(client)).toEqual(before);
          rejected++;
        } else {
          // The mutation formed a valid packet and legitimately changed the state: rebuild the client.
          decoded++;
          client = new SyncClient(schema);
          for (const p of packets) client.receive(p);
          expect(snapshot(client)).toEqual(before);
        }
      }
      expect(rejected).toBeGreaterThan(400);
      expect(rejected + decoded).toBe(600);
    });
  }

  test('schema mismatch is a typed error, counted, state unchanged', () => {
    const { client } = established(2);
    const other = defineSchema({ x: defineComponent({ v: t.int({ min: 0, max: 9 }) }) });
    const s2 = new SyncServer(other);
    s2.addClient('c');
    s2.spawn({ x: { v: 3 } });
    s2.tick();
    const before = snapshot(client);
    const err = catchError(() => client.receive(s2.encodeFor('c')));
    expect((err as SyncError).code).toBe('schema-mismatch');
    expect(client.stats.rejected.schemaMismatch).toBe(1);
    expect(snapshot(client)).toEqual(before);
  });

  test('a delta against a baseline the client never had is rejected as baseline-missing', () => {
    const { next, packets } = established(3);
    // A client that got only the first packet (the full header, with the schema hash), not the baseline of `next`.
    const late = new SyncClient(schema);
    expect(late.receive(packets[0])).toBe(true);
    const size = late.size;
    const err = catchError(() => late.receive(next));
    expect((err as SyncError).code).toBe('baseline-missing');
    expect(late.stats.rejected.baselineMissing).toBe(1);
    expect(late.tick).toBe(1);
    expect(late.size).toBe(size);
    // A fresh client cannot even check the schema of `next` (no hash in a compact header): corrupt.
    expect((catchError(() => new SyncClient(schema).receive(next)) as SyncError).code).toBe('corrupt');
  });

  test('baselines older than the client window are rejected (window too small for the server)', () => {
    const server = new SyncServer(schema, { window: 32 });
    server.addClient('c');
    const client = new SyncClient(schema, { window: 4 });
    const id = server.spawn({ tag: { team: 1 } });
    server.tick();
    client.receive(server.encodeFor('c'));
    server.receiveAck('c', client.createAck());
    // Packets the server still bases on tick 1 (acks lost), while the client's window of 4 rolls on: ticks
    // 2..5 decode, and committing tick 5 evicts tick 1 from the client's ring.
    for (let i = 0; i < 6; i++) {
      server.set(id, 'tag', { team: i % 4 });
      server.tick();
      const p = server.encodeFor('c');
      if (i < 4) expect(client.receive(p)).toBe(true);
      else expect((catchError(() => client.receive(p)) as SyncError).code).toBe('baseline-missing');
    }
  });

  test('duplicated and reordered packets are dropped as stale, counted, not errors', () => {
    const { client, packets } = established(4);
    const before = snapshot(client);
    expect(client.receive(packets[1])).toBe(false);
    expect(client.receive(packets[4])).toBe(false);
    expect(client.stats.stale).toBe(2);
    expect(snapshot(client)).toEqual(before);
  });
});

describe('acks: bad acks are rejected with a typed error and change nothing', () => {
  /** The 4-byte ack: newest tick modulo 2^16, then a valid bit and 15 bits of history (codec.ts). */
  function ack(newest: number, mask = 0, valid = newest !== 0): Uint8Array {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint16(0, newest & 0xffff);
    new DataView(b.buffer).setUint16(2, (valid ? 0x8000 : 0) | (mask & 0x7fff));
    return b;
  }

  test('malformed, unknown, future, out-of-window acks and unknown clients', () => {
    const server = new SyncServer(schema, { window: 8 });
    server.addClient('c');
    server.spawn({ tag: { team: 1 } });
    for (let i = 0; i < 20; i++) {
      server.tick();
      if (i !== 15) server.encodeFor('c');
    }
    const codes = (b: Uint8Array, key: string | number = 'c') =>
      (catchError(() => server.receiveAck(key, b)) as SyncError).code;
    expect(codes(new Uint8Array(3))).toBe('corrupt');
    expect(codes(new Uint8Array(8))).toBe('corrupt');
    expect(codes(ack(0, 1, false))).toBe('corrupt');
    expect(codes(ack(7, 0, false))).toBe('corrupt');
    // Tick 21 modulo 2^16 is, at server tick 20, tick 21 - 65536: never sent.
    expect(codes(ack(21))).toBe('unknown-snapshot');
    expect(codes(ack(16))).toBe('unknown-snapshot');
    expect(codes(ack(18, 0b10))).toBe('unknown-snapshot');
    expect(codes(ack(5))).toBe('out-of-window');
    expect(codes(ack(20), 'nobody')).toBe('unknown-client');
    expect(server.stats.acksRejected).toEqual({
      corrupt: 4,
      unknownSnapshot: 3,
      outOfWindow: 1,
      unknownClient: 1,
    });
    expect(server.stats.acks).toBe(0);
    // None of the rejected acks made tick 18 a baseline: the next packet is still a full snapshot.
    server.tick();
    const client = new SyncClient(schema, { window: 8 });
    expect(client.receive(server.encodeFor('c'))).toBe(true);
    expect(server.stats.fullPackets).toBe(20);
    // A good ack (with bits for ticks before the window ignored) is accepted.
    server.receiveAck('c', ack(20, 0x7fff & ~(1 << 3)));
    expect(server.stats.acks).toBe(1);
  });
});

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}
