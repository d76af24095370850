import { describe, expect, it } from 'vitest';
import { CloseDelivery } from '../src/core/close-delivery.js';

// The connection-level behaviour (which inputs settle which close) is in core-connection.test.ts; these cases
// pin the bookkeeping itself: what is counted, and the bound that keeps a silent peer from growing it.
describe('CloseDelivery (draft §6: an ended session is closed once the peer has the close)', () => {
  it('counts each sent close until it is settled, and only by its own stream', () => {
    const c = new CloseDelivery(4);
    expect(c.inFlight).toBe(0);
    c.sent(0);
    c.sent(8);
    expect(c.inFlight).toBe(2);
    c.settled(4); // a stream with no close in flight: nothing changes
    expect(c.inFlight).toBe(2);
    c.settled(8);
    expect(c.inFlight).toBe(1);
    c.settled(8); // settling twice is harmless
    expect(c.inFlight).toBe(1);
    c.settled(0);
    expect(c.inFlight).toBe(0);
    expect(c.forgotten).toBe(0);
  });

  it('the same stream sent twice is one close in flight', () => {
    const c = new CloseDelivery(4);
    c.sent(12);
    c.sent(12);
    expect(c.inFlight).toBe(1);
    c.settled(12);
    expect(c.inFlight).toBe(0);
  });

  it('over the limit the oldest close is let go and counted, never the newest', () => {
    const c = new CloseDelivery(2);
    c.sent(0);
    c.sent(4);
    c.sent(8);
    expect(c.inFlight).toBe(2);
    expect(c.forgotten).toBe(1);
    // 0 was the oldest: settling it is a no-op; 4 and 8 are still waited for.
    c.settled(0);
    expect(c.inFlight).toBe(2);
    c.settled(4);
    c.settled(8);
    expect(c.inFlight).toBe(0);
    // A long run against a peer that never answers stays within the limit; every drop is counted.
    for (let id = 100; id < 100 + 4 * 50; id += 4) c.sent(id);
    expect(c.inFlight).toBe(2);
    expect(c.forgotten).toBe(1 + 48);
  });

  it('a limit of 0 waits for nothing and counts every close as forgotten', () => {
    const c = new CloseDelivery(0);
    c.sent(0);
    expect(c.inFlight).toBe(0);
    expect(c.forgotten).toBe(1);
  });
});
