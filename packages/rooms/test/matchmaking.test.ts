import { describe, expect, it } from 'vitest';
import { MemoryPresence, Room, type RoomClient, RoomError, RoomErrorCode } from '../src/index.js';
import { joinWithSeat } from '../src/client/index.js';
import { memoryRooms, until, useCleanup } from './support.js';

useCleanup();

class Arena extends Room<{ mode?: string }> {
  override maxClients = 8;
}

/** Its creation for mode `slow` waits until `SlowStart.go` is called. */
class SlowStart extends Room<{ mode?: string }> {
  static go: () => void = () => {};
  static readonly started = new Promise<void>((r) => {
    SlowStart.go = r;
  });
  override maxClients = 8;
  override async onCreate(options: { mode?: string }) {
    if (options.mode === 'slow') await SlowStart.started;
  }
}

class Broken extends Room {
  override onCreate() {
    throw new Error('no map loaded');
  }
}

class Picky extends Room<{ password?: string }, Record<string, unknown>, { role: string }> {
  override onAuth(_c: RoomClient, options: { password?: string }) {
    if (options.password === 'throw') throw new Error('auth backend down');
    return options.password === 'open' ? { role: 'player' } : false;
  }
  override onJoin(
    client: RoomClient<Record<string, unknown>, { role: string }>,
    options: { password?: string },
  ) {
    if (options.password === 'open' && client.auth.role !== 'player') throw new Error('unreachable');
  }
}

class JoinThrows extends Room {
  override onJoin(): void {
    throw new RoomError('banned', 'you are banned');
  }
}

