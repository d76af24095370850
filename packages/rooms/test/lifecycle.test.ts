import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { message, request, Room, type RoomClient, RoomError, RoomErrorCode } from '../src/index.js';
import { memoryRooms, until, useCleanup } from './support.js';

useCleanup();

const Chat = message('chat', z.object({ text: z.string().max(100) }));
const Said = message<{ from: string; text: string }>('said');
const Add = request('add', z.object({ a: z.number(), b: z.number() })).returns<number>();
const Slow = request<{ ms: number }, string>('slow');
const Boom = request<null, never>('boom');
const Typed = request<null, never>('typed');
const Missing = request<null, null>('missing');

const log: string[] = [];

class ChatRoom extends Room<{ topic?: string; name?: string }, { name: string }> {
  override maxClients = 3;
  slowAborted = 0;
  override onCreate(options: { topic?: string }) {
    log.push(`create ${options.topic ?? ''}`);
    this.onMessage(Chat, (client, m) =>
      this.broadcast(Said, { from: client.data.name, text: m.text }, { except: client }),
    );
    this.onRequest(Add, (_c, { a, b }) => a + b);
    this.onRequest(
      Slow,
      (_c, { ms }, { signal }) =>
        new Promise<string>((resolve) => {
          const t = setTimeout(() => resolve('late'), ms);
          signal.addEventListener('abort', () => {
            clearTimeout(t);
            this.slowAborted++;
          });
        }),
    );
    this.onRequest(Boom, () => {
      throw new Error('kaboom');
    });
    this.onRequest(Typed, () => {
      throw new RoomError('not-your-turn', 'wait', { turn: 2 });
    });
  }
  override onJoin(client: RoomClient<{ name: string }>, options: { name?: string }) {
    client.data.name = String(options.name ?? client.id);
    log.push(`join ${client.data.name}`);
  }
  override onLeave(client: RoomClient<{ name: string }>, consented: boolean) {
    log.push(`leave ${client.data.name} ${consented}`);
  }
  override onDispose() {
    log.push('dispose');
  }
}

