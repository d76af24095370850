import {
  type Clock,
  type MessageType,
  randomToken,
  type ServerSession,
  type SessionServer,
  systemClock,
  type TimerHandle,
} from '@quiver/session';
import type { Placement } from './cluster.js';
import { MemoryDriver, type RoomDriver, type RoomListing, type RoomQuery } from './driver.js';
import { errorLabel, RoomError, RoomErrorCode } from './errors.js';
import { Matchmaker, roomChannel, type SeatReservation } from './matchmaker.js';
import { bump, createRoomMetrics, type RoomMetrics } from './metrics.js';
import { ClusterNode, type DrainOptions } from './node.js';
import { MemoryPresence, type Presence } from './presence.js';
import {
  AckMsg,
  CancelMsg,
  ErrorMsg,
  type JoinFrame,
  JoinedMsg,
  JoinMsg,
  LeaveMsg,
  RequestMsg,
  RoomCloseCode,
} from './protocol.js';
import type { AnyRoom, Cluster, OptionsOf, Room, RoomClass, RoomClient } from './room.js';
import { RoomRuntime, type RuntimeHost } from './runtime.js';
import { watchSession } from './session-events.js';

/** Options of {@link RoomServer}. */
export interface RoomServerOptions {
  /** The session server whose sessions join rooms (`app.quiver` with `@quiver/fastify`). */
  sessions: SessionServer;
  /** Room registry. Default an in-memory one (one process). */
  driver?: RoomDriver;
  /** Shared keys, locks and pub/sub. Default in memory (one process). */
  presence?: Presence;
  /** Time source of seat expiry, room timers and simulation. Default the system clock. */
  clock?: Clock;
  /** This process's id in listings and reservations. Default random. */
  processId?: string;
  /** How long a reserved seat waits for its join. Default 15 000 ms. */
  seatReservationMs?: number;
  /** A session that has not sent its join within this is closed (4408). Default 10 000 ms. */
  joinTimeoutMs?: number;
  /** Errors thrown by room hooks and handlers (also counted in `metrics.errors`). */
  onError?: (error: Error, where: string) => void;
  /**
   * Picks the node that hosts a room created by `joinOrCreate`/`create`, among the live started nodes that define
   * its type and are not draining. Default {@link leastLoaded}: fewest rooms, then fewest clients.
   */
  placement?: Placement;
  /**
   * How long to wait for the node placement picked to create the room; then (or when it answers that it is
   * draining or gone) the room is created on this node. Default 2 000 ms.
   */
  placementTimeoutMs?: number;
  /**
   * At most this many rooms of one type are created at once for the `joinOrCreate` requests of this process that
   * found every room full (a join storm, the clients of a lost node), and of other processes waiting meanwhile:
   * as many as they need, placed together. Default 32.
   */
  creationBatchMax?: number;
}

/** Options of one room type, given to `define`. */
export interface RoomTypeOptions {
  /**
   * Option keys that must equal a room's metadata for `join`/`joinOrCreate` to pick it; rooms created by
   * matchmaking get them as metadata. Default none.
   */
  filterBy?: readonly string[];
}

/** A room type name with the options its clients matchmake with, for typed calls on both ends. */
export interface RoomType<Options = Record<string, unknown>> {
  /** The name the type is defined under, and matchmade by. */
  readonly name: string;
  /** Phantom field carrying `Options`; never set. */
  readonly __options?: Options;
}

/** `roomType<{ mode: string }>('arena')`: shared by server (`define`) and client (`joinOrCreate`). */
export function roomType<Options = Record<string, unknown>>(name: string): RoomType<Options> {
  return Object.freeze({ name });
}

interface Definition {
  cls: RoomClass;
  filterBy: readonly string[];
}

interface Binding {
  client: RoomClient;
  runtime: RoomRuntime;
  names: Set<string>;
}

/**
 * Hosts rooms on a session server and matchmakes into them. One per process; processes share the driver and
 * presence.
 */
export class RoomServer {
  /** Counters of rooms, joins, requests and errors, for export (labels: room type names and error codes). */
  readonly metrics: RoomMetrics = createRoomMetrics();
  /** This process's id in listings and reservations (`options.processId`, else random). */
  readonly processId: string;
  /** The room registry in use (`options.driver`, else in memory). */
  readonly driver: RoomDriver;
  /** The presence store in use (`options.presence`, else in memory). */
  readonly presence: Presence;
  private readonly clock: Clock;
  private readonly node: ClusterNode;
  private readonly definitions = new Map<string, Definition>();
  private readonly runtimes = new Map<string, RoomRuntime>();
  private readonly unsubscribes = new Map<string, Promise<() => Promise<void>>>();
  private readonly bindings = new WeakMap<ServerSession, Binding>();
  private readonly joining = new WeakSet<ServerSession>();
  private readonly joinTimers = new WeakMap<ServerSession, TimerHandle>();
  private readonly matchmaker: Matchmaker;
  private readonly host: RuntimeHost;
  private readonly offs: (() => void)[] = [];

