import type { SessionClient, Clock, Handler, SendOptions } from '@quiver/session';
import { systemClock } from '@quiver/session';
import {
  type ClientSnapshot,
  type ComponentMap,
  SyncClient,
  type SyncClientOptions,
  SyncError,
  type SyncSchema,
} from '@quiver/sync';
import { RoomError, RoomErrorCode } from '../errors.js';
import type { RoomMessage, RoomRequest } from '../messages.js';
import {
  AckMsg,
  CancelMsg,
  ErrorMsg,
  type ErrorFrame,
  type JoinedFrame,
  JoinedMsg,
  JoinMsg,
  LeaveMsg,
  LeftMsg,
  RequestMsg,
  ResponseMsg,
  RoomCloseCode,
  StateMsg,
} from '../protocol.js';

/** Options of joining a room from the client. */
export interface JoinOptions<M extends ComponentMap = ComponentMap> {
  /** The room's sync schema: the room handle then decodes its state (`room.state`). */
  state?: SyncSchema<M>;
  /** Options of the state decoder (`@quiver/sync` client); used with `state`. */
  sync?: SyncClientOptions;
  /** Deadline for the room's answer to the join. Default 10 000 ms. */
  timeoutMs?: number;
  /** Time source of request and join deadlines. Default the system clock. */
  clock?: Clock;
}

/** Options of one `room.request`. */
export interface RequestOptions {
  /** Rejects with `timeout` (and cancels the request on the server) after this. Default 10 000 ms. */
  timeoutMs?: number;
  /** Aborting rejects with `left` and cancels the request on the server. */
  signal?: AbortSignal;
}

interface RoomEvents {
  /** A typed error the room sent (invalid payload, handler error). */
  error: (error: RoomError, message?: string) => void;
  /** The client is out of the room: `consented` when it called `leave()`. */
  leave: (info: { code: number; reason: string; consented: boolean }) => void;
  /** The transport dropped; the session is resuming. */
  disconnect: () => void;
  /** Back in the room, on the same seat. */
  reconnect: () => void;
  /**
   * The room's node drained (`moved`) or died (`node-lost`) and the client matchmade again: this handle is now in
   * another room (`roomId`, `clientId`, `state` are the new room's; message handlers carry over).
   */
  rematch: (info: { previousRoomId: string; reason: 'moved' | 'node-lost' }) => void;
}

/**
 * What a room handle needs to follow its room across nodes (given by `RoomsClient`): whether the room is still
 * hosted, and how to matchmake again.
 */
export interface Rematcher {
  /** Whether the room is still listed (its node alive); rejects when no matchmaker answers. */
  alive(roomId: string): Promise<boolean>;
  /** Matchmakes again and joins: a new session joined to a room; undefined when this room is not rematched. */
  again?: () => Promise<{ session: SessionClient; joined: JoinedFrame; processId?: string }>;
  /** How often `alive` is asked while the transport is down. */
  checkMs: number;
  /** How long rematchmaking is retried before the room is given up (`left`). */
  timeoutMs: number;
}

// biome-ignore lint/suspicious/noExplicitAny: handlers of every payload type share one table
type MessageEntry = { type: RoomMessage<any>; handler: Handler<any, SessionClient>; off: () => void };

/** Something that takes interpolation snapshots (`SnapshotFeed` of `@quiver/predict`). */
export interface SnapshotSink<M extends ComponentMap> {
  /** Takes one decoded state tick, stamped with the local time it was applied (milliseconds). */
  push(snapshot: ClientSnapshot<M>, localTimeMs: number): void;
}

/**
 * A joined room on the client, over its own session. Messages are the room's typed messages; `request` awaits the
 * handler's answer; `state` is the decoded sync state when the join named a schema.
 */
