import type {
  ConsumeOutcome,
  NodeStatus,
  ReserveOutcome,
  RoomDriver,
  RoomListing,
  RoomQuery,
  SeatRecord,
} from '@quiver/rooms';
import { type Clock, systemClock } from '@quiver/session';
import type { Redis } from 'ioredis';
import {
  BEAT,
  CONSUME,
  CREATE,
  LOOKUP,
  QUERY,
  RELEASE,
  REMOVE,
  RESERVE,
  runScript,
  UPDATE,
} from './scripts.js';

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
type Status = Omit<NodeStatus, 'processId' | 'rooms'>;
/** A heartbeat's value: a registered node's status, plus `sub` (its liveness channel is subscribed). */
type Beat = Status & { sub?: 1 };

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
  private readonly beating = new Set<string>();
  private readonly statuses = new Map<string, () => Status>();
  /** Subscribed to each registered node's liveness channel: Redis drops it the moment the process dies. */
  private aliveSub: Redis | undefined;
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
    const r = (await this.run(
      LOOKUP,
      [this.key('room', roomId), this.key('seats', roomId)],
      [String(this.clock.now()), this.p],
    )) as [string[], number, number] | null;
    return r && r[2] === 1 ? fromFlat(roomId, r[0]) : undefined;
  }

  async query(query: RoomQuery): Promise<RoomListing[]> {
    const flat = (await this.run(
      QUERY,
      [query.name === undefined ? `${this.p}rooms` : this.key('rooms', query.name)],
      [
        String(this.clock.now()),
        this.p,
        query.includePrivate ? '1' : '0',
        query.includeUnavailable ? '1' : '0',
      ],
    )) as (string | string[])[];
    const out: RoomListing[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const l = fromFlat(String(flat[i]), flat[i + 1] as string[]);
      if (!l) continue;
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
    // One round trip: the script also answers `not-found` for a room whose node is dead.
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
        this.p,
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
    // Removal goes by the heartbeat alone: a node whose liveness subscription dropped for a moment (its connection
    // to Redis reconnecting) is left out of listings meanwhile, but keeps its rooms.
    const alive = new Set((await this.statusOf(nodes)).flatMap((s, i) => (s ? [nodes[i]!] : [])));
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
    if (this.beating.size > 0) {
      await this.redis.del(...[...this.beating].map((n) => this.key('node', n))).catch(() => {});
    }
    if (this.aliveSub) await this.aliveSub.quit().catch(() => {});
    if (this.ownsClient) await this.redis.quit().catch(() => {});
  }

  /** Refreshes a node's heartbeat; the first call for a node starts the heartbeat and sweep timer. */
  private async beat(pid: string): Promise<void> {
    if (this.closed) throw new Error('driver closed');
    const fresh = !this.beating.has(pid);
    this.beating.add(pid);
    const status = this.statuses.get(pid);
    const value = status ? JSON.stringify({ ...status(), sub: 1 } satisfies Beat) : '1';
    const existed = await this.run(
      BEAT,
      [this.key('node', pid), `${this.p}nodes`],
      [value, String(this.nodeTtlMs), pid],
    );
    if (existed !== 1 && !fresh) await this.relist(pid);
    if (fresh && !this.timer) this.schedule();
  }

  /**
   * Announces a node that takes rooms placed by other nodes: its heartbeat carries `status()` from now on, and a
   * connection of its own subscribes to its liveness channel, so that listings and placement leave the node out
   * as soon as Redis sees that connection close (a killed process), not only once the heartbeat expires.
   */
  async registerNode(processId: string, status: () => Status): Promise<void> {
    this.statuses.set(processId, status);
    if (!this.aliveSub) {
      this.aliveSub = this.redis.duplicate();
      // An outage shows on the command connection too; ioredis reconnects and resubscribes by itself.
      this.aliveSub.on('error', () => {});
    }
    await this.aliveSub.subscribe(this.key('alive', processId));
    await this.beat(processId);
  }

  /** Live registered nodes with their status; `rooms` is counted from the registry (current, not as of a beat). */
  async nodes(): Promise<NodeStatus[]> {
    const pids = await this.redis.smembers(`${this.p}nodes`);
    if (pids.length === 0) return [];
    const pipe = this.redis.pipeline();
    for (const pid of pids) pipe.scard(this.key('node-rooms', pid));
    const counts = ((await pipe.exec()) ?? []).map((r) => Number(r?.[1] ?? 0));
    const { statuses, live } = await this.probe(pids, true);
    const out: NodeStatus[] = [];
    pids.forEach((pid, i) => {
      const s = statuses[i];
      if (!s || typeof s === 'string' || !live.has(pid)) return;
      out.push({
        processId: pid,
        rooms: counts[i] ?? 0,
        clients: Number(s.clients) || 0,
        types: Array.isArray(s.types) ? s.types.map(String) : [],
        draining: s.draining === true,
      });
    });
    return out;
  }

  /** Each node's heartbeat: its status, `'1'` for a node that only hosts (never registered), `undefined` if gone. */
  private async statusOf(pids: string[]): Promise<(Beat | '1' | undefined)[]> {
    return (await this.probe(pids, false)).statuses;
  }

  private async probe(
    pids: string[],
    withSubs: boolean,
  ): Promise<{ statuses: (Beat | '1' | undefined)[]; live: Set<string> }> {
    if (pids.length === 0) return { statuses: [], live: new Set() };
    const pipe = this.redis.pipeline();
    pipe.mget(...pids.map((p) => this.key('node', p)));
    if (withSubs) pipe.call('PUBSUB', 'NUMSUB', ...pids.map((p) => this.key('alive', p)));
    const res = (await pipe.exec()) ?? [];
    const statuses = ((res[0]?.[1] ?? []) as (string | null)[]).map((v): Beat | '1' | undefined => {
      if (v === null) return undefined;
      if (v === '1') return '1';
      try {
        return JSON.parse(v) as Beat;
      } catch {
        return '1';
      }
    });
    const subs = (res[1]?.[1] ?? []) as (string | number)[];
    const live = new Set(
      pids.filter((_, i) => {
        const s = statuses[i];
        if (s === undefined) return false;
        // A registered node counts as alive only while its connection holds the liveness subscription.
        return !withSubs || s === '1' || s.sub !== 1 || Number(subs[2 * i + 1] ?? 0) > 0;
      }),
    );
    return { statuses, live };
  }

  private schedule(): void {
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      if (this.closed) return;
      void Promise.all([...this.beating].map((n) => this.beat(n)))
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

  private run(script: string, keys: string[], args: string[]): Promise<unknown> {
    return runScript(this.redis, script, keys, args);
  }
}

/** A room's listing from its hash as a script answers it (a flat field, value list); undefined when incomplete. */
function fromFlat(roomId: string, flat: readonly string[]): RoomListing | undefined {
  const h: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) h[flat[i]!] = flat[i + 1]!;
  return h.name === undefined ? undefined : toListing(roomId, h);
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
