/**
 * The rooms plugin for fastify: a room server on `app.quiver` (register `@quiver/fastify` first), matchmaking at
 * `POST <path>/matchmake/:method/:roomName` and the room listing at `GET <path>/rooms`.
 */
// The plugin's decorations (app.quiver, app.quiverTransports, app.quiverMetrics) come with its types.
import type {} from '@quiver/fastify';
import type { QuiverInfo } from '@quiver/session';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { SessionEndpoints } from './client/client.js';
import { RoomError, RoomErrorCode } from './errors.js';
import { type MatchmakeMethod, matchmakeMethods, type SeatReservation } from './matchmaker.js';
import type { RoomMetrics } from './metrics.js';
import type { DrainOptions } from './node.js';
import { RoomServer, type RoomServerOptions } from './server.js';

/** Options of the rooms plugin: the room server's options (its session server is `app.quiver`), plus routes. */
export interface QuiverRoomsPluginOptions extends Omit<RoomServerOptions, 'sessions'> {
  /** Path prefix of the routes; the same as `@quiver/fastify`'s. Default `/quiver`. */
  path?: string;
  /** Largest matchmaking body (the JSON options), in bytes. Default 16 384. */
  bodyLimit?: number;
  /** Define room types here (or later on `app.rooms`). */
  setup?: (rooms: RoomServer) => void;
  /**
   * When the app closes, drain first (`rooms.drain`): rooms are locked, and after `timeoutMs` their clients are
   * closed with `moved` (4307) so that they matchmake again on another node. `false`: rooms are disposed with
   * `removed` (4001). Default `false`; `@quiver/redis/fastify` defaults it to `{ timeoutMs: 0 }` on Redis.
   */
  drainOnClose?: boolean | DrainOptions;
}

declare module 'fastify' {
  interface FastifyInstance {
    rooms: RoomServer;
  }
}

/** HTTP status of a matchmaking failure (the body carries the typed error). */
/** Set on a rematch's "still hosted" answer (`?replaces=`), so that a proxy or a probe can tell it by its headers. */
const HOSTED_HEADER = 'quiver-rematch';

const statusOf: Record<string, number> = {
  [RoomErrorCode.UNKNOWN_ROOM_TYPE]: 404,
  [RoomErrorCode.ROOM_NOT_FOUND]: 404,
  [RoomErrorCode.ROOM_FULL]: 409,
  [RoomErrorCode.ROOM_LOCKED]: 409,
  [RoomErrorCode.NO_ROOM_AVAILABLE]: 409,
  [RoomErrorCode.RECONNECT_EXPIRED]: 410,
  [RoomErrorCode.CREATE_FAILED]: 500,
  [RoomErrorCode.BAD_REQUEST]: 400,
};

const PROCESSES = 'quiver:processes';

/**
 * This process's endpoints as other processes advertise them: `info()` of `@quiver/fastify`, and whether its host
 * comes from each request (no `publicUrl`), as the process's own `info(request)` does.
 */
interface PublishedInfo extends QuiverInfo {
  hostFromRequest: boolean;
}

