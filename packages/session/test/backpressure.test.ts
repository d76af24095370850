import { describe, expect, it } from 'vitest';
import {
  createSessionServer,
  defineMessage,
  type DropReason,
  QueueFullError,
  type SessionServerOptions,
} from '../src/index.js';
import { cleanups, settle, setup, until, useCleanup } from './support/harness.js';
import { connectMemory, createMemoryListener } from '@quiver/transport';
import { rawClient } from './support/raw.js';

useCleanup();

const State = defineMessage<{ key: number; blob: Uint8Array }>('state', { channel: 'state' });
const Pos = defineMessage<number[]>('pos', { channel: 'unreliable' });

/**
 * A server on the memory transport with one raw client that completes the handshake and then never reads: the
 * stalled peer every test here pushes against.
 */
async function stalledSession(
  name: string,
  highWaterMark: number,
  options: Omit<SessionServerOptions, 'listeners'>,
) {
  const listener = createMemoryListener({ name: `${name}-${process.pid}`, highWaterMark });
  const server = createSessionServer({ listeners: [listener], ...options });
  cleanups.push(async () => {
    await server.close();
    await listener.close();
  });
  const raw = await rawClient(connectMemory, `${listener.url}/q`);
  await raw.hello();
  await until(() => server.sessions.size === 1);
  return { server, raw, s: [...server.sessions.values()][0] };
}