describe('matchmaking', () => {
  it('a join storm: 200 clients joinOrCreate at once into rooms of 8, each in exactly one room, none over, no seat leaked', async () => {
    // All 200 come from one (memory) address at once: the per-address handshake budget is raised for them.
    // The creation lock (cross-process on Redis) is counted: taken once per batch of rooms, not once per room nor
    // per request that found every room full. The first batch is one room (the type's capacity is unknown until
    // a room exists); then the 192 waiting requests need 24 rooms, made in one batch.
    const presence = new MemoryPresence();
    let locks = 0;
    const set = presence.set.bind(presence);
    presence.set = (key, value, options) => {
      if (key.startsWith('quiver:mm:create:') && options?.onlyIfAbsent) locks++;
      return set(key, value, options);
    };
    const { rooms, clientSession } = memoryRooms({ presence }, { preAuth: { maxPendingPerIp: 256 } });
    rooms.define('arena', Arena);
    const joined = await Promise.all(
      Array.from({ length: 200 }, async () => {
        const r = await rooms.joinOrCreate('arena', { mode: 'ffa' });
        return joinWithSeat(await clientSession(), r.seat);
      }),
    );
    const local = rooms.localRooms;
    expect(local.length).toBe(25); // rooms fill before new ones open
    expect(locks).toBe(2);
    expect(rooms.metrics.seatsReserved).toBe(200);
    const byRoom = new Map<string, string[]>();
    for (const room of local) {
      expect(room.clients.length).toBeLessThanOrEqual(8);
      byRoom.set(
        room.roomId,
        room.clients.map((c) => c.id),
      );
    }
    const all = [...byRoom.values()].flat();
    expect(all.length).toBe(200);
    expect(new Set(all).size).toBe(200);
    // Each client's view agrees with the server's.
    for (const c of joined) expect(byRoom.get(c.roomId)).toContain(c.clientId);
    for (const listing of await rooms.query()) {
      expect(listing.clients).toBe(8);
      expect(await rooms.driver.reservations(listing.roomId)).toBe(0);
    }
    await Promise.all(joined.map((c) => c.leave()));
    await until(() => rooms.localRooms.length === 0, 'every room disposed');
    expect(await rooms.query()).toEqual([]);
    expect(rooms.metrics.roomsDisposed.arena).toBe(25);
  });

  it('filterBy keeps different options apart; private rooms are joined by id only', async () => {
    const { rooms } = memoryRooms();
    rooms.define('arena', Arena, { filterBy: ['mode'] });
    const a = await rooms.joinOrCreate('arena', { mode: 'ffa' });
    const b = await rooms.joinOrCreate('arena', { mode: 'ctf' });
    const c = await rooms.joinOrCreate('arena', { mode: 'ffa' });
    expect(b.roomId).not.toBe(a.roomId);
    expect(c.roomId).toBe(a.roomId);
    expect((await rooms.query({ name: 'arena' })).map((l) => l.metadata.mode).sort()).toEqual(['ctf', 'ffa']);
    await rooms.getRoom(b.roomId)!.setPrivate(true);
    expect((await rooms.query()).map((l) => l.roomId)).toEqual([a.roomId]);
    await expect(rooms.join('arena', { mode: 'ctf' })).rejects.toMatchObject({
      code: RoomErrorCode.NO_ROOM_AVAILABLE,
    });
    expect((await rooms.joinById(b.roomId)).roomId).toBe(b.roomId);
  });

  it('the creation lock is per room type and filter values: a slow creation does not hold up rooms of other values', async () => {
    const presence = new MemoryPresence();
    const taken: string[] = [];
    const set = presence.set.bind(presence);
    presence.set = async (key, value, options) => {
      const ok = await set(key, value, options);
      if (ok && key.startsWith('quiver:mm:create:') && options?.onlyIfAbsent) taken.push(key);
      return ok;
    };
    const { rooms } = memoryRooms({ presence });
    rooms.define('arena', SlowStart, { filterBy: ['mode'] });
    let slowDone = false;
    const slow = rooms.joinOrCreate('arena', { mode: 'slow' }).finally(() => {
      slowDone = true;
    });
    // Once the slow creation holds its lock, another mode still gets its room (one lock per type: it waited).
    await until(() => rooms.localRooms.length === 1, 'the slow room being created');
    const other = await rooms.joinOrCreate('arena', { mode: 'ffa' });
    expect(slowDone).toBe(false);
    // Both locks taken, the slow one still held (with one lock per type, the other waited for it to expire).
    expect(taken.length).toBe(2);
    expect(new Set(taken).size).toBe(2);
    expect(await presence.get(taken[0]!)).toBeDefined();
    SlowStart.go();
    expect((await slow).roomId).not.toBe(other.roomId);
  });

  it('onCreate that throws, onAuth that refuses or throws, onJoin that throws: typed errors, counted, no seat or room left', async () => {
    const errors: string[] = [];
    const { rooms, clientSession } = memoryRooms({
      onError: (e, where) => errors.push(`${where}: ${e.message}`),
    });
    rooms.define('broken', Broken).define('picky', Picky).define('join-throws', JoinThrows);
    await expect(rooms.joinOrCreate('broken')).rejects.toMatchObject({ code: RoomErrorCode.CREATE_FAILED });
    expect(await rooms.query()).toEqual([]);
    expect(rooms.localRooms).toEqual([]);
    expect(errors).toEqual(['broken.onCreate: no map loaded']);

    // Seats reserved up front: a refused join empties the room otherwise, and an empty room is disposed.
    const r1 = await rooms.create('picky');
    const r2 = await rooms.joinById(r1.roomId, { password: 'throw' });
    const r3 = await rooms.joinById(r1.roomId, { password: 'open' });
    await expect(joinWithSeat(await clientSession(), r1.seat)).rejects.toMatchObject({
      code: RoomErrorCode.AUTH_FAILED,
    });
    await expect(joinWithSeat(await clientSession(), r2.seat)).rejects.toMatchObject({
      code: RoomErrorCode.AUTH_FAILED,
    });
    const ok = await joinWithSeat(await clientSession(), r3.seat);
    expect(ok.roomId).toBe(r1.roomId);
    const listing = (await rooms.query()).find((l) => l.roomId === r1.roomId)!;
    expect(listing.clients).toBe(1); // the refused joins freed their seats
    expect(await rooms.driver.reservations(r1.roomId)).toBe(0);

    const r4 = await rooms.create('join-throws');
    await expect(joinWithSeat(await clientSession(), r4.seat)).rejects.toMatchObject({ code: 'banned' });
    await until(() => rooms.getRoom(r4.roomId) === undefined, 'empty again: auto-disposed');
    expect(rooms.metrics.errors).toMatchObject({ 'create-failed': 1, 'auth-failed': 2, application: 1 });
  });
});
