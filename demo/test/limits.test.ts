import { type ClientSession, connect } from '@quiver/session';
import { connectWebSocket } from '@quiver/websocket';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoServer, type DemoServer } from '../src/server/app.js';
import { messages } from '../src/shared/protocol.js';

let server: DemoServer;
const clients: ClientSession[] = [];

beforeAll(async () => {
  server = await createDemoServer({
    host: '127.0.0.1',
    port: 0,
    webtransportPort: 0,
    bots: 0,
    build: false,
    maxSessionsPerIp: 2,
    sessionsPerMinutePerIp: 4,
  });
});

afterAll(async () => {
  for (const c of clients) await c.close();
  await server.close();
});

const url = () => `ws://127.0.0.1:${server.port}/quiver`;

async function open(): Promise<ClientSession> {
  const c = await connect(url(), { connector: connectWebSocket, messages, reconnect: false });
  clients.push(c);
  return c;
}

describe('demo per-address limits', () => {
  it('refuses sessions beyond maxSessionsPerIp (429) and then beyond sessionsPerMinutePerIp', async () => {
    await open();
    const second = await open();
    const third = await open().catch((e) => e);
    expect(third.name).toBe('ConnectError');
    expect(third.status).toBe(429);
    // A seat freed by a closed session is taken again...
    await second.close();
    await open();
    // ...until the address has used its 4 requests of the minute.
    await clients[0].close();
    const fifth = await open().catch((e) => e);
    expect(fifth.status).toBe(429);
    expect(server.app.quiver.sessions.size).toBe(1);
  });
});
