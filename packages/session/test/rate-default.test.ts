/**
 * `rateLimits.perSession` has a default (issue 11: security by default): generous enough for a 60 Hz game with
 * bundled datagrams, and a session that floods without any configuration is closed with 4429.
 */
import { ManualClock } from '@quiver/transport';
import { connectWebSocket, createWebSocketListener } from '@quiver/websocket';
import { describe, expect, it } from 'vitest';
import { CloseCode, connect, createSessionServer, defineMessage, RateLimitError } from '../src/index.js';
import { DEFAULT_SESSION_RATE, IncomingBudget } from '../src/limits.js';
import { cleanups, useCleanup } from './support/harness.js';

useCleanup();

const TICK_MS = 1000 / 60;

/** Charges `seconds` of a 60 Hz client sending one datagram of `bodies` bundled messages and `bytes` a tick. */
function play(budget: IncomingBudget, clock: ManualClock, seconds: number, bodies: number, bytes: number) {
  for (let t = 0; t < seconds * 60; t++) {
    clock.advance(TICK_MS);
    budget.charge(bytes, 1);
    budget.charge(0, bodies - 1);
  }
}

describe('default per-session rate limit', () => {
  it('lets a 60 Hz game with bundled datagrams through, and a 1 MiB message, but not a sustained excess', () => {
    const clock = new ManualClock(0);
    const budget = new IncomingBudget(clock, 4 << 20, DEFAULT_SESSION_RATE);
    // Four times the demo's 240 messages a second: 16 bundled messages a tick, 1200 bytes each datagram.
    play(budget, clock, 30, 16, 1200);
    // A message of maxMessageBytes arriving in 16 KiB chunks within one tick, on top of the game traffic.
    for (let sent = 0; sent < (1 << 20) + 64; sent += 16_384) budget.charge(16_384, 0);
    budget.charge(0, 1);
    clock.advance(1000);
    play(budget, clock, 30, 16, 1200);
    // 20 messages a tick (1200/s) is over the rate: the two seconds of burst run out within 2 / 0.2 = 10 s.
    expect(() => play(budget, clock, 12, 20, 1200)).toThrow(RateLimitError);
  });

  it('closes a session that floods a server configured without rate limits (4429), others are served', async () => {
    const Chat = defineMessage<string>('chat');
    const listener = await createWebSocketListener({ host: '127.0.0.1', port: 0 });
    // A clock that does not move: no refill, so the burst alone decides, whatever the machine's speed.
    const clock = new ManualClock(0);
    const server = createSessionServer({ listeners: [listener], messages: [Chat], clock });
    cleanups.push(async () => {
      await server.close();
      await listener.close();
    });
    let received = 0;
    server.on(Chat, (m, s) => {
      received++;
      if (m === 'ping') s.send(Chat, 'pong');
    });
    const url = `http://127.0.0.1:${listener.address.port}/q`;
    const flooder = await connect(url, { connector: connectWebSocket, reconnect: false });
    const burst = DEFAULT_SESSION_RATE.messagesPerSecond * DEFAULT_SESSION_RATE.burstSeconds;
    for (let i = 0; i < burst + 100; i++) flooder.send(Chat, 'x');
    const info = await flooder.closed;
    expect(info.code).toBe(CloseCode.RATE_LIMITED);
    expect(received).toBeLessThanOrEqual(burst);
    // Control frames of the session (its first probe) share the budget; application messages take nearly all of it.
    expect(received).toBeGreaterThan(burst - 10);
    expect(server.metrics.errors['rate-limit']).toBe(1);

    const good = await connect(url, { connector: connectWebSocket, reconnect: false });
    cleanups.push(() => good.close());
    const back = new Promise((r) => good.on(Chat, r));
    good.send(Chat, 'ping');
    expect(await back).toBe('pong');
  });
});
