import { describe, expect, it } from 'vitest';
import {
  bundleFrame,
  DecodeError,
  datagramFrame,
  defineMessage,
  Kind,
  parseBody,
  unbundle,
} from '../src/index.js';
import { settle, setup, until, useCleanup } from './support/harness.js';

useCleanup();

const Pos = defineMessage<number[]>('pos', { channel: 'unreliable' });
const Blob = defineMessage<Uint8Array>('blob', { channel: 'unreliable' });

/** Heartbeats write datagrams of their own (probes flush at once): keep them out of the counted window. */
const quiet = { heartbeat: { intervalMs: 60_000, idleIntervalMs: 60_000, timeoutMs: 120_000 } };

/** Both ends probe once as the session opens: let that exchange finish before counting writes. */
async function probed(
  client: { stats: { pings: number } },
  server: { sessions: Map<unknown, { stats: { pings: number } }> },
) {
  await until(
    () => client.stats.pings >= 1 && [...server.sessions.values()].every((s) => s.stats.pings >= 1),
    'probes',
  );
  await settle(20);
}

describe('datagram bundling (one datagram write per turn, not per message)', () => {
  it('N unreliable sends in one turn cost about ceil(bytes / maxDatagramSize) writes, all delivered in order', async () => {
    const { net, client, server } = await setup({ messages: [Pos], ...quiet }, quiet, {
      helper: true,
      maxDatagramSize: 1200,
    });
    const got: number[] = [];
    server.on(Pos, (p) => got.push(p[0]));
    const wire = [...net!.sessions][0];
    await probed(client, server);
    const before = wire.datagramWrites;
    const bytesBefore = wire.bytesSent;
    const n = 300;
    for (let i = 0; i < n; i++) client.send(Pos, [i, i * 2, i * 3]);
    // Nothing is written until the turn's code is done.
    expect(wire.datagramWrites).toBe(before);
    await until(() => got.length === n, 'all positions');
    const writes = wire.datagramWrites - before;
    const bytes = wire.bytesSent - bytesBefore;
    expect(writes).toBeLessThan(n / 20);
    expect(writes).toBeGreaterThanOrEqual(Math.ceil(bytes / 1200));
    expect(writes).toBeLessThanOrEqual(Math.ceil(bytes / 1200) + 1);
    expect(got).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(client.stats.drops.congestion ?? 0).toBe(0);
  });

  it('sends in separate turns are not held back for one another', async () => {
    const { net, client, server } = await setup({ messages: [Pos], ...quiet }, quiet, { helper: true });
    const got: number[] = [];
    server.on(Pos, (p) => got.push(p[0]));
    const wire = [...net!.sessions][0];
    await probed(client, server);
    const before = wire.datagramWrites;
    for (let i = 0; i < 3; i++) {
      client.send(Pos, [i]);
      await until(() => got.length === i + 1, `position ${i}`);
    }
    expect(wire.datagramWrites - before).toBe(3);
  });

  it('fragments of a large message fill datagrams of their own and share the turn with small messages', async () => {
    const { net, client, server } = await setup({ messages: [Pos, Blob], ...quiet }, quiet, {
      helper: true,
      maxDatagramSize: 1000,
    });
    const small: number[] = [];
    let blob: Uint8Array | undefined;
    server.on(Pos, (p) => small.push(p[0]));
    server.on(Blob, (b) => {
      blob = b;
    });
    const wire = [...net!.sessions][0];
    await probed(client, server);
    const before = wire.datagramWrites;
    const big = new Uint8Array(4500).map((_, i) => i % 251);
    client.send(Blob, big);
    client.send(Pos, [1]);
    client.send(Pos, [2]);
    await until(() => blob !== undefined && small.length === 2, 'blob and positions');
    expect(blob).toEqual(big);
    expect(small).toEqual([1, 2]);
    // 4500 bytes need 5 fragments of < 1000, the last one partly full: the small messages ride along with it.
    expect(wire.datagramWrites - before).toBe(5);
  });

  it('keeps unreliable-sequenced order through bundles and still drops stale ones', async () => {
    const Seq = defineMessage<number>('seq', { channel: 'state' });
    const channels = { state: { mode: 'unreliable-sequenced' as const } };
    const { client, server } = await setup(
      { messages: [Seq], channels, ...quiet },
      { channels, ...quiet },
      {
        helper: true,
      },
    );
    const got: number[] = [];
    server.on(Seq, (v) => got.push(v));
    for (let i = 1; i <= 50; i++) client.send(Seq, i);
    await until(() => got.at(-1) === 50, 'last state');
    for (let i = 1; i < got.length; i++) expect(got[i]).toBeGreaterThan(got[i - 1]);
  });
});

describe('bundle codec', () => {
  const a = datagramFrame([Kind.DGRAM, 2, 1, 0, 0], new Uint8Array([1, 2, 3]));
  const b = datagramFrame([Kind.PING, 7, 0]);

  it('round-trips bodies and sends a lone body unwrapped', () => {
    const bundle = parseBody(bundleFrame([a, b]));
    expect(bundle.header).toEqual([Kind.BUNDLE, 2]);
    expect(unbundle(bundle)).toEqual([a, b]);
    expect(bundleFrame([a])).toBe(a);
  });

  it.each([
    ['a count larger than the bodies', (p: Uint8Array) => ({ header: [Kind.BUNDLE, 3], payload: p })],
    ['a count smaller than the bodies', (p: Uint8Array) => ({ header: [Kind.BUNDLE, 1], payload: p })],
    ['a zero count', (p: Uint8Array) => ({ header: [Kind.BUNDLE, 0], payload: p })],
    ['a non-numeric count', (p: Uint8Array) => ({ header: [Kind.BUNDLE, 'x'], payload: p })],
    [
      'a truncated length',
      (p: Uint8Array) => ({ header: [Kind.BUNDLE, 3], payload: Uint8Array.of(...p, 0) }),
    ],
    ['a length past the end', (p: Uint8Array) => ({ header: [Kind.BUNDLE, 2], payload: p.subarray(0, -1) })],
  ])('refuses %s with a DecodeError', (_, make) => {
    const payload = parseBody(bundleFrame([a, b])).payload;
    expect(() => unbundle(make(payload))).toThrow(DecodeError);
  });
});
