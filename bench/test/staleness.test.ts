import { describe, expect, test } from 'vitest';
import { stalenessSamples } from '../lib/staleness.ts';

describe('state staleness on a grid', () => {
  // Updates every 10 ms from t = 0, each taking 5 ms to arrive.
  const stream = (lost: number[] = [], extra: Record<number, number> = {}) => {
    const a: number[] = [];
    for (let s = 0; s <= 100; s += 10) if (!lost.includes(s)) a.push(s + 5 + (extra[s] ?? 0), s);
    return a;
  };

  test('on a clean stream the age cycles between the delay and delay + interval', () => {
    const s = stalenessSamples(stream(), { from: 5, to: 104, streamStart: 0 });
    expect(s).toHaveLength(100);
    expect(Math.min(...s)).toBe(5);
    expect(Math.max(...s)).toBe(14);
  });

  test('a lost update leaves the previous one in place for another interval', () => {
    const s = stalenessSamples(stream([50]), { from: 5, to: 104, streamStart: 0 });
    // At t = 64 the newest held is still the update sent at 40.
    expect(s[64 - 5]).toBe(24);
    expect(Math.max(...s)).toBe(24);
  });

  test('a stalled (retransmitted) update holds back the age until it arrives, and a late old one does not help', () => {
    // The update sent at 50 arrives 30 ms late; a reliable ordered stream holds 60 and 70 behind it.
    const hol = stream([], { 50: 30, 60: 20, 70: 10 });
    const s = stalenessSamples(hol, { from: 5, to: 104, streamStart: 0 });
    expect(s[84 - 5]).toBe(44); // at 84 the newest held is still the one sent at 40
    expect(s[85 - 5]).toBe(5); // at 85 the ones sent at 50, 60, 70 and 80 arrive at once: 80 is the newest
    // Reordered datagrams: an older update arriving after a newer one leaves the age as it was.
    const reordered = [15, 10, 25, 20, 26, 0];
    expect(stalenessSamples(reordered, { from: 25, to: 27, streamStart: 0 })).toEqual([5, 6, 7]);
  });

  test('before anything arrives the age counts from the start of the stream', () => {
    expect(stalenessSamples([], { from: 10, to: 12, streamStart: 0 })).toEqual([10, 11, 12]);
  });
});
