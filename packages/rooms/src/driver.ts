import { type Clock, systemClock } from '@quiver/session';

/** What the room registry knows of a room: what `GET /quiver/rooms` lists and what matchmaking filters on. */
export interface RoomListing {
  /** Unique across the deployment. */
  roomId: string;
  /** The room type's name. */
  name: string;
  /** The process hosting the room (its sessions connect there). */
  processId: string;
  /** Clients joined (seats taken); reservations not yet used are not counted here. */
  clients: number;
  /** `null` for no limit. */
  maxClients: number | null;
  /** Locked rooms take no new seats (reconnection still works). */
  locked: boolean;
  /** Private rooms are not listed and not joined by `join`/`joinOrCreate`, only by id. */
  private: boolean;
  /** Set by the room (`setMetadata`); `filterBy` options of rooms created by matchmaking. */
  metadata: Record<string, unknown>;
  /** When the room was created, in milliseconds of the server clock. */
  createdAt: number;
}

/** Which listings `RoomDriver.query` returns. */
export interface RoomQuery {
  /** Only rooms of this type. Default every type. */
  name?: string;
  /** Include locked and full rooms (listing); matchmaking leaves them out. Default false. */
  includeUnavailable?: boolean;
  /** Include private rooms. Default false. */
  includePrivate?: boolean;
  /** Every key must equal the room's metadata value (shallow, `===`). */
  metadata?: Record<string, unknown>;
}

/**
 * What a node reports of itself with each heartbeat, for placement (`RoomDriver.nodes`): new rooms go to the
 * least-loaded live node that defines the room type and is not draining.
 */
export interface NodeStatus {
  /** The node's `processId`. */
  processId: string;
  /** Rooms the node hosts. The Redis driver counts them from the registry itself, so they are never stale. */
  rooms: number;
  /** Clients (seats taken) in the node's rooms, as of its last heartbeat. */
  clients: number;
  /** The room types the node defines: it only hosts rooms of these. */
  types: readonly string[];
  /** A draining node takes no new rooms (`RoomServer.drain`). */
  draining: boolean;
}

/** A seat reservation as the registry keeps it. */
export interface SeatRecord {
  /** The secret the client joins with: `<roomId>.<random>`. */
  token: string;
  /** The room the seat is in. */
  roomId: string;
  /** Unused after this time (milliseconds, registry clock), the seat is free again. */
  expiresAt: number;
  /** The options the client matchmade with; `onAuth` and `onJoin` receive them. */
  options: unknown;
  /** The reconnection token this seat takes back, when issued by `reconnect`. */
  reconnect?: string;
}

/** Result of `reserveSeat`: `ok`, or why no seat was reserved. */
export type ReserveOutcome = 'ok' | 'full' | 'locked' | 'not-found';
/** Result of `consumeSeat`: the seat taken, or why not (`invalid`: unknown token or another room's). */
export type ConsumeOutcome = SeatRecord | 'expired' | 'used' | 'invalid';

/**
 * The room registry: listings and seat reservations. Every method is atomic on its own (a Redis driver uses one
 * script per method), which is all matchmaking relies on. Seats count against `maxClients` from reservation until
 * they expire or the client leaves.
 */
export interface RoomDriver {
  /** Lists a new room; rejects when `roomId` is already listed. */
  create(listing: RoomListing): Promise<void>;
  /** Changes the given fields of a listed room (clients, lock, metadata...); identity fields are fixed. */
  update(roomId: string, patch: Partial<Omit<RoomListing, 'roomId' | 'name' | 'processId'>>): Promise<void>;
  /** Forgets the room and its reservations. */
  remove(roomId: string): Promise<void>;
  /** The room's listing; undefined when it is not listed (removed, or its node died). */
  get(roomId: string): Promise<RoomListing | undefined>;
  /** Listed rooms matching `query`; by default without locked, full or private rooms. */
  query(query: RoomQuery): Promise<RoomListing[]>;
  /**
   * Atomically checks that the room exists, is not locked (unless `ignoreLock`), and that joined clients plus live
   * reservations are under `maxClients` (unless `ignoreCapacity`, for seats taken back by reconnection), then
   * records the seat.
   */
  reserveSeat(
    seat: SeatRecord,
    options?: { ignoreLock?: boolean; ignoreCapacity?: boolean },
  ): Promise<ReserveOutcome>;
  /** Atomically takes a reserved seat: the reservation becomes a joined client. */
  consumeSeat(roomId: string, token: string): Promise<ConsumeOutcome>;
  /** A joined client left: its seat is free. */
  releaseClient(roomId: string): Promise<void>;
  /** Live (unexpired, unused) reservations of a room. */
  reservations(roomId: string): Promise<number>;
  /**
   * Announces a node that takes rooms placed by other nodes: from now on it reports `status()` with each
   * heartbeat. Optional: without it (and `nodes`) every room is created on the node that matchmakes.
   */
  registerNode?(processId: string, status: () => Omit<NodeStatus, 'processId' | 'rooms'>): Promise<void>;
  /** Live registered nodes with their load, for placement. */
  nodes?(): Promise<NodeStatus[]>;
}

