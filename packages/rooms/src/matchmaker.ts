import { type Clock, randomToken } from '@quiver/session';
import type { ReserveOutcome, RoomDriver, RoomListing, RoomQuery, SeatRecord } from './driver.js';
import { RoomError, RoomErrorCode } from './errors.js';
import type { Presence } from './presence.js';

/** What matchmaking answers: a seat held in a room until `expiresAt`; connect and join with `seat`. */
export interface SeatReservation {
  /** The room the seat is in (for `joinById` and logs). */
  roomId: string;
  /** The room type's name. */
  roomName: string;
  /** The process hosting the room: its session endpoints are where to connect. */
  processId: string;
  /** The seat token: `q.room.join { seat }` on a session to that process takes the seat. */
  seat: string;
  /** Server-clock milliseconds after which an unused seat is free again (`seat-expired`). */
  expiresAt: number;
  /** Set when the seat takes back a client's place (`reconnect`). */
  reconnect?: boolean;
}

/** The matchmaking operations a client may call (`POST <path>/matchmake/:method/:roomName`). */
export type MatchmakeMethod = 'joinOrCreate' | 'create' | 'join' | 'joinById' | 'reconnect';
/** Every {@link MatchmakeMethod}, for routing and validating the method a client names. */
export const matchmakeMethods: readonly MatchmakeMethod[] = [
  'joinOrCreate',
  'create',
  'join',
  'joinById',
  'reconnect',
];

export interface MatchmakerDeps {
  driver: RoomDriver;
  presence: Presence;
  clock: Clock;
  seatReservationMs: number;
  /** Creates a room of a defined type in this process; throws `RoomError` (`create-failed`, unknown type). */
  createRoom(name: string, options: Record<string, unknown>): Promise<RoomListing>;
  /** The option keys that must equal a room's metadata for it to be joined (`filterBy` of the room type). */
  filterBy(name: string): readonly string[] | undefined;
  /** Counts a refused matchmaking request. */
  count(code: string): void;
  /** Counts a reserved seat. */
  reserved(): void;
  /** How long a create lock held by another process is waited on before retrying. Default 10 ms. */
  lockRetryMs?: number;
}

/** The presence channel a room's process listens on for seats reserved in it (from any process). */
export function roomChannel(roomId: string): string {
  return `quiver:room:${roomId}`;
}

/**
 * Finds or creates rooms and reserves seats, using only the driver's atomic operations and presence locks, so
 * several processes can matchmake against one registry.
 */
export class Matchmaker {
  // The creation of a room of one type (and filter values) this process is running, if any: a join storm waits on it (a promise, not
  // the cross-process lock), then all of its requests try the new room at once. Only one of them goes on to
  // create the next room; the others never queue behind each other's `tryJoin`.
  private readonly creating = new Map<string, Promise<unknown>>();

  constructor(private readonly deps: MatchmakerDeps) {}

  async joinOrCreate(name: string, options: Record<string, unknown> = {}): Promise<SeatReservation> {
    return this.guard(async () => {
      this.known(name);
      // Requests with other filter values would not join the room being created: they do not wait for it.
      const key = `${name}\u0000${JSON.stringify(this.filter(name, options) ?? {})}`;
      for (;;) {
        const r = await this.tryJoin(name, options);
        if (r) return r;
        const inFlight = this.creating.get(key);
        if (inFlight) {
          await inFlight.catch(() => {});
          continue;
        }
        // This request creates: under the cross-process lock, checking once more (another process may have
        // opened a room meanwhile).
        const run = this.withPresenceLock(
          `quiver:mm:create:${name}`,
          async () => (await this.tryJoin(name, options)) ?? this.createAndReserve(name, options),
        );
        this.creating.set(key, run);
        try {
          return await run;
        } finally {
          if (this.creating.get(key) === run) this.creating.delete(key);
        }
      }
    });
  }

  async create(name: string, options: Record<string, unknown> = {}): Promise<SeatReservation> {
    return this.guard(async () => {
      this.known(name);
      return this.createAndReserve(name, options);
    });
  }

  async join(name: string, options: Record<string, unknown> = {}): Promise<SeatReservation> {
    return this.guard(async () => {
      this.known(name);
      const r = await this.tryJoin(name, options);
      if (!r) throw new RoomError(RoomErrorCode.NO_ROOM_AVAILABLE, `no '${name}' room to join`);
      return r;
    });
  }

  async joinById(roomId: string, options: Record<string, unknown> = {}): Promise<SeatReservation> {
    return this.guard(async () => {
      const listing = typeof roomId === 'string' ? await this.deps.driver.get(roomId) : undefined;
      if (!listing) throw new RoomError(RoomErrorCode.ROOM_NOT_FOUND, 'no such room');
      const seat = this.seat(roomId, options);
      const outcome = await this.deps.driver.reserveSeat(seat);
      if (outcome !== 'ok') throw refused(outcome);
      return this.reserved(listing, seat);
    });
  }

