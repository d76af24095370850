import { describe, expect, it } from 'vitest';
import { message, Room, type RoomClient, RoomErrorCode } from '../src/index.js';
import type { RoomError } from '../src/client/index.js';
import { memoryRooms, until, useCleanup } from './support.js';

useCleanup();

const Ping = message<number>('ping');
const Pong = message<{ n: number; id: string }>('pong');

class EchoRoom extends Room {
  readonly events: string[] = [];
  override onCreate() {
    this.reconnectWindowMs = 200;
    this.onMessage(Ping, (c, n) => c.send(Pong, { n, id: c.id }));
  }
  override onJoin(c: RoomClient) {
    this.events.push(`join ${c.id}`);
  }
  override onDisconnect(c: RoomClient) {
    this.events.push(`disconnect ${c.id}`);
  }
  override onReconnect(c: RoomClient) {
    this.events.push(`reconnect ${c.id}`);
  }
  override onLeave(c: RoomClient, consented: boolean) {
    this.events.push(`leave ${c.id} ${consented}`);
  }
}

describe('disconnect, resume and reconnect', () => {
  it('a transport drop within the resume window: onDisconnect, then onReconnect on the same seat', async () => {
    const { rooms, joinRoom, restart } = memoryRooms({}, { resumeWindowMs: 5000 });
    rooms.define('echo', EchoRoom);
    const a = await joinRoom('joinOrCreate', 'echo');
    const room = rooms.getRoom(a.roomId) as EchoRoom;
    const client = room.clients[0];
    const seen: string[] = [];
    a.on('disconnect', () => seen.push('disconnect'));
    a.on('reconnect', () => seen.push('reconnect'));
    await restart();
    await until(() => room.events.includes(`reconnect ${client.id}`) && seen.length === 2, 'resume');
    expect(seen).toEqual(['disconnect', 'reconnect']);
    expect(room.events).toEqual([`join ${client.id}`, `disconnect ${client.id}`, `reconnect ${client.id}`]);
    expect(a.session.recovered).toBe(true);
    const pongs: { n: number; id: string }[] = [];
    a.on(Pong, (p) => pongs.push(p));
    a.send(Ping, 1);
    await until(() => pongs.length === 1, 'pong');
    expect(pongs[0]).toEqual({ n: 1, id: client.id });
    expect(rooms.metrics.reconnects).toEqual({ echo: 1 });
  });

  it('after the session resume window the client takes its seat back with its reconnection token', async () => {
    const { rooms, joinRoom, restart } = memoryRooms({}, { resumeWindowMs: 30 });
    rooms.define('echo', EchoRoom);
    const a = await joinRoom('joinOrCreate', 'echo');
    const room = rooms.getRoom(a.roomId) as EchoRoom;
    const id = room.clients[0].id;
    const firstSession = a.session.sessionId;
    await restart(80); // longer than the session's resume window, shorter than the room's 200 ms
    await until(() => room.events.includes(`reconnect ${id}`), 'seat taken back');
    expect(a.session.sessionId).not.toBe(firstSession); // a new session, not a resume
    expect(room.events).toEqual([`join ${id}`, `disconnect ${id}`, `reconnect ${id}`]);
    expect(room.clients.map((c) => c.id)).toEqual([id]);
    const pongs: number[] = [];
    a.on(Pong, (p) => pongs.push(p.n));
    a.send(Ping, 7);
    await until(() => pongs.length === 1, 'pong');
    expect((await rooms.query())[0].clients).toBe(1); // the seat was not counted twice
  });

  it('after the room reconnection window the seat is gone: onLeave(false), and the client gets reconnect-expired', async () => {
    const { rooms, joinRoom, restart } = memoryRooms({}, { resumeWindowMs: 30 });
    rooms.define('echo', EchoRoom);
    const a = await joinRoom('joinOrCreate', 'echo');
    const b = await joinRoom('joinOrCreate', 'echo'); // keeps the room alive
    const room = rooms.getRoom(a.roomId) as EchoRoom;
    const [ida] = room.clients.map((c) => c.id);
    const errors: RoomError[] = [];
    const left: boolean[] = [];
    a.on('error', (e) => errors.push(e));
    a.on('leave', (l) => left.push(l.consented));
    b.session.close(); // b leaves for good before the drop; only a is left to reconnect
    await until(() => room.clients.length === 1, 'b gone');
    await restart(400);
    await until(() => left.length === 1, 'client told');
    expect(errors.map((e) => e.code)).toEqual([RoomErrorCode.RECONNECT_EXPIRED]);
    expect(room.events).toContain(`leave ${ida} false`);
    expect(room.events.filter((e) => e.startsWith('reconnect'))).toEqual([]);
    expect(rooms.metrics.errors[RoomErrorCode.RECONNECT_EXPIRED]).toBe(1);
  });
});

describe('a seat held without a session', () => {
  it('counts messages to it as undelivered, and frees the seat when the window ends', async () => {
    // The crash below may reach the server as a lost transport (then the 50 ms resume window runs first).
    const { rooms, joinRoom } = memoryRooms({}, { resumeWindowMs: 50 });
    rooms.define('echo', EchoRoom);
    const a = await joinRoom('joinOrCreate', 'echo');
    const b = await joinRoom('joinOrCreate', 'echo');
    const room = rooms.getRoom(a.roomId) as EchoRoom;
    const held = room.clients.find((c) => c.id === a.clientId)!;
    await a.session.close(4500, 'crashed'); // not a leave: the seat is held for reconnectWindowMs (200 ms)
    await until(() => held.state === 'disconnected' && held.session.state === 'closed', 'seat held');
    expect(room.broadcast(Pong, { n: 1, id: 'x' })).toBe(1); // b only
    expect(rooms.metrics.undelivered).toEqual({ echo: 1 });
    await until(() => room.events.includes(`leave ${held.id} false`), 'window ended');
    expect((await rooms.query())[0].clients).toBe(1);
    expect(b.left).toBe(false);
  });
});
