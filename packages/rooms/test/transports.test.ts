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

const Missing = request<null, null>('missing');
const Boom = request<null, null>('boom');

class Broken extends Room {
  override onCreate() {
    throw new Error('no map');
  }
}

class Duo extends Room {
  override maxClients = 2;
  override onCreate() {
    this.onMessage(Say, (c, m) => this.broadcast(Heard, m.text, { except: c }));
    this.onRequest(Add, (_c, { a, b }) => a + b);
    this.onRequest(Boom, () => {
      throw new Error('internal detail');
    });
    this.setMetadata({ map: 'dust' });
  }
}

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function start(seatReservationMs = 15_000) {
  const app = Fastify();
  await app.register(quiver, { path: '/quiver' });
  await app.register(quiverRooms, {
    seatReservationMs,
    setup: (rooms) => rooms.define('duo', Duo).define('broken', Broken),
  });
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

  it('faults: no handler, a throwing handler, onCreate that throws, a reused or expired seat, an old token', async () => {
    // Seats expire soon here (the test waits for one to), but not before a loaded machine connects.
    const { app, endpoint } = await start(2000);
    const client = new RoomsClient({
      endpoint,
      connectors:
        transport === 'webtransport'
          ? { webtransport: connectWebTransport }
          : { websocket: connectWebSocket },
    });
    const a = await client.joinOrCreate('duo');
    cleanups.push(() => a.leave());
    await expect(a.request(Missing, null)).rejects.toMatchObject({ code: RoomErrorCode.NO_HANDLER });
    // The client learns that the handler failed, not why (that goes to onError and the logs).
    await expect(a.request(Boom, null)).rejects.toMatchObject({
      code: RoomErrorCode.HANDLER_ERROR,
      message: 'the handler failed',
    });
    expect(await a.request(Add, { a: 1, b: 2 })).toBe(3); // the room goes on
    await expect(client.create('broken')).rejects.toMatchObject({ code: RoomErrorCode.CREATE_FAILED });

    // A seat used twice, and one used after it expired: typed refusals, no seat leaked.
    const r = await client.matchmake('joinById', a.roomId, {});
    const b = await client.consume(r);
    cleanups.push(() => b.leave());
    await expect(client.consume(r)).rejects.toMatchObject({ code: RoomErrorCode.SEAT_USED });
    await b.leave();
    const late = await client.matchmake('joinById', a.roomId, {});
    await expect.poll(() => app.rooms.driver.reservations(a.roomId), { timeout: 10_000 }).toBe(0);
    await expect(client.consume(late)).rejects.toMatchObject({ code: RoomErrorCode.SEAT_EXPIRED });
    expect((await app.rooms.query())[0].clients).toBe(1);

    // A reconnection token whose seat is gone (the client left): the room refuses it at the join.
    const res = await fetch(`${endpoint}/quiver/matchmake/reconnect/-`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ reconnectToken: b.reconnectToken }),
    });
    expect(res.status).toBe(200);
    await expect(client.consume(await res.json())).rejects.toMatchObject({
      code: RoomErrorCode.RECONNECT_EXPIRED,
    });
    expect(app.rooms.metrics.errors).toMatchObject({
      'no-handler': 1,
      'handler-error': 1,
      'create-failed': 1,
      'seat-used': 1,
      'seat-expired': 1,
      'reconnect-expired': 1,
    });
  });
});
