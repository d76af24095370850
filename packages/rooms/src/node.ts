/**
 * This process as one node of a deployment: where new rooms go (placement), messages to rooms of other nodes,
 * and the node's lifecycle (start, drain). The room server hosts rooms; this decides which node does.
 */
import type { Clock, MessageType } from '@quiver/session';
import { ClusterBus, leastLoaded, messageTypeOf, type Placement, parse, wireMessage } from './cluster.js';
import type { RoomDriver, RoomListing } from './driver.js';
import { RoomError, RoomErrorCode } from './errors.js';
import { roomChannel } from './matchmaker.js';
import { bump, type RoomMetrics } from './metrics.js';
import type { Presence } from './presence.js';
import { RoomCloseCode } from './protocol.js';
import type { Cluster } from './room.js';
import type { RoomRuntime } from './runtime.js';

/** Options of {@link RoomServer.drain}. */
export interface DrainOptions {
  /**
   * How long rooms may go on (locked: no new seats) before their remaining clients are closed with `moved`
   * (4307), so that they matchmake again on another node. Default 0: at once.
   */
  timeoutMs?: number;
}

/** What the node needs from the room server it belongs to. */
export interface NodeHost {
  processId: string;
  driver: RoomDriver;
  presence: Presence;
  clock: Clock;
  metrics: RoomMetrics;
  /** The rooms this process hosts, by id (live view). */
  runtimes: ReadonlyMap<string, RoomRuntime>;
  /** The room types this process defines. */
  types(): string[];
  /** Creates a room in this process. */
  createLocal(name: string, options: Record<string, unknown>): Promise<RoomListing>;
  placement?: Placement;
  placementTimeoutMs?: number;
}

/** This process as a node: placement, cross-node messages, start and drain. One per `RoomServer`. */
export class ClusterNode {
  /** Cross-node messaging, as rooms see it (`room.cluster`). */
  readonly cluster: Cluster;
  /** Resolves once `start()` completed. */
  readonly started: Promise<void>;
  private readonly bus: ClusterBus;
  private starting: Promise<void> | undefined;
  private markStarted!: () => void;
  private draining = false;
  private drainWaiter: (() => void) | undefined;

  constructor(private readonly host: NodeHost) {
    this.started = new Promise<void>((resolve) => {
      this.markStarted = resolve;
    });
    this.bus = new ClusterBus(host.presence, host.processId, host.clock, {
      createRoom: (name, opts) => this.createHere(name, opts),
      broadcast: (type, payload, roomName) => this.deliver(type, payload, roomName),
      malformed: () => bump(host.metrics.errors, 'cluster-malformed'),
    });
    this.cluster = {
      processId: host.processId,
      broadcast: (type, payload, options) => this.broadcast(type, payload, options),
      sendToRoom: (roomId, type, payload) => this.sendToRoom(roomId, type, payload),
    };
  }

  get isDraining(): boolean {
    return this.draining;
  }

  start(): Promise<void> {
    const { driver, processId } = this.host;
    this.starting ??= (async () => {
      await this.bus.start();
      await driver.registerNode?.(processId, () => ({
        clients: this.localClients(),
        types: this.host.types(),
        draining: this.draining,
      }));
      this.markStarted();
    })();
    return this.starting;
  }

