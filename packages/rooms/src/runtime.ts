import { randomToken, type ServerSession } from '@quiver/session';
import { SyncError, SyncServer } from '@quiver/sync';
import { RoomClock } from './clock.js';
import type { RoomDriver, RoomListing } from './driver.js';
import { errorLabel, RoomError, RoomErrorCode } from './errors.js';
import { type RoomRequest, type RoomMessage, validate, type ValidationResult } from './messages.js';
import { bump, type RoomMetrics } from './metrics.js';
import {
  type JoinedFrame,
  LeftMsg,
  type RequestFrame,
  ResponseMsg,
  RoomCloseCode,
  StateMsg,
} from './protocol.js';
import {
  type Cluster,
  type MessageHandler,
  type RemoteMessageHandler,
  type RequestHandler,
  type Room,
  RoomClient,
} from './room.js';
import type { RoomState, RoomStateOptions } from './state.js';

/** What a room needs from the server hosting it. */
export interface RuntimeHost {
  readonly driver: RoomDriver;
  readonly metrics: RoomMetrics;
  readonly clock: import('@quiver/session').Clock;
  readonly cluster: Cluster;
  /** Binds a session to a client: room messages on it reach this runtime. */
  bind(session: ServerSession, client: RoomClient, runtime: RoomRuntime): void;
  reportError(err: Error, where: string): void;
  disposed(runtime: RoomRuntime): void;
}

interface MessageEntry {
  type: RoomMessage;
  handlers: Set<MessageHandler<RoomClient, unknown>>;
}

/**
 * Runs one room: seats, lifecycle hooks, message and request dispatch, the state ticker. The `Room` subclass is the
 * application's view of it.
 */
export class RoomRuntime {
  readonly clock: RoomClock;
  state: RoomState | undefined;
  private readonly clients = new Map<string, RoomClient>();
  private readonly byReconnectToken = new Map<string, RoomClient>();
  readonly messages = new Map<string, MessageEntry>();
  private readonly remoteHandlers = new Map<string, Set<RemoteMessageHandler<unknown>>>();
  private readonly requests = new Map<
    string,
    { type: RoomRequest; handler: RequestHandler<RoomClient, unknown, unknown> }
  >();
  private stopSimulation: (() => void) | undefined;
  private stopPatches: (() => void) | undefined;
  private interest: RoomStateOptions<RoomClient>['interest'];
  private phase: 'creating' | 'live' | 'disposing' | 'disposed' = 'creating';

  constructor(
    readonly room: Room,
    readonly roomName: string,
    readonly roomId: string,
    public listing: RoomListing,
    private readonly host: RuntimeHost,
  ) {
    this.clock = new RoomClock(host.clock, (err) => this.fault(err, 'timer'));
    room.runtime = this;
  }

  get cluster(): Cluster {
    return this.host.cluster;
  }

  addRemoteHandler(name: string, handler: RemoteMessageHandler<unknown>): () => void {
    let set = this.remoteHandlers.get(name);
    if (!set) {
      set = new Set();
      this.remoteHandlers.set(name, set);
    }
    set.add(handler);
    return () => set.delete(handler);
  }

  /** A message into the room from outside (`sendToRoom`); one without a handler is counted as undelivered. */
  remoteMessage(name: string, payload: unknown, from: string): void {
    const set = this.remoteHandlers.get(name);
    if (!set || set.size === 0 || this.disposed) {
      this.undelivered();
      return;
    }
    for (const h of [...set]) {
      try {
        h(payload, { processId: from });
      } catch (err) {
        this.fault(err as Error, `remote:${name}`);
      }
    }
  }

  get disposed(): boolean {
    return this.phase === 'disposing' || this.phase === 'disposed';
  }

  /** A message to a client without a session (left, or held for reconnection): counted, not queued. */
  undelivered(): void {
    bump(this.host.metrics.undelivered, this.roomName);
  }

  clientList(): RoomClient[] {
    return [...this.clients.values()];
  }