  constructor(
    /** The options as given. */
    readonly options: RoomServerOptions,
  ) {
    this.clock = options.clock ?? systemClock;
    this.processId = options.processId ?? randomToken(6);
    this.driver = options.driver ?? new MemoryDriver({ clock: this.clock });
    this.presence = options.presence ?? new MemoryPresence(this.clock);
    const sessions = options.sessions;
    this.node = new ClusterNode({
      processId: this.processId,
      driver: this.driver,
      presence: this.presence,
      clock: this.clock,
      metrics: this.metrics,
      runtimes: this.runtimes,
      types: () => [...this.definitions.keys()],
      createLocal: (name, opts) => this.create_(name, opts),
      placement: options.placement,
      placementTimeoutMs: options.placementTimeoutMs,
    });
    this.host = {
      driver: this.driver,
      metrics: this.metrics,
      clock: this.clock,
      cluster: this.node.cluster,
      bind: (session, client, runtime) => this.bind(session, client, runtime),
      reportError: (err, where) => this.reportError(err, where),
      disposed: (runtime) => this.disposed(runtime),
    };
    this.matchmaker = new Matchmaker({
      driver: this.driver,
      presence: this.presence,
      clock: this.clock,
      seatReservationMs: options.seatReservationMs ?? 15_000,
      createRoom: (name, opts) => this.node.place(name, opts),
      createRooms: (name, opts, count) => this.node.placeMany(name, opts, count),
      creationBatchMax: options.creationBatchMax,
      processId: this.processId,
      filterBy: (name) => this.definitions.get(name)?.filterBy,
      count: (code) => bump(this.metrics.errors, errorLabel(new RoomError(code))),
      reserved: () => {
        this.metrics.seatsReserved++;
      },
    });
    this.offs.push(
      sessions.on(JoinMsg, (frame, session) => void this.handleJoin(session, frame)),
      sessions.on(LeaveMsg, (_f, session) =>
        this.withClient(session, (b) => b.runtime.consentedLeave(b.client)),
      ),
      sessions.on(RequestMsg, (frame, session) =>
        this.withClient(session, (b) => b.runtime.handleRequest(b.client, frame)),
      ),
      sessions.on(CancelMsg, (frame, session) =>
        this.withClient(session, (b) => b.runtime.handleCancel(b.client, frame?.i)),
      ),
      sessions.on(AckMsg, (bytes, session) =>
        this.withClient(session, (b) => b.runtime.handleAck(b.client, bytes)),
      ),
      sessions.on('session', (session) => this.admit(session)),
    );
  }

  /** Defines a room type: `rooms.define('arena', ArenaRoom)` or with a shared `roomType(...)`. */
  define<R extends AnyRoom>(
    type: string | RoomType<OptionsOf<R>>,
    cls: RoomClass<R>,
    options: RoomTypeOptions = {},
  ): this {
    const name = typeof type === 'string' ? type : type.name;
    if (this.definitions.has(name)) throw new RangeError(`room type '${name}' is already defined`);
    this.definitions.set(name, { cls: cls as unknown as RoomClass, filterBy: options.filterBy ?? [] });
    return this;
  }

  /** Joins the fullest available room of that type (matching `filterBy`), or creates one. */
  joinOrCreate(type: string | RoomType, options: Record<string, unknown> = {}): Promise<SeatReservation> {
    return this.matchmaker.joinOrCreate(nameOf(type), options);
  }

  /** Creates a new room of that type (with `options` as its matchmaking options) and reserves a seat in it. */
  create(type: string | RoomType, options: Record<string, unknown> = {}): Promise<SeatReservation> {
    return this.matchmaker.create(nameOf(type), options);
  }

  /** As `joinOrCreate` but never creates: rejects with `no-room-available` when no room fits. */
  join(type: string | RoomType, options: Record<string, unknown> = {}): Promise<SeatReservation> {
    return this.matchmaker.join(nameOf(type), options);
  }

  /** Reserves a seat in that room, private ones included; rejects when it is unknown, locked or full. */
  joinById(roomId: string, options: Record<string, unknown> = {}): Promise<SeatReservation> {
    return this.matchmaker.joinById(roomId, options);
  }

  /**
   * Reserves the seat a client held, by its reconnection token, while the room holds it
   * (`reconnectWindowMs`); rejects with `reconnect-expired` otherwise.
   */
  reconnect(reconnectToken: string): Promise<SeatReservation> {
    return this.matchmaker.reconnect(reconnectToken);
  }

