/**
 * The session layer over the real WebSocket transport (loopback TCP): resumption across a listener restart, a
 * stalled client held to its budget, and authentication on this transport.
 */
import { createWebSocketListener, connectWebSocket } from '@quiver/websocket';
import { describe, expect, it } from 'vitest';
import { connect, ConnectError, createSessionServer, defineMessage, reject } from '../src/index.js';
import { cleanups, settle, until, useCleanup } from './support/harness.js';
import { rawClient } from './support/raw.js';

useCleanup();

const N = defineMessage<number>('n');
const State = defineMessage<{ key: number; blob: Uint8Array }>('state', { channel: 'state' });

describe('session over WebSocket', () => {
  it('resumes after a server (listener) restart in the middle of a reliable stream with zero loss', async () => {
    let listener = await createWebSocketListener({ host: '127.0.0.1', port: 0, path: '/quiver' });
    const port = listener.address.port;
    const server = createSessionServer({ listeners: [listener], messages: [N] });
    cleanups.push(async () => {
      await server.close();
      await listener.close();
    });
    const client = await connect(`http://127.0.0.1:${port}/quiver`, {
      transports: [{ name: 'websocket', connector: connectWebSocket }],
      reconnect: { initialMs: 20, maxMs: 200, seed: 3 },
    });
    cleanups.push(() => client.close());
    expect(client.transport).toBe('websocket');
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
        // The transport goes away under the session server; a new listener takes the same port.
        await listener.close();
        listener = await createWebSocketListener({ host: '127.0.0.1', port, path: '/quiver' });
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
  });

  it('holds a client that never reads to the session memory budget', async () => {
    const listener = await createWebSocketListener({ host: '127.0.0.1', port: 0 });
    const budget = { maxInFlightBytes: 64 * 1024, maxQueuedBytes: 32 * 1024 };
    const server = createSessionServer({
      listeners: [listener],
      channels: { state: { overflow: 'coalesce', maxQueuedBytes: budget.maxQueuedBytes } },
      maxInFlightBytes: budget.maxInFlightBytes,
    });
    cleanups.push(async () => {
      await server.close();
      await listener.close();
    });
    const raw = await rawClient(connectWebSocket, `http://127.0.0.1:${listener.address.port}/`);
    await raw.hello();
    await until(() => server.sessions.size === 1);
    const s = [...server.sessions.values()][0];
    let max = 0;
    const blob = new Uint8Array(300);
    for (let i = 0; i < 30_000; i++) {
      s.send(State, { key: i % 64, blob }, { key: i % 64 });
      max = Math.max(max, s.bufferedBytes);
      if (i % 500 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    expect(max).toBeLessThanOrEqual(budget.maxInFlightBytes + budget.maxQueuedBytes);
    expect(server.metrics.drops.coalesced).toBeGreaterThan(20_000);
    expect(s.state).toBe('open');
    raw.session.close();
  });

  it('rejects unauthenticated sessions on WebSocket before they exist', async () => {
    const listener = await createWebSocketListener({ host: '127.0.0.1', port: 0 });
    const server = createSessionServer({
      listeners: [listener],
      authenticate: (req) => (req.query.get('token') === 'ok' ? { userId: 'u' } : reject(401, 'no')),
    });
    cleanups.push(async () => {
      await server.close();
      await listener.close();
    });
    const url = `http://127.0.0.1:${listener.address.port}/`;
    const err = await connect(url, { connector: connectWebSocket, token: 'bad' }).catch((e) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect(err.status).toBe(401);
    expect(server.sessions.size).toBe(0);
    expect(server.metrics.rejections['401']).toBe(1);
    const ok = await connect(url, { connector: connectWebSocket, token: 'ok' });
    cleanups.push(() => ok.close());
    expect(ok.state).toBe('open');
  });
});