  /** Runs `onCreate` and lists the room. A throwing `onCreate` leaves nothing behind. */
  async create(options: unknown): Promise<void> {
    try {
      await this.room.onCreate?.(options);
    } catch (err) {
      this.phase = 'disposed';
      this.clock.dispose();
      this.stopPatches?.();
      this.host.reportError(err as Error, `${this.roomName}.onCreate`);
      throw err instanceof RoomError ? err : new RoomError(RoomErrorCode.CREATE_FAILED, 'onCreate failed');
    }
    const max = this.room.maxClients;
    if (max !== null && !(Number.isInteger(max) && max > 0)) {
      this.phase = 'disposed';
      this.clock.dispose();
      throw new RoomError(RoomErrorCode.CREATE_FAILED, 'maxClients must be a positive integer or null');
    }
    this.listing = { ...this.listing, maxClients: max };
    await this.host.driver.create(this.listing);
    this.phase = 'live';
  }

  async updateListing(patch: Partial<Pick<RoomListing, 'locked' | 'private' | 'metadata'>>): Promise<void> {
    this.listing = { ...this.listing, ...patch };
    if (this.phase === 'live') await this.host.driver.update(this.roomId, patch);
  }

  /** Takes the seat `token` for `session`; throws a `RoomError` that the caller sends before closing the session. */
  async join(session: ServerSession, token: string): Promise<{ client: RoomClient; joined: JoinedFrame }> {
    if (this.disposed) throw new RoomError(RoomErrorCode.ROOM_DISPOSED, 'the room was disposed');
    const seat = await this.host.driver.consumeSeat(this.roomId, token);
    if (seat === 'invalid') throw new RoomError(RoomErrorCode.SEAT_INVALID, 'unknown seat');
    if (seat === 'used') throw new RoomError(RoomErrorCode.SEAT_USED, 'the seat was already used');
    if (seat === 'expired') throw new RoomError(RoomErrorCode.SEAT_EXPIRED, 'the seat reservation expired');
    if (seat.reconnect !== undefined) {
      // The reconnecting client still holds its seat: the reservation was a formality, not a second seat.
      await this.host.driver.releaseClient(this.roomId);
      return this.takeBack(session, seat.reconnect);
    }
    if (this.disposed) {
      await this.host.driver.releaseClient(this.roomId);
      throw new RoomError(RoomErrorCode.ROOM_DISPOSED, 'the room was disposed');
    }
    const id = randomToken(8);
    const client = new RoomClient(id, session, `${this.roomId}.${id}.${randomToken(16)}`);
    client.host = this;
    this.clients.set(id, client);
    try {
      let auth: unknown;
      if (this.room.onAuth) {
        try {
          auth = await this.room.onAuth(client, seat.options, session.request);
        } catch (err) {
          this.host.reportError(err as Error, `${this.roomName}.onAuth`);
          throw err instanceof RoomError
            ? err
            : new RoomError(RoomErrorCode.AUTH_FAILED, 'refused by onAuth');
        }
        if (auth === false) throw new RoomError(RoomErrorCode.AUTH_FAILED, 'refused by onAuth');
        client.auth = auth;
      }
      if (this.disposed) throw new RoomError(RoomErrorCode.ROOM_DISPOSED, 'the room was disposed');
      // In the state before onJoin, so that onJoin can spawn entities the client owns.
      this.state?.addClient(client.id, this.interest?.(client));
      try {
        await this.room.onJoin?.(client, seat.options, auth);
      } catch (err) {
        this.host.reportError(err as Error, `${this.roomName}.onJoin`);
        throw err instanceof RoomError ? err : new RoomError(RoomErrorCode.JOIN_FAILED, 'onJoin failed');
      }
      if (this.disposed) throw new RoomError(RoomErrorCode.ROOM_DISPOSED, 'the room was disposed');
    } catch (err) {
      this.clients.delete(id);
      this.dropFromState(id);
      client.state = 'left';
      await this.host.driver.releaseClient(this.roomId);
      this.checkEmpty();
      throw err;
    }
    client.state = 'joined';
    this.byReconnectToken.set(client.reconnectToken, client);
    this.host.bind(session, client, this);
    bump(this.host.metrics.joins, this.roomName);
    // The session may have ended while a hook awaited: the seat is then handled like any lost client.
    if (session.state === 'closed') queueMicrotask(() => this.sessionClosed(client, session, false));
    return { client, joined: this.joinedFrame(client, false) };
  }

