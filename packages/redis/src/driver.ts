import type {
  ConsumeOutcome,
  ReserveOutcome,
  RoomDriver,
  RoomListing,
  RoomQuery,
  SeatRecord,
} from '@quiver/rooms';
import { type Clock, systemClock } from '@quiver/session';
import type { Redis } from 'ioredis';
import { CONSUME, CREATE, RELEASE, REMOVE, RESERVE, UPDATE } from './scripts.js';

/** Options of {@link RedisDriver}. */
export interface RedisDriverOptions {
  /** The connection (commands only; the driver never subscribes on it). Closed by `close()` only if `ownsClient`. */
  redis: Redis;
  /** Key prefix of the registry. Default `quiver:reg:`. */
  prefix?: string;
  /** Time source for seat expiry and the heartbeat timer. Default the system clock. */
  clock?: Clock;
  /** How often a node that hosts rooms refreshes its heartbeat, and sweeps rooms of dead nodes. Default 1 000 ms. */
  heartbeatMs?: number;
  /** A node whose heartbeat is this old is dead: its rooms leave the registry. Default 3 000 ms. */
  nodeTtlMs?: number;
  /** How long a used or expired seat token is remembered (`seat-used`/`seat-expired`). Default 60 000 ms. */
  tombstoneMs?: number;
  /** `close()` also quits `redis`. Default false. */
  ownsClient?: boolean;
}

type Patch = Partial<Omit<RoomListing, 'roomId' | 'name' | 'processId'>>;

/**
 * `RoomDriver` on Redis: every node of a deployment shares one registry, and each atomic method of the interface
 * is one Lua script. Nodes that host rooms heartbeat (`node:<pid>` with a TTL); a room whose node's heartbeat
 * expired is removed by the next sweep or listing of any node, so a crashed node's rooms leave within
 * `nodeTtlMs + heartbeatMs`.
 */
export class RedisDriver implements RoomDriver {
  private readonly redis: Redis;
  private readonly p: string;
  private readonly clock: Clock;
  private readonly heartbeatMs: number;
  private readonly nodeTtlMs: number;
  private readonly tombstoneMs: number;
  /** The rooms this driver registered, by node: relisted if Redis lost them (a restart without persistence). */
  private readonly owned = new Map<string, RoomListing>();
  private readonly nodes = new Set<string>();
  private timer: ReturnType<Clock['setTimeout']> | undefined;
  private closed = false;
  private readonly ownsClient: boolean;

  constructor(options: RedisDriverOptions) {
    this.redis = options.redis;
    this.p = options.prefix ?? 'quiver:reg:';
    this.clock = options.clock ?? systemClock;
    this.heartbeatMs = options.heartbeatMs ?? 1000;
    this.nodeTtlMs = options.nodeTtlMs ?? 3000;
    this.tombstoneMs = options.tombstoneMs ?? 60_000;
    this.ownsClient = options.ownsClient ?? false;
    if (this.nodeTtlMs <= this.heartbeatMs) throw new RangeError('nodeTtlMs must exceed heartbeatMs');
  }

  private key(kind: string, id: string): string {
    return `${this.p}${kind}:${id}`;
  }

  async create(listing: RoomListing): Promise<void> {
    await this.beat(listing.processId);
    const ok = await this.run(CREATE, this.createKeys(listing), this.createArgs(listing));
    if (ok !== 1) throw new RangeError(`room ${listing.roomId} exists`);
    this.owned.set(listing.roomId, { ...listing });
  }

  async update(roomId: string, patch: Patch): Promise<void> {
    const own = this.owned.get(roomId);
    if (own) Object.assign(own, patch);
    const args = fields(patch);
    if (args.length > 0) await this.run(UPDATE, [this.key('room', roomId)], args);
  }

  async remove(roomId: string): Promise<void> {
    this.owned.delete(roomId);
    await this.run(
      REMOVE,
      [this.key('room', roomId), this.key('seats', roomId), `${this.p}rooms`],
      [roomId, this.p],
    );
  }

  async get(roomId: string): Promise<RoomListing | undefined> {
    const [listing] = await this.load([roomId]);
    return listing?.live ? listing.listing : undefined;
  }

