/** The freshness guard, sans-IO: a manual clock and a send estimate set by hand. */
import type { DatagramSendEstimate } from '@quiver/transport';
import { describe, expect, it } from 'vitest';
import { type ChannelState, channelFromOptions, type OutMsg } from '../src/channels.js';
import { ManualClock } from '../src/clock.js';
import { FreshnessGuard } from '../src/freshness.js';

function setup(estimate: DatagramSendEstimate) {
  const clock = new ManualClock();
  const sent: number[] = [];
  const drops: string[] = [];
  let pending = 0;
  const guard = new FreshnessGuard(
    {
      clock,
      estimate: () => estimate,
      pendingBytes: () => pending,
      send: (_ch, msg) => {
        sent.push(msg.payload.length);
        return true;
      },
      drop: (reason) => drops.push(reason),
      connected: () => true,
    },
    100,
    1 << 20,
  );
  const ch: ChannelState = channelFromOptions('state', 1, { mode: 'unreliable' }, 'drop-oldest');
  const msg = (bytes: number): OutMsg => ({
    name: 'm',
    flags: 0,
    payload: new Uint8Array(bytes),
    key: undefined,
    size: bytes,
    seq: 0,
  });
  return { clock, guard, ch, msg, sent, drops, setPending: (b: number) => (pending = b) };
}

describe('FreshnessGuard', () => {
  it('sends a message alone behind an empty queue whatever rate was measured before; holds one behind a queue', () => {
    // A rate measured low once (100 B/s): 1000 bytes would take 10 s at it.
    const t = setup({ queuedBytes: 0, sendRate: 100, networkQueueMs: 0, delayMs: 0 });
    expect(t.guard.offer(t.ch, t.msg(1000))).toBeUndefined();
    // Behind bytes of the same turn the rate applies: held.
    t.setPending(500);
    expect(t.guard.offer(t.ch, t.msg(1000))).toBe(true);
    expect(t.guard.size).toBe(1);
  });

  it('holds and then drops as stale a message behind a queue that would make it late', () => {
    const t = setup({ queuedBytes: 2000, sendRate: 10_000, networkQueueMs: 0, delayMs: 200 });
    expect(t.guard.offer(t.ch, t.msg(100))).toBe(true);
    t.clock.advance(150);
    expect(t.drops).toEqual(['stale']);
    expect(t.sent).toEqual([]);
  });

  it('checks every holding guard of a clock from one timer, and lets it go once nothing is held', () => {
    const clock = new ManualClock();
    const estimate = { queuedBytes: 2000, sendRate: 10_000, networkQueueMs: 0, delayMs: 200 };
    const drops: string[] = [];
    const guards = Array.from(
      { length: 50 },
      () =>
        new FreshnessGuard(
          {
            clock,
            estimate: () => estimate,
            pendingBytes: () => 0,
            send: () => true,
            drop: (reason) => drops.push(reason),
            connected: () => true,
          },
          100,
          1 << 20,
        ),
    );
    const ch: ChannelState = channelFromOptions('state', 1, { mode: 'unreliable' }, 'drop-oldest');
    const msg: OutMsg = {
      name: 'm',
      flags: 0,
      payload: new Uint8Array(10),
      key: undefined,
      size: 10,
      seq: 0,
    };
    for (const g of guards) expect(g.offer(ch, msg)).toBe(true);
    // 50 sessions holding: one timer, not 50.
    expect(clock.pending).toBe(1);
    clock.advance(150);
    expect(drops).toHaveLength(50);
    expect(guards.every((g) => g.size === 0)).toBe(true);
    expect(clock.pending).toBe(0);
  });

  it('holds a message alone behind an empty queue when the network queue alone makes it late', () => {
    const t = setup({ queuedBytes: 0, sendRate: 100, networkQueueMs: 300, delayMs: 300 });
    expect(t.guard.offer(t.ch, t.msg(10))).toBe(true);
  });
});