  private takeBack(session: ServerSession, token: string): { client: RoomClient; joined: JoinedFrame } {
    const client = this.byReconnectToken.get(token);
    if (client?.state !== 'disconnected' || client.session.state !== 'closed') {
      throw new RoomError(RoomErrorCode.RECONNECT_EXPIRED, 'no seat held for this reconnection token');
    }
    this.clock.clear(client.reconnectTimer);
    client.session = session;
    client.state = 'joined';
    this.host.bind(session, client, this);
    bump(this.host.metrics.reconnects, this.roomName);
    this.hook('onReconnect', () => this.room.onReconnect?.(client));
    return { client, joined: this.joinedFrame(client, true) };
  }

  private joinedFrame(client: RoomClient, reconnected: boolean): JoinedFrame {
    return {
      roomId: this.roomId,
      roomName: this.roomName,
      clientId: client.id,
      reconnectToken: client.reconnectToken,
      reconnected,
      ...(this.state ? { stateHash: this.state.schema.hash } : {}),
    };
  }

  /** The session's transport dropped; the session layer holds it for its resume window. */
  sessionDisconnected(client: RoomClient, session: ServerSession): void {
    if (client.session !== session || client.state !== 'joined') return;
    client.state = 'disconnected';
    this.hook('onDisconnect', () => this.room.onDisconnect?.(client));
  }

  sessionResumed(client: RoomClient, session: ServerSession): void {
    if (client.session !== session || client.state !== 'disconnected') return;
    client.state = 'joined';
    bump(this.host.metrics.reconnects, this.roomName);
    this.hook('onReconnect', () => this.room.onReconnect?.(client));
  }

  /** The session ended for good: the client leaves, or its seat is held for `reconnectWindowMs`. */
  sessionClosed(client: RoomClient, session: ServerSession, consented: boolean): void {
    if (client.session !== session || client.state === 'left') return;
    const window = this.room.reconnectWindowMs;
    if (consented || window <= 0 || this.disposed) {
      void this.leave(client, consented);
      return;
    }
    if (client.state === 'joined') {
      client.state = 'disconnected';
      this.hook('onDisconnect', () => this.room.onDisconnect?.(client));
    }
    this.abortRequests(client);
    client.reconnectTimer = this.clock.setTimeout(() => void this.leave(client, false), window);
  }

  /** The client asked to leave (`q.room.leave`). */
  consentedLeave(client: RoomClient): void {
    if (client.state === 'left') return;
    void this.leave(client, true).then(() =>
      client.session.close(RoomCloseCode.LEFT, 'left the room').catch(() => {}),
    );
  }

  /** `client.leave()` on the server: removed, not consented. */
  remove(client: RoomClient, reason: string): void {
    if (client.state === 'left') return;
    client.send(LeftMsg, { code: RoomCloseCode.REMOVED, reason });
    void this.leave(client, false).then(() =>
      client.session.close(RoomCloseCode.REMOVED, reason.slice(0, 100)).catch(() => {}),
    );
  }

  private async leave(client: RoomClient, consented: boolean): Promise<void> {
    if (client.state === 'left' || this.clients.get(client.id) !== client) return;
    client.state = 'left';
    this.clock.clear(client.reconnectTimer);
    this.abortRequests(client);
    this.clients.delete(client.id);
    this.byReconnectToken.delete(client.reconnectToken);
    this.dropFromState(client.id);
    bump(this.host.metrics.leaves, this.roomName);
    try {
      await this.room.onLeave?.(client, consented);
    } catch (err) {
      this.fault(err as Error, 'onLeave');
    }
    await this.host.driver.releaseClient(this.roomId);
    this.checkEmpty();
  }

  private dropFromState(id: string): void {
    try {
      this.state?.removeClient(id);
    } catch {
      // not in the state (setState came after the client's join failed)
    }
  }

  private abortRequests(client: RoomClient): void {
    for (const ac of client.pending.values()) ac.abort(new RoomError(RoomErrorCode.LEFT, 'the client left'));
    client.pending.clear();
  }

  /** Disposes the room when it is empty, auto-dispose is on and no reservation is live. */
  checkEmpty(): void {
    if (this.phase !== 'live' || !this.room.autoDispose || this.clients.size > 0) return;
    void this.host.driver.reservations(this.roomId).then((n) => {
      if (n === 0 && this.clients.size === 0 && this.phase === 'live') void this.dispose('empty');
    });
  }

