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
  /** Creates a room of a defined type (on the node placement picks); throws `RoomError` (`create-failed`, unknown type). */
  createRoom(name: string, options: Record<string, unknown>): Promise<RoomListing>;
  /**
   * Creates `count` rooms of a type at once (placed as a whole, so they spread over the nodes); settles with the
   * rooms made, and rejects only when none could be. Default `count` calls of `createRoom`.
   */
  createRooms?(name: string, options: Record<string, unknown>, count: number): Promise<RoomListing[]>;
  /** The option keys that must equal a room's metadata for it to be joined (`filterBy` of the room type). */
  filterBy(name: string): readonly string[] | undefined;
  /** Counts a refused matchmaking request. */
  count(code: string): void;
  /** Counts a reserved seat. */
  reserved(): void;
  /** How long a create lock held by another process is waited on before retrying. Default 10 ms. */
  lockRetryMs?: number;
  /** This process, in the demand other processes read (see `creationBatchMax`). Default random. */
  processId?: string;
  /**
   * At most this many rooms of one type are created at once for the `joinOrCreate` requests of this process that
   * found every room full (a join storm, the clients of a lost node), and of the other processes waiting for the
   * creation lock meanwhile. Default 32.
   */
  creationBatchMax?: number;
}

/** Rooms being created for the `joinOrCreate` requests of one type and filter values that found no free seat. */
interface Batch {
  rooms: Promise<RoomListing[]>;
  /** The next waiter's place: waiter `k` tries room `floor(k / maxClients)` first, so they spread at once. */
  next: number;
}

/** How long a process's demand stays in the presence hash without being refreshed (a process that died waiting). */
const DEMAND_TTL_MS = 5000;

/** The presence channel a room's process listens on for seats reserved in it (from any process). */
export function roomChannel(roomId: string): string {
  return `quiver:room:${roomId}`;
}

/**
 * Finds or creates rooms and reserves seats, using only the driver's atomic operations and presence locks, so
 * several processes can matchmake against one registry.
 */
export class Matchmaker {
  // The rooms of one type (and filter values) this process is creating, if any: a join storm waits on them (a
  // promise, not the cross-process lock), then each request tries its own share of the new rooms. The lock is taken
  // once per batch, and a batch holds as many rooms as the requests waiting need, so creating rooms for N waiting
  // requests takes about one creation's time, not N / maxClients of them one after the other.
  private readonly creating = new Map<string, Batch>();
  /** `joinOrCreate` requests of this process under way, by type and filter values. */
  private readonly demand = new Map<string, number>();
  /** `maxClients` of the rooms of each type, as last seen: how many waiting requests one new room seats. */
  private readonly capacity = new Map<string, number>();

  private readonly processId: string;

  constructor(private readonly deps: MatchmakerDeps) {
    this.processId = deps.processId ?? randomToken(6);
  }

  async joinOrCreate(name: string, options: Record<string, unknown> = {}): Promise<SeatReservation> {
    return this.guard(async () => {
      this.known(name);
      // Requests with other filter values would not join the rooms being created: they do not wait for them.
      const key = `${name}\u0000${JSON.stringify(this.filter(name, options) ?? {})}`;
      this.demand.set(key, (this.demand.get(key) ?? 0) + 1);
      try {
        let share: RoomListing | undefined;
        for (;;) {
          if (share) {
            const seat = this.seat(share.roomId, options);
            if ((await this.deps.driver.reserveSeat(seat)) === 'ok') return this.reserved(share, seat);
            share = undefined;
          }
          const r = await this.tryJoin(name, options);
          if (r) return r;
          let batch = this.creating.get(key);
          let slot: number;
          if (batch) {
            slot = batch.next++;
          } else {
            // This request creates, under the cross-process lock, for every request of this process waiting.
            const created: Batch = {
              // Forgotten before any waiter resumes: requests that find no seat in it start the next batch.
              rooms: this.createUnderLock(name, options, key).finally(() => {
                if (this.creating.get(key) === created) this.creating.delete(key);
              }),
              next: 1,
            };
            batch = created;
            slot = 0;
            this.creating.set(key, created);
          }
          // A creation that failed fails every request that waited on it (a broken room type is not retried by
          // each of them in turn).
          const rooms = await batch.rooms;
          if (rooms.length > 0) {
            const per = this.capacity.get(name) ?? 1;
            share = rooms[Math.floor(slot / per) % rooms.length];
          }
        }
      } finally {
        const n = (this.demand.get(key) ?? 1) - 1;
        if (n > 0) this.demand.set(key, n);
        else this.demand.delete(key);
      }
    });
  }

