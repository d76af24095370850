import type { RoomDriver, RoomListing, SeatRecord } from '@quiver/rooms';
import { ManualClock } from '@quiver/session';
import { describe, expect, it } from 'vitest';

/**
 * What every `RoomDriver` must do, run against `MemoryDriver` and `RedisDriver` alike. `make` builds a driver on a
 * fresh, empty registry with the given clock (seat expiry follows it).
 */
export function driverContract(
  name: string,
  make: (clock: ManualClock) => Promise<{ driver: RoomDriver; close(): Promise<void> }>,
): void {
  describe(`RoomDriver contract: ${name}`, () => {
    let n = 0;
    const listing = (patch: Partial<RoomListing> = {}): RoomListing => ({
      roomId: `r${++n}-${Math.random().toString(36).slice(2, 8)}`,
      name: 'arena',
      processId: 'p1',
      clients: 0,
      maxClients: 2,
      locked: false,
      private: false,
      metadata: {},
      createdAt: 1000 + n,
      ...patch,
    });
    const seat = (roomId: string, clock: ManualClock, extra: Partial<SeatRecord> = {}): SeatRecord => ({
      token: `${roomId}.${Math.random().toString(36).slice(2)}`,
      roomId,
      expiresAt: clock.now() + 1000,
      options: { mode: 'ffa', n: 1 },
      ...extra,
    });
    const withDriver = (fn: (d: RoomDriver, clock: ManualClock) => Promise<void>) => async () => {
      const clock = new ManualClock(1_000_000);
      const { driver, close } = await make(clock);
      try {
        await fn(driver, clock);
      } finally {
        await close();
      }
    };

    it(
      'creates, gets, updates and removes a listing; a duplicate id is refused; a late update revives nothing',
      withDriver(async (d) => {
        const l = listing({ metadata: { mode: 'ffa', tags: [] } });
        await d.create(l);
        expect(await d.get(l.roomId)).toEqual(l);
        await expect(d.create(l)).rejects.toThrow();
        await d.update(l.roomId, { locked: true, metadata: { mode: 'ctf' }, maxClients: null });
        expect(await d.get(l.roomId)).toEqual({
          ...l,
          locked: true,
          metadata: { mode: 'ctf' },
          maxClients: null,
        });
        await d.remove(l.roomId);
        expect(await d.get(l.roomId)).toBeUndefined();
        await d.update(l.roomId, { locked: false });
        expect(await d.get(l.roomId)).toBeUndefined();
        expect(await d.query({ includeUnavailable: true, includePrivate: true })).toEqual([]);
      }),
    );

    it(
      'query filters by name, privacy, lock, capacity (joined plus live reservations) and metadata',
      withDriver(async (d, clock) => {
        const open = listing({ metadata: { mode: 'ffa' } });
        const ctf = listing({ metadata: { mode: 'ctf' } });
        const priv = listing({ private: true });
        const locked = listing({ locked: true });
        const full = listing({ maxClients: 1 });
        const other = listing({ name: 'lobby', maxClients: null });
        for (const l of [open, ctf, priv, locked, full, other]) await d.create(l);
        expect(await d.reserveSeat(seat(full.roomId, clock))).toBe('ok');
        const ids = async (q: Parameters<RoomDriver['query']>[0]) =>
          (await d.query(q)).map((l) => l.roomId).sort();
        expect(await ids({ name: 'arena' })).toEqual([open.roomId, ctf.roomId].sort());
        expect(await ids({})).toEqual([open.roomId, ctf.roomId, other.roomId].sort());
        expect(await ids({ name: 'arena', metadata: { mode: 'ctf' } })).toEqual([ctf.roomId]);
        expect(await ids({ name: 'arena', includePrivate: true })).toEqual(
          [open.roomId, ctf.roomId, priv.roomId].sort(),
        );
        expect(await ids({ name: 'arena', includeUnavailable: true })).toEqual(
          [open.roomId, ctf.roomId, locked.roomId, full.roomId].sort(),
        );
        // The reservation expires: the room is available again.
        clock.advance(1000);
        expect(await ids({ name: 'arena' })).toContain(full.roomId);
      }),
    );

    it(
      'reserveSeat: not-found, locked (unless ignoreLock), full (unless ignoreCapacity), no limit with null',
      withDriver(async (d, clock) => {
        const l = listing({ maxClients: 2 });
        await d.create(l);
        expect(await d.reserveSeat(seat('nope', clock))).toBe('not-found');
        expect(await d.reserveSeat(seat(l.roomId, clock))).toBe('ok');
        expect(await d.reserveSeat(seat(l.roomId, clock))).toBe('ok');
        expect(await d.reserveSeat(seat(l.roomId, clock))).toBe('full');
        expect(await d.reservations(l.roomId)).toBe(2);
        expect(await d.reserveSeat(seat(l.roomId, clock), { ignoreCapacity: true })).toBe('ok');
        expect(await d.reservations(l.roomId)).toBe(3);
        await d.update(l.roomId, { locked: true });
        expect(await d.reserveSeat(seat(l.roomId, clock), { ignoreCapacity: true })).toBe('locked');
        expect(await d.reserveSeat(seat(l.roomId, clock), { ignoreLock: true, ignoreCapacity: true })).toBe(
          'ok',
        );
        const unlimited = listing({ maxClients: null });
        await d.create(unlimited);
        for (let i = 0; i < 20; i++) expect(await d.reserveSeat(seat(unlimited.roomId, clock))).toBe('ok');
        expect(await d.reservations(unlimited.roomId)).toBe(20);
      }),
    );

    it(
      'consumeSeat turns a reservation into a joined client once; used, expired and unknown tokens are told apart',
      withDriver(async (d, clock) => {
        const l = listing({ maxClients: 2 });
        await d.create(l);
        const s = seat(l.roomId, clock, { reconnect: `${l.roomId}.old` });
        expect(await d.reserveSeat(s)).toBe('ok');
        expect(await d.consumeSeat(l.roomId, s.token)).toEqual(s);
        expect((await d.get(l.roomId))?.clients).toBe(1);
        expect(await d.reservations(l.roomId)).toBe(0);
        expect(await d.consumeSeat(l.roomId, s.token)).toBe('used');
        expect(await d.consumeSeat(l.roomId, `${l.roomId}.unknown`)).toBe('invalid');
        expect(await d.consumeSeat('nope', s.token)).toBe('invalid');
        const late = seat(l.roomId, clock);
        expect(await d.reserveSeat(late)).toBe('ok');
        expect(await d.reserveSeat(seat(l.roomId, clock))).toBe('full');
        clock.advance(1000);
        // Its expiry freed the seat before anyone tried the token.
        expect(await d.reservations(l.roomId)).toBe(0);
        expect(await d.consumeSeat(l.roomId, late.token)).toBe('expired');
        expect((await d.get(l.roomId))?.clients).toBe(1);
      }),
    );

    it(
      'releaseClient frees a seat and never goes below zero',
      withDriver(async (d, clock) => {
        const l = listing({ maxClients: 1 });
        await d.create(l);
        const s = seat(l.roomId, clock);
        await d.reserveSeat(s);
        await d.consumeSeat(l.roomId, s.token);
        expect(await d.reserveSeat(seat(l.roomId, clock))).toBe('full');
        await d.releaseClient(l.roomId);
        await d.releaseClient(l.roomId);
        expect((await d.get(l.roomId))?.clients).toBe(0);
        expect(await d.reserveSeat(seat(l.roomId, clock))).toBe('ok');
        await d.releaseClient('nope');
      }),
    );
  });
}
