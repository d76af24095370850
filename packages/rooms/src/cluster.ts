/**
 * Messages between the nodes of a deployment, over the presence's pub/sub: room creation placed on another node,
 * broadcasts to rooms of every node, and messages to a room from any node. Payloads cross as JSON (the presence
 * carries strings), so what a node broadcasts to other nodes must be JSON-serialisable.
 */
import { type Clock, type MessageType, randomToken } from '@quiver/session';
import type { NodeStatus, RoomListing } from './driver.js';
import { RoomError, RoomErrorCode, type WireError } from './errors.js';
import type { Presence } from './presence.js';

/** The channel a node listens on for requests from other nodes, and for the answers to its own. */
export function nodeChannel(processId: string): string {
  return `quiver:node:${processId}`;
}

/** The channel every node listens on for broadcasts to rooms (of one type, or all). */
export const BROADCAST_CHANNEL = 'quiver:broadcast';

/**
 * Picks the node that hosts a new room among the live nodes that define its type and are not draining; `undefined`
 * creates it on the node that matchmakes.
 */
export type Placement = (nodes: readonly NodeStatus[], roomName: string) => string | undefined;

/** The default placement: fewest rooms, then fewest clients, then the lowest `processId` (deterministic). */
export const leastLoaded: Placement = (nodes) => {
  let best: NodeStatus | undefined;
  for (const n of nodes) {
    if (
      !best ||
      n.rooms < best.rooms ||
      (n.rooms === best.rooms &&
        (n.clients < best.clients || (n.clients === best.clients && n.processId < best.processId)))
    ) {
      best = n;
    }
  }
  return best?.processId;
};

/** A room message as it crosses between nodes: the type's identity and a JSON payload. */
interface WireMessage {
  /** Message type name. */
  n: string;
  /** Its fixed compact id, if any. */
  i?: number;
  /** Its channel, if not `reliable`. */
  c?: string;
  /** Payload. */
  p: unknown;
}

type BusFrame =
  | { t: 'create'; id: string; from: string; name: string; options: Record<string, unknown> }
  | { t: 'created'; id: string; listing?: RoomListing; error?: WireError };

interface BroadcastFrame extends WireMessage {
  /** Origin node: it delivered to its own rooms already. */
  o: string;
  /** Only rooms of this type; absent: every room. */
  r?: string;
}

/** What the bus asks of the node it runs on. */
export interface ClusterHandlers {
  /** Creates a room here for another node's matchmaker. */
  createRoom(name: string, options: Record<string, unknown>): Promise<RoomListing>;
  /** A broadcast from another node reached this one: deliver it to the matching local rooms. */
  broadcast(type: MessageType, payload: unknown, roomName: string | undefined): void;
  /** A frame that could not be read (counted). */
  malformed(): void;
}

/** Node-to-node requests and broadcasts over presence pub/sub; one per `RoomServer`. */
export class ClusterBus {
  private readonly pending = new Map<
    string,
    { resolve: (l: RoomListing) => void; reject: (e: Error) => void; timer: unknown }
  >();
  private subscriptions: Promise<(() => Promise<void>)[]> | undefined;

  constructor(
    private readonly presence: Presence,
    private readonly processId: string,
    private readonly clock: Clock,
    private readonly handlers: ClusterHandlers,
  ) {}

  /** Listens on this node's channel and the broadcast channel; idempotent. */
  start(): Promise<unknown> {
    this.subscriptions ??= Promise.all([
      this.presence.subscribe(nodeChannel(this.processId), (m) => void this.onNodeFrame(m)),
      this.presence.subscribe(BROADCAST_CHANNEL, (m) => this.onBroadcast(m)),
    ]);
    return this.subscriptions;
  }

