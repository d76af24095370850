import { describe, expect, it } from 'vitest';
import {
  type Clock,
  type ClientSession,
  CloseCode,
  connect,
  createSessionServer,
  defineMessage,
  ManualClock,
} from '../src/index.js';
import { cleanups, run, runUntil, settle, useCleanup } from './support/harness.js';
import { createMemoryNetwork, type LinkOptions } from './support/memory.js';

useCleanup();

const Tick = defineMessage<number>('tick');

/** A server whose clock reads `offset` ms ahead of the client's, on the same timer queue. */
function offsetClock(base: ManualClock, offset: number): Clock {
  return {
    now: () => base.now() + offset,
    setTimeout: (fn, ms) => base.setTimeout(fn, ms),
    clearTimeout: (h) => base.clearTimeout(h),
  };
}

async function manualSetup(link: LinkOptions, offset = 4000, clientExtra = {}) {
  const clock = new ManualClock(1_000_000);
  const net = createMemoryNetwork({ ...link, clock });
  const listener = net.listen();
  const server = createSessionServer({
    listeners: [listener],
    clock: offsetClock(clock, offset),
    messages: [Tick],
  });
  let client: ClientSession | undefined;
  const p = connect('https://game.test/q', {
    connector: net.connect,
    clock,
    reconnect: { seed: 1 },
    ...clientExtra,
  }).then((c) => {
    client = c;
  });
  await runUntil(clock, () => client !== undefined);
  await p;
  cleanups.push(async () => {
    const closing = Promise.all([client!.close(), server.close()]);
    await run(clock, 200);
    await closing;
    await listener.close();
    clock.runAll();
  });
  return { clock, net, server, client: client!, listener };
}