interface MemoryRoom {
  listing: RoomListing;
  seats: Map<string, { seat: SeatRecord; state: 'reserved' | 'used' | 'expired' }>;
}

/** Options of {@link MemoryDriver}. */
export interface MemoryDriverOptions {
  /** Time source of seat expiry. Default the system clock. */
  clock?: Clock;
  /**
   * How long a used or expired seat token is remembered, so that reusing it is told apart from an unknown token
   * (`seat-used`/`seat-expired` rather than `seat-invalid`). Default 60 000 ms.
   */
  tombstoneMs?: number;
}

/** `RoomDriver` in this process's memory. */
export class MemoryDriver implements RoomDriver {
  private readonly rooms = new Map<string, MemoryRoom>();
  private readonly registered = new Map<string, () => Omit<NodeStatus, 'processId' | 'rooms'>>();
  private readonly clock: Clock;
  private readonly tombstoneMs: number;

  constructor(options: MemoryDriverOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.tombstoneMs = options.tombstoneMs ?? 60_000;
  }

  private prune(room: MemoryRoom): number {
    const now = this.clock.now();
    let live = 0;
    for (const [token, s] of room.seats) {
      if (s.state === 'reserved' && s.seat.expiresAt <= now) s.state = 'expired';
      if (s.state !== 'reserved' && s.seat.expiresAt + this.tombstoneMs <= now) room.seats.delete(token);
      else if (s.state === 'reserved') live++;
    }
    return live;
  }

  async create(listing: RoomListing) {
    if (this.rooms.has(listing.roomId)) throw new RangeError(`room ${listing.roomId} exists`);
    this.rooms.set(listing.roomId, { listing: { ...listing }, seats: new Map() });
  }

  async update(roomId: string, patch: Partial<RoomListing>) {
    const r = this.rooms.get(roomId);
    if (r) Object.assign(r.listing, patch, { roomId, name: r.listing.name, processId: r.listing.processId });
  }

  async remove(roomId: string) {
    this.rooms.delete(roomId);
  }

  async get(roomId: string) {
    const r = this.rooms.get(roomId);
    return r ? { ...r.listing } : undefined;
  }

  async query(query: RoomQuery) {
    const out: RoomListing[] = [];
    for (const r of this.rooms.values()) {
      const l = r.listing;
      if (query.name !== undefined && l.name !== query.name) continue;
      if (l.private && !query.includePrivate) continue;
      if (!query.includeUnavailable) {
        if (l.locked) continue;
        if (l.maxClients !== null && l.clients + this.prune(r) >= l.maxClients) continue;
      }
      if (query.metadata && !Object.entries(query.metadata).every(([k, v]) => l.metadata[k] === v)) continue;
      out.push({ ...l });
    }
    return out;
  }

  async reserveSeat(seat: SeatRecord, options: { ignoreLock?: boolean; ignoreCapacity?: boolean } = {}) {
    const r = this.rooms.get(seat.roomId);
    if (!r) return 'not-found';
    if (r.listing.locked && !options.ignoreLock) return 'locked';
    const live = this.prune(r);
    const max = r.listing.maxClients;
    if (!options.ignoreCapacity && max !== null && r.listing.clients + live >= max) return 'full';
    r.seats.set(seat.token, { seat: { ...seat }, state: 'reserved' });
    return 'ok';
  }

  async consumeSeat(roomId: string, token: string): Promise<ConsumeOutcome> {
    const r = this.rooms.get(roomId);
    if (!r) return 'invalid';
    this.prune(r);
    const s = r.seats.get(token);
    if (!s) return 'invalid';
    if (s.state !== 'reserved') return s.state;
    s.state = 'used';
    r.listing.clients++;
    return { ...s.seat };
  }

  async releaseClient(roomId: string) {
    const r = this.rooms.get(roomId);
    if (r && r.listing.clients > 0) r.listing.clients--;
  }

  async reservations(roomId: string) {
    const r = this.rooms.get(roomId);
    return r ? this.prune(r) : 0;
  }

  async registerNode(processId: string, status: () => Omit<NodeStatus, 'processId' | 'rooms'>) {
    this.registered.set(processId, status);
  }

  async nodes(): Promise<NodeStatus[]> {
    return [...this.registered].map(([processId, status]) => {
      let rooms = 0;
      for (const r of this.rooms.values()) if (r.listing.processId === processId) rooms++;
      return { ...status(), processId, rooms };
    });
  }
}
