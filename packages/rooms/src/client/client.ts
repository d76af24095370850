import {
  type ClientOptions,
  connect,
  type InfoConnectors,
  type QuiverInfo,
  type SessionClient,
  systemClock,
  type TransportCandidate,
  transportsFromInfo,
} from '@quiver/session';
import type { ComponentMap } from '@quiver/sync';
import type { RoomListing } from '../driver.js';
import { RoomError, RoomErrorCode } from '../errors.js';
import type { MatchmakeMethod, SeatReservation } from '../matchmaker.js';
import type { RoomType } from '../server.js';
import type { JoinedFrame } from '../protocol.js';
import { awaitJoined, ClientRoom, type JoinOptions, type Rematcher } from './room.js';

/** Where the session of a reservation connects (what `GET /quiver/info` answers, without the path). */
export type SessionEndpoints = Pick<QuiverInfo, 'webtransport' | 'websocket' | 'http'>;

/** `POST <path>/matchmake/:method/:roomName` answers a seat and where to use it. */
export interface MatchmakeResponse extends SeatReservation {
  /** Where to open the room's session: the hosting process's endpoints. */
  session: SessionEndpoints;
  /** The room this reservation replaces, when asked as a rematch (`?replaces=`): the server saw it gone. */
  replaces?: string;
}

/** Options of {@link RoomsClient}. */
export interface RoomsClientOptions {
  /**
   * The server's HTTP origin, e.g. `http://127.0.0.1:4433`; `''` in a page served by the game server. Several
   * (the nodes of a deployment): matchmaking requests go to the first that answers, starting with the last that did.
   */
  endpoint: string | readonly string[];
  /** The plugin's path. Default `/quiver`. */
  path?: string;
  /** Connectors for the reservation's endpoints, WebTransport first (`transportsFromInfo` of `@quiver/session`). */
  connectors?: InfoConnectors;
  /** Or the transports to race, built from the endpoints yourself (an emulated link, a forced transport). */
  transports?: (endpoints: SessionEndpoints) => TransportCandidate[];
  /** Session options (channels, heartbeat, reconnect, token, ...). */
  session?: Omit<ClientOptions, 'transports' | 'connector'>;
  /**
   * Opens the room's session. Default `connect` of `@quiver/session` (the session on this thread); pass
   * `(url, o) => connect(url, { ...o, worker })` with `connect` of `@quiver/session/worker` to run it in a Worker.
   */
  connect?: (url: string, options: ClientOptions) => Promise<SessionClient>;
  /** The `fetch` for matchmaking requests (a polyfill, or one that adds headers). Default `globalThis.fetch`. */
  fetch?: typeof fetch;
  /**
   * When a room's node drains (close `moved`, 4307) or dies (its room leaves the registry while the transport is
   * down), matchmake again with the same method and options, and carry the room handle over to the new room
   * (`rematch` event). Rooms joined by `joinOrCreate` and `join` only; others, and all with `false`, leave with a
   * typed `node-lost` error. Default true.
   */
  rematchmake?: boolean;
  /**
   * While a room's transport is down, how often to ask a matchmaker (`GET <path>/rooms/:id`) whether the room is
   * still hosted; `0`: never (the session retries its node until its resume window ends). Default 500 ms.
   */
  nodeCheckMs?: number;
  /**
   * How long one room check (`GET <path>/rooms/:id`) waits for a node's answer before it asks the next endpoint.
   * A hung node (a stopped process, a frozen machine) accepts the connection and never answers: without a bound,
   * a client whose check asked that node first waited for it (undici's 300 s) instead of rematchmaking. Default
   * 2 000 ms.
   */
  nodeCheckTimeoutMs?: number;
  /**
   * How long one matchmaking request waits for a node's answer before it asks the next endpoint (a seat the
   * abandoned request may still reserve expires unused after the server's `seatReservationMs`). Long, because a
   * node answers a join storm late (seconds on a loaded machine); it bounds the wait on a hung node. Default
   * 30 000 ms.
   */
  requestTimeoutMs?: number;
  /** How long rematchmaking is retried before the room is given up. Default 10 000 ms. */
  rematchTimeoutMs?: number;
  /**
   * How long connecting to the reservation's node is retried (backoff 50 ms to 1 s) after a refusal that may pass:
   * a busy node (503, an evicted pre-authentication handshake), a rate limit (429), a dropped connection. The
   * seat stays reserved meanwhile (`seatReservationMs` on the server). Refusals of the client itself (400, 401,
   * 403, 404, their close codes) are not retried. Default 3 000 ms.
   */
  connectRetryMs?: number;
}

