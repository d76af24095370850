import {
  type ClientOptions,
  connect,
  type InfoConnectors,
  type QuiverInfo,
  type SessionClient,
  type TransportCandidate,
  transportsFromInfo,
} from '@quiver/session';
import type { ComponentMap } from '@quiver/sync';
import type { RoomListing } from '../driver.js';
import { RoomError, RoomErrorCode } from '../errors.js';
import type { MatchmakeMethod, SeatReservation } from '../matchmaker.js';
import type { RoomType } from '../server.js';
import { type ClientRoom, type JoinOptions, joinWithSeat } from './room.js';

/** Where the session of a reservation connects (what `GET /quiver/info` answers, without the path). */
export type SessionEndpoints = Pick<QuiverInfo, 'webtransport' | 'websocket' | 'http'>;

/** `POST <path>/matchmake/:method/:roomName` answers a seat and where to use it. */
export interface MatchmakeResponse extends SeatReservation {
  /** Where to open the room's session: the hosting process's endpoints. */
  session: SessionEndpoints;
}

/** Options of {@link RoomsClient}. */
export interface RoomsClientOptions {
  /** The server's HTTP origin, e.g. `http://127.0.0.1:4433`; `''` in a page served by the game server. */
  endpoint: string;
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
}

/** Matchmaking over HTTP, then a session to the room's process and the join, in one call. */
export class RoomsClient {
  private readonly fetch: typeof fetch;

  constructor(private readonly options: RoomsClientOptions) {
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
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
    const path = this.options.path ?? '/quiver';
    const url = `${this.options.endpoint}${path}/matchmake/${method}/${encodeURIComponent(target)}`;
    let res: Response;
    try {
      res = await this.fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(options ?? {}),
      });
    } catch (err) {
      throw new RoomError(
        RoomErrorCode.MATCHMAKE_FAILED,
        `matchmaking request failed: ${(err as Error).message}`,
      );
    }
    const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (!res.ok) {
      throw body.error
        ? RoomError.fromWire(body.error)
        : new RoomError(RoomErrorCode.MATCHMAKE_FAILED, `HTTP ${res.status}`);
    }
    return body as unknown as MatchmakeResponse;
  }

  /** Connects to the reservation's process and joins with its seat. */
  async consume<M extends ComponentMap = ComponentMap>(
    reservation: MatchmakeResponse,
    join: JoinOptions<M> = {},
  ): Promise<ClientRoom<M>> {
    const { transports, connectors } = this.options;
    const candidates = transports
      ? transports(reservation.session)
      : transportsFromInfo({ path: '', ...reservation.session }, connectors ?? {});
    if (candidates.length === 0)
      throw new RoomError(RoomErrorCode.MATCHMAKE_FAILED, 'no transport to connect with');
    let session: SessionClient;
    try {
      const open = this.options.connect ?? connect;
      session = await open(candidates[0].url ?? '', { ...this.options.session, transports: candidates });
    } catch (err) {
      throw new RoomError(RoomErrorCode.MATCHMAKE_FAILED, `could not connect: ${(err as Error).message}`);
    }
    try {
      return await joinWithSeat(session, reservation.seat, join);
    } catch (err) {
      await session.close().catch(() => {});
      throw err;
    }
  }

  /** `GET /quiver/rooms`: listed rooms, optionally of one type. */
  async getAvailableRooms(name?: string): Promise<RoomListing[]> {
    const path = this.options.path ?? '/quiver';
    const q = name === undefined ? '' : `?name=${encodeURIComponent(name)}`;
    const res = await this.fetch(`${this.options.endpoint}${path}/rooms${q}`);
    if (!res.ok) throw new RoomError(RoomErrorCode.MATCHMAKE_FAILED, `HTTP ${res.status}`);
    return ((await res.json()) as { rooms: RoomListing[] }).rooms;
  }

  private async matchmakeAndJoin<M extends ComponentMap>(
    method: MatchmakeMethod,
    target: string,
    options: unknown,
    join?: JoinOptions<M>,
  ): Promise<ClientRoom<M>> {
    return this.consume(await this.matchmake(method, target, options), join);
  }
}

function nameOf(type: string | { name: string }): string {
  return typeof type === 'string' ? type : type.name;
}