  /** A seat was reserved: check for emptiness once it may have expired. */
  seatReserved(expiresAt: number): void {
    this.clock.setTimeout(() => this.checkEmpty(), Math.max(0, expiresAt - this.clock.now()) + 1);
  }

  /** Removes every client (with `code`: `moved` when the node drains) and disposes the room. */
  async dispose(reason: string, code: number = RoomCloseCode.REMOVED): Promise<void> {
    if (this.disposed) return;
    this.phase = 'disposing';
    this.stopSimulation?.();
    this.stopPatches?.();
    for (const c of [...this.clients.values()]) {
      c.send(LeftMsg, { code, reason });
      await this.leave(c, false);
      c.session.close(code, reason.slice(0, 100)).catch(() => {});
    }
    try {
      await this.room.onDispose?.();
    } catch (err) {
      this.fault(err as Error, 'onDispose');
    }
    this.clock.dispose();
    await this.host.driver.remove(this.roomId);
    this.phase = 'disposed';
    this.host.disposed(this);
  }

  addMessageHandler(type: RoomMessage, handler: MessageHandler<RoomClient, unknown>): () => void {
    let entry = this.messages.get(type.name);
    if (!entry) {
      entry = { type, handlers: new Set() };
      this.messages.set(type.name, entry);
      // Clients already in the room learn the new message on their sessions.
      for (const c of this.clients.values()) if (c.state !== 'joining') this.host.bind(c.session, c, this);
    }
    const e = entry;
    e.handlers.add(handler);
    return () => e.handlers.delete(handler);
  }

  addRequestHandler(type: RoomRequest, handler: RequestHandler<RoomClient, unknown, unknown>): () => void {
    this.requests.set(type.name, { type, handler });
    return () => {
      if (this.requests.get(type.name)?.handler === handler) this.requests.delete(type.name);
    };
  }

  /** A room message arrived from `client`. */
  handleMessage(client: RoomClient, entry: MessageEntry, payload: unknown): void {
    if (client.state !== 'joined') return;
    const name = entry.type.name;
    this.withValid(
      entry.type.schema,
      payload,
      name,
      client,
      (value) => {
        bump(this.host.metrics.messages, this.roomName);
        for (const h of entry.handlers) {
          try {
            h(client, value);
          } catch (err) {
            const e = this.handlerError(err, `${this.roomName} message '${name}'`);
            client.error(e, name);
          }
        }
      },
      (issues) => client.error(issues, name),
    );
  }

  handleRequest(client: RoomClient, frame: RequestFrame): void {
    if (client.state !== 'joined') return;
    const id = frame?.i;
    if (!Number.isSafeInteger(id) || id < 0 || typeof frame.n !== 'string' || client.pending.has(id)) {
      this.count(RoomErrorCode.BAD_REQUEST);
      client.error(new RoomError(RoomErrorCode.BAD_REQUEST, 'malformed request frame'));
      return;
    }
    const respondError = (e: RoomError) => {
      bump(this.host.metrics.errors, errorLabel(e));
      this.send(client, { i: id, e: e.toWire() });
    };
    const entry = this.requests.get(frame.n);
    if (!entry) {
      respondError(new RoomError(RoomErrorCode.NO_HANDLER, 'no handler for this request'));
      return;
    }
    if (client.pending.size >= this.room.maxPendingRequests) {
      respondError(new RoomError(RoomErrorCode.TOO_MANY_REQUESTS, 'too many requests in flight'));
      return;
    }
    const ac = new AbortController();
    client.pending.set(id, ac);
    const name = entry.type.name;
    this.withValid(
      entry.type.schema,
      frame.p,
      name,
      client,
      (value) => {
        bump(this.host.metrics.requests, this.roomName);
        Promise.resolve()
          .then(() => entry.handler(client, value, { signal: ac.signal }))
          .then(
            (v) => {
              if (client.pending.get(id) !== ac) return; // cancelled or left: the answer goes nowhere
              client.pending.delete(id);
              if (!this.send(client, { i: id, v })) {
                respondError(new RoomError(RoomErrorCode.HANDLER_ERROR, 'the response could not be sent'));
              }
            },
            (err) => {
              if (client.pending.get(id) !== ac) return;
              client.pending.delete(id);
              this.send(client, {
                i: id,
                e: this.handlerError(err, `${this.roomName} request '${name}'`).toWire(),
              });
            },
          );
      },
      (issues) => {
        client.pending.delete(id);
        this.send(client, { i: id, e: issues.toWire() });
      },
    );
  }

