/**
 * Defect 3 of issue 11: connections that never sent HELLO counted against `maxSessions`; 64 idle sockets, reopened
 * every 5 s, kept every player out of the demo. Now they hold pre-authentication slots (`preAuth`), capped in total
 * and per address, the oldest evicted first, and never count as sessions.
 */
import { connectWebSocket, createWebSocketListener } from '@quiver/websocket';
import { describe, expect, it } from 'vitest';
import { CloseCode, connect, createSessionServer, defineMessage } from '../../src/index.js';
import { cleanups, until, useCleanup } from '../support/harness.js';
import { rawClient } from '../support/raw.js';

useCleanup();

const Echo = defineMessage<string>('echo');

describe('hostile: idle sockets that never say HELLO (defect 3)', () => {
  it('cannot lock a good client out: more idle sockets than the pre-auth cap and than maxSessions', async () => {
    const listener = await createWebSocketListener({ host: '127.0.0.1', port: 0 });
    const preAuth = { maxPending: 8, maxPendingPerIp: 4 };
    const server = createSessionServer({
      listeners: [listener],
      messages: [Echo],
      maxSessions: 4,
      preAuth,
      // Long enough that no idle socket is closed by the deadline during the test: only the caps act.
      firstMessageTimeoutMs: 60_000,
    });
    cleanups.push(async () => {
      await server.close();
      await listener.close();
    });
    server.on(Echo, (m, s) => s.send(Echo, m));
    const url = `http://127.0.0.1:${listener.address.port}/q`;
    const idle = 12;
    const closes: Promise<number>[] = [];
    for (let i = 0; i < idle; i++) {
      const raw = await rawClient(connectWebSocket, url);
      cleanups.push(() => raw.session.close());
      closes.push(raw.closed.then((c) => c.closeCode ?? 0));
      await until(
        () => server.handshakesPending + (server.metrics.rejections['handshake-evicted'] ?? 0) === i + 1,
      );
      expect(server.handshakesPending).toBeLessThanOrEqual(preAuth.maxPendingPerIp);
    }
    expect(server.handshakesPending).toBe(preAuth.maxPendingPerIp);
    expect(server.metrics.rejections['handshake-evicted']).toBe(idle - preAuth.maxPendingPerIp);
    // The evicted ones were the oldest, told to come back later.
    for (const c of await Promise.all(closes.slice(0, idle - preAuth.maxPendingPerIp)))
      expect(c).toBe(CloseCode.GOING_AWAY);
    expect(server.sessions.size).toBe(0);

    // A good client from the same address still gets in (evicting the oldest idle socket) and is served.
    const good = await connect(url, { connector: connectWebSocket, reconnect: false });
    cleanups.push(() => good.close());
    const back = new Promise((r) => good.on(Echo, r));
    good.send(Echo, 'in');
    expect(await back).toBe('in');
    expect(server.sessions.size).toBe(1);
    expect(server.handshakesPending).toBeLessThanOrEqual(preAuth.maxPendingPerIp);
    expect(server.metrics.rejections['handshake-evicted']).toBe(idle - preAuth.maxPendingPerIp + 1);
  });
});