  async query(query: RoomQuery): Promise<RoomListing[]> {
    const ids = await this.redis.smembers(
      query.name === undefined ? `${this.p}rooms` : this.key('rooms', query.name),
    );
    const out: RoomListing[] = [];
    for (const r of await this.load(ids)) {
      if (!r?.live) continue;
      const l = r.listing;
      if (l.private && !query.includePrivate) continue;
      if (!query.includeUnavailable) {
        if (l.locked) continue;
        if (l.maxClients !== null && l.clients + r.reserved >= l.maxClients) continue;
      }
      if (query.metadata && !Object.entries(query.metadata).every(([k, v]) => l.metadata[k] === v)) continue;
      out.push(l);
    }
    return out;
  }

  async reserveSeat(
    seat: SeatRecord,
    options: { ignoreLock?: boolean; ignoreCapacity?: boolean } = {},
  ): Promise<ReserveOutcome> {
    const { roomId, token } = seat;
    const listing = await this.get(roomId);
    if (!listing) return 'not-found';
    return (await this.run(
      RESERVE,
      [this.key('room', roomId), this.key('seats', roomId), this.key('seat', token)],
      [
        token,
        roomId,
        String(seat.expiresAt),
        JSON.stringify(seat.options ?? null),
        seat.reconnect ?? '',
        String(this.clock.now()),
        options.ignoreLock ? '1' : '0',
        options.ignoreCapacity ? '1' : '0',
        String(this.tombstoneMs),
      ],
    )) as ReserveOutcome;
  }

  async consumeSeat(roomId: string, token: string): Promise<ConsumeOutcome> {
    const r = (await this.run(
      CONSUME,
      [this.key('room', roomId), this.key('seats', roomId), this.key('seat', token)],
      [token, String(this.clock.now())],
    )) as string[];
    if (r[0] !== 'ok') return r[0] as 'expired' | 'used' | 'invalid';
    const own = this.owned.get(roomId);
    if (own) own.clients++;
    const seat: SeatRecord = { token, roomId, expiresAt: Number(r[1]), options: JSON.parse(r[2] ?? 'null') };
    if (r[3]) seat.reconnect = r[3];
    return seat;
  }

  async releaseClient(roomId: string): Promise<void> {
    const own = this.owned.get(roomId);
    if (own && own.clients > 0) own.clients--;
    await this.run(RELEASE, [this.key('room', roomId)], []);
  }

  async reservations(roomId: string): Promise<number> {
    return this.redis.zcount(this.key('seats', roomId), `(${this.clock.now()}`, '+inf');
  }

  /** Removes the rooms of every node whose heartbeat expired; returns how many. Runs every `heartbeatMs`. */
  async sweep(): Promise<number> {
    const nodes = await this.redis.smembers(`${this.p}nodes`);
    if (nodes.length === 0) return 0;
    const alive = await this.aliveOf(nodes);
    let removed = 0;
    for (const pid of nodes) {
      if (alive.has(pid)) continue;
      const rooms = await this.redis.smembers(this.key('node-rooms', pid));
      for (const id of rooms) {
        await this.run(REMOVE, [this.key('room', id), this.key('seats', id), `${this.p}rooms`], [id, this.p]);
        removed++;
      }
      await this.redis.del(this.key('node-rooms', pid));
      await this.redis.srem(`${this.p}nodes`, pid);
    }
    return removed;
  }

  /** Stops heartbeating: this node's rooms expire from the registry unless removed first. */
  async close(): Promise<void> {
    this.closed = true;
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    // Graceful: the node's heartbeat goes at once (its rooms were removed by the room server). If Redis is
    // unreachable it expires by itself.
    if (this.nodes.size > 0) {
      await this.redis.del(...[...this.nodes].map((n) => this.key('node', n))).catch(() => {});
    }
    if (this.ownsClient) await this.redis.quit().catch(() => {});
  }

  private async aliveOf(nodes: string[]): Promise<Set<string>> {
    const pipe = this.redis.pipeline();
    for (const n of nodes) pipe.exists(this.key('node', n));
    const res = (await pipe.exec()) ?? [];
    return new Set(nodes.filter((_, i) => res[i]?.[1] === 1));
  }

