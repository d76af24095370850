import { describe, expect, test } from 'vitest';
import {
  BitWriter,
  defineComponent,
  defineSchema,
  SyncClient,
  SyncError,
  SyncServer,
  t,
} from '../src/index.js';

/**
 * Hand-made hostile packets: every claim a packet makes (record counts, string lengths, slots, prediction baselines)
 * costs the client no more than the bytes it got, and a lie is a typed SyncError that leaves the state as it was.
 */

const schema = defineSchema(
  {
    c: defineComponent({
      p: t.vec2({ min: -10, max: 10, precision: 0.01 }),
      name: t.string({ maxBytes: 4095 }),
    }),
  },
  { maxEntities: 1 << 20 },
);
const COUNT_BITS = 21; // bitsFor(2^20)

/**
 * Header of a packet for `tick` against the client's ack `base` (0 = none) and second baseline `base2` (0 = none),
 * then `count` records.
 */
function header(tick: number, base: number, count: number, base2 = 0): BitWriter {
  const w = new BitWriter(64);
  w.writeBit(1); // full header
  w.writeBits(schema.hash, 32);
  w.writeBits(tick, 32);
  w.writeExpGolomb(base === 0 ? 0 : tick - base, 0);
  if (base > 0) w.writeExpGolomb(base2 === 0 ? 0 : base - base2, 0);
  w.writeBits(2, 2); // slot gaps in exp-Golomb order 2
  w.writeBits(count, COUNT_BITS);
  return w;
}

