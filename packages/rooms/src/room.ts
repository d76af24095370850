import { SpanKind, trace } from '@opentelemetry/api';
import type { AuthResult, MessageType, SendOptions, ServerSession, TimerHandle } from '@quiver/session';
import { startSpan, withSpan } from '@quiver/session/otel';
import type { ComponentMap } from '@quiver/sync';
import type { SessionRequest } from '@quiver/transport';
import type { RoomClock } from './clock.js';
import { RoomError } from './errors.js';
import type { RoomMessage, RoomRequest } from './messages.js';
import { ErrorMsg } from './protocol.js';
import type { RoomRuntime } from './runtime.js';
import type { RoomState, RoomStateOptions } from './state.js';

/** Spans of room operations (the broadcast fan-out), on the global provider: a no-op until an SDK registers. */
const tracer = trace.getTracer('@quiver/rooms');

/**
 * Where a client is: `joining` until `onJoin` returned, `joined`, `disconnected` while its seat is held for
 * reconnection, `left` once the seat is freed.
 */
export type RoomClientState = 'joining' | 'joined' | 'disconnected' | 'left';

/**
 * A client in a room, on the server: one seat. It outlives its session while the seat is held for reconnection
 * (`reconnectWindowMs`), and is then attached to the new session.
 */
export class RoomClient<Data = Record<string, unknown>, Auth = unknown> {
  /** See {@link RoomClientState}. */
  state: RoomClientState = 'joining';
  /** The per-client data slot: whatever the room keeps about this client. */
  data: Data = {} as Data;
  /** What `onAuth` returned. */
  auth: Auth = undefined as Auth;
  /** @internal requests in flight, by the client's request id */
  readonly pending = new Map<number, AbortController>();
  /** @internal */
  reconnectTimer: TimerHandle | undefined;

  constructor(
    /** Stable for the life of the seat, across reconnects. */
    readonly id: string,
    /** The session carrying the client now. */
    public session: ServerSession,
    /** `client.reconnect(token)` takes the seat back with it after the session could not be resumed. */
    readonly reconnectToken: string,
  ) {}

  /** Who the session authenticated (`authenticate` of the session server). */
  get user(): AuthResult {
    return this.session.user;
  }

  /**
   * Sends a room message to this client. Returns false when the client has left or a datagram was dropped; while
   * the transport is down, reliable messages wait in the session's replay buffer.
   */
  send<T>(type: RoomMessage<T>, payload: T, options?: SendOptions): boolean {
    if (this.state === 'left' || this.session.state === 'closed') {
      // Held for reconnection without a session, or gone: nothing carries it.
      this.host?.undelivered();
      return false;
    }
    try {
      return this.session.send(type, payload, options);
    } catch {
      // A full queue or a closed session: the session layer counted it; the room goes on.
      return false;
    }
  }

  /** Sends a typed error frame (not a response): the client room emits it as `error`. */
  error(err: RoomError, about?: string): void {
    if (this.state === 'left' || this.session.state === 'closed') return;
    try {
      this.session.send(
        ErrorMsg,
        about === undefined ? { error: err.toWire() } : { error: err.toWire(), message: about },
      );
    } catch {
      // as in send()
    }
  }

  /** Removes the client from the room (not consented: `onLeave(client, false)`). */
  leave(reason = 'removed by the room'): void {
    this.host?.remove(this as unknown as RoomClient, reason);
  }

  /** @internal */
  host: RoomRuntime | undefined;
}

/** Which clients a broadcast reaches, and on which channel. */
export interface BroadcastOptions<C> {
  /** A client (or clients) left out, typically the sender. */
  except?: C | readonly C[];
  /** Only clients for which it returns true. */
  filter?: (client: C) => boolean;
  /** The session channel to send on. Default the message type's channel, else `reliable`. */
  channel?: string;
}

/** What a request handler gets besides the client and the payload. */
export interface RequestContext {
  /** Aborted when the client cancels (its `timeoutMs` passed) or leaves: stop work, the answer goes nowhere. */
  signal: AbortSignal;
}

/**
 * Messages across the nodes of a deployment (`room.cluster`, `app.rooms.cluster`). With one process (the in-memory
 * default) they reach this process's rooms; on Redis every node's. Payloads cross nodes as JSON.
 */
export interface Cluster {
  /** This node's `processId`. */
  readonly processId: string;
  /**
   * Sends to the clients of every room of `options.roomName` (or of every room) on every node. Resolves with how
   * many clients of this node it reached.
   */
  broadcast<T>(type: MessageType<T>, payload: T, options?: { roomName?: string }): Promise<number>;
  /** Runs the room's `onRemoteMessage(type, ...)` handlers, on whichever node hosts it; false when none does. */
  sendToRoom<T>(roomId: string, type: MessageType<T>, payload: T): Promise<boolean>;
}