describe('backpressure', () => {
  it('a client that never reads holds the server to its memory budget; coalesced and dropped sends are counted', async () => {
    const maxInFlightBytes = 64 * 1024;
    const maxQueuedBytes = 32 * 1024;
    const drops: DropReason[] = [];
    const { server, raw, s } = await stalledSession('stall-a', 16 * 1024, {
      channels: { state: { overflow: 'coalesce', maxQueuedBytes } },
      maxInFlightBytes,
      onDrop: (r) => drops.push(r),
    });
    let maxSeen = 0;
    const blob = new Uint8Array(200);
    for (let i = 0; i < 20_000; i++) {
      s.send(State, { key: i % 50, blob }, { key: i % 50 });
      s.send(Pos, [i, i]);
      maxSeen = Math.max(maxSeen, s.bufferedBytes);
      if (i % 200 === 0) await settle();
    }
    await settle(20);
    expect(maxSeen).toBeLessThanOrEqual(maxInFlightBytes + maxQueuedBytes);
    expect(s.bufferedBytes).toBeLessThanOrEqual(maxInFlightBytes + maxQueuedBytes);
    // Sending went on the whole time; what could not be kept was coalesced (same key) or dropped, all counted.
    expect(server.metrics.drops.coalesced).toBeGreaterThan(10_000);
    expect(drops.filter((d) => d === 'coalesced').length).toBe(server.metrics.drops.coalesced);
    expect(s.state).toBe('open');
    raw.session.close();
  });

  it('by default a server never loses reliable messages silently: a full queue refuses the send, typed and counted', async () => {
    const drops: [DropReason, string | undefined, string | undefined][] = [];
    const errors: Error[] = [];
    // No `overflow` given: the default policy of a reliable channel on the server is under test.
    const { server, raw, s } = await stalledSession('stall-c', 8 * 1024, {
      channels: { state: { maxQueuedBytes: 16 * 1024 } },
      maxInFlightBytes: 16 * 1024,
      onDrop: (r, info) => drops.push([r, info.message, info.channel]),
      onError: (e) => errors.push(e),
    });
    const blob = new Uint8Array(500);
    let accepted = 0;
    const refused: unknown[] = [];
    for (let i = 0; i < 2000; i++) {
      try {
        s.send(State, { key: i, blob });
        accepted++;
      } catch (err) {
        refused.push(err);
      }
      if (i % 100 === 0) await settle();
    }
    expect(accepted).toBeGreaterThan(0);
    expect(refused.length).toBe(2000 - accepted);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.every((e) => e instanceof QueueFullError)).toBe(true);
    // Every refusal counted and reported; nothing accepted was dropped behind the sender's back.
    expect(server.metrics.drops['queue-full']).toBe(refused.length);
    expect(drops).toEqual(refused.map(() => ['queue-full', 'state', 'state']));
    expect(server.metrics.drops.coalesced ?? 0).toBe(0);
    expect(s.bufferedBytes).toBeLessThanOrEqual(32 * 1024);
    // Refusing a send is the caller's business, not a session error: the session stays open.
    expect(s.state).toBe('open');
    expect(errors).toEqual([]);
    raw.session.close();
  });

  it('drop-oldest keeps a stalled session within its queue bound', async () => {
    const { server, raw, s } = await stalledSession('stall-b', 8 * 1024, {
      channels: { state: { overflow: 'drop-oldest', maxQueuedBytes: 16 * 1024 } },
      maxInFlightBytes: 16 * 1024,
    });
    const blob = new Uint8Array(500);
    for (let i = 0; i < 5000; i++) {
      s.send(State, { key: i, blob }, { key: i });
      if (i % 100 === 0) await settle();
    }
    expect(s.bufferedBytes).toBeLessThanOrEqual(32 * 1024);
    expect(server.metrics.drops['queue-full']).toBeGreaterThan(4000);
    raw.session.close();
  });

  it('unreliable sends over the send budget are dropped, not queued, and reported to onDrop', async () => {
    const drops: [DropReason, string | undefined][] = [];
    const { server, client } = await setup(
      {
        messages: [Pos],
        sendBudget: { bytesPerSecond: 20_000, burstBytes: 2000 },
        onDrop: (r, info) => drops.push([r, info.message]),
      },
      {},
    );
    const s = [...server.sessions.values()][0];
    let got = 0;
    client.on(Pos, () => got++);
    let accepted = 0;
    // 50 datagrams (fewer than the transport queue holds) of ~200 bytes against a 2000-byte burst.
    for (let i = 0; i < 50; i++) if (s.send(Pos, new Array(100).fill(i))) accepted++;
    expect(accepted).toBeGreaterThan(0);
    expect(accepted).toBeLessThan(50);
    expect(server.metrics.drops.budget).toBe(50 - accepted);
    expect(drops.every(([r, m]) => r === 'budget' && m === 'pos')).toBe(true);
    expect(s.bufferedBytes).toBe(0);
    await until(() => got === accepted);
  });

  it('reliable sends over the send budget wait and are all delivered', async () => {
    const Chat = defineMessage<string>('chat');
    const { server, client } = await setup({
      messages: [Chat],
      sendBudget: { bytesPerSecond: 50_000, burstBytes: 1000 },
    });
    const s = [...server.sessions.values()][0];
    const got: string[] = [];
    client.on(Chat, (m) => got.push(m));
    for (let i = 0; i < 100; i++) s.send(Chat, `message ${i} ${'x'.repeat(100)}`);
    expect(s.bufferedBytes).toBeGreaterThan(0);
    await s.drained();
    expect(s.bufferedBytes).toBe(0);
    await until(() => got.length === 100);
    expect(got[99].startsWith('message 99')).toBe(true);
  });

  it('unreliable sends while the transport datagram queue is full are dropped as congestion', async () => {
    const { server, client } = await setup({ messages: [Pos] }, {}, { helper: true });
    const s = [...server.sessions.values()][0];
    // Small sends of one turn share datagrams (BUNDLE), so each of these is made to need a datagram of its own.
    const filler = Array.from({ length: 600 }, () => 1);
    for (let i = 0; i < 500; i++) s.send(Pos, [i, ...filler]);
    expect(server.metrics.drops.congestion).toBeGreaterThan(0);
    await settle(10);
    expect(client.stats.messagesIn.unreliable).toBe(500 - server.metrics.drops.congestion!);
  });
});
