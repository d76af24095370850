/**
 * The session layer on @quiver/transport's memory transport: a seeded link model (delay, jitter, loss) under a
 * manual clock, so the whole run is deterministic. `retransmitTimeoutMs` makes the link lose stream and control
 * frames too (each loss costs that much delay and holds back what follows, as a QUIC retransmission would), so the
 * reliable channel is tested through real loss, not only the datagrams.
 */
import { connectMemory, createMemoryListener, ManualClock, type MemoryListener } from '@quiver/transport';
import { describe, expect, it } from 'vitest';
import { type ClientSession, connect, createSessionServer, defineMessage } from '../src/index.js';
import { runUntil, settle, useCleanup, cleanups } from './support/harness.js';

useCleanup();

const N = defineMessage<number>('n');
const Pos = defineMessage<number>('pos', { channel: 'unreliable' });

describe('on the memory transport with seeded loss', () => {
  it('delivers every reliable message once and in order through loss and a listener restart; datagrams are lost', async () => {
    const clock = new ManualClock(1_000_000);
    const name = `session-test-${Math.floor(Math.random() * 1e9)}`;
    // About an RFC 9002 probe timeout on this path (3 x one-way delay + jitter), as the link option suggests.
    const retransmitTimeoutMs = 64;
    const linkOptions = {
      clock,
      seed: 42,
      link: { delayMs: 20, jitterMs: 4, lossRate: 0.05, retransmitTimeoutMs },
    };
    let listener: MemoryListener = createMemoryListener({ name, ...linkOptions });
    const server = createSessionServer({ listeners: [listener], clock, messages: [N, Pos] });
    let client: ClientSession | undefined;
    const p = connect(`memory://${name}/q`, {
      connector: connectMemory,
      clock,
      reconnect: { initialMs: 50, maxMs: 500, seed: 9 },
    }).then((c) => {
      client = c;
    });
    await runUntil(clock, () => client !== undefined, 10_000);
    await p;
    const c = client!;
    cleanups.push(async () => {
      const done = Promise.all([c.close(), server.close()]);
      await runUntil(clock, () => c.state === 'closed' && server.sessions.size === 0, 5000);
      await done;
      const closing = listener.close();
      clock.runAll();
      await closing;
    });
    const atServer: number[] = [];
    const atClient: number[] = [];
    // Manual-clock time each message was sent and received: a lost stream frame shows as a delay of at least the
    // one-way delay plus the retransmission timeout (nothing else on this link delays a frame that long).
    const sentAt: number[] = [];
    const delayToServer: number[] = [];
    const delayToClient: number[] = [];
    let datagrams = 0;
    server.on(N, (n) => {
      atServer.push(n);
      delayToServer[n] = clock.now() - sentAt[n];
    });
    server.on(Pos, () => datagrams++);
    c.on(N, (n) => {
      atClient.push(n);
      delayToClient[n] = clock.now() - sentAt[n];
    });
    let unackedAtRestart = { client: 0, server: 0 };
    const opens: boolean[] = [];
    c.on('open', (i) => opens.push(i.recovered));
    const s = [...server.sessions.values()][0];
    for (let i = 0; i < 400; i++) {
      sentAt[i] = clock.now();
      c.send(N, i);
      s.send(N, i);
      c.send(Pos, i);
      if (i === 200) {
        // Sent on the wire (counted out) but not yet received by the other end: such messages are certainly not
        // acknowledged, so the replay buffers are non-empty and the restart must replay them.
        unackedAtRestart = {
          client: (c.stats.messagesOut.reliable ?? 0) - atServer.length,
          server: (s.stats.messagesOut.reliable ?? 0) - atClient.length,
        };
        // The listener's close waits for its links to drain, which takes (manual) time.
        let closed = false;
        listener.close().then(() => {
          closed = true;
        });
        await runUntil(clock, () => closed, 10_000);
        listener = createMemoryListener({ name, ...linkOptions });
        server.addListener(listener);
      }
      clock.advance(5);
      await settle(3);
    }
    await runUntil(clock, () => atServer.length >= 400 && atClient.length >= 400, 120_000, 5);
    expect(opens).toEqual([true]);
    expect(unackedAtRestart.client).toBeGreaterThan(0);
    expect(unackedAtRestart.server).toBeGreaterThan(0);
    expect(atServer).toEqual(Array.from({ length: 400 }, (_, i) => i));
    expect(atClient).toEqual(Array.from({ length: 400 }, (_, i) => i));
    // Stream frames were lost and resent on the live link in both directions (before the restart, whose replay
    // delays the messages around it for other reasons). Without stream loss no message here takes over 30 ms.
    const heldBack = (delays: number[]) =>
      delays.slice(0, 190).filter((d) => d >= 20 + retransmitTimeoutMs).length;
    expect(heldBack(delayToServer)).toBeGreaterThan(0);
    expect(heldBack(delayToClient)).toBeGreaterThan(0);
    // Datagrams are at-most-once: the lossy link and the restart cost some of them, and nothing resends them.
    expect(datagrams).toBeLessThan(400);
    expect(datagrams).toBeGreaterThan(250);
    // RTT over a 2 x 20 ms (+ jitter) path; the clock estimate's error bound is half the best RTT seen.
    expect(c.rtt).toBeGreaterThanOrEqual(40);
    expect(c.rtt).toBeLessThan(80);
    expect(c.clockError).toBeLessThanOrEqual(c.minRtt / 2);
    expect(Math.abs(c.serverTime() - clock.now())).toBeLessThanOrEqual(c.clockError);
  });
});