/** Handles a message sent into the room from outside (`cluster.sendToRoom`); `from` is the sending node. */
export type RemoteMessageHandler<T> = (payload: T, from: { processId: string }) => void;

/** Handles one room message from `client`; `payload` passed the message's schema. */
export type MessageHandler<C, T> = (client: C, payload: T) => void;
/** Answers one request from `client`: return the response; throw a `RoomError` for a typed error. */
export type RequestHandler<C, Q, R> = (client: C, payload: Q, context: RequestContext) => R | Promise<R>;

/**
 * A room type: subclass it, override the lifecycle hooks you need, and register it with
 * `rooms.define('arena', ArenaRoom)`. `Options` is what clients matchmake with, `Data` the per-client slot, `Auth`
 * what `onAuth` returns.
 */
export abstract class Room<Options = unknown, Data = Record<string, unknown>, Auth = unknown> {
  /** Seats; `null` for no limit. Read after `onCreate`, so it may be set there. Default null. */
  maxClients: number | null = null;
  /** Dispose the room when its last client leaves and no seat is reserved. Default true. */
  autoDispose = true;
  /**
   * How long a client's seat is held after its session ended without `leave()` (beyond the session's own resume
   * window), for `client.reconnect(token)`. Default 0: the seat is freed at once.
   */
  reconnectWindowMs = 0;
  /** Requests in flight per client; more are answered `too-many-requests`. Default 32. */
  maxPendingRequests = 32;

  /** @internal set before `onCreate` */
  runtime!: RoomRuntime;

  /** The room's unique id (as listed, and as `joinById` takes it). */
  get roomId(): string {
    return this.runtime.roomId;
  }

  /** The room type's name, as given to `define`. */
  get roomName(): string {
    return this.runtime.roomName;
  }

  /** Clients holding a seat (joined, or disconnected within a window). */
  get clients(): readonly RoomClient<Data, Auth>[] {
    return this.runtime.clientList() as RoomClient<Data, Auth>[];
  }

  /** Messages to rooms on every node: broadcasts by room type or to all, and to one room by id. */
  get cluster(): Cluster {
    return this.runtime.cluster;
  }

  /** The room's clock: timers on it are cleared when the room is disposed. */
  get clock(): RoomClock {
    return this.runtime.clock;
  }

  /** True while `lock()` is in force: matchmaking skips the room. */
  get locked(): boolean {
    return this.runtime.listing.locked;
  }

  /** The listing's metadata, as `setMetadata` left it. */
  get metadata(): Readonly<Record<string, unknown>> {
    return this.runtime.listing.metadata;
  }

  /** True when the room is not listed and only joined by id (see `setPrivate`). */
  get isPrivate(): boolean {
    return this.runtime.listing.private;
  }

  /** The room's synchronised state, once `setState` was called. */
  get state(): RoomState | undefined {
    return this.runtime.state;
  }

  /**
   * Once, before the room is listed, with the options of the client that created it. Throwing leaves nothing
   * behind: the creator gets `create-failed` (or the `RoomError` thrown).
   */
  onCreate?(options: Options): void | Promise<void>;
  /**
   * Per room, after the session's own authentication. Return what the room should know of the client (kept in
   * `client.auth`); return `false` or throw to refuse the join (`auth-failed`).
   */
  onAuth?(
    client: RoomClient<Data, Auth>,
    options: Options,
    request: SessionRequest,
  ): Auth | false | Promise<Auth | false>;
  /** After `onAuth` accepted the client, its seat taken; broadcasts reach it once this returns. Throwing: `join-failed`. */
  onJoin?(client: RoomClient<Data, Auth>, options: Options, auth: Auth): void | Promise<void>;
  /** `consented`: the client called `leave()`; false when its connection was lost for good or it was removed. */
  onLeave?(client: RoomClient<Data, Auth>, consented: boolean): void | Promise<void>;
  /** The client's transport dropped; its seat is held (session resume window, then `reconnectWindowMs`). */
  onDisconnect?(client: RoomClient<Data, Auth>): void;
  /** The client is back on the same seat (session resumed, or `reconnect(token)`). */
  onReconnect?(client: RoomClient<Data, Auth>): void;
  /** Once, when the room is disposed (last client left with `autoDispose`, or `disconnect()`): release resources. */
  onDispose?(): void | Promise<void>;

  /** Handles a room message; the payload passed the message's schema. */
  onMessage<T>(type: RoomMessage<T>, handler: MessageHandler<RoomClient<Data, Auth>, T>): () => void {
    return this.runtime.addMessageHandler(type, handler as MessageHandler<RoomClient, unknown>);
  }

