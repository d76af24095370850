import { describe, expect, it } from 'vitest';
import {
  backoffDelay,
  ClockSync,
  createRng,
  DecodeError,
  FrameReader,
  MessageTooLargeError,
  parseBody,
  Reassembler,
  ReceiveTracker,
  RttEstimator,
  streamFrame,
  TokenBucket,
} from '../src/index.js';

describe('sans-IO pieces', () => {
  it('RTT smoothing follows RFC 6298', () => {
    const r = new RttEstimator();
    r.update(100);
    expect(r.srtt).toBe(100);
    expect(r.rttvar).toBe(50);
    r.update(200);
    expect(r.rttvar).toBe(0.75 * 50 + 0.25 * 100);
    expect(r.srtt).toBe(0.875 * 100 + 0.125 * 200);
  });

  it('clock sync uses the minimum-RTT sample', () => {
    const c = new ClockSync();
    c.add(0, 1050, 100); // rtt 100, offset 1000
    c.add(200, 1230, 220); // rtt 20, offset 1020
    c.add(300, 1500, 400); // rtt 100, offset 1150
    expect(c.offset).toBe(1020);
    expect(c.error).toBe(10);
  });

  it('backoff grows exponentially, is capped, and its jitter is seeded', () => {
    const a = createRng(42);
    const b = createRng(42);
    const da = [0, 1, 2, 3, 10].map((n) => backoffDelay(n, a, { initialMs: 100, maxMs: 1000, jitter: 0.5 }));
    const db = [0, 1, 2, 3, 10].map((n) => backoffDelay(n, b, { initialMs: 100, maxMs: 1000, jitter: 0.5 }));
    expect(da).toEqual(db);
    expect(da[0]).toBeGreaterThanOrEqual(50);
    expect(da[0]).toBeLessThanOrEqual(100);
    expect(da[3]).toBeGreaterThanOrEqual(400);
    expect(da[4]).toBeLessThanOrEqual(1000);
    expect(da[4]).toBeGreaterThanOrEqual(500);
  });

  it('token bucket refills at its rate', () => {
    const t = new TokenBucket(1000, 500, 0);
    expect(t.take(500, 0)).toBe(true);
    expect(t.take(1, 0)).toBe(false);
    expect(t.waitFor(100, 0)).toBe(100);
    expect(t.take(100, 100)).toBe(true);
  });

  it('frame reader splits, joins and refuses oversize frames before buffering them', () => {
    const chunks = [...streamFrame([7, 1, 1, 0], new Uint8Array([1, 2, 3])), ...streamFrame([5, []])];
    const all = Buffer.concat(chunks);
    const r = new FrameReader(1000);
    const out: Uint8Array[] = [];
    for (const byte of all) out.push(...r.push(new Uint8Array([byte])));
    expect(out.length).toBe(2);
    expect(parseBody(out[0]).header).toEqual([7, 1, 1, 0]);
    expect(Array.from(parseBody(out[0]).payload)).toEqual([1, 2, 3]);
    const small = new FrameReader(2);
    expect(() => small.push(all)).toThrow(MessageTooLargeError);
    expect(() => parseBody(new Uint8Array([0, 5, 1]))).toThrow(DecodeError);
  });

  it('reassembler is bounded and times out', () => {
    const drops: string[] = [];
    const r = new Reassembler({ timeoutMs: 100, maxBytes: 10, maxMessages: 1 }, (d) => drops.push(d));
    expect(r.add('a', 0, 2, new Uint8Array(4), 0)).toBeUndefined();
    expect(r.add('b', 0, 2, new Uint8Array(4), 0)).toBeUndefined(); // second partial message: over maxMessages
    expect(drops).toEqual(['reassembly-overflow']);
    expect(Array.from(r.add('a', 1, 2, new Uint8Array([9]), 50)!)).toEqual([0, 0, 0, 0, 9]);
    r.add('c', 0, 3, new Uint8Array(4), 60);
    r.expire(200);
    expect(drops).toEqual(['reassembly-overflow', 'reassembly-timeout']);
    expect(r.bufferedBytes).toBe(0);
  });

  it('receive tracker dedupes and keeps a cumulative ack', () => {
    const t = new ReceiveTracker();
    expect(t.accept(2)).toBe(true);
    expect(t.cum).toBe(0);
    expect(t.accept(1)).toBe(true);
    expect(t.cum).toBe(2);
    expect(t.accept(2)).toBe(false);
    expect(t.accept(1)).toBe(false);
  });
});