  async drain(options: DrainOptions = {}): Promise<void> {
    this.draining = true;
    const { runtimes, clock } = this.host;
    await Promise.all([...runtimes.values()].map((r) => r.updateListing({ locked: true }).catch(() => {})));
    const timeoutMs = options.timeoutMs ?? 0;
    if (timeoutMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = clock.setTimeout(resolve, timeoutMs);
        const check = () => {
          if (runtimes.size > 0) return;
          clock.clearTimeout(timer);
          resolve();
        };
        this.drainWaiter = check;
        check();
      });
      this.drainWaiter = undefined;
    }
    await Promise.all([...runtimes.values()].map((r) => r.dispose('node draining', RoomCloseCode.MOVED)));
  }

  async broadcast<T>(type: MessageType<T>, payload: T, options: { roomName?: string } = {}): Promise<number> {
    // Other nodes first: the publish is written to the Redis socket now, before this node's own fan-out, whose
    // cost grows with its clients. The other way round every other node's clients waited for this node's fan-out
    // as well as their own (in the cluster bench: ~100 ms of cross-node overhead at 200 clients per node).
    const published = this.bus.broadcast(type as MessageType, payload, options.roomName);
    const n = this.deliver(type as MessageType, payload, options.roomName);
    await published;
    return n;
  }

  async sendToRoom<T>(roomId: string, type: MessageType<T>, payload: T): Promise<boolean> {
    const local = this.host.runtimes.get(roomId);
    if (local) {
      local.remoteMessage(type.name, payload, this.host.processId);
      return true;
    }
    const frame = { t: 'm', o: this.host.processId, ...wireMessage(type as MessageType, payload) };
    return (await this.host.presence.publish(roomChannel(roomId), JSON.stringify(frame))) > 0;
  }

  /**
   * A new room for matchmaking: on the node placement picks (this one when not started, when no other node is
   * known, or when the picked node does not answer).
   */
  async place(name: string, options: Record<string, unknown>): Promise<RoomListing> {
    const [target] = await this.targets(name, 1);
    return this.createAt(target, name, options);
  }

  /**
   * `count` new rooms at once: placed one after the other on one view of the nodes (each counted on the node it
   * goes to, so that they spread instead of all going to the least-loaded node), created in parallel. Settles with
   * the rooms made; rejects with the first error only when none was.
   */
  async placeMany(name: string, options: Record<string, unknown>, count: number): Promise<RoomListing[]> {
    const targets = await this.targets(name, count);
    const settled = await Promise.allSettled(targets.map((t) => this.createAt(t, name, options)));
    const made = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    if (made.length === 0) throw (settled[0] as PromiseRejectedResult).reason;
    return made;
  }

  /** Where `count` new rooms go; `undefined`: this node. */
  private async targets(name: string, count: number): Promise<(string | undefined)[]> {
    const { driver } = this.host;
    if (!this.starting || !driver.nodes) return Array.from({ length: count }, () => undefined);
    const nodes = (await driver.nodes()).filter((n) => !n.draining && n.types.includes(name));
    const pick = this.host.placement ?? leastLoaded;
    return Array.from({ length: count }, () => {
      const target = pick(nodes, name);
      const n = nodes.find((x) => x.processId === target);
      if (n) nodes[nodes.indexOf(n)] = { ...n, rooms: n.rooms + 1 };
      return target;
    });
  }

  private async createAt(
    target: string | undefined,
    name: string,
    options: Record<string, unknown>,
  ): Promise<RoomListing> {
    if (target !== undefined && target !== this.host.processId) {
      try {
        return await this.bus.createOn(target, name, options, this.host.placementTimeoutMs ?? 2000);
      } catch (err) {
        const code = err instanceof RoomError ? err.code : '';
        if (code !== RoomErrorCode.NODE_UNREACHABLE && code !== RoomErrorCode.NODE_DRAINING) throw err;
        bump(this.host.metrics.errors, code);
      }
    }
    return this.createHere(name, options);
  }

  /** A frame on a room's channel: a seat reserved (its expiry), or a message from outside (JSON). */
  roomFrame(runtime: RoomRuntime, msg: string): void {
    if (!msg.startsWith('{')) {
      runtime.seatReserved(Number(msg));
      return;
    }
    const f = parse(msg);
    if (f?.t !== 'm' || typeof f.n !== 'string') {
      bump(this.host.metrics.errors, 'cluster-malformed');
      return;
    }
    const type = messageTypeOf(f as unknown as Parameters<typeof messageTypeOf>[0]);
    runtime.remoteMessage(type.name, f.p, typeof f.o === 'string' ? f.o : '');
  }

  /** A room of this process was disposed (a drain waits for the last). */
  roomDisposed(): void {
    queueMicrotask(() => this.drainWaiter?.());
  }

  close(): Promise<void> {
    return this.bus.close();
  }

  /** Creates a room in this process, unless it is draining. */
  private async createHere(name: string, options: Record<string, unknown>): Promise<RoomListing> {
    if (this.draining) throw new RoomError(RoomErrorCode.NODE_DRAINING, 'this node is draining');
    return this.host.createLocal(name, options);
  }

  private localClients(): number {
    let n = 0;
    for (const r of this.host.runtimes.values()) n += r.listing.clients;
    return n;
  }

  /** Delivers a broadcast to this node's rooms (of `roomName`, or all); returns how many clients it reached. */
  private deliver(type: MessageType, payload: unknown, roomName: string | undefined): number {
    let n = 0;
    for (const r of this.host.runtimes.values()) {
      if (r.disposed || (roomName !== undefined && r.roomName !== roomName)) continue;
      n += r.room.broadcast(type, payload);
    }
    return n;
  }
}
