import { describe, expect, it } from 'vitest';
import { defineMessage, MessageTooLargeError } from '../src/index.js';
import { settle, setup, until, useCleanup } from './support/harness.js';

useCleanup();

const N = defineMessage<number>('n');

describe('channels', () => {
  it('reliable-unordered delivers every message exactly once', async () => {
    const { server, client } = await setup(
      { messages: [N], channels: { bulk: { mode: 'reliable-unordered' } } },
      { channels: { bulk: { mode: 'reliable-unordered' } } },
    );
    const seen: number[] = [];
    server.on(N, (n) => seen.push(n));
    for (let i = 0; i < 300; i++) client.send(N, i, { channel: 'bulk' });
    await until(() => seen.length === 300);
    expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: 300 }, (_, i) => i));
  });

  it('unreliable datagrams are lost by a lossy link (seeded), and the loss is not retransmitted', async () => {
    const { server, client } = await setup({ messages: [N] }, {}, { loss: 0.3, seed: 11 });
    const seen: number[] = [];
    server.on(N, (n) => seen.push(n));
    for (let i = 0; i < 400; i++) {
      client.send(N, i, { channel: 'unreliable' });
      if (i % 16 === 15) await settle(); // stay under the transport's datagram queue
    }
    // A reliable marker after them: once it arrives, every surviving datagram (sent before) has arrived too.
    const Done = defineMessage<null>('done');
    let done = false;
    server.on(Done, () => {
      done = true;
    });
    client.send(Done, null);
    await until(() => done);
    // Nothing was dropped by the session layer: what is missing was lost by the link.
    expect(client.stats.drops.congestion ?? 0).toBe(0);
    expect(client.stats.messagesOut.unreliable).toBe(400);
    expect(seen.length).toBeLessThan(400);
    expect(seen.length).toBeGreaterThan(200);
    expect(new Set(seen).size).toBe(seen.length);
  });

  it('unreliable-sequenced drops stale datagrams and counts them', async () => {
    const opts = { channels: { state: { mode: 'unreliable-sequenced' as const } } };
    const { server, client } = await setup({ messages: [N], ...opts }, opts, { reorder: 0.3, seed: 5 });
    const seen: number[] = [];
    server.on(N, (n) => seen.push(n));
    for (let i = 0; i < 300; i++) {
      client.send(N, i, { channel: 'state' });
      if (i % 16 === 15) await settle();
    }
    const Done = defineMessage<null>('done');
    let done = false;
    server.on(Done, () => {
      done = true;
    });
    client.send(Done, null);
    await until(() => done);
    // At most one datagram is still held back by the reordering link.
    await until(() => (server.metrics.drops.stale ?? 0) + seen.length >= 299);
    expect(client.stats.drops.congestion ?? 0).toBe(0);
    for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeGreaterThan(seen[i - 1]);
    expect(server.metrics.drops.stale).toBeGreaterThan(0);
  });

  it('fragments large unreliable messages and reassembles them', async () => {
    const Big = defineMessage<Uint8Array>('big', { channel: 'unreliable' });
    const { server, client } = await setup({ messages: [Big] });
    const seen: Uint8Array[] = [];
    server.on(Big, (b) => seen.push(b));
    const data = new Uint8Array(10_000).map((_, i) => (i * 7) & 0xff);
    client.send(Big, data);
    await until(() => seen.length === 1);
    expect(seen[0].length).toBe(10_000);
    expect(Buffer.from(seen[0]).equals(Buffer.from(data))).toBe(true);
  });

  it('drops incomplete fragmented messages after the reassembly timeout, counted', async () => {
    const Big = defineMessage<Uint8Array>('big', { channel: 'unreliable' });
    const { server, client } = await setup(
      { messages: [Big], reassembly: { timeoutMs: 20 } },
      {},
      { loss: 0.2, seed: 3 },
    );
    let got = 0;
    server.on(Big, () => got++);
    for (let i = 0; i < 20; i++) client.send(Big, new Uint8Array(6000));
    // Later traffic makes the reassembler look at its deadlines.
    await new Promise((r) => setTimeout(r, 50));
    for (let i = 0; i < 5; i++) client.send(Big, new Uint8Array(10));
    await until(() => (server.metrics.drops['reassembly-timeout'] ?? 0) > 0);
    expect(got).toBeLessThan(25);
  });

  it('refuses oversize unreliable messages with a typed error when fragmentation is off', async () => {
    const opts = { channels: { raw: { mode: 'unreliable' as const, fragment: false } } };
    const { client } = await setup(opts, opts);
    const Big = defineMessage<Uint8Array>('big');
    expect(() => client.send(Big, new Uint8Array(5000), { channel: 'raw' })).toThrow(MessageTooLargeError);
  });

  it('strict priority: a higher priority channel goes first', async () => {
    const channels = { high: { priority: 10 }, low: { priority: 1 } };
    const { server, client } = await setup(
      { messages: [N], channels, maxInFlightMessages: 1 },
      { channels, ackDelayMs: 1 },
    );
    const order: string[] = [];
    const Hi = defineMessage<number>('hi');
    const Lo = defineMessage<number>('lo');
    const s = [...server.sessions.values()][0];
    client.on(Hi, () => order.push('H'));
    client.on(Lo, () => order.push('L'));
    // The window holds one message: everything else waits in the queues, and the scheduler picks.
    for (let i = 0; i < 10; i++) s.send(Lo, i, { channel: 'low' });
    for (let i = 0; i < 10; i++) s.send(Hi, i, { channel: 'high' });
    await until(() => order.length === 20);
    // The first low went out before the highs were queued; then all highs, then the rest.
    expect(order.join('')).toBe('LHHHHHHHHHHLLLLLLLLL');
  });

  it('weighted scheduler shares by weight', async () => {
    const channels = { heavy: { priority: 3 }, light: { priority: 1 } };
    const { server, client } = await setup(
      { messages: [N], channels, maxInFlightMessages: 1, scheduler: 'weighted' },
      { channels, ackDelayMs: 1 },
    );
    const order: string[] = [];
    const A = defineMessage<number>('a');
    const B = defineMessage<number>('b');
    client.on(A, () => order.push('A'));
    client.on(B, () => order.push('B'));
    const s = [...server.sessions.values()][0];
    for (let i = 0; i < 30; i++) s.send(A, i, { channel: 'heavy' });
    for (let i = 0; i < 30; i++) s.send(B, i, { channel: 'light' });
    await until(() => order.length === 60);
    const first20 = order.slice(0, 20);
    const a = first20.filter((x) => x === 'A').length;
    // Weights 3:1 give 15:5 in any window where both are backlogged.
    expect(a).toBeGreaterThanOrEqual(14);
    expect(a).toBeLessThanOrEqual(16);
  });
});
