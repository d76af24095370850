import {
  createMemoryPair,
  createRng,
  Link,
  ManualClock,
  type MemoryTransportOptions,
} from '@quiver/transport';
import { describe, expect, it } from 'vitest';

/** Lets every pending promise reaction run (WHATWG streams resolve reads and writes in microtasks). */
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

function inversions(order: number[]): number {
  let n = 0;
  for (let i = 1; i < order.length; i++) if (order[i] < order[i - 1]) n++;
  return n;
}

/** Datagram i (4-byte index) sent every `gapMs` from client to server; returns [index, arrival ms] in arrival order. */
async function datagramTrace(options: MemoryTransportOptions, count: number, gapMs: number) {
  const clock = new ManualClock();
  const { client, server } = createMemoryPair({ datagramReceiveQueue: count + 1, ...options, clock });
  const trace: [number, number][] = [];
  const reader = server.datagrams.readable.getReader();
  const reading = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      trace.push([new DataView(value.buffer, value.byteOffset).getUint32(0), clock.now()]);
    }
  })();
  const writer = client.datagrams.writable.getWriter();
  for (let i = 0; i < count; i++) {
    const d = new Uint8Array(8);
    new DataView(d.buffer).setUint32(0, i);
    await writer.write(d);
    clock.advance(gapMs);
    await flush();
  }
  // Deliver what is still in flight, one timer at a time so that arrival times are observed exactly.
  while (clock.runNext()) await flush();
  const stats = { client: await client.getStats(), server: await server.getStats() };
  writer.releaseLock();
  client.close();
  clock.runAll();
  await reading;
  expect(clock.pending).toBe(0);
  return { trace, stats };
}

describe('ManualClock and createRng', () => {
  it('fires timers in due order, with now() at their due time, and counts pending ones', () => {
    const clock = new ManualClock(100);
    const fired: [string, number][] = [];
    clock.setTimeout(() => fired.push(['b', clock.now()]), 20);
    clock.setTimeout(() => fired.push(['a', clock.now()]), 10);
    const c = clock.setTimeout(() => fired.push(['c', clock.now()]), 15);
    clock.setTimeout(() => fired.push(['b2', clock.now()]), 20);
    expect(clock.pending).toBe(4);
    clock.clearTimeout(c);
    expect(clock.advance(12)).toBe(1);
    expect(clock.now()).toBe(112);
    clock.setTimeout(() => clock.setTimeout(() => fired.push(['nested', clock.now()]), 1), 0);
    clock.runAll();
    expect(fired).toEqual([
      ['a', 110],
      ['nested', 113],
      ['b', 120],
      ['b2', 120],
    ]);
    expect(clock.pending).toBe(0);
  });

  it('guards runAll against self-rescheduling timers', () => {
    const clock = new ManualClock();
    const loop = () => clock.setTimeout(loop, 1);
    loop();
    expect(() => clock.runAll(100)).toThrow(/timer loop/);
  });

  it('repeats a sequence for a seed, differs across seeds, stays in [0, 1)', () => {
    const a = createRng(42);
    const b = createRng(42);
    const c = createRng(43);
    const sa = Array.from({ length: 1000 }, () => a.next());
    const sb = Array.from({ length: 1000 }, () => b.next());
    const sc = Array.from({ length: 1000 }, () => c.next());
    expect(sa).toEqual(sb);
    expect(sa).not.toEqual(sc);
    expect(sa.every((x) => x >= 0 && x < 1)).toBe(true);
    const mean = sa.reduce((s, x) => s + x, 0) / sa.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.05);
  });

  it('keeps its sequence when its methods are passed on alone (they do not use `this`)', () => {
    const random = createRng(42).next;
    const int = createRng(42).int;
    const a = createRng(42);
    const b = createRng(42);
    expect(Array.from({ length: 100 }, () => random())).toEqual(Array.from({ length: 100 }, () => a.next()));
    expect(Array.from({ length: 100 }, () => int(10))).toEqual(Array.from({ length: 100 }, () => b.int(10)));
  });
});

