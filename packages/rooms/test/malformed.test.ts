/**
 * A peer that speaks the rooms protocol badly: malformed frames get typed errors and counts; only a refused join
 * closes its session, and the room goes on.
 */
import { describe, expect, it } from 'vitest';
import { message, protocolMessages, Room, RoomErrorCode } from '../src/index.js';
import { AckMsg, CancelMsg, ErrorMsg, JoinMsg, RequestMsg, ResponseMsg } from '../src/protocol.js';
import { joinWithSeat } from '../src/client/index.js';
import { memoryRooms, until, useCleanup } from './support.js';

useCleanup();

const Note = message<string>('note');

class Quiet extends Room {
  override maxPendingRequests = 2;
  notes = 0;
  override onCreate() {
    this.onMessage(Note, () => this.notes++);
    this.onRequest({ name: 'wait', kind: 'request' }, () => new Promise(() => {}));
  }
}

describe('malformed rooms frames', () => {
  it('are refused with typed errors and counted; the room and the other sessions go on', async () => {
    const { rooms, clientSession, joinRoom } = memoryRooms();
    rooms.define('quiet', Quiet);
    const good = await joinRoom('joinOrCreate', 'quiet');
    const room = rooms.getRoom(good.roomId) as Quiet;

    // Protocol frames before any join are ignored (no room to route to); a bad seat is refused.
    const raw = await clientSession({ messages: protocolMessages });
    const errors: { code: string; message?: string }[] = [];
    raw.on(ErrorMsg, (f) => errors.push({ code: f.error.code, message: f.message }));
    raw.send(RequestMsg, { i: 1, n: 'wait' });
    // biome-ignore lint/suspicious/noExplicitAny: what a hostile peer sends
    raw.send(JoinMsg, { seat: 42 } as any);
    await until(() => errors.length === 1, 'join refused');
    expect(errors[0]).toEqual({ code: RoomErrorCode.SEAT_INVALID, message: JoinMsg.name });
    await until(() => raw.state === 'closed', 'refused session closed');

    // A joined peer sending garbage.
    const r = await rooms.joinById(good.roomId);
    const bad = await clientSession({ messages: protocolMessages });
    const handle = await joinWithSeat(bad, r.seat);
    const badErrors: string[] = [];
    const responses: unknown[] = [];
    bad.on(ErrorMsg, (f) => badErrors.push(f.error.code));
    bad.on(ResponseMsg, (f) => responses.push(f));
    // biome-ignore lint/suspicious/noExplicitAny: hostile frames
    const hostile: [typeof RequestMsg, any][] = [
      [RequestMsg, { i: 'one', n: 'wait' }],
      [RequestMsg, null],
      [RequestMsg, { i: -1, n: 'wait' }],
      [RequestMsg, { i: 3, n: 7 }],
    ];
    for (const [t, f] of hostile) bad.send(t, f);
    // biome-ignore lint/suspicious/noExplicitAny: hostile frames
    bad.send(CancelMsg, { i: {} } as any);
    // biome-ignore lint/suspicious/noExplicitAny: hostile frames
    bad.send(AckMsg, 'not bytes' as any);
    await until(() => badErrors.length === 4, 'four bad-request errors');
    expect(badErrors).toEqual(Array(4).fill(RoomErrorCode.BAD_REQUEST));
    // Requests in flight are bounded per client.
    bad.send(RequestMsg, { i: 10, n: 'wait' });
    bad.send(RequestMsg, { i: 11, n: 'wait' });
    bad.send(RequestMsg, { i: 12, n: 'wait' });
    bad.send(RequestMsg, { i: 10, n: 'wait' }); // an id already pending
    await until(() => responses.length === 1 && badErrors.length === 5, 'over the limit');
    expect(responses[0]).toMatchObject({ i: 12, e: { code: RoomErrorCode.TOO_MANY_REQUESTS } });
    expect(bad.state).toBe('open');
    expect(handle.left).toBe(false);

    // The room and the well-behaved client are unaffected.
    good.send(Note, 'hi');
    await until(() => room.notes === 1, 'note delivered');
    expect(rooms.metrics.errors).toMatchObject({
      [RoomErrorCode.SEAT_INVALID]: 1,
      [RoomErrorCode.BAD_REQUEST]: 5,
      [RoomErrorCode.TOO_MANY_REQUESTS]: 1,
    });
  });
});