describe('rooms on the memory transport', () => {
  it('runs the lifecycle, broadcasts with except, answers requests, validates, and disposes when empty', async () => {
    log.length = 0;
    const { rooms, joinRoom } = memoryRooms({}, { resumeWindowMs: 300 });
    rooms.define('chat', ChatRoom);
    const a = await joinRoom('joinOrCreate', 'chat', { topic: 'x', name: 'ann' });
    const b = await joinRoom('joinOrCreate', 'chat', { name: 'bob' });
    const c = await joinRoom('joinOrCreate', 'chat', { name: 'cy' });
    expect(new Set([a.roomId, b.roomId, c.roomId]).size).toBe(1);
    expect(log).toEqual(['create x', 'join ann', 'join bob', 'join cy']);

    const got: Record<string, string[]> = { a: [], b: [], c: [] };
    a.on(Said, (m) => got.a.push(`${m.from}:${m.text}`));
    b.on(Said, (m) => got.b.push(`${m.from}:${m.text}`));
    c.on(Said, (m) => got.c.push(`${m.from}:${m.text}`));
    a.send(Chat, { text: 'hi' });
    await until(() => got.b.length === 1 && got.c.length === 1, 'broadcast');
    expect(got).toEqual({ a: [], b: ['ann:hi'], c: ['ann:hi'] });

    // Request/response, typed errors, no handler.
    expect(await a.request(Add, { a: 2, b: 3 })).toBe(5);
    await expect(a.request(Boom, null)).rejects.toMatchObject({ code: RoomErrorCode.HANDLER_ERROR });
    await expect(a.request(Typed, null)).rejects.toMatchObject({ code: 'not-your-turn', data: { turn: 2 } });
    await expect(a.request(Missing, null)).rejects.toMatchObject({ code: RoomErrorCode.NO_HANDLER });
    expect(rooms.metrics.errors).toMatchObject({ 'handler-error': 1, application: 1, 'no-handler': 1 });

    // Validation: the request and the message are refused with a typed error, counted, and the session goes on.
    // biome-ignore lint/suspicious/noExplicitAny: a payload the types forbid, as a peer could send it
    await expect(a.request(Add, { a: 'two', b: 3 } as any)).rejects.toMatchObject({
      code: RoomErrorCode.VALIDATION,
      data: { issues: [expect.objectContaining({ path: ['a'] })] },
    });
    const errors: RoomError[] = [];
    a.on('error', (e) => errors.push(e));
    // biome-ignore lint/suspicious/noExplicitAny: as above
    a.send(Chat, { text: 42 } as any);
    await until(() => errors.length === 1, 'validation error');
    expect(errors[0].code).toBe(RoomErrorCode.VALIDATION);
    expect(rooms.metrics.invalid).toEqual({ add: 1, chat: 1 });
    expect(await a.request(Add, { a: 1, b: 1 })).toBe(2);
    expect(a.session.state).toBe('open');

    // Timeout: the client gives up and the server's handler is aborted.
    const room = rooms.getRoom(a.roomId) as ChatRoom;
    await expect(a.request(Slow, { ms: 5000 }, { timeoutMs: 50 })).rejects.toMatchObject({
      code: RoomErrorCode.TIMEOUT,
    });
    await until(() => room.slowAborted === 1, 'server-side abort');

    // Cancellation on leave: a pending request rejects with `left`, the server aborts its handler.
    const pending = b.request(Slow, { ms: 5000 });
    await b.leave();
    await expect(pending).rejects.toMatchObject({ code: RoomErrorCode.LEFT });
    await until(() => room.slowAborted === 2 && room.clients.length === 2, 'leave');
    expect(log).toContain('leave bob true');

    // Not consented: the session just goes away.
    await c.session.close(4500, 'crash');
    await until(() => room.clients.length === 1, 'c gone');
    expect(log).toContain('leave cy false');
    await a.leave();
    await until(() => log.includes('dispose'), 'auto-dispose');
    expect(rooms.getRoom(a.roomId)).toBeUndefined();
    expect(await rooms.query()).toEqual([]);
    expect(rooms.metrics.roomsDisposed).toEqual({ chat: 1 });
  });

  it('refuses full, locked, unknown and disposed rooms, and expired, used or forged seats, with typed errors', async () => {
    const { rooms, joinRoom, clientSession } = memoryRooms({ seatReservationMs: 200 });
    rooms.define('chat', ChatRoom);
    await expect(rooms.joinOrCreate('nope')).rejects.toMatchObject({ code: RoomErrorCode.UNKNOWN_ROOM_TYPE });
    await expect(rooms.joinById('nope')).rejects.toMatchObject({ code: RoomErrorCode.ROOM_NOT_FOUND });
    await expect(rooms.join('chat')).rejects.toMatchObject({ code: RoomErrorCode.NO_ROOM_AVAILABLE });
    const a = await joinRoom('create', 'chat', { name: 'a' });
    await joinRoom('join', 'chat', { name: 'b' });
    await joinRoom('join', 'chat', { name: 'c' });
    await expect(rooms.joinById(a.roomId)).rejects.toMatchObject({ code: RoomErrorCode.ROOM_FULL });
    // joinOrCreate opens a second room rather than overfilling the first.
    const d = await joinRoom('joinOrCreate', 'chat', { name: 'd' });
    expect(d.roomId).not.toBe(a.roomId);
    await rooms.getRoom(d.roomId)!.lock();
    await expect(rooms.joinById(d.roomId)).rejects.toMatchObject({ code: RoomErrorCode.ROOM_LOCKED });

    // A seat used twice, a forged seat, an expired seat.
    await rooms.getRoom(d.roomId)!.unlock();
    const r = await rooms.joinById(d.roomId);
    const { joinWithSeat } = await import('../src/client/index.js');
    await joinWithSeat(await clientSession(), r.seat);
    await expect(joinWithSeat(await clientSession(), r.seat)).rejects.toMatchObject({
      code: RoomErrorCode.SEAT_USED,
    });
    await expect(joinWithSeat(await clientSession(), `${d.roomId}.forged`)).rejects.toMatchObject({
      code: RoomErrorCode.SEAT_INVALID,
    });
    await expect(joinWithSeat(await clientSession(), 'noroom.forged')).rejects.toMatchObject({
      code: RoomErrorCode.ROOM_NOT_FOUND,
    });
    const late = await rooms.joinById(d.roomId);
    await new Promise((r) => setTimeout(r, 250));
    await expect(joinWithSeat(await clientSession(), late.seat)).rejects.toMatchObject({
      code: RoomErrorCode.SEAT_EXPIRED,
    });
    // No seat leaked: the expired one is free again.
    expect((await rooms.query()).find((l) => l.roomId === d.roomId)?.clients).toBe(2);
    expect(await rooms.driver.reservations(d.roomId)).toBe(0);

    // Disposed between reservation and join.
    const gone = await rooms.joinById(d.roomId);
    await rooms.getRoom(d.roomId)!.disconnect();
    await expect(joinWithSeat(await clientSession(), gone.seat)).rejects.toMatchObject({
      code: RoomErrorCode.ROOM_NOT_FOUND,
    });
    expect(rooms.metrics.errors).toMatchObject({
      'unknown-room-type': 1,
      'room-not-found': 3,
      'no-room-available': 1,
      'room-full': 1,
      'room-locked': 1,
      'seat-used': 1,
      'seat-invalid': 1,
      'seat-expired': 1,
    });
  });
});
