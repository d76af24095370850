/**
 * The session layer over the real WebSocket transport (loopback TCP): resumption across a listener restart, a
 * stalled client held to its budget, and authentication on this transport.
 */
import { createWebSocketListener, connectWebSocket } from '@quiver/websocket';
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

const websocket: RealTransport = {
  listen: () => createWebSocketListener({ host: '127.0.0.1', port: 0 }),
  url: (port, path) => `http://127.0.0.1:${port}${path}`,
  connector: connectWebSocket,
};

describe('session over WebSocket', () => {
  it('resumes after a server (listener) restart in the middle of a reliable stream with zero loss', async () => {
    let listener = await createWebSocketListener({ host: '127.0.0.1', port: 0, path: '/quiver' });
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
    let unackedAtRestart = { client: 0, server: 0 };
    const total = 3000;
    for (let i = 0; i < total; i++) {
      client.send(N, i);
      s.send(N, i);
      if (i === total / 2) {
        // The transport goes away under the session server; a new listener takes the same port.
        // Sent but not yet received, so certainly unacknowledged: the restart has something to replay.
        unackedAtRestart = {
          client: (client.stats.messagesOut.reliable ?? 0) - atServer.length,
          server: (s.stats.messagesOut.reliable ?? 0) - atClient.length,
        };
        await listener.close();
        listener = await createWebSocketListener({ host: '127.0.0.1', port, path: '/quiver' });
        server.addListener(listener);
      }
      if (i % 50 === 0) await settle();
    }
    await until(() => atServer.length >= total && atClient.length >= total, 'all messages');
    await settle(20);
    expect(opens).toEqual([true]);
    expect(unackedAtRestart.client).toBeGreaterThan(0);
    expect(unackedAtRestart.server).toBeGreaterThan(0);
    expect(atServer).toEqual(Array.from({ length: total }, (_, i) => i));
    expect(atClient).toEqual(Array.from({ length: total }, (_, i) => i));
    expect(server.metrics.recoveries).toBe(1);
  });

  it('holds a client that never reads to the session memory budget', () =>
    holdsStalledClientToBudget(websocket, 30_000, 20_000));

  it('rejects unauthenticated sessions on WebSocket before they exist', () =>
    rejectsUnauthenticated(websocket));
});
