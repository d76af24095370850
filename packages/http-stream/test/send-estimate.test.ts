/**
 * `datagrams.sendEstimate()` over the HTTP tunnel when acknowledgements lag: a proxy holds every POST (which carries
 * the client's acknowledgements) 150 ms, so sent bytes stay unacknowledged for a round trip and are freed in bursts.
 * That is not a send queue: the estimate must stay finite, else a session's freshness guard (`maxUnreliableAgeMs`)
 * would hold and drop every unreliable message on a slow client or uplink.
 */
import { type TestProxy, startTestProxy } from '@quiver/testkit';
import type { QuiverSession } from '@quiver/transport';
import { afterEach, expect, it } from 'vitest';
import { connectHttpStream, createHttpStreamListener } from '../src/index.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

it('stays finite while the peer acknowledges late and in bursts, and every datagram arrives', async () => {
  const listener = await createHttpStreamListener({ host: '127.0.0.1', port: 0 });
  cleanups.push(() => listener.close());
  const proxy: TestProxy = await startTestProxy({ target: listener.address, delayPostsMs: 150 });
  cleanups.push(() => proxy.close());
  const serverP = (async () => {
    const reader = listener.incomingSessions.getReader();
    const r = await reader.read();
    reader.releaseLock();
    if (r.done) throw new Error('no session');
    return r.value.accept() as QuiverSession;
  })();
  const client = connectHttpStream(`http://127.0.0.1:${proxy.address.port}/game`);
  cleanups.push(() => client.close());
  client.closed.catch(() => {});
  await client.ready;
  const server = await serverP;
  server.closed.catch(() => {});
  await server.ready;

  const total = 30;
  let received = 0;
  const reading = (async () => {
    const reader = client.datagrams.readable.getReader();
    while (received < total) {
      const r = await reader.read();
      if (r.done) return;
      received++;
    }
  })();
  const writer = server.datagrams.writable.getWriter();
  const delays: number[] = [];
  for (let i = 0; i < total; i++) {
    const e = server.datagrams.sendEstimate?.();
    if (!e) throw new Error('the HTTP transport gives no send estimate');
    delays.push(e.delayMs);
    await writer.write(new Uint8Array(200).fill(i));
    await new Promise((r) => setTimeout(r, 33));
  }
  await reading;
  expect(received).toBe(total);
  expect(proxy.stats.requests).toBeGreaterThan(1);
  // The first estimate comes before any drain was measured: a few bytes of framing waiting for this turn's flush
  // then have no known rate (the freshness guard holds such a message briefly and looks again).
  expect(delays.map((d, i) => [i, d]).filter(([i, d]) => i > 0 && !Number.isFinite(d))).toEqual([]);
});
