/**
 * Room handles over a session hosted in a Worker (`@quiver/session/worker`): the bridge runs over a real
 * `MessageChannel` in this process, the session over real WebSocket to the fastify plugins.
 */
import quiver from '@quiver/fastify';
import { connect as connectInWorker } from '@quiver/session/worker';
import { hostSessions } from '@quiver/session/worker-host';
import { connectWebSocket } from '@quiver/websocket';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { RoomsClient } from '../src/client/index.js';
import quiverRooms from '../src/fastify.js';
import { message, Room, request } from '../src/index.js';

const Say = message('say', z.object({ text: z.string().min(1) }));
const Heard = message<string>('heard');
const Add = request('add', z.object({ a: z.number(), b: z.number() })).returns<number>();

class Duo extends Room {
  override maxClients = 2;
  override onCreate() {
    this.onMessage(Say, (c, m) => this.broadcast(Heard, m.text, { except: c }));
    this.onRequest(Add, (_c, { a, b }) => a + b);
  }
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

describe('rooms over a session in a Worker', () => {
  it('joins, broadcasts with except, answers requests and leaves', async () => {
    const app = Fastify();
    await app.register(quiver, { path: '/quiver' });
    await app.register(quiverRooms, { setup: (rooms) => rooms.define('duo', Duo) });
    await app.listen({ host: '127.0.0.1', port: 0 });
    cleanups.push(() => app.close());
    await app.quiverTransports.ready();
    const endpoint = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;

    const { port1: worker, port2: scope } = new MessageChannel();
    scope.start();
    const stop = hostSessions({ connectors: { websocket: connectWebSocket }, scope });
    cleanups.push(() => {
      stop();
      worker.close();
      scope.close();
    });
    const client = new RoomsClient({
      endpoint,
      connectors: { websocket: connectWebSocket },
      connect: (url, options) => connectInWorker(url, { ...options, worker }),
    });
    const a = await client.joinOrCreate('duo');
    const b = await client.joinOrCreate('duo');
    expect(b.roomId).toBe(a.roomId);
    expect(a.session.transport).toBe('websocket');
    expect(a.session.constructor.name).toBe('WorkerClientSession');
    const heard: string[] = [];
    b.on(Heard, (t) => heard.push(t));
    a.send(Say, { text: 'hello' });
    expect(await b.request(Add, { a: 20, b: 22 })).toBe(42);
    await expect.poll(() => heard).toEqual(['hello']);
    await a.leave();
    await b.leave();
    expect(a.session.state).toBe('closed');
    await expect.poll(() => app.rooms.localRooms.length).toBe(0);
  });
});
