/**
 * Matchmaking over HTTP and rooms over real WebTransport (HTTP/3 on QUIC) and WebSocket, through the fastify
 * plugins: the same checks on each transport.
 */
import quiver from '@quiver/fastify';
import { connectWebTransport } from '@quiver/webtransport';
import { connectWebSocket } from '@quiver/websocket';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { RoomsClient } from '../src/client/index.js';
import quiverRooms from '../src/fastify.js';
import { message, Room, request, RoomErrorCode } from '../src/index.js';

const Say = message('say', z.object({ text: z.string().min(1) }));
const Heard = message<string>('heard');
const Add = request('add', z.object({ a: z.number(), b: z.number() })).returns<number>();

class Duo extends Room {
  override maxClients = 2;
  override onCreate() {
    this.onMessage(Say, (c, m) => this.broadcast(Heard, m.text, { except: c }));
    this.onRequest(Add, (_c, { a, b }) => a + b);
    this.setMetadata({ map: 'dust' });
  }
}

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function start() {
  const app = Fastify();
  await app.register(quiver, { path: '/quiver' });
  await app.register(quiverRooms, { setup: (rooms) => rooms.define('duo', Duo) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  cleanups.push(() => app.close());
  await app.quiverTransports.ready();
  const port = (app.server.address() as { port: number }).port;
  return { app, endpoint: `http://127.0.0.1:${port}` };
}

describe.each(['webtransport', 'websocket'] as const)('rooms over %s', (transport) => {
  it('matchmakes over HTTP, joins, broadcasts with except, answers requests, refuses a full room', async () => {
    const { app, endpoint } = await start();
    const client = new RoomsClient({
      endpoint,
      connectors:
        transport === 'webtransport'
          ? { webtransport: connectWebTransport }
          : { websocket: connectWebSocket },
    });
    const a = await client.joinOrCreate('duo');
    cleanups.push(() => a.leave());
    const b = await client.joinOrCreate('duo');
    cleanups.push(() => b.leave());
    expect(a.session.transport).toBe(transport);
    expect(b.roomId).toBe(a.roomId);

    const heard: string[] = [];
    const heardByA: string[] = [];
    b.on(Heard, (t) => heard.push(t));
    a.on(Heard, (t) => heardByA.push(t));
    a.send(Say, { text: 'hello' });
    expect(await b.request(Add, { a: 20, b: 22 })).toBe(42);
    await expect.poll(() => heard).toEqual(['hello']);
    expect(heardByA).toEqual([]);
    // biome-ignore lint/suspicious/noExplicitAny: a payload the types forbid
    await expect(a.request(Add, { a: 1 } as any)).rejects.toMatchObject({ code: RoomErrorCode.VALIDATION });

    const listing = (await (await fetch(`${endpoint}/quiver/rooms`)).json()) as { rooms: unknown[] };
    expect(listing.rooms).toEqual([
      { name: 'duo', id: a.roomId, clients: 2, maxClients: 2, locked: false, metadata: { map: 'dust' } },
    ]);
    // joinById into a full room: a typed error over HTTP.
    await expect(client.joinById(a.roomId)).rejects.toMatchObject({ code: RoomErrorCode.ROOM_FULL });
    const res = await fetch(`${endpoint}/quiver/matchmake/joinById/${a.roomId}`, { method: 'POST' });
    expect(res.status).toBe(409);
    expect(await res.json()).toEqual({ error: { code: 'room-full', message: 'the room is full' } });
    expect((await fetch(`${endpoint}/quiver/matchmake/steal/duo`, { method: 'POST' })).status).toBe(400);
    expect((await fetch(`${endpoint}/quiver/matchmake/create/nope`, { method: 'POST' })).status).toBe(404);

    const metrics = await (await fetch(`${endpoint}/metrics`)).text();
    expect(metrics).toContain('quiver_rooms_joins_total{room="duo"} 2');
    expect(metrics).toContain('quiver_rooms_errors_total{code="room-full"} 2');
    expect(metrics).toContain('quiver_rooms_invalid_total{message="add"} 1');
    expect(app.rooms.localRooms.length).toBe(1);
  });
});