  /**
   * Under the creation lock: unless a room with a free seat appeared meanwhile (another process made it), creates
   * enough rooms for the requests waiting (`creationBatchMax` at most); one while the type's capacity is unknown.
   */
  private async createBatch(
    name: string,
    options: Record<string, unknown>,
    key: string,
    demandKey: string,
  ): Promise<RoomListing[]> {
    const open = await this.deps.driver.query({ name, metadata: this.filter(name, options) });
    if (open.length > 0) return open;
    const per = this.capacity.get(name);
    // The requests of other processes waiting for this lock are served by the same batch: they find its rooms
    // open once they hold the lock, instead of each process creating for its own requests one after the other.
    let waiting = this.demand.get(key) ?? 1;
    for (const [pid, v] of Object.entries(await this.deps.presence.hgetall(demandKey))) {
      const n = Number(v);
      if (pid !== this.processId && Number.isSafeInteger(n) && n > 0) waiting += n;
    }
    const count = per ? Math.min(Math.ceil(waiting / per), this.deps.creationBatchMax ?? 32) : 1;
    const rooms =
      count === 1 || !this.deps.createRooms
        ? await settleAll(Array.from({ length: count }, () => this.deps.createRoom(name, options)))
        : await this.deps.createRooms(name, options, count);
    const first = rooms[0];
    if (first) this.capacity.set(name, first.maxClients ?? Number.POSITIVE_INFINITY);
    return rooms;
  }

  /**
   * Takes the creation lock and creates a batch. While waiting for the lock, this process's demand (requests
   * waiting for a room of this type and filter) is kept in a presence hash, for the holder to create for it too.
   */
  private async createUnderLock(
    name: string,
    options: Record<string, unknown>,
    key: string,
  ): Promise<RoomListing[]> {
    const { presence } = this.deps;
    const demandKey = `quiver:mm:demand:${key}`;
    let told = 0;
    const tell = async () => {
      const n = this.demand.get(key) ?? 0;
      if (n === told) return;
      told = n;
      await presence.hset(demandKey, this.processId, String(n));
      await presence.expire(demandKey, DEMAND_TTL_MS);
    };
    try {
      // One lock per type and filter values: rooms with other filter values serve none of these requests, so
      // their creations need not wait behind this one (nor a storm on one filter stall every other).
      return await this.withPresenceLock(
        `quiver:mm:create:${key}`,
        () => this.createBatch(name, options, key, demandKey),
        tell,
      );
    } finally {
      if (told > 0) await presence.hdel(demandKey, this.processId).catch(() => false);
    }
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
    const any = rooms[0];
    if (any) this.capacity.set(name, any.maxClients ?? Number.POSITIVE_INFINITY);
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

  private async withPresenceLock<T>(
    key: string,
    fn: () => Promise<T>,
    waiting?: () => Promise<void>,
  ): Promise<T> {
    const owner = randomToken(8);
    const { presence, clock } = this.deps;
    for (;;) {
      if (await presence.set(key, owner, { ttlMs: 5000, onlyIfAbsent: true })) break;
      await waiting?.();
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

/** The rooms made; rejects with the first error when none was. */
async function settleAll(creations: Promise<RoomListing>[]): Promise<RoomListing[]> {
  const settled = await Promise.allSettled(creations);
  const made = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  if (made.length === 0) throw (settled[0] as PromiseRejectedResult).reason;
  return made;
}

function refused(outcome: Exclude<ReserveOutcome, 'ok'>): RoomError {
  if (outcome === 'full') return new RoomError(RoomErrorCode.ROOM_FULL, 'the room is full');
  if (outcome === 'locked') return new RoomError(RoomErrorCode.ROOM_LOCKED, 'the room is locked');
  return new RoomError(RoomErrorCode.ROOM_NOT_FOUND, 'no such room');
}
