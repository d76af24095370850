import { describe, expect, it } from 'vitest';
import {
  decodeInputPacket,
  defineInputCodec,
  encodeInputPacket,
  InputReceiver,
  InputSender,
  PredictError,
  quantize,
} from '../src/index.js';

const codec = defineInputCodec({ mx: 'i8', mz: 'i8', yaw: 'f32', fire: 'bool', buttons: 'u16' });
const neutral = { mx: 0, mz: 0, yaw: 0, fire: false, buttons: 0 };

describe('input codec', () => {
  it('packs inputs in a few bytes and quantizes like the wire', () => {
    expect(codec.size).toBe(9);
    const q = quantize(codec, { mx: 300, mz: -12.6, yaw: 0.1, fire: true, buttons: 70000 });
    expect(q).toEqual({ mx: 127, mz: -13, yaw: Math.fround(0.1), fire: true, buttons: 65535 });
    const bytes = encodeInputPacket(codec, [
      { seq: 7, input: q },
      { seq: 8, input: neutral },
    ]);
    expect(bytes.byteLength).toBe(5 + 2 * 9);
    expect(decodeInputPacket(codec, bytes)).toEqual([
      { seq: 7, input: q },
      { seq: 8, input: neutral },
    ]);
    expect(() => encodeInputPacket(codec, [])).toThrow(RangeError);
    expect(() =>
      encodeInputPacket(codec, [
        { seq: 1, input: neutral },
        { seq: 3, input: neutral },
      ]),
    ).toThrow(RangeError);
  });

  it('rejects malformed packets with a typed error', () => {
    const good = encodeInputPacket(codec, [{ seq: 1, input: neutral }]);
    const cases: [Uint8Array, string][] = [
      [good.slice(0, 3), 'truncated'],
      [good.slice(0, good.length - 1), 'truncated'],
      [new Uint8Array([...good, 0]), 'corrupt'],
      [new Uint8Array([1, 0, 0, 0, 0]), 'corrupt'],
      [new Uint8Array([0xff, 0xff, 0xff, 0xff, 2, ...new Array(18).fill(0)]), 'corrupt'],
    ];
    for (const [bytes, code] of cases) {
      try {
        decodeInputPacket(codec, bytes);
        expect.unreachable();
      } catch (err) {
        expect(err).toBeInstanceOf(PredictError);
        expect((err as PredictError).code).toBe(code);
      }
    }
  });
});

describe('redundant input delivery', () => {
  it('loses nothing when packets are lost, as long as fewer than `redundancy` in a row', () => {
    const sender = new InputSender(codec, { redundancy: 4 });
    const receiver = new InputReceiver(codec, neutral);
    const applied: number[] = [];
    for (let i = 0; i < 100; i++) {
      sender.capture({ ...neutral, buttons: i });
      const packet = sender.packet()!;
      // Lose 3 of every 4 packets.
      if (i % 4 !== 3) continue;
      for (const r of receiver.receive(packet)) {
        expect(r.filled).toBe(false);
        applied.push(r.input.buttons);
      }
      sender.ack(receiver.lastSeq);
    }
    expect(applied).toEqual([...Array(100).keys()]);
    expect(receiver.stats).toMatchObject({ applied: 100, filled: 0, rejected: 0 });
  });

  it('fills inputs lost for good, counts late and duplicate copies, and rejects bad packets', () => {
    const sender = new InputSender(codec, { redundancy: 2 });
    const receiver = new InputReceiver(codec, neutral, { maxGap: 10 });
    const packets: Uint8Array[] = [];
    for (let i = 0; i < 6; i++) {
      sender.capture({ ...neutral, buttons: i + 1 });
      packets.push(sender.packet()!);
    }
    expect(receiver.receive(packets[0]).map((r) => r.input.buttons)).toEqual([1]);
    // Packets 1..3 lost; packet 4 carries seqs 3 and 4: seqs 1 and 2 are gone and filled with the last input.
    const r = receiver.receive(packets[4]);
    expect(r.map((x) => [x.seq, x.filled, x.input.buttons])).toEqual([
      [1, true, 1],
      [2, true, 1],
      [3, false, 4],
      [4, false, 5],
    ]);
    // Packet 2 shows up late (seqs 1, 2): counted as late, not applied twice.
    expect(receiver.receive(packets[2])).toEqual([]);
    expect(receiver.stats.late).toBe(2);
    expect(receiver.receive(packets[5]).map((x) => x.seq)).toEqual([5]);
    expect(receiver.stats.duplicates).toBe(1);
    expect(receiver.lastSeq).toBe(5);
    // Malformed packets are rejected without touching the state.
    expect(() => receiver.receive(new Uint8Array(2))).toThrow(PredictError);
    expect(receiver.stats.rejected).toBe(1);
    expect(receiver.lastSeq).toBe(5);
    sender.ack(5);
    expect(sender.packet()).toBeUndefined();
    // After an outage longer than maxGap the receiver resynchronizes instead of inventing 94 inputs.
    const far = encodeInputPacket(codec, [{ seq: 100, input: { ...neutral, buttons: 9 } }]);
    expect(receiver.receive(far).map((x) => [x.seq, x.filled, x.input.buttons])).toEqual([[100, false, 9]]);
    expect(receiver.stats.skipped).toBe(94);
    expect(receiver.stats.filled).toBe(2);
    expect(receiver.lastSeq).toBe(100);
  });
});

describe('hostile input packets', () => {
  it('cost bounded work whatever the bytes: a typed error or at most maxGap + maxInputsPerPacket inputs', () => {
    const receiver = new InputReceiver(codec, neutral, { maxInputsPerPacket: 16, maxGap: 32 });
    // A seeded xorshift: the same hostile stream every run.
    let x = 0x9e3779b9;
    const next = () => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return x >>> 0;
    };
    let rejected = 0;
    for (let n = 0; n < 20_000; n++) {
      // Half the packets are well-formed headers with hostile counts and seqs, half random bytes.
      const count = next() % 3 === 0 ? next() & 0xff : 1 + (next() % 16);
      const len = next() % 2 === 0 ? 5 + count * codec.size : next() % 400;
      const bytes = new Uint8Array(len);
      for (let i = 0; i < len; i++) bytes[i] = next() & 0xff;
      if (len >= 5) {
        new DataView(bytes.buffer).setUint32(
          0,
          next() % 4 === 0 ? next() : receiver.lastSeq + (next() % 64),
          true,
        );
        bytes[4] = count;
      }
      let out: unknown[] = [];
      try {
        out = receiver.receive(bytes);
      } catch (err) {
        expect(err).toBeInstanceOf(PredictError);
        rejected++;
      }
      expect(out.length).toBeLessThanOrEqual(32 + 16);
    }
    expect(receiver.stats.rejected).toBe(rejected);
    expect(rejected).toBeGreaterThan(0);
    expect(receiver.stats.packets).toBeGreaterThan(0);
  });

  it('refuses codecs of zero bytes per input, which would decode unbounded inputs from a 5-byte header', () => {
    expect(() => defineInputCodec({})).toThrow(TypeError);
    const empty = { size: 0, write() {}, read: () => ({}) };
    expect(() => decodeInputPacket(empty, new Uint8Array([0, 0, 0, 0, 255]))).toThrow(RangeError);
    expect(() => new InputReceiver(empty, {})).toThrow(RangeError);
  });
});