describe('link model', () => {
  const lossy = { link: { delayMs: 10, jitterMs: 6, lossRate: 0.1, reorderRate: 0.05 } };

  it('is deterministic under a ManualClock: same seed, same trace; other seed, other trace', async () => {
    const a = await datagramTrace({ ...lossy, seed: 1 }, 300, 1);
    const b = await datagramTrace({ ...lossy, seed: 1 }, 300, 1);
    const c = await datagramTrace({ ...lossy, seed: 2 }, 300, 1);
    expect(a.trace.length).toBeGreaterThan(200);
    expect(b.trace).toEqual(a.trace);
    expect(c.trace).not.toEqual(a.trace);
  });

  it('loses datagrams at the configured rate (N = 10 000, within 5 standard deviations) and counts each loss', async () => {
    const n = 10_000;
    const p = 0.2;
    const { trace, stats } = await datagramTrace({ seed: 99, link: { delayMs: 1, lossRate: p } }, n, 0.1);
    const lost = n - trace.length;
    const sd = Math.sqrt(n * p * (1 - p));
    expect(Math.abs(lost - n * p)).toBeLessThan(5 * sd);
    expect(stats.server.datagrams.droppedIncoming.lost).toBe(lost);
    expect(stats.server.datagrams.received).toBe(trace.length);
    expect(stats.client.datagrams.sent).toBe(n);
    expect(stats.client.packetsLost).toBe(lost);
    // No duplicates and nothing invented.
    expect(new Set(trace.map(([i]) => i)).size).toBe(trace.length);
  });

  it('reorders datagrams when jitter exceeds the gap between sends, and not without jitter', async () => {
    const jittery = await datagramTrace({ seed: 5, link: { delayMs: 10, jitterMs: 8 } }, 200, 1);
    const steady = await datagramTrace({ seed: 5, link: { delayMs: 10 } }, 200, 1);
    expect(inversions(jittery.trace.map(([i]) => i))).toBeGreaterThan(0);
    expect(inversions(steady.trace.map(([i]) => i))).toBe(0);
    expect(steady.trace.every(([i, at]) => at === i + 10)).toBe(true);
  });

  it('reorders held-back datagrams with reorderRate even without jitter', async () => {
    const { trace } = await datagramTrace(
      { seed: 5, link: { delayMs: 5, reorderRate: 0.2, reorderDelayMs: 4 } },
      200,
      1,
    );
    expect(trace.length).toBe(200);
    expect(inversions(trace.map(([i]) => i))).toBeGreaterThan(0);
  });

  it('spaces deliveries by the bandwidth cap', () => {
    const clock = new ManualClock();
    const arrivals: [number, number][] = [];
    const link = new Link<number>(clock, createRng(1), { delayMs: 5, bandwidthBytesPerSecond: 10_000 }, (f) =>
      arrivals.push([f, clock.now()]),
    );
    for (let i = 0; i < 10; i++) link.send(i, 1000, true);
    expect(link.backlogBytes()).toBe(10_000);
    clock.runAll();
    // 1000 bytes at 10 000 B/s take 100 ms each to serialize, then 5 ms of propagation.
    expect(arrivals).toEqual(Array.from({ length: 10 }, (_, i) => [i, (i + 1) * 100 + 5]));
    expect(clock.pending).toBe(0);
  });

  it('paces stream data by the bandwidth cap too', async () => {
    const clock = new ManualClock();
    const { client, server } = createMemoryPair({ clock, link: { bandwidthBytesPerSecond: 64 * 1024 } });
    const stream = await client.createBidirectionalStream();
    const writer = stream.writable.getWriter();
    void writer.write(new Uint8Array(128 * 1024));
    void writer.close();
    let received = 0;
    let endedAt = -1;
    const reading = (async () => {
      const incoming = (await server.incomingBidirectionalStreams.getReader().read()).value!;
      const reader = incoming.readable.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) {
          endedAt = clock.now();
          return;
        }
        received += value.byteLength;
      }
    })();
    for (let i = 0; i < 5000 && endedAt < 0; i++) {
      clock.advance(1);
      await flush();
    }
    await reading;
    expect(received).toBe(128 * 1024);
    // 128 KiB at 64 KiB/s: two simulated seconds, give or take the credit frames.
    expect(endedAt).toBeGreaterThanOrEqual(2000);
    expect(endedAt).toBeLessThan(2100);
    client.close();
    clock.runAll();
    expect(clock.pending).toBe(0);
  });

  it.each([
    ['loss only hits datagrams (default)', 0],
    ['lost stream frames are retransmitted (retransmitTimeoutMs)', 30],
  ])('keeps streams reliable and ordered under heavy loss and jitter: %s', async (_, retransmitTimeoutMs) => {
    const clock = new ManualClock();
    const { client, server } = createMemoryPair({
      clock,
      seed: 3,
      link: {
        delayMs: 10,
        jitterMs: 10,
        lossRate: 0.3,
        bandwidthBytesPerSecond: 50_000_000,
        retransmitTimeoutMs,
      },
    });
    const size = 1024 * 1024;
    const sent = new Uint8Array(size);
    const rng = createRng(11);
    for (let i = 0; i < size; i++) sent[i] = rng.int(256);
    const stream = await client.createUnidirectionalStream();
    const writer = stream.getWriter();
    const writing = (async () => {
      for (let o = 0; o < size; o += 10_000) await writer.write(sent.subarray(o, o + 10_000));
      await writer.close();
    })();
    const readingStream = server.incomingUnidirectionalStreams.getReader().read();
    let done = false;
    const chunks: Uint8Array[] = [];
    const reading = (async () => {
      const readable = (await readingStream).value!;
      const reader = readable.getReader();
      for (;;) {
        const r = await reader.read();
        if (r.done) break;
        chunks.push(r.value);
      }
      done = true;
    })();
    for (let i = 0; i < 100_000 && !done; i++) {
      clock.advance(1);
      await flush();
    }
    await writing;
    await reading;
    const received = new Uint8Array(size);
    let o = 0;
    for (const c of chunks) {
      received.set(c, o);
      o += c.byteLength;
    }
    expect(o).toBe(size);
    expect(Buffer.compare(received, sent)).toBe(0);
    const { packetsLost } = await client.getStats();
    if (retransmitTimeoutMs > 0) expect(packetsLost).toBeGreaterThan(0);
    else expect(packetsLost).toBe(0);
    client.close();
    clock.runAll();
    expect(clock.pending).toBe(0);
  });

  it('rejects invalid link options', () => {
    expect(() => createMemoryPair({ link: { lossRate: 1.5 } })).toThrow(RangeError);
    expect(() => createMemoryPair({ link: { lossRate: 1, retransmitTimeoutMs: 5 } })).toThrow(RangeError);
    expect(() => createMemoryPair({ link: { delayMs: -1 } })).toThrow(RangeError);
    expect(() => createMemoryPair({ link: { bandwidthBytesPerSecond: 0 } })).toThrow(RangeError);
  });
});