  /**
   * Handles a message sent into this room from outside, from any node (`cluster.sendToRoom(roomId, type, p)`):
   * server-to-room, not from a client, so no schema check (nodes trust each other).
   */
  onRemoteMessage<T>(type: MessageType<T>, handler: RemoteMessageHandler<T>): () => void {
    return this.runtime.addRemoteHandler(type.name, handler as RemoteMessageHandler<unknown>);
  }

  /**
   * Answers a request: return the response (or a promise of it); throw a `RoomError` for a typed error the client
   * receives as is; anything else thrown is `handler-error`.
   */
  onRequest<Q, R>(
    type: RoomRequest<Q, R>,
    handler: RequestHandler<RoomClient<Data, Auth>, Q, R>,
  ): () => void {
    return this.runtime.addRequestHandler(type, handler as RequestHandler<RoomClient, unknown, unknown>);
  }

  /** Sends to every client in the room, except `options.except`, passing `options.filter`; returns how many. */
  broadcast<T>(
    type: RoomMessage<T>,
    payload: T,
    options: BroadcastOptions<RoomClient<Data, Auth>> = {},
  ): number {
    const except = options.except;
    const skip = except === undefined ? undefined : new Set(Array.isArray(except) ? except : [except]);
    // The fan-out is one span; each recipient's send is its child, so the trace shows who got the message.
    const span = startSpan(tracer, `broadcast ${this.roomName}`, SpanKind.PRODUCER, {
      'messaging.system': 'quiver',
      'messaging.operation.type': 'send',
      'messaging.operation.name': 'broadcast',
      'messaging.destination.name': this.roomName,
      'quiver.message.type': type.name.slice(0, 64),
    });
    try {
      const n = withSpan(span, () => {
        let sent = 0;
        for (const c of this.clients) {
          if (c.state === 'joining' || skip?.has(c)) continue;
          if (options.filter && !options.filter(c)) continue;
          if (c.send(type, payload, options.channel ? { channel: options.channel } : undefined)) sent++;
        }
        return sent;
      });
      span.setAttribute('quiver.room.recipients', n);
      return n;
    } finally {
      span.end();
    }
  }

  /** No new seats (matchmaking skips the room; reconnection still works). */
  lock(): Promise<void> {
    return this.runtime.updateListing({ locked: true });
  }

  /** Undoes `lock()`: matchmaking may seat clients again. */
  unlock(): Promise<void> {
    return this.runtime.updateListing({ locked: false });
  }

  /** Private rooms are not listed and only joined by id. */
  setPrivate(value = true): Promise<void> {
    return this.runtime.updateListing({ private: value });
  }

  /** Merges into the listing's metadata (what `GET /quiver/rooms` shows and matchmaking filters on). */
  setMetadata(patch: Record<string, unknown>): Promise<void> {
    return this.runtime.updateListing({ metadata: { ...this.runtime.listing.metadata, ...patch } });
  }

  /** `fn(deltaMs)` every `intervalMs` on the room clock; stopped on dispose. Replaces a previous one. */
  setSimulationInterval(fn: (deltaMs: number) => void, intervalMs = 1000 / 60): () => void {
    return this.runtime.setSimulation(fn, intervalMs);
  }

  /**
   * Declares the room's synchronised state (`@quiver/sync` schema): every `patchIntervalMs` the room ticks it and
   * sends each client its own delta (interest, budget); acknowledgements come back on the room's own messages.
   */
  setState<M extends ComponentMap>(options: RoomStateOptions<RoomClient<Data, Auth>, M>): RoomState<M> {
    return this.runtime.setState(
      options as unknown as RoomStateOptions<RoomClient>,
    ) as unknown as RoomState<M>;
  }

  /** Ticks the state and sends each client its delta now (with `patchIntervalMs: 0`). */
  sendState(): void {
    this.runtime.sendState();
  }

  /** Removes every client and disposes the room. */
  disconnect(reason = 'room closed'): Promise<void> {
    return this.runtime.dispose(reason);
  }
}

// biome-ignore lint/suspicious/noExplicitAny: a room type of any options, data and auth
export type AnyRoom = Room<any, any, any>;
/** A room type's constructor, as `define` takes it. */
export type RoomClass<R extends AnyRoom = AnyRoom> = new () => R;
/** The matchmaking options type of a room type. */
// biome-ignore lint/suspicious/noExplicitAny: inference only
export type OptionsOf<R> = R extends Room<infer O, any, any> ? O : never;

/** Throws a typed error from a handler: `fail('not-your-turn', 'wait for your turn')`. */
export function fail(code: string, message?: string, data?: unknown): never {
  throw new RoomError(code, message ?? code, data);
}