describe('liveness and time', () => {
  it('measures RTT and estimates the server clock within rtt/2 (manual clock, 25 ms each way)', async () => {
    const { clock, client } = await manualSetup({ delayMs: 25, seed: 1 });
    await run(clock, 10_000, 5);
    expect(client.rtt).toBeCloseTo(50, 5);
    expect(client.minRtt).toBe(50);
    expect(client.jitter).toBeLessThan(5);
    expect(client.clockError).toBe(25);
    // Symmetric delay: the NTP estimate is exact.
    expect(client.serverTime() - clock.now()).toBe(4000);
  });

  it('estimates loss from unanswered heartbeat datagrams', async () => {
    // The estimator alone: the dead-path watch (whose extra probes and raced reconnects a 25 % loss provokes now and
    // then) is off.
    const { clock, client } = await manualSetup({ delayMs: 10, loss: 0.25, seed: 9 }, 4000, {
      heartbeat: { suspectAfterMs: 0 },
    });
    await run(clock, 60_000, 10);
    expect(client.stats.pings).toBe(21);
    // Each probe crosses the lossy link twice: P(lost) = 1 - 0.75^2 ≈ 0.44. The run is deterministic (manual clock,
    // seeded link): its EWMA (weight 0.1) over these 21 probes ends at 0.339; the band allows only rounding-level
    // drift, so an estimator that counted answered probes as lost, or lost ones twice, fails.
    expect(client.loss).toBeGreaterThan(0.33);
    expect(client.loss).toBeLessThan(0.35);
  });

  it('reports no loss on a reliable-only transport', async () => {
    const { clock, client } = await manualSetup({
      delayMs: 10,
      loss: 0.25,
      seed: 9,
      reliability: 'reliable-only',
    });
    await run(clock, 20_000, 10);
    expect(client.stats.pings).toBeGreaterThan(5);
    expect(client.loss).toBe(0);
    expect(client.rtt).toBeCloseTo(20, 5);
  });

  it('lengthens the heartbeat interval when idle', async () => {
    const { clock, client } = await manualSetup({ delayMs: 5, seed: 2 });
    await run(clock, 11_000, 10); // past idleAfterMs (10 s) with no messages
    const idleStart = client.stats.pings;
    await run(clock, 20_000, 10);
    const idlePings = client.stats.pings - idleStart;
    const activeStart = client.stats.pings;
    for (let t = 0; t < 20_000; t += 500) {
      client.send(Tick, t);
      await run(clock, 500, 10);
    }
    const activePings = client.stats.pings - activeStart;
    expect(idlePings).toBeLessThanOrEqual(5);
    expect(activePings).toBeGreaterThanOrEqual(15);
  });

  it('detects a dead path by heartbeat timeout and resumes on a new connection', async () => {
    // The heartbeat timeout alone: the dead-path watch, which would notice first, is off.
    const { clock, net, client, server } = await manualSetup({ delayMs: 5, seed: 4 }, 4000, {
      heartbeat: { suspectAfterMs: 0 },
    });
    const events: string[] = [];
    client.on('reconnecting', (i) => events.push(`reconnecting:${i.code}`));
    client.on('open', (i) => events.push(`open:${i.recovered}`));
    const first = [...net.sessions][0];
    first.blackhole();
    await runUntil(clock, () => events.includes('open:true'), 60_000, 10);
    expect(events[0]).toBe(`reconnecting:${CloseCode.HEARTBEAT_TIMEOUT}`);
    expect(client.state).toBe('open');
    expect(server.metrics.recoveries).toBe(1);
    await settle();
  });

  it('suspects a dead path within a few RTTs, races a reconnect and resumes long before the heartbeat timeout', async () => {
    const { clock, net, client, server } = await manualSetup({ delayMs: 5, seed: 4 });
    const events: string[] = [];
    client.on('reconnecting', (i) => events.push(`reconnecting:${i.code}`));
    client.on('open', (i) => events.push(`open:${i.recovered}`));
    // Traffic the server must acknowledge: a silent path is then noticed (an idle one needs a probe first).
    const first = [...net.sessions][0];
    const t0 = clock.now();
    first.blackhole();
    for (let i = 0; i < 100 && !events.includes('open:true'); i++) {
      client.send(Tick, i);
      await run(clock, 50, 10);
    }
    expect(events.slice(0, 2)).toEqual(['reconnecting:0', 'open:true']);
    // Logical time on the manual clock: two strikes of the 600 ms floor (probe, then suspicion), checks every 150 ms,
    // this loop's 50 ms steps and a handshake of a few 10 ms round trips: under 2 s, against the 15 s heartbeat timeout.
    expect(clock.now() - t0).toBeLessThan(2000);
    expect(client.state).toBe('open');
    expect(server.metrics.recoveries).toBe(1);
    await settle();
  });

  it('notices acknowledgements that stopped while the peer still answers, resumes, and loses or repeats nothing', async () => {
    const { clock, net, client, server } = await manualSetup({ delayMs: 5, seed: 4 });
    const events: string[] = [];
    client.on('reconnecting', (i) => events.push(`reconnecting:${i.code}`));
    let reopenedAt = Number.POSITIVE_INFINITY;
    client.on('open', (i) => {
      events.push(`open:${i.recovered}`);
      reopenedAt = Math.min(reopenedAt, clock.now());
    });
    const atServer: number[] = [];
    const atClient: number[] = [];
    server.on(Tick, (n) => atServer.push(n));
    client.on(Tick, (n) => atClient.push(n));
    const s = [...server.sessions.values()][0];
    const total = 60;
    let t0 = 0;
    for (let i = 0; i < total; i++) {
      if (i === 10) {
        // The streams stall for good while datagrams (the probes and their answers) flow: never silent.
        [...net.sessions][0].strandStreams();
        t0 = clock.now();
      }
      client.send(Tick, i);
      s.send(Tick, i);
      await run(clock, 50, 10);
    }
    await runUntil(clock, () => atServer.length >= total && atClient.length >= total, 30_000, 10);
    const all = Array.from({ length: total }, (_, i) => i);
    expect(atServer).toEqual(all);
    expect(atClient).toEqual(all);
    expect(events).toContain('open:true');
    expect(client.state).toBe('open');
    expect(server.metrics.recoveries).toBe(1);
    // Logical time: a threshold (600 ms) until the overdue data gets a probe, its answer, a threshold more, then
    // the resume; with the watch off (`suspectAfterMs: 0`) the stranded messages never arrive.
    expect(client.reconnects).toBe(1);
    expect(reopenedAt - t0).toBeLessThan(2500);
    await settle();
  });
});