  /** Refreshes a node's heartbeat; the first call for a node starts the heartbeat and sweep timer. */
  private async beat(pid: string): Promise<void> {
    if (this.closed) throw new Error('driver closed');
    const fresh = !this.nodes.has(pid);
    this.nodes.add(pid);
    const created = await this.redis.set(this.key('node', pid), '1', 'PX', this.nodeTtlMs, 'NX');
    if (created !== 'OK') await this.redis.pexpire(this.key('node', pid), this.nodeTtlMs);
    else if (!fresh) await this.relist(pid);
    if (fresh && !this.timer) this.schedule();
  }

  private schedule(): void {
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      if (this.closed) return;
      void Promise.all([...this.nodes].map((n) => this.beat(n)))
        .then(() => this.sweep())
        // Redis unreachable: the next beat retries; rooms in this process go on meanwhile.
        .catch(() => {})
        .finally(() => {
          if (!this.closed && !this.timer) this.schedule();
        });
    }, this.heartbeatMs);
  }

  /**
   * The node's heartbeat was gone though this process lives: Redis restarted (or the node stalled past its TTL and
   * was swept). Lists this process's rooms again from what it knows; reservations made before are lost.
   */
  private async relist(pid: string): Promise<void> {
    for (const l of this.owned.values()) {
      if (l.processId === pid) await this.run(CREATE, this.createKeys(l), this.createArgs(l));
    }
  }

  private createKeys(l: RoomListing): string[] {
    return [
      this.key('room', l.roomId),
      this.key('rooms', l.name),
      this.key('node-rooms', l.processId),
      `${this.p}rooms`,
      `${this.p}nodes`,
    ];
  }

  private createArgs(l: RoomListing): string[] {
    return [
      l.roomId,
      l.name,
      l.processId,
      String(l.maxClients ?? -1),
      l.locked ? '1' : '0',
      l.private ? '1' : '0',
      JSON.stringify(l.metadata),
      String(l.createdAt),
      String(l.clients),
    ];
  }

  /** Listings with their live reservation count and whether their node heartbeats, in one round trip. */
  private async load(
    ids: string[],
  ): Promise<({ listing: RoomListing; reserved: number; live: boolean } | undefined)[]> {
    if (ids.length === 0) return [];
    const now = this.clock.now();
    const pipe = this.redis.pipeline();
    for (const id of ids) {
      pipe.hgetall(this.key('room', id));
      pipe.zcount(this.key('seats', id), `(${now}`, '+inf');
    }
    const res = (await pipe.exec()) ?? [];
    const rows = ids.map((id, i) => {
      const h = res[2 * i]?.[1] as Record<string, string> | undefined;
      if (!h || h.name === undefined) return undefined;
      return { listing: toListing(id, h), reserved: Number(res[2 * i + 1]?.[1] ?? 0), live: true };
    });
    const pids = [...new Set(rows.flatMap((r) => (r ? [r.listing.processId] : [])))];
    const alive = await this.aliveOf(pids);
    for (const r of rows) if (r) r.live = alive.has(r.listing.processId);
    return rows;
  }

  private run(script: string, keys: string[], args: string[]): Promise<unknown> {
    return this.redis.eval(script, keys.length, ...keys, ...args);
  }
}

function toListing(roomId: string, h: Record<string, string>): RoomListing {
  const max = Number(h.max);
  return {
    roomId,
    name: h.name ?? '',
    processId: h.pid ?? '',
    clients: Number(h.clients ?? 0),
    maxClients: max < 0 ? null : max,
    locked: h.locked === '1',
    private: h.private === '1',
    metadata: JSON.parse(h.meta ?? '{}') as Record<string, unknown>,
    createdAt: Number(h.createdAt ?? 0),
  };
}

/** A listing patch as hash fields and values. */
function fields(patch: Patch): string[] {
  const out: string[] = [];
  if (patch.clients !== undefined) out.push('clients', String(patch.clients));
  if (patch.maxClients !== undefined) out.push('max', String(patch.maxClients ?? -1));
  if (patch.locked !== undefined) out.push('locked', patch.locked ? '1' : '0');
  if (patch.private !== undefined) out.push('private', patch.private ? '1' : '0');
  if (patch.metadata !== undefined) out.push('meta', JSON.stringify(patch.metadata));
  if (patch.createdAt !== undefined) out.push('createdAt', String(patch.createdAt));
  return out;
}