  /** Listed rooms (all processes): public ones, available or not unless filtered. */
  query(query: RoomQuery = {}): Promise<RoomListing[]> {
    return this.matchmaker.query({ includeUnavailable: true, ...query });
  }

  /**
   * Creates a room in this process without reserving a seat (a lobby or a persistent world the server opens
   * itself; set `autoDispose = false` on it, or it is disposed once the first seat check finds it empty).
   */
  async createRoom<R extends AnyRoom = AnyRoom>(
    type: string | RoomType,
    options: Record<string, unknown> = {},
  ): Promise<R> {
    const listing = await this.matchmaker.guarded(() => this.create_(nameOf(type), options));
    return this.runtimes.get(listing.roomId)!.room as R;
  }

  /** A room hosted by this process. */
  getRoom(roomId: string): Room | undefined {
    return this.runtimes.get(roomId)?.room;
  }

  /** Rooms hosted by this process. */
  get localRooms(): Room[] {
    return [...this.runtimes.values()].map((r) => r.room);
  }

  /** Cross-node messaging, as rooms see it (`room.cluster`): `broadcast`, `sendToRoom`, `processId`. */
  get cluster(): Cluster {
    return this.node.cluster;
  }

  /** Resolves once `start()` completed: this node takes rooms placed by others and hears broadcasts. */
  get started(): Promise<void> {
    return this.node.started;
  }

  /** True once `drain()` was called. */
  get isDraining(): boolean {
    return this.node.isDraining;
  }

  /**
   * Joins the deployment as a node that takes rooms: listens for other nodes (room creation placed here,
   * broadcasts) and reports its load with each heartbeat, so that placement may pick it. Call once this process's
   * session endpoints are reachable (the plugin calls it when the app listens). Without it, rooms are still
   * created here by this node's own matchmaking, and cross-node broadcasts do not reach them.
   */
  start(): Promise<void> {
    return this.node.start();
  }

  /**
   * Graceful drain: this node takes no new rooms (placement skips it from its next heartbeat; a creation placed
   * here meanwhile is refused and made elsewhere), its rooms are locked (no new seats), and after `timeoutMs`
   * the clients still in them are closed with `moved` (4307), which `RoomsClient` answers by matchmaking again.
   * Resolves once every room of this node is disposed.
   */
  drain(options: DrainOptions = {}): Promise<void> {
    return this.node.drain(options);
  }

  /**
   * Sends `type` to the clients of every room (of `options.roomName` only, when given) on every node: this node's
   * rooms at once, other nodes' over the presence's pub/sub. The payload must be JSON-serialisable. Resolves with
   * how many clients of this node it reached.
   */
  broadcast<T>(type: MessageType<T>, payload: T, options: { roomName?: string } = {}): Promise<number> {
    return this.node.broadcast(type, payload, options);
  }

  /**
   * Delivers `type` into a room from outside it, from any node: the room's `onRemoteMessage(type, ...)` handlers
   * run with the payload (JSON-serialisable). Resolves false when no node hosts that room.
   */
  sendToRoom<T>(roomId: string, type: MessageType<T>, payload: T): Promise<boolean> {
    return this.node.sendToRoom(roomId, type, payload);
  }

  /** Disposes every room of this process and stops handling room messages. */
  async close(): Promise<void> {
    for (const off of this.offs.splice(0)) off();
    await Promise.all([...this.runtimes.values()].map((r) => r.dispose('server closing')));
    await this.node.close();
  }

  private async create_(name: string, options: Record<string, unknown>): Promise<RoomListing> {
    const def = this.definitions.get(name);
    if (!def) throw new RoomError(RoomErrorCode.UNKNOWN_ROOM_TYPE, 'no room type of that name');
    const roomId = randomToken(6);
    const listing: RoomListing = {
      roomId,
      name,
      processId: this.processId,
      clients: 0,
      maxClients: null,
      locked: false,
      private: false,
      metadata: Object.fromEntries(def.filterBy.map((k) => [k, options[k]])),
      createdAt: this.clock.now(),
    };
    const runtime = new RoomRuntime(new def.cls(), name, roomId, listing, this.host);
    this.runtimes.set(roomId, runtime);
    try {
      await runtime.create(options);
    } catch (err) {
      this.runtimes.delete(roomId);
      throw err;
    }
    // Awaited: a seat reserved by another node is announced on this channel right after, and must not be missed.
    const unsubscribe = this.presence.subscribe(roomChannel(roomId), (msg) =>
      this.node.roomFrame(runtime, msg),
    );
    this.unsubscribes.set(roomId, unsubscribe);
    await unsubscribe;
    bump(this.metrics.roomsCreated, name);
    return runtime.listing;
  }

