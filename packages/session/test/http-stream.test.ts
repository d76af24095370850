/**
 * The session layer over the HTTP fallback (`@quiver/http-stream`, loopback TCP): resumption across a listener
 * restart with zero loss, the same through a proxy that drops POSTs and cuts the event stream, a stalled client held
 * to its budget, and authentication on this transport.
 */
import { connectHttpStream, createHttpStreamListener, type HttpStreamListener } from '@quiver/http-stream';
import { startTestProxy } from '@quiver/testkit';
import { describe, expect, it } from 'vitest';
import { connect, createSessionServer, defineMessage } from '../src/index.js';
import { cleanups, settle, until, useCleanup } from './support/harness.js';
import {
  holdsStalledClientToBudget,
  type RealTransport,
  rejectsUnauthenticated,
} from './support/transports.js';

useCleanup();

const N = defineMessage<number>('n');
const State = defineMessage<{ i: number; pad: string }>('state', { channel: 'unreliable' });

const http: RealTransport = {
  listen: () => createHttpStreamListener({ host: '127.0.0.1', port: 0 }),
  url: (port, path) => `http://127.0.0.1:${port}${path}`,
  connector: connectHttpStream,
};

/** 3000 numbered messages each way with the transport listener replaced half way: all arrive, in order, once. */
async function resumesWithZeroLoss(viaProxy: boolean): Promise<void> {
  let listener: HttpStreamListener = await createHttpStreamListener({
    host: '127.0.0.1',
    port: 0,
    path: '/quiver',
  });
  const port = listener.address.port;
  // Thousands of messages as fast as the loop runs, plus the replay of all unacknowledged ones at the restart: a
  // bulk burst beyond the default per-session rate (a game's traffic), which this resumption test is not about.
  const server = createSessionServer({
    listeners: [listener],
    messages: [N],
    rateLimits: { perSession: { messagesPerSecond: Infinity, bytesPerSecond: Infinity } },
  });
  cleanups.push(async () => {
    await server.close();
    await listener.close();
  });
  let target = port;
  if (viaProxy) {
    const proxy = await startTestProxy({
      target: { host: '127.0.0.1', port },
      dropPost: (n) => (n % 4 === 0 ? 'before' : n % 9 === 0 ? 'after' : undefined),
      cutResponsesAfterBytes: 40 * 1024,
    });
    cleanups.push(async () => {
      const s = proxy.stats;
      // The proxy really lost requests and cut responses during the run.
      expect(s.droppedBefore + s.droppedAfter).toBeGreaterThan(0);
      expect(s.cutResponses).toBeGreaterThan(0);
      await proxy.close();
    });
    target = proxy.address.port;
  }
  const client = await connect(`http://127.0.0.1:${target}/quiver`, {
    transports: [{ name: 'http', connector: connectHttpStream }],
    reconnect: { initialMs: 20, maxMs: 200, seed: 3 },
  });
  cleanups.push(() => client.close());
  expect(client.transport).toBe('http');
  const atServer: number[] = [];
  const atClient: number[] = [];
  const opens: boolean[] = [];
  server.on(N, (n) => atServer.push(n));
  client.on(N, (n) => atClient.push(n));
  client.on('open', (i) => opens.push(i.recovered));
  const s = [...server.sessions.values()][0];
  const total = 3000;
  for (let i = 0; i < total; i++) {
    client.send(N, i);
    s.send(N, i);
    if (i === total / 2) {
      await listener.close();
      listener = await createHttpStreamListener({ host: '127.0.0.1', port, path: '/quiver' });
      server.addListener(listener);
    }
    if (i % 50 === 0) await settle();
  }
  await until(() => atServer.length >= total && atClient.length >= total, 'all messages');
  await settle(20);
  expect(opens).toEqual([true]);
  expect(atServer).toEqual(Array.from({ length: total }, (_, i) => i));
  expect(atClient).toEqual(Array.from({ length: total }, (_, i) => i));
  expect(server.metrics.recoveries).toBe(1);
}

/**
 * The demo's pattern: small unreliable messages for a while (a quiet scene), then larger ones (snapshots), at 30 Hz
 * on a link that carries far more. The tunnel's acknowledgements release bytes at the rate the application sends;
 * taken as the link's rate, it made each larger message look seconds late, so the age limit held all of them, which
 * kept the measured rate low: nothing ever went again (the demo's HTTP fallback had no snapshots).
 */
async function sendsLargerUnreliableAfterSmall(): Promise<{
  delivered: number;
  sent: number;
  deliveredAll: number;
  sentAll: number;
  stale: number;
}> {
  const listener = await createHttpStreamListener({ host: '127.0.0.1', port: 0, path: '/quiver' });
  const server = createSessionServer({ listeners: [listener], messages: [State] });
  cleanups.push(async () => {
    await server.close();
    await listener.close();
  });
  const client = await connect(`http://127.0.0.1:${listener.address.port}/quiver`, {
    transports: [{ name: 'http', connector: connectHttpStream }],
    messages: [State],
  });
  cleanups.push(() => client.close());
  const big = new Set<number>();
  const all = new Set<number>();
  client.on(State, (m) => {
    all.add(m.i);
    if (m.pad.length > 1) big.add(m.i);
  });
  const s = [...server.sessions.values()][0];
  const tick = () => new Promise((r) => setTimeout(r, 33));
  for (let i = 0; i < 30; i++) {
    s.send(State, { i, pad: 'x' });
    await tick();
  }
  const sent = 30;
  for (let i = 0; i < sent; i++) {
    s.send(State, { i: 100 + i, pad: 'x'.repeat(1000) });
    await tick();
  }
  await settle(20);
  await new Promise((r) => setTimeout(r, 200));
  return {
    delivered: big.size,
    sent,
    deliveredAll: all.size,
    sentAll: 30 + sent,
    stale: s.stats.drops.stale ?? 0,
  };
}

describe('session over HTTP (event stream down, POSTs up)', () => {
  it('sends larger unreliable messages after small ones: in-flight bytes do not count as a send queue', async () => {
    const r = await sendsLargerUnreliableAfterSmall();
    // Some may still be held as stale on a loaded machine (an RTT spike is a real queue to the estimate); with
    // in-flight bytes counted as queue none of them got through.
    expect(r.delivered).toBeGreaterThanOrEqual(r.sent / 2);
    // Nothing both delivered and dropped: the stale count covers both phases (a small message held at the end of
    // the first phase may be dropped during the second), so it is checked against every message sent.
    expect(r.deliveredAll + r.stale).toBeLessThanOrEqual(r.sentAll);
  });

  it('resumes after a server (listener) restart in the middle of a reliable stream with zero loss', () =>
    resumesWithZeroLoss(false));

  it('resumes with zero loss through a proxy that drops POSTs and cuts the event stream', () =>
    resumesWithZeroLoss(true));

  it('holds a client that never reads to the session memory budget', () =>
    holdsStalledClientToBudget(http, 30_000, 20_000));

  it('rejects unauthenticated sessions on HTTP before they exist', () => rejectsUnauthenticated(http));
});
