/**
 * Lifecycle events of server sessions (what a room layer builds on): `disconnected` while the resume window runs,
 * `resumed`, `closed` once with who closed and whether deliberately, and the per-session `data` slot. On the memory
 * transport and on a real WebSocket.
 */
import { connectMemory, createMemoryListener, type TransportListener } from '@quiver/transport';
import { connectWebSocket, createWebSocketListener } from '@quiver/websocket';
import { describe, expect, it } from 'vitest';
import {
  type ClientSession,
  CloseCode,
  connect,
  createSessionServer,
  defineMessage,
  type ServerSession,
  type SessionCloseInfo,
  type SessionServer,
} from '../src/index.js';
import { cleanups, until, useCleanup } from './support/harness.js';
import { rawClient } from './support/raw.js';

useCleanup();

const N = defineMessage<number>('n');
let seq = 0;

interface World {
  server: SessionServer;
  client: ClientSession;
  /** Drops every transport session (the listener closes) and opens a new listener, as a restart would. */
  restart(): Promise<void>;
  url: string;
}

type Listen = (port?: number) => Promise<{ listener: TransportListener; url: string }>;

const memory: Listen = async () => {
  const name = `lifecycle-${process.pid}-${++seq}`;
  return { listener: createMemoryListener({ name, seed: seq }), url: `memory://${name}/q` };
};

const websocket: Listen = async (port = 0) => {
  const listener = await createWebSocketListener({ host: '127.0.0.1', port, path: '/q' });
  return { listener, url: `http://127.0.0.1:${listener.address.port}/q` };
};

async function world(listen: Listen, serverExtra = {}): Promise<World> {
  const first = await listen();
  let listener = first.listener;
  const port = (listener as { address?: { port: number } }).address?.port;
  const server = createSessionServer({ listeners: [listener], messages: [N], ...serverExtra });
  const connector = first.url.startsWith('memory:') ? connectMemory : connectWebSocket;
  const client = await connect(first.url, { connector, reconnect: { initialMs: 5, maxMs: 40, seed: 7 } });
  cleanups.push(async () => {
    await client.close();
    await server.close();
    await listener.close();
  });
  return {
    server,
    client,
    url: first.url,
    async restart() {
      await listener.close();
      listener =
        listen === memory
          ? createMemoryListener({ name: new URL(first.url).host, seed: seq })
          : (await listen(port)).listener;
      server.addListener(listener);
    },
  };
}

function record(server: SessionServer, s: ServerSession) {
  const seen: string[] = [];
  const closes: SessionCloseInfo[] = [];
  s.on('disconnected', (i) => seen.push(`s:disconnected:${i.code}`));
  s.on('resumed', (i) => seen.push(`s:resumed:${i.transport}`));
  s.on('closed', (i) => {
    seen.push('s:closed');
    closes.push(i);
  });
  server.on('disconnected', (x) => x === s && seen.push('server:disconnected'));
  server.on('resumed', (x) => x === s && seen.push('server:resumed'));
  server.on('closed', (x) => x === s && seen.push('server:closed'));
  return { seen, closes };
}

for (const [name, listen] of [
  ['memory', memory],
  ['websocket', websocket],
] as const) {
  describe(`server session lifecycle over ${name}`, () => {
    it('reports disconnected then resumed across a transport restart, keeping session.data', async () => {
      const w = await world(listen);
      const s = [...w.server.sessions.values()][0] as ServerSession<{ room?: string }>;
      s.data.room = 'lobby';
      const { seen } = record(w.server, s);
      const reopened = new Promise((r) => w.client.on('open', r));
      await w.restart();
      await reopened;
      await until(() => seen.includes('server:resumed'), 'resumed');
      expect(seen.filter((e) => e.includes('disconnected'))).toHaveLength(2);
      expect(seen.findIndex((e) => e.startsWith('s:resumed'))).toBeGreaterThan(
        seen.findIndex((e) => e.startsWith('s:disconnected')),
      );
      expect(seen).not.toContain('s:closed');
      expect(w.server.sessions.get(s.id)).toBe(s);
      expect(s.data.room).toBe('lobby');
      // The resumed session carries messages again.
      const got: number[] = [];
      w.server.on(N, (n, from) => from === s && got.push(n));
      w.client.send(N, 7);
      await until(() => got.length === 1, 'message after resume');
    });

    it('closes once, not deliberately, when the resume window expires', async () => {
      const w = await world(listen, { resumeWindowMs: 30 });
      const s = [...w.server.sessions.values()][0];
      const { seen, closes } = record(w.server, s);
      // The client stops coming back: it is closed without telling the server, by cutting its transport.
      w.client.on('reconnecting', () => void w.client.close());
      await w.restart();
      await until(() => closes.length === 1, 'closed');
      expect(seen.filter((e) => e.startsWith('s:disconnected'))).toHaveLength(1);
      expect(closes[0]).toMatchObject({
        initiator: 'timeout',
        deliberate: false,
        reason: 'resume window expired',
      });
      expect(seen.filter((e) => e === 'server:closed')).toHaveLength(1);
    });

    it('closes deliberately when the client closes, and when the application closes', async () => {
      const w = await world(listen);
      const s = [...w.server.sessions.values()][0];
      const { closes } = record(w.server, s);
      await w.client.close();
      await until(() => closes.length === 1, 'client close');
      expect(closes[0]).toMatchObject({ initiator: 'client', deliberate: true });

      const other = await connect(w.url, {
        connector: w.url.startsWith('memory:') ? connectMemory : connectWebSocket,
      });
      cleanups.push(() => other.close());
      await until(() => w.server.sessions.size === 1, 'second session');
      const s2 = [...w.server.sessions.values()][0];
      const r2 = record(w.server, s2);
      await s2.close(4100, 'kicked');
      expect(r2.closes).toEqual([{ code: 4100, reason: 'kicked', initiator: 'server', deliberate: true }]);
    });

    it('closes not deliberately, with the typed error, when the peer breaks a rule', async () => {
      const w = await world(listen);
      await w.client.close();
      const connector = w.url.startsWith('memory:') ? connectMemory : connectWebSocket;
      const raw = await rawClient(connector, w.url);
      const opened = new Promise<ServerSession>((r) => w.server.on('session', r));
      await raw.hello();
      const s = await opened;
      const { closes } = record(w.server, s);
      await raw.frame([5, 'not an ack list']);
      await until(() => closes.length === 1, 'closed on a bad frame');
      expect(closes[0]).toMatchObject({
        initiator: 'server',
        deliberate: false,
        code: CloseCode.BAD_MESSAGE,
      });
      expect(closes[0].error?.kind).toBe('decode');
    });
  });
}