/** Matchmaking over HTTP, then a session to the room's process and the join, in one call. */
export class RoomsClient {
  private readonly fetch: typeof fetch;
  private readonly endpoints: readonly string[];
  /** The endpoint that answered last: tried first. */
  private preferred = 0;

  constructor(private readonly options: RoomsClientOptions) {
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.endpoints = typeof options.endpoint === 'string' ? [options.endpoint] : [...options.endpoint];
    if (this.endpoints.length === 0) throw new RangeError('RoomsClient needs at least one endpoint');
  }

  /** Joins the fullest available room of that type (matching its `filterBy` options), or creates one. */
  joinOrCreate<O, M extends ComponentMap = ComponentMap>(
    type: string | RoomType<O>,
    options?: O,
    join?: JoinOptions<M>,
  ): Promise<ClientRoom<M>> {
    return this.matchmakeAndJoin('joinOrCreate', nameOf(type), options ?? {}, join);
  }

  /** Creates a new room of that type and joins it. */
  create<O, M extends ComponentMap = ComponentMap>(
    type: string | RoomType<O>,
    options?: O,
    join?: JoinOptions<M>,
  ) {
    return this.matchmakeAndJoin('create', nameOf(type), options ?? {}, join);
  }

  /** Joins an available room of that type; rejects with `no-room-available` when none fits. */
  join<O, M extends ComponentMap = ComponentMap>(
    type: string | RoomType<O>,
    options?: O,
    join?: JoinOptions<M>,
  ) {
    return this.matchmakeAndJoin('join', nameOf(type), options ?? {}, join);
  }

  /** Joins that room, private ones included; rejects when it is unknown, locked or full. */
  joinById<M extends ComponentMap = ComponentMap>(
    roomId: string,
    options?: Record<string, unknown>,
    join?: JoinOptions<M>,
  ) {
    return this.matchmakeAndJoin('joinById', roomId, options ?? {}, join);
  }

  /** Takes back a seat after the page (or process) lost its session: `room.reconnectToken` from before. */
  reconnect<M extends ComponentMap = ComponentMap>(reconnectToken: string, join?: JoinOptions<M>) {
    return this.matchmakeAndJoin('reconnect', '-', { reconnectToken }, join);
  }