  /** Asks node `processId` to create a room; rejects with its typed error, or `node-unreachable` after `timeoutMs`. */
  createOn(
    processId: string,
    name: string,
    options: Record<string, unknown>,
    timeoutMs: number,
  ): Promise<RoomListing> {
    const id = randomToken(8);
    return new Promise<RoomListing>((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        this.pending.delete(id);
        reject(new RoomError(RoomErrorCode.NODE_UNREACHABLE, `node ${processId} did not answer`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      const frame: BusFrame = { t: 'create', id, from: this.processId, name, options };
      this.presence.publish(nodeChannel(processId), JSON.stringify(frame)).then(
        (receivers) => {
          // Nobody subscribed: the node is gone; no need to wait for the timeout.
          if (receivers === 0) this.settle(id, { t: 'created', id, error: unreachable(processId) });
        },
        (err: Error) => this.settle(id, { t: 'created', id, error: unreachable(processId, err.message) }),
      );
    });
  }

  /** Publishes a broadcast for the rooms of every other node (this node delivers to its own rooms itself). */
  async broadcast(type: MessageType, payload: unknown, roomName: string | undefined): Promise<void> {
    const frame: BroadcastFrame = { o: this.processId, ...wireMessage(type, payload) };
    if (roomName !== undefined) frame.r = roomName;
    await this.presence.publish(BROADCAST_CHANNEL, JSON.stringify(frame));
  }

  /** Stops listening; pending creations fail with `node-unreachable`. */
  async close(): Promise<void> {
    for (const [id] of this.pending) this.settle(id, { t: 'created', id, error: unreachable('(closing)') });
    const subs = this.subscriptions;
    this.subscriptions = undefined;
    if (subs) for (const off of await subs.catch(() => [])) await off().catch(() => {});
  }

  private async onNodeFrame(raw: string): Promise<void> {
    const f = parse(raw) as BusFrame | undefined;
    if (f?.t === 'created' && typeof f.id === 'string') return this.settle(f.id, f);
    if (f?.t !== 'create' || typeof f.id !== 'string' || typeof f.from !== 'string') {
      this.handlers.malformed();
      return;
    }
    let reply: BusFrame;
    try {
      const listing = await this.handlers.createRoom(String(f.name), isRecord(f.options) ? f.options : {});
      reply = { t: 'created', id: f.id, listing };
    } catch (err) {
      const e = err instanceof RoomError ? err : new RoomError(RoomErrorCode.CREATE_FAILED, 'create failed');
      reply = { t: 'created', id: f.id, error: e.toWire() };
    }
    await this.presence.publish(nodeChannel(f.from), JSON.stringify(reply)).catch(() => {});
  }

  private settle(id: string, f: Extract<BusFrame, { t: 'created' }>): void {
    const p = this.pending.get(id);
    if (!p) return; // timed out already
    this.pending.delete(id);
    this.clock.clearTimeout(p.timer as ReturnType<Clock['setTimeout']>);
    if (f.listing) p.resolve(f.listing);
    else p.reject(RoomError.fromWire(f.error));
  }

  private onBroadcast(raw: string): void {
    const f = parse(raw) as BroadcastFrame | undefined;
    if (!f || typeof f.o !== 'string' || typeof f.n !== 'string') {
      this.handlers.malformed();
      return;
    }
    if (f.o === this.processId) return;
    this.handlers.broadcast(messageTypeOf(f), f.p, typeof f.r === 'string' ? f.r : undefined);
  }
}

/** A message type and payload as they cross between nodes. */
export function wireMessage(type: MessageType, payload: unknown): WireMessage {
  const m: WireMessage = { n: type.name, p: payload };
  if (type.id !== undefined) m.i = type.id;
  if (type.channel !== undefined) m.c = type.channel;
  return m;
}

/** The message type a frame from another node names (same name, id and channel as the sender's). */
export function messageTypeOf(m: WireMessage): MessageType {
  return Object.freeze({
    name: m.n,
    id: typeof m.i === 'number' ? m.i : undefined,
    channel: typeof m.c === 'string' ? m.c : undefined,
  });
}

/** JSON from another node, or `undefined` when it is not an object. */
export function parse(raw: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(raw) as unknown;
    return isRecord(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function unreachable(processId: string, why = 'not listening'): WireError {
  return new RoomError(RoomErrorCode.NODE_UNREACHABLE, `node ${processId}: ${why}`).toWire();
}