function expectRejected(client: SyncClient, bytes: Uint8Array, code: string): void {
  const before = client.state();
  const tick = client.tick;
  let err: unknown;
  try {
    client.receive(bytes);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(SyncError);
  expect((err as SyncError).code).toBe(code);
  expect(client.state()).toEqual(before);
  expect(client.tick).toBe(tick);
}

/** A client holding two entities, ticks 1 and 2 applied and acked: the baselines hostile packets refer to. */
function established() {
  const server = new SyncServer(schema, { budgetBytes: 8000, maxPacketBytes: 8000 });
  const client = new SyncClient(schema);
  server.addClient(1);
  const a = server.spawn({ c: { p: { x: 1, y: 1 }, name: 'a' } });
  const b = server.spawn({ c: { p: { x: 2, y: 2 }, name: 'b' } });
  for (let i = 0; i < 2; i++) {
    server.set(a, 'c', { p: { x: 1 + i, y: 1 } });
    server.tick();
    client.receive(server.encodeFor(1));
    server.receiveAck(1, client.createAck());
  }
  return { server, client, a, b };
}

describe('hostile packets', () => {
  test('a record count the packet cannot hold is a typed error, state unchanged', () => {
    const { client } = established();
    const w = header(3, 2, (1 << 20) - 1);
    expectRejected(client, w.bytes(), 'truncated');
  });

  test('a string longer than the rest of the packet is a typed error, state unchanged', () => {
    const { client } = established();
    const w = header(3, 0, 1);
    w.writeExpGolomb(5, 2); // slot 5
    w.writeBits(0b10, 2); // FULL
    w.writeExpGolomb(99, 8); // id
    w.writeBits(1, 1); // mask
    w.writeBits(0, 11); // p.x
    w.writeBits(0, 11); // p.y
    w.writeBits(4095, 12); // name length 4095, no bytes follow
    expectRejected(client, w.bytes(), 'truncated');
  });

  test('removals far past the known slots cost nothing: memory stays flat over 200 of them', () => {
    const { client } = established();
    const before = process.memoryUsage().arrayBuffers;
    for (let k = 0; k < 200; k++) {
      const w = header(3 + k, 2, 1);
      w.writeExpGolomb((1 << 20) - 1, 2); // the last slot: a view grown to it would be 2^20 x 5 x 4 bytes
      w.writeBits(0b11, 2); // REMOVE
      client.receive(w.bytes());
    }
    expect(client.size).toBe(2);
    // Each grown view would have cost 20 MB (and the window keeps 64): allow 4 MB of noise.
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(4 << 20);
  });

  test('prediction baselines: missing, before tick 1, or of another entity are typed errors', () => {
    const update = (b1Back: number, slot: number) => {
      const w = header(3, 2, 1);
      w.writeExpGolomb(slot, 2);
      w.writeBit(0); // UPDATE
      w.writeBit(0); // baseline = the packet's (tick 2)
      w.writeBit(1); // predicted
      w.writeExpGolomb(b1Back, 0); // b1 = 2 - 1 - b1Back
      w.writeBit(0); // general form
      w.writeBit(0); // mask unchanged
      w.writeBit(0); // component unchanged
      return w.bytes();
    };
    // b1 = 1: held, same entity: accepted (the extrapolation applies).
    expect(established().client.receive(update(0, 0))).toBe(true);
    // b1 = 0: no such tick.
    expectRejected(established().client, update(1, 0), 'corrupt');
    // b1 = -5.
    expectRejected(established().client, update(6, 1), 'corrupt');
    // A slot that is empty at the baseline.
    expectRejected(established().client, update(0, 7), 'corrupt');
  });

  test("the header's second baseline: past tick 1 is corrupt; one the client does not hold is baseline-missing", () => {
    const viaHeader = (base2: number) => {
      const w = header(3, 2, 1, base2);
      w.writeExpGolomb(0, 2);
      w.writeBit(0); // UPDATE
      w.writeBit(0); // baseline = the packet's (tick 2)
      w.writeBit(1); // predicted
      w.writeBit(0); // general form
      w.writeBit(0); // mask unchanged
      w.writeBit(0); // component unchanged
      return w.bytes();
    };
    expect(established().client.receive(viaHeader(1))).toBe(true);
    // Second baseline at distance 2 from tick 2: tick 0.
    const corrupt = new BitWriter(64);
    corrupt.writeBit(1);
    corrupt.writeBits(schema.hash, 32);
    corrupt.writeBits(3, 32);
    corrupt.writeExpGolomb(1, 0);
    corrupt.writeExpGolomb(2, 0);
    corrupt.writeBits(2, 2);
    corrupt.writeBits(0, COUNT_BITS);
    expectRejected(established().client, corrupt.bytes(), 'corrupt');
    // A client that never applied tick 1 (it joined at tick 2's packet) cannot predict from it.
    const server = new SyncServer(schema, { budgetBytes: 8000, maxPacketBytes: 8000 });
    const late = new SyncClient(schema);
    server.addClient(1);
    server.spawn({ c: { p: { x: 1, y: 1 } } });
    server.tick();
    server.encodeFor(1); // tick 1: lost
    server.tick();
    late.receive(server.encodeFor(1));
    expectRejected(late, viaHeader(1), 'baseline-missing');
  });

  test('a compact header (no schema hash) before any packet with the hash is corrupt; later its tick is exact', () => {
    const compact = (low: number) => {
      const w = new BitWriter(16);
      w.writeBit(0);
      w.writeBits(low, 16);
      w.writeExpGolomb(0, 0);
      w.writeBits(0, 2);
      w.writeBits(0, COUNT_BITS);
      return w.bytes();
    };
    expectRejected(new SyncClient(schema), compact(1), 'corrupt');
    const { client } = established();
    // Tick 2 applied: low bits 3 are tick 3; low bits 2 are tick 2 again (stale); 65535 is tick -1 (stale too).
    expect(client.receive(compact(2))).toBe(false);
    expect(client.receive(compact(65535))).toBe(false);
    expect(client.receive(compact(3))).toBe(true);
    expect(client.tick).toBe(3);
  });

  test('a prediction from a tick the client never held is baseline-missing', () => {
    const server = new SyncServer(schema, { budgetBytes: 8000, maxPacketBytes: 8000 });
    const client = new SyncClient(schema);
    server.addClient(1);
    server.spawn({ c: { p: { x: 1, y: 1 } } });
    for (let i = 0; i < 5; i++) {
      server.tick();
      const bytes = server.encodeFor(1);
      // Ticks 2 and 3 never arrive.
      if (i === 1 || i === 2) continue;
      client.receive(bytes);
    }
    const w = header(6, 5, 1);
    w.writeExpGolomb(0, 2);
    w.writeBit(0); // UPDATE
    w.writeBit(0);
    w.writeBit(1);
    w.writeExpGolomb(1, 0); // b1 = 3: never applied
    w.writeBit(0); // general form
    w.writeBit(0);
    w.writeBit(0);
    expectRejected(client, w.bytes(), 'baseline-missing');
  });
});