  /** Reserves a seat without connecting (`consume` connects and joins later). */
  async matchmake(method: MatchmakeMethod, target: string, options: unknown): Promise<MatchmakeResponse> {
    const { status, body } = await this.requestJson(`/matchmake/${method}/${encodeURIComponent(target)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(options ?? {}),
    });
    return reservationOf(status, body);
  }

  /**
   * A rematch of a room that may be gone: the room check and the matchmaking in one request
   * (`?replaces=<roomId>`). `hosted` when the room is still listed (nothing reserved); otherwise the reservation,
   * or the server's typed error (the room is gone, the matchmaking failed). Rejects when no node answered, or when
   * a node could not tell (its registry unreachable): the room is then taken as still hosted.
   * The wait for a node's answer is bounded by `nodeCheckTimeoutMs` (the node commits to it before matchmaking).
   */
  async rematchIfGone(
    method: MatchmakeMethod,
    target: string,
    options: unknown,
    roomId: string,
  ): Promise<'hosted' | MatchmakeResponse | RoomError> {
    const { status, body } = await this.requestJson(
      `/matchmake/${method}/${encodeURIComponent(target)}?replaces=${encodeURIComponent(roomId)}`,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(options ?? {}),
      },
      this.options.nodeCheckTimeoutMs ?? 2000,
    );
    if (status === 200 && (body as { hosted?: unknown } | undefined)?.hosted === true) return 'hosted';
    let reservation: MatchmakeResponse;
    try {
      reservation = reservationOf(status, body);
    } catch (err) {
      const e = err as RoomError;
      // 200: the node saw the room gone, then its matchmaking failed. Before that (Redis unreachable, a server
      // without `replaces`), whether the room lives is unknown: ask (a failed check rejects, and the room is kept).
      if (status !== 200 && (await this.isHosted(roomId))) return 'hosted';
      return e;
    }
    // A server without conditional rematches matchmade whether or not the room lives: ask. An unused seat expires.
    if (reservation.replaces !== roomId && (await this.isHosted(roomId))) return 'hosted';
    return reservation;
  }

  /** Connects to the reservation's process and joins with its seat. */
  async consume<M extends ComponentMap = ComponentMap>(
    reservation: MatchmakeResponse,
    join: JoinOptions<M> = {},
  ): Promise<ClientRoom<M>> {
    const { session, joined, processId } = await this.connectAndJoin(reservation, join);
    const room = new ClientRoom<M>(session, joined, join, this.rematcher(undefined, join));
    room.processId = processId;
    return room;
  }

  /** `GET /quiver/rooms`: listed rooms, optionally of one type. */
  async getAvailableRooms(name?: string): Promise<RoomListing[]> {
    const q = name === undefined ? '' : `?name=${encodeURIComponent(name)}`;
    const res = await this.request(`/rooms${q}`);
    if (!res.ok) throw new RoomError(RoomErrorCode.MATCHMAKE_FAILED, `HTTP ${res.status}`);
    return ((await res.json()) as { rooms: RoomListing[] }).rooms;
  }

  /** Whether the room is hosted (listed) now: false once it was disposed or its node died. */
  async isHosted(roomId: string): Promise<boolean> {
    const res = await this.request(
      `/rooms/${encodeURIComponent(roomId)}`,
      undefined,
      this.options.nodeCheckTimeoutMs ?? 2000,
    );
    if (res.status === 404) return false;
    if (!res.ok) throw new RoomError(RoomErrorCode.MATCHMAKE_FAILED, `HTTP ${res.status}`);
    return true;
  }

  /**
   * A request to the first endpoint that answers within `timeoutMs`, from the one that answered last; one
   * answering 503 (a node shutting down) is passed over while another answers.
   */
  private async request(
    path: string,
    init?: RequestInit,
    timeoutMs = this.options.requestTimeoutMs ?? 30_000,
  ): Promise<Response> {
    return (await this.attempt(path, init, timeoutMs)).res;
  }

  /**
   * As `request`, and the JSON body read: the wait for the answer's headers is bounded by `timeoutMs` per endpoint,
   * the body then by `requestTimeoutMs` (that node answered: it is not asked again elsewhere, as it may have
   * reserved a seat). A body that is not JSON reads as `{}`.
   */
  private async requestJson(
    path: string,
    init: RequestInit,
    timeoutMs = this.options.requestTimeoutMs ?? 30_000,
  ): Promise<{ status: number; body: Record<string, unknown> }> {
    const { res, abort } = await this.attempt(path, init, timeoutMs, true);
    const bodyMs = this.options.requestTimeoutMs ?? 30_000;
    const timer = systemClock.setTimeout(
      () => abort.abort(new Error(`no answer within ${bodyMs} ms`)),
      bodyMs,
    );
    try {
      const body = (await res.json().catch(() => {
        if (abort.signal.aborted) throw abort.signal.reason;
        return {};
      })) as Record<string, unknown>;
      return { status: res.status, body: body && typeof body === 'object' ? body : {} };
    } catch (err) {
      throw new RoomError(
        RoomErrorCode.MATCHMAKE_FAILED,
        `matchmaking request failed: ${(err as Error)?.message ?? err}`,
      );
    } finally {
      systemClock.clearTimeout(timer);
    }
  }

  private async attempt(
    path: string,
    init: RequestInit | undefined,
    timeoutMs: number,
    reading = false,
  ): Promise<{ res: Response; abort: AbortController }> {
    const base = this.options.path ?? '/quiver';
    let last: unknown;
    let unavailable: { res: Response; abort: AbortController } | undefined;
    for (let k = 0; k < this.endpoints.length; k++) {
      const i = (this.preferred + k) % this.endpoints.length;
      const abort = new AbortController();
      const timer = systemClock.setTimeout(
        () => abort.abort(new Error(`no answer within ${timeoutMs} ms`)),
        timeoutMs,
      );
      try {
        const res = await this.fetch(`${this.endpoints[i]}${base}${path}`, { ...init, signal: abort.signal });
        if (res.status === 503 && k < this.endpoints.length - 1) {
          if (reading) void res.body?.cancel().catch(() => {});
          unavailable = { res, abort };
          continue;
        }
        this.preferred = i;
        return { res, abort };
      } catch (err) {
        last = abort.signal.aborted ? abort.signal.reason : err;
      } finally {
        systemClock.clearTimeout(timer);
      }
    }
    if (unavailable) return unavailable;
    throw new RoomError(
      RoomErrorCode.MATCHMAKE_FAILED,
      `matchmaking request failed: ${(last as Error)?.message ?? last}`,
    );
  }

  private async connectAndJoin(
    reservation: MatchmakeResponse,
    join: JoinOptions,
  ): Promise<{ session: SessionClient; joined: JoinedFrame; processId: string }> {
    const { transports, connectors } = this.options;
    const candidates = transports
      ? transports(reservation.session)
      : transportsFromInfo({ path: '', ...reservation.session }, connectors ?? {});
    if (candidates.length === 0)
      throw new RoomError(RoomErrorCode.MATCHMAKE_FAILED, 'no transport to connect with');
    let session: SessionClient | undefined;
    const open = this.options.connect ?? connect;
    const clock = join.clock ?? systemClock;
    const started = clock.now();
    const budget = this.options.connectRetryMs ?? 3000;
    for (let delay = 50; !session; delay = Math.min(delay * 2, 1000)) {
      try {
        session = await open(candidates[0].url ?? '', { ...this.options.session, transports: candidates });
      } catch (err) {
        // A busy node (503, an evicted handshake, a rate limit) may take the seat a moment later: it stays
        // reserved until it expires. A refusal of who the client is (401, 403, ...) will not change.
        if (!refusedForGood(err) && clock.now() - started + delay <= budget) {
          await new Promise<void>((r) => clock.setTimeout(r, delay));
          continue;
        }
        // The close code (a refused or evicted handshake) says why; the message alone often does not.
        const code = (err as { code?: unknown }).code;
        const why = typeof code === 'number' || typeof code === 'string' ? ` (${code})` : '';
        throw new RoomError(
          RoomErrorCode.MATCHMAKE_FAILED,
          `could not connect: ${(err as Error).message}${why}`,
        );
      }
    }
    try {
      const joined = await awaitJoined(
        session,
        { seat: reservation.seat },
        join.timeoutMs ?? 10_000,
        join.clock,
      );
      return { session, joined, processId: reservation.processId };
    } catch (err) {
      await session.close().catch(() => {});
      throw err;
    }
  }

  /** How a room handle follows its room: node checks, and (for `joinOrCreate`/`join`) matchmaking again. */
  private rematcher(
    again: { method: MatchmakeMethod; target: string; options: unknown } | undefined,
    join: JoinOptions,
  ): Rematcher | undefined {
    const checkMs = this.options.nodeCheckMs ?? 500;
    if (checkMs <= 0) return undefined;
    const rematch = this.options.rematchmake ?? true;
    if (!rematch || !again) {
      return {
        alive: (roomId) => this.isHosted(roomId),
        checkMs,
        timeoutMs: this.options.rematchTimeoutMs ?? 10_000,
      };
    }
    // The check is the rematch's matchmaking itself (`?replaces=`): the seat it reserved is used first.
    let ready: MatchmakeResponse | undefined;
    return {
      alive: async (roomId) => {
        const r = await this.rematchIfGone(again.method, again.target, again.options, roomId);
        if (r === 'hosted') return true;
        // Gone; a failed matchmaking is retried by `again` (with backoff, for `rematchTimeoutMs`).
        ready = r instanceof RoomError ? undefined : r;
        return false;
      },
      again: async () => {
        const reservation = ready ?? (await this.matchmake(again.method, again.target, again.options));
        ready = undefined;
        return this.connectAndJoin(reservation, join);
      },
      checkMs,
      timeoutMs: this.options.rematchTimeoutMs ?? 10_000,
    };
  }

  private async matchmakeAndJoin<M extends ComponentMap>(
    method: MatchmakeMethod,
    target: string,
    options: unknown,
    join: JoinOptions<M> = {},
  ): Promise<ClientRoom<M>> {
    const reservation = await this.matchmake(method, target, options);
    const { session, joined, processId } = await this.connectAndJoin(reservation, join);
    const again = method === 'joinOrCreate' || method === 'join' ? { method, target, options } : undefined;
    const room = new ClientRoom<M>(session, joined, join, this.rematcher(again, join));
    room.processId = processId;
    return room;
  }
}

/** The reservation of a matchmaking answer, or its typed error. */
function reservationOf(status: number, body: Record<string, unknown>): MatchmakeResponse {
  // A rematch's answer is committed (200) before the matchmaking: its error comes in the body.
  if (body.error !== undefined) throw RoomError.fromWire(body.error);
  if (status < 200 || status > 299) throw new RoomError(RoomErrorCode.MATCHMAKE_FAILED, `HTTP ${status}`);
  return body as unknown as MatchmakeResponse;
}

/** HTTP statuses and close codes that say the client itself was refused: connecting again will not help. */
const FOR_GOOD = new Set([400, 401, 403, 404, 4400, 4401, 4403, 4404, 4413, 4422]);

function refusedForGood(err: unknown): boolean {
  const e = err as { status?: unknown; code?: unknown };
  return FOR_GOOD.has(Number(e?.status)) || FOR_GOOD.has(Number(e?.code));
}

function nameOf(type: string | { name: string }): string {
  return typeof type === 'string' ? type : type.name;
}