const plugin: FastifyPluginAsync<QuiverRoomsPluginOptions> = async (app, options) => {
  if (!app.hasDecorator('quiver')) throw new Error('register @quiver/fastify before @quiver/rooms/fastify');
  const { path: rawPath, bodyLimit, setup, drainOnClose, ...roomOptions } = options;
  const path = (rawPath ?? '/quiver').replace(/\/$/, '');
  const rooms = new RoomServer({ ...roomOptions, sessions: app.quiver });
  setup?.(rooms);
  app.decorate('rooms', rooms);
  registerMetrics(rooms.metrics, () => rooms.localRooms, app.quiverMetrics);

  // Where this process's sessions connect, published for matchmakers in other processes; then this process takes
  // rooms placed by them.
  app.addHook('onListen', async () => {
    await app.quiverTransports.ready();
    const entry: PublishedInfo = {
      ...(await app.quiverTransports.info()),
      hostFromRequest: app.quiverTransports.publicUrl === undefined,
    };
    await rooms.presence.hset(PROCESSES, rooms.processId, JSON.stringify(entry));
    await rooms.start();
  });
  const endpointsOf = async (
    processId: string,
    req: Pick<FastifyRequest, 'host' | 'hostname' | 'protocol'>,
  ): Promise<SessionEndpoints> => {
    let info: QuiverInfo | null;
    if (processId === rooms.processId) info = await app.quiverTransports.info(req);
    else {
      const entry = JSON.parse(
        (await rooms.presence.hget(PROCESSES, processId)) ?? 'null',
      ) as PublishedInfo | null;
      info = entry?.hostFromRequest ? withHost(entry, req.hostname) : entry;
    }
    if (!info) throw new RoomError(RoomErrorCode.ROOM_NOT_FOUND, 'the room process is gone');
    const { webtransport, websocket, http } = info;
    return { webtransport, websocket, http: http ?? null };
  };

  const failure = (err: unknown, req: FastifyRequest): RoomError => {
    if (err instanceof RoomError) return err;
    req.log.error({ err }, 'rooms: matchmaking failed');
    return new RoomError(RoomErrorCode.MATCHMAKE_FAILED, 'matchmaking failed');
  };

  app.post<{
    Params: { method: string; roomName: string };
    Querystring: { replaces?: string };
    Body: unknown;
  }>(`${path}/matchmake/:method/:roomName`, { bodyLimit: bodyLimit ?? 16_384 }, async (req, reply) => {
    const { method, roomName } = req.params;
    const body = req.body;
    const opts =
      body && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
    const run = async () => {
      const r = await matchmake(rooms, method as MatchmakeMethod, roomName, opts);
      return { ...r, session: await endpointsOf(r.processId, req) };
    };
    const replaces = typeof req.query.replaces === 'string' ? req.query.replaces : undefined;
    try {
      if (!matchmakeMethods.includes(method as MatchmakeMethod)) {
        throw new RoomError(RoomErrorCode.BAD_REQUEST, 'unknown matchmaking method');
      }
      if (replaces === undefined) return await run();
      // A rematch: the room check and the matchmaking in one request, so that a lost node's clients wait for one
      // answer of a busy node, not two. Only once the room is gone from the registry. "Still hosted" is an answer,
      // not an error (200, nothing reserved): clients ask it every `nodeCheckMs` while their transport is down, and
      // a 4xx would log a console error in every browser on each ask.
      if (await rooms.driver.get(replaces)) {
        reply.header(HOSTED_HEADER, 'hosted');
        return { hosted: true, replaces };
      }
    } catch (err) {
      const e = failure(err, req);
      return reply.code(statusOf[e.code] ?? 400).send({ error: e.toWire() });
    }
    // The answer is committed (200) before the matchmaking: the client bounds the wait for it by its room-check
    // timeout (a hung node must not hold it), which a busy node's matchmaking may exceed. The body carries the
    // reservation, or the typed error.
    // Headers other hooks set (CORS, ...) go out too: a hijacked reply skips fastify's sending.
    const headers = { ...reply.getHeaders(), 'content-type': 'application/json; charset=utf-8' };
    reply.hijack();
    reply.raw.writeHead(200, headers as Record<string, string | number | string[]>);
    reply.raw.flushHeaders();
    let out: unknown;
    try {
      out = { ...(await run()), replaces };
    } catch (err) {
      out = { error: failure(err, req).toWire() };
    }
    reply.raw.end(JSON.stringify(out));
  });

  app.get<{ Querystring: { name?: string } }>(`${path}/rooms`, async (req) => {
    const listings = await rooms.query({
      name: typeof req.query.name === 'string' ? req.query.name : undefined,
    });
    return {
      rooms: listings.map((l) => ({
        name: l.name,
        id: l.roomId,
        clients: l.clients,
        maxClients: l.maxClients,
        locked: l.locked,
        metadata: l.metadata,
      })),
    };
  });

  // Whether a room is still hosted: a client whose transport dropped asks, and matchmakes again once its room's
  // node is gone (listings leave out rooms of dead nodes) instead of retrying that node until its resume window ends.
  app.get<{ Params: { roomId: string } }>(`${path}/rooms/:roomId`, async (req, reply) => {
    const l = await rooms.driver.get(req.params.roomId);
    if (!l) {
      const e = new RoomError(RoomErrorCode.ROOM_NOT_FOUND, 'no such room');
      return reply.code(404).send({ error: e.toWire() });
    }
    return {
      name: l.name,
      id: l.roomId,
      clients: l.clients,
      maxClients: l.maxClients,
      locked: l.locked,
      metadata: l.metadata,
    };
  });

  // Rooms go before the session server closes its sessions: clients get `left` (or `moved`), hooks run.
  app.quiverTransports.beforeClose(async () => {
    if (drainOnClose) await rooms.drain(drainOnClose === true ? {} : drainOnClose);
    await rooms.close();
    await rooms.presence.hdel(PROCESSES, rooms.processId).catch(() => {});
  });
};