  handleCancel(client: RoomClient, id: unknown): void {
    if (typeof id !== 'number') return;
    const ac = client.pending.get(id);
    if (!ac) return;
    client.pending.delete(id);
    ac.abort(new RoomError(RoomErrorCode.TIMEOUT, 'cancelled by the client'));
  }

  handleAck(client: RoomClient, bytes: unknown): void {
    if (!this.state || client.state !== 'joined') return;
    if (!(bytes instanceof Uint8Array)) {
      this.count(RoomErrorCode.BAD_REQUEST);
      return;
    }
    try {
      this.state.receiveAck(client.id, bytes);
    } catch (err) {
      // A bad ack changes nothing in the sync server; it is counted, the client stays.
      if (err instanceof SyncError || err instanceof RangeError) this.count(RoomErrorCode.BAD_REQUEST);
      else throw err;
    }
  }

  setSimulation(fn: (dt: number) => void, intervalMs: number): () => void {
    this.stopSimulation?.();
    const stop = this.clock.setSimulationInterval(fn, intervalMs);
    this.stopSimulation = stop;
    return stop;
  }

  setState(options: RoomStateOptions<RoomClient>): RoomState {
    if (this.state) throw new Error('setState was already called');
    const state = new SyncServer(options.schema, options.sync);
    this.state = state;
    this.interest = options.interest;
    for (const c of this.clients.values())
      if (c.state !== 'joining') state.addClient(c.id, this.interest?.(c));
    const ms = options.patchIntervalMs ?? 50;
    if (ms > 0) this.stopPatches = this.clock.setInterval(() => this.sendState(), ms);
    return state;
  }

  sendState(): void {
    const state = this.state;
    if (!state || this.disposed) return;
    state.tick();
    for (const c of this.clients.values()) {
      if (c.state !== 'joined' || !c.session.connected) continue;
      c.send(StateMsg, state.encodeFor(c.id));
    }
  }

  private withValid(
    schema: RoomMessage['schema'],
    payload: unknown,
    name: string,
    client: RoomClient,
    ok: (value: unknown) => void,
    bad: (err: RoomError) => void,
  ): void {
    const onResult = (r: ValidationResult<unknown>) => {
      if (r.ok) return ok(r.value);
      bump(this.host.metrics.invalid, name);
      bump(this.host.metrics.errors, RoomErrorCode.VALIDATION);
      bad(new RoomError(RoomErrorCode.VALIDATION, `invalid '${name}' payload`, { issues: r.issues }));
    };
    const r = validate(schema, payload);
    if (r instanceof Promise) {
      r.then((v) => {
        if (client.state === 'joined') onResult(v);
      });
    } else onResult(r);
  }

  private send(
    client: RoomClient,
    frame:
      | { i: number; v?: unknown }
      | { i: number; e: RoomError['toWire'] extends () => infer W ? W : never },
  ): boolean {
    return client.send(ResponseMsg, frame);
  }

  /** A handler's failure as the client sees it: a `RoomError` as thrown, anything else `handler-error`. */
  private handlerError(err: unknown, where: string): RoomError {
    if (err instanceof RoomError) {
      bump(this.host.metrics.errors, errorLabel(err));
      return err;
    }
    this.host.reportError(err as Error, where);
    bump(this.host.metrics.errors, RoomErrorCode.HANDLER_ERROR);
    return new RoomError(RoomErrorCode.HANDLER_ERROR, 'the handler failed');
  }

  private count(code: string): void {
    bump(this.host.metrics.errors, code);
  }

  /** Runs a lifecycle hook that returns nothing; a throw is counted, never propagated. */
  private hook(name: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.fault(err as Error, name);
    }
  }

  private fault(err: Error, where: string): void {
    bump(this.host.metrics.errors, RoomErrorCode.HANDLER_ERROR);
    this.host.reportError(err, `${this.roomName}.${where}`);
  }
}