  /** A seat that takes back the place of the client whose `reconnectToken` this is, if the room still holds it. */
  async reconnect(reconnectToken: string): Promise<SeatReservation> {
    return this.guard(async () => {
      const roomId = typeof reconnectToken === 'string' ? reconnectToken.split('.')[0] : '';
      const listing = roomId ? await this.deps.driver.get(roomId) : undefined;
      if (!listing) throw new RoomError(RoomErrorCode.RECONNECT_EXPIRED, 'the room is gone');
      const seat = { ...this.seat(roomId, {}), reconnect: reconnectToken };
      const outcome = await this.deps.driver.reserveSeat(seat, { ignoreLock: true, ignoreCapacity: true });
      if (outcome !== 'ok') throw new RoomError(RoomErrorCode.RECONNECT_EXPIRED, 'the room is gone');
      return { ...(await this.reserved(listing, seat)), reconnect: true };
    });
  }

  query(query: RoomQuery): Promise<RoomListing[]> {
    return this.deps.driver.query(query);
  }

  private known(name: string): void {
    if (typeof name !== 'string' || this.deps.filterBy(name) === undefined) {
      throw new RoomError(RoomErrorCode.UNKNOWN_ROOM_TYPE, 'no room type of that name');
    }
  }

  private async tryJoin(
    name: string,
    options: Record<string, unknown>,
  ): Promise<SeatReservation | undefined> {
    const metadata = this.filter(name, options);
    const rooms = await this.deps.driver.query({ name, metadata });
    // Fullest first: players meet others sooner and rooms fill before new ones open.
    rooms.sort((a, b) => b.clients - a.clients || a.createdAt - b.createdAt);
    for (const listing of rooms) {
      const seat = this.seat(listing.roomId, options);
      if ((await this.deps.driver.reserveSeat(seat)) === 'ok') return this.reserved(listing, seat);
    }
    return undefined;
  }

  private async createAndReserve(name: string, options: Record<string, unknown>): Promise<SeatReservation> {
    const listing = await this.deps.createRoom(name, options);
    const seat = this.seat(listing.roomId, options);
    const outcome = await this.deps.driver.reserveSeat(seat);
    if (outcome !== 'ok') throw refused(outcome);
    return this.reserved(listing, seat);
  }

  private filter(name: string, options: Record<string, unknown>): Record<string, unknown> | undefined {
    const keys = this.deps.filterBy(name);
    if (!keys || keys.length === 0) return undefined;
    return Object.fromEntries(keys.map((k) => [k, options[k]]));
  }

  private seat(roomId: string, options: Record<string, unknown>): SeatRecord {
    return {
      token: `${roomId}.${randomToken(16)}`,
      roomId,
      expiresAt: this.deps.clock.now() + this.deps.seatReservationMs,
      options,
    };
  }

  private async reserved(listing: RoomListing, seat: SeatRecord): Promise<SeatReservation> {
    this.deps.reserved();
    await this.deps.presence.publish(roomChannel(listing.roomId), String(seat.expiresAt));
    return {
      roomId: listing.roomId,
      roomName: listing.name,
      processId: listing.processId,
      seat: seat.token,
      expiresAt: seat.expiresAt,
    };
  }

  private async withPresenceLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const owner = randomToken(8);
    const { presence, clock } = this.deps;
    for (;;) {
      if (await presence.set(key, owner, { ttlMs: 5000, onlyIfAbsent: true })) break;
      await new Promise<void>((r) => clock.setTimeout(r, this.deps.lockRetryMs ?? 10));
    }
    try {
      return await fn();
    } finally {
      await presence.del(key, owner);
    }
  }

  /** Runs `fn`, counting a failure as a refused matchmaking request would be. */
  guarded<T>(fn: () => Promise<T>): Promise<T> {
    return this.guard(fn);
  }

  private async guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      const e =
        err instanceof RoomError ? err : new RoomError(RoomErrorCode.MATCHMAKE_FAILED, 'matchmaking failed');
      this.deps.count(e.code);
      throw e;
    }
  }
}

function refused(outcome: Exclude<ReserveOutcome, 'ok'>): RoomError {
  if (outcome === 'full') return new RoomError(RoomErrorCode.ROOM_FULL, 'the room is full');
  if (outcome === 'locked') return new RoomError(RoomErrorCode.ROOM_LOCKED, 'the room is locked');
  return new RoomError(RoomErrorCode.ROOM_NOT_FOUND, 'no such room');
}