  private disposed(runtime: RoomRuntime): void {
    this.runtimes.delete(runtime.roomId);
    this.node.roomDisposed();
    const unsub = this.unsubscribes.get(runtime.roomId);
    this.unsubscribes.delete(runtime.roomId);
    void unsub?.then((f) => f());
    bump(this.metrics.roomsDisposed, runtime.roomName);
  }

  /** A new session: it must join a room within `joinTimeoutMs`. */
  private admit(session: ServerSession): void {
    const ms = this.options.joinTimeoutMs ?? 10_000;
    const timer = this.clock.setTimeout(() => {
      if (!this.bindings.has(session) && session.state !== 'closed') {
        bump(this.metrics.errors, 'join-timeout');
        session.close(4408, 'no room joined in time').catch(() => {});
      }
    }, ms);
    this.joinTimers.set(session, timer);
    session.on('close', () => this.clock.clearTimeout(timer));
  }

  private async handleJoin(session: ServerSession, frame: JoinFrame): Promise<void> {
    if (this.bindings.has(session) || this.joining.has(session)) {
      return this.refuse(
        session,
        new RoomError(RoomErrorCode.BAD_REQUEST, 'this session already joined a room'),
        false,
      );
    }
    let seat = frame?.seat;
    if (typeof frame?.reconnect === 'string' && frame.reconnect.length <= 256) {
      try {
        seat = (await this.reconnect(frame.reconnect)).seat;
      } catch (err) {
        return this.refuse(session, err as RoomError, true, true);
      }
    }
    if (typeof seat !== 'string' || seat.length > 256) {
      return this.refuse(session, new RoomError(RoomErrorCode.SEAT_INVALID, 'malformed seat'), true);
    }
    const runtime = this.runtimes.get(seat.split('.')[0]);
    if (!runtime)
      return this.refuse(session, new RoomError(RoomErrorCode.ROOM_NOT_FOUND, 'no such room here'), true);
    this.joining.add(session);
    try {
      const { joined } = await runtime.join(session, seat);
      this.clock.clearTimeout(this.joinTimers.get(session));
      session.send(JoinedMsg, joined);
    } catch (err) {
      const e = err instanceof RoomError ? err : new RoomError(RoomErrorCode.JOIN_FAILED, 'join failed');
      if (!(err instanceof RoomError)) this.reportError(err as Error, 'join');
      this.refuse(session, e, true);
    } finally {
      this.joining.delete(session);
    }
  }

  /** Tells the client why, counts it, and (for a refused join) closes the session. */
  private refuse(session: ServerSession, err: RoomError, close: boolean, counted = false): void {
    if (!counted) bump(this.metrics.errors, errorLabel(err));
    if (session.state === 'closed') return;
    try {
      session.send(ErrorMsg, { error: err.toWire(), message: JoinMsg.name });
    } catch {
      // closed meanwhile
    }
    if (!close) return;
    // The error frame first (bounded wait), so the client reads the message and not only the close.
    const timer = this.clock.setTimeout(
      () => session.close(RoomCloseCode.JOIN_REFUSED, err.code).catch(() => {}),
      1000,
    );
    session
      .drained()
      .then(() => {
        this.clock.clearTimeout(timer);
        return session.close(RoomCloseCode.JOIN_REFUSED, err.code);
      })
      .catch(() => {});
  }

  private bind(session: ServerSession, client: RoomClient, runtime: RoomRuntime): void {
    let b = this.bindings.get(session);
    if (!b) {
      b = { client, runtime, names: new Set() };
      this.bindings.set(session, b);
      watchSession(session, {
        disconnected: () => runtime.sessionDisconnected(client, session),
        resumed: () => runtime.sessionResumed(client, session),
        closed: (consented) => runtime.sessionClosed(client, session, consented),
      });
    }
    for (const [name, entry] of runtime.messages) {
      if (b.names.has(name)) continue;
      b.names.add(name);
      session.on(entry.type, (payload) => runtime.handleMessage(client, entry, payload));
    }
  }

  private withClient(session: ServerSession, fn: (b: Binding) => void): void {
    const b = this.bindings.get(session);
    if (b && b.client.session === session) fn(b);
  }

  private reportError(err: Error, where: string): void {
    try {
      this.options.onError?.(err, where);
    } catch {
      // a throwing onError must not take a room down
    }
    this.options.sessions.log('warn', { err, reason: where }, 'room error');
  }
}

function nameOf(type: string | RoomType): string {
  return typeof type === 'string' ? type : type.name;
}

/** Same as `new RoomServer(options)`. */
export function createRoomServer(options: RoomServerOptions): RoomServer {
  return new RoomServer(options);
}