export class ClientRoom<M extends ComponentMap = ComponentMap> {
  /** The room's id, for `joinById` and logs. */
  roomId: string;
  /** The room type's name. */
  readonly roomName: string;
  /** This client's id in the room, as the server's `RoomClient` has it. */
  clientId: string;
  /** `client.reconnect(token)` takes the seat back with it after the session could not be resumed (page reload). */
  reconnectToken: string;
  /** The node hosting the room, when joined through `RoomsClient` (from the reservation). */
  processId: string | undefined;
  /**
   * Decoded room state (`entered`, `changed`, `left`, `snapshot` events), when joined with a schema. A new decoder
   * after a `rematch`.
   */
  state: SyncClient<M> | undefined;
  /** True once the client is out of the room; `send` and `request` then throw `left`. */
  left = false;
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: RoomError) => void; done: () => void }
  >();
  // biome-ignore lint/suspicious/noExplicitAny: handlers of every event share one table
  private readonly events = new Map<keyof RoomEvents, Set<(...args: any[]) => void>>();
  /** Message handlers registered through `on(Msg)`: re-attached to the new session after a rematch. */
  private readonly handlers = new Set<MessageEntry>();
  private readonly offs: (() => void)[] = [];
  private readonly clock: Clock;
  private current: SessionClient;
  private watchTimer: ReturnType<Clock['setTimeout']> | undefined;
  private watching = false;
  private moving = false;

  constructor(
    /** The room's own session (one per joined room). */
    session: SessionClient,
    joined: JoinedFrame,
    private readonly options: JoinOptions<M> = {},
    private readonly rematcher?: Rematcher,
  ) {
    this.current = session;
    this.processId = undefined;
    this.roomId = joined.roomId;
    this.roomName = joined.roomName;
    this.clientId = joined.clientId;
    this.reconnectToken = joined.reconnectToken;
    this.clock = options.clock ?? systemClock;
    this.wire(session);
  }

  /** The room's own session (one per joined room; a new one after a `rematch`). */
  get session(): SessionClient {
    return this.current;
  }

  private wire(session: SessionClient): void {
    this.current = session;
    const options = this.options;
    this.state = undefined;
    if (options.state) {
      const state = new SyncClient(options.state, options.sync);
      this.state = state;
      this.offs.push(
        session.on(StateMsg, (bytes) => {
          try {
            state.receive(bytes);
          } catch (err) {
            if (!(err instanceof SyncError)) throw err; // typed and counted in state.stats; the state is unchanged
          }
          // The room carries acknowledgements itself: one small datagram per packet received.
          session.send(AckMsg, state.createAck());
        }),
      );
    }
    const moved = (code: number) => code === RoomCloseCode.MOVED && !!this.rematcher?.again;
    this.offs.push(
      session.on(ResponseMsg, (f) => this.onResponse(f)),
      session.on(ErrorMsg, (f: ErrorFrame) => {
        // A refused (re)join is the join's answer, reported by `rejoin`.
        if (f?.message !== JoinMsg.name) this.emit('error', RoomError.fromWire(f?.error), f?.message);
      }),
      session.on(LeftMsg, (f) => {
        const code = f?.code ?? RoomCloseCode.REMOVED;
        if (moved(code)) void this.move('moved');
        else this.finish(code, f?.reason ?? '', false);
      }),
      session.on('reconnecting', () => {
        this.emit('disconnect');
        this.watch();
      }),
      session.on('open', (info) => {
        this.unwatch();
        if (info.recovered) this.emit('reconnect');
        else void this.rejoin();
      }),
      session.on('close', (info) => {
        if (moved(info.code)) void this.move('moved');
        else this.finish(info.code, info.reason, info.code === RoomCloseCode.LEFT);
      }),
    );
    for (const h of this.handlers) h.off = session.on(h.type, h.handler);
  }

  /** While the transport is down: ask whether the room is still hosted, and leave (or rematch) once it is not. */
  private watch(): void {
    const r = this.rematcher;
    if (!r || this.watching || this.left) return;
    this.watching = true;
    const check = async () => {
      this.watchTimer = undefined;
      if (!this.watching) return;
      const alive = await r.alive(this.roomId).catch(() => true);
      if (!this.watching) return;
      if (!alive) return void this.move('node-lost');
      this.watchTimer = this.clock.setTimeout(() => void check(), r.checkMs);
    };
    void check();
  }

  private unwatch(): void {
    this.watching = false;
    this.clock.clearTimeout(this.watchTimer);
    this.watchTimer = undefined;
  }

  /**
   * The room is gone with its node: matchmake again (when this room's method allows) and carry the handle over,
   * or leave with `node-lost` (typed, so a game can tell it from a kick).
   */
  private async move(reason: 'moved' | 'node-lost'): Promise<void> {
    if (this.moving || this.left) return;
    this.moving = true;
    this.unwatch();
    const old = this.current;
    for (const off of this.offs.splice(0)) off();
    for (const h of this.handlers) h.off();
    this.failPending();
    void old.close(RoomCloseCode.LEFT, reason).catch(() => {});
    const again = this.rematcher?.again;
    const lost = new RoomError(
      RoomErrorCode.NODE_LOST,
      reason === 'moved' ? 'the room moved off its node' : "the room's node is gone",
    );
    if (!again) {
      this.moving = false;
      this.emit('error', lost);
      this.finish(reason === 'moved' ? RoomCloseCode.MOVED : RoomCloseCode.REMOVED, reason, false);
      return;
    }
    const deadline = this.clock.now() + (this.rematcher?.timeoutMs ?? 10_000);
    let delay = 50;
    for (;;) {
      try {
        const { session, joined, processId } = await again();
        if (this.left) {
          // left meanwhile
          void session.close(RoomCloseCode.LEFT, 'left the room').catch(() => {});
          return;
        }
        const previousRoomId = this.roomId;
        this.roomId = joined.roomId;
        this.clientId = joined.clientId;
        this.reconnectToken = joined.reconnectToken;
        this.processId = processId;
        this.moving = false;
        this.wire(session);
        this.emit('rematch', { previousRoomId, reason });
        return;
      } catch (err) {
        if (this.clock.now() + delay > deadline || this.left) {
          this.moving = false;
          this.emit('error', err instanceof RoomError ? err : lost);
          this.finish(RoomCloseCode.REMOVED, reason, false);
          return;
        }
        await new Promise<void>((r) => this.clock.setTimeout(r, delay));
        delay = Math.min(delay * 2, 1000);
      }
    }
  }

  /** Handles a room message from the server. */
  on<T>(type: RoomMessage<T>, handler: Handler<T, SessionClient>): () => void;
  on<E extends keyof RoomEvents>(event: E, handler: RoomEvents[E]): () => void;
  // biome-ignore lint/suspicious/noExplicitAny: handlers of every payload type share one table
  on(type: RoomMessage<any> | keyof RoomEvents, handler: (...args: any[]) => void): () => void {
    if (typeof type !== 'string') {
      // Kept, so that a rematch carries it over to the new session.
      const entry = { type, handler, off: this.current.on(type, handler) };
      this.handlers.add(entry);
      return () => {
        this.handlers.delete(entry);
        entry.off();
      };
    }
    let set = this.events.get(type);
    if (!set) {
      set = new Set();
      this.events.set(type, set);
    }
    set.add(handler);
    return () => set.delete(handler);
  }

  /**
   * Sends a room message; returns false when an unreliable message was dropped (as the session's `send`), or while
   * the handle is between rooms (rematchmaking). Throws `left` once out of the room.
   */
  send<T>(type: RoomMessage<T>, payload: T, options?: SendOptions): boolean {
    if (this.left) throw new RoomError(RoomErrorCode.LEFT, 'not in the room');
    // Between rooms (rematchmaking): nothing carries it.
    if (this.moving) return false;
    return this.session.send(type, payload, options);
  }

  /**
   * Sends a request and resolves with the handler's answer; rejects with a `RoomError`: the handler's own code,
   * `validation`, `no-handler`, `handler-error`, `timeout` (the server is told to cancel), or `left`.
   */
  request<Q, R>(type: RoomRequest<Q, R>, payload: Q, options: RequestOptions = {}): Promise<R> {
    if (this.left) return Promise.reject(new RoomError(RoomErrorCode.LEFT, 'not in the room'));
    const id = this.nextId++;
    return new Promise<R>((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? 10_000;
      const cancel = (err: RoomError) => {
        if (!this.pending.has(id)) return;
        entry.done();
        try {
          this.session.send(CancelMsg, { i: id });
        } catch {
          // the session is gone: nothing to cancel
        }
        reject(err);
      };
      const timer = this.clock.setTimeout(
        () =>
          cancel(new RoomError(RoomErrorCode.TIMEOUT, `no answer to '${type.name}' within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const onAbort = () => cancel(new RoomError(RoomErrorCode.LEFT, 'the request was aborted'));
      options.signal?.addEventListener('abort', onAbort, { once: true });
      const entry = {
        resolve: resolve as (v: unknown) => void,
        reject,
        done: () => {
          this.pending.delete(id);
          this.clock.clearTimeout(timer);
          options.signal?.removeEventListener('abort', onAbort);
        },
      };
      this.pending.set(id, entry);
      try {
        this.session.send(RequestMsg, { i: id, n: type.name, p: payload });
      } catch (err) {
        entry.done();
        reject(new RoomError(RoomErrorCode.LEFT, String((err as Error).message)));
      }
    });
  }

  /** Leaves the room (consented: the room's `onLeave` sees `true`) and closes the session. */
  async leave(): Promise<void> {
    if (this.left) return;
    try {
      this.session.send(LeaveMsg, {});
      await this.session.drained();
    } catch {
      // already closing
    }
    this.finish(RoomCloseCode.LEFT, 'left', true);
    await this.session.close(RoomCloseCode.LEFT, 'left the room');
  }

  /** Feeds every applied state tick into `sink` (e.g. `SnapshotFeed` of `@quiver/predict`) at local time. */
  feed(sink: SnapshotSink<M>, now: () => number = () => this.clock.now()): () => void {
    if (!this.state) throw new TypeError('the room was joined without a state schema');
    return this.state.on('snapshot', (snap) => sink.push(snap, now()));
  }

  private onResponse(f: unknown): void {
    const frame = f as { i?: unknown; v?: unknown; e?: unknown };
    const p = typeof frame?.i === 'number' ? this.pending.get(frame.i) : undefined;
    if (!p) return; // timed out or cancelled before the answer came
    p.done();
    if (frame.e !== undefined) p.reject(RoomError.fromWire(frame.e));
    else p.resolve(frame.v);
  }

  /** The session came back without its state (resume window passed): take the seat back with the token. */
  private async rejoin(): Promise<void> {
    try {
      const joined = await awaitJoined(this.session, { reconnect: this.reconnectToken }, 10_000, this.clock);
      this.clientId = joined.clientId;
      this.reconnectToken = joined.reconnectToken;
      this.emit('reconnect');
    } catch (err) {
      this.emit('error', err instanceof RoomError ? err : new RoomError(RoomErrorCode.RECONNECT_EXPIRED));
      this.finish(RoomCloseCode.REMOVED, 'reconnection refused', false);
      await this.session.close(RoomCloseCode.LEFT, 'reconnection refused').catch(() => {});
    }
  }

  private failPending(): void {
    for (const p of [...this.pending.values()]) {
      p.done();
      p.reject(new RoomError(RoomErrorCode.LEFT, 'left the room with the request pending'));
    }
  }

  private finish(code: number, reason: string, consented: boolean): void {
    // While moving, the old session's end is not the room's; a `leave()` (consented) still is.
    if (this.left || (this.moving && !consented)) return;
    this.left = true;
    this.unwatch();
    this.failPending();
    for (const off of this.offs.splice(0)) off();
    this.emit('leave', { code, reason, consented });
  }

  private emit(event: keyof RoomEvents, ...args: unknown[]): void {
    for (const h of this.events.get(event) ?? []) {
      try {
        h(...args);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}

/** Sends the join frame on `session` and waits for the room's answer. */
export function awaitJoined(
  session: SessionClient,
  frame: { seat: string } | { reconnect: string },
  timeoutMs: number,
  clock: Clock = systemClock,
): Promise<JoinedFrame> {
  return new Promise<JoinedFrame>((resolve, reject) => {
    const offs: (() => void)[] = [];
    const done = () => {
      for (const off of offs) off();
      clock.clearTimeout(timer);
    };
    const timer = clock.setTimeout(() => {
      done();
      reject(new RoomError(RoomErrorCode.TIMEOUT, `no answer to the join within ${timeoutMs} ms`));
    }, timeoutMs);
    offs.push(
      session.on(JoinedMsg, (j) => {
        done();
        resolve(j);
      }),
      session.on(ErrorMsg, (f) => {
        if (f?.message !== JoinMsg.name) return;
        done();
        reject(RoomError.fromWire(f.error));
      }),
      session.on('close', (c) => {
        done();
        // A refused join closes with its code as the reason, in case the error frame lost the race to the close.
        if (c.code === RoomCloseCode.JOIN_REFUSED)
          reject(new RoomError(c.reason, `join refused: ${c.reason}`));
        else
          reject(new RoomError(RoomErrorCode.LEFT, `session closed before the join: ${c.code} ${c.reason}`));
      }),
    );
    try {
      session.send(JoinMsg, frame as { seat: string });
    } catch (err) {
      done();
      reject(new RoomError(RoomErrorCode.LEFT, String((err as Error).message)));
    }
  });
}

/** Joins the room a seat was reserved in, over a connected session. */
export async function joinWithSeat<M extends ComponentMap = ComponentMap>(
  session: SessionClient,
  seat: string,
  options: JoinOptions<M> = {},
  rematcher?: Rematcher,
): Promise<ClientRoom<M>> {
  const joined = await awaitJoined(session, { seat }, options.timeoutMs ?? 10_000, options.clock);
  return new ClientRoom<M>(session, joined, options, rematcher);
}