/** `info` with `hostname` in its URLs (ports kept): a process's endpoints under the host a client reached. */
function withHost(info: QuiverInfo, hostname: string): QuiverInfo {
  const swap = (url: string) => {
    const u = new URL(url);
    if (hostname) u.hostname = hostname;
    return u.toString();
  };
  return {
    ...info,
    webtransport: info.webtransport && { ...info.webtransport, url: swap(info.webtransport.url) },
    websocket: info.websocket && { url: swap(info.websocket.url) },
    http: info.http && { url: swap(info.http.url) },
  };
}

function matchmake(
  rooms: RoomServer,
  method: MatchmakeMethod,
  target: string,
  options: Record<string, unknown>,
): Promise<SeatReservation> {
  switch (method) {
    case 'joinById':
      return rooms.joinById(target, options);
    case 'reconnect':
      return rooms.reconnect(String(options.reconnectToken ?? ''));
    default:
      return rooms[method](target, options);
  }
}

/** Room counters in the app's Prometheus registry (`quiver_rooms_*`), read from `metrics` when scraped. */
function registerMetrics(
  m: RoomMetrics,
  local: () => readonly { roomName: string; clients: readonly unknown[] }[],
  registry: Registry,
): void {
  const table = (name: string, help: string, label: string, read: () => Record<string, number>) =>
    new Counter({
      name,
      help,
      labelNames: [label],
      registers: [registry],
      collect() {
        this.reset();
        for (const [k, v] of Object.entries(read())) if (v > 0) this.inc({ [label]: k }, v);
      },
    });
  table('quiver_rooms_created_total', 'Rooms created, by room type', 'room', () => m.roomsCreated);
  table('quiver_rooms_disposed_total', 'Rooms disposed, by room type', 'room', () => m.roomsDisposed);
  table('quiver_rooms_joins_total', 'Clients that joined a room, by room type', 'room', () => m.joins);
  table('quiver_rooms_leaves_total', 'Clients that left a room, by room type', 'room', () => m.leaves);
  table('quiver_rooms_reconnects_total', 'Seats taken back, by room type', 'room', () => m.reconnects);
  table('quiver_rooms_errors_total', 'Room errors, by code', 'code', () => m.errors);
  table(
    'quiver_rooms_undelivered_total',
    'Messages to clients without a session, by room type',
    'room',
    () => m.undelivered,
  );
  table('quiver_rooms_invalid_total', 'Payloads refused by a schema, by message', 'message', () => m.invalid);
  new Gauge({
    name: 'quiver_rooms_active',
    help: 'Rooms hosted by this process',
    registers: [registry],
    collect() {
      this.set(local().length);
    },
  });
  new Gauge({
    name: 'quiver_rooms_hosted',
    help: 'Rooms hosted by this process, by room type',
    labelNames: ['room'],
    registers: [registry],
    collect() {
      this.reset();
      for (const r of local()) this.inc({ room: r.roomName });
    },
  });
  // Rebuilt at each scrape from the rooms as they are: how many rooms hold how many clients right now.
  new Histogram({
    name: 'quiver_room_clients',
    help: 'Clients per room at scrape time, by room type (one observation per hosted room)',
    labelNames: ['room'],
    buckets: [0, 1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [registry],
    collect() {
      this.reset();
      for (const r of local()) this.observe({ room: r.roomName }, r.clients.length);
    },
  });
}

/** `app.register(quiverRooms, { setup: (rooms) => rooms.define('arena', Arena) })` after `@quiver/fastify`. */
export const quiverRooms = fp(plugin, {
  name: '@quiver/rooms',
  dependencies: ['@quiver/fastify'],
  fastify: '5.x',
});
export default quiverRooms;
