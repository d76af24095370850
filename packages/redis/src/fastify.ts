/**
 * The rooms plugin on Redis when configured: `app.register(quiverRoomsRedis, { setup })` in place of
 * `@quiver/rooms/fastify`. With `redisUrl` (default `process.env.REDIS_URL`) rooms, matchmaking and presence are
 * on that Redis, shared by every process on it; without, the in-memory default of one process.
 */
import type { QuiverRoomsPluginOptions } from '@quiver/rooms/fastify';
import quiverRooms from '@quiver/rooms/fastify';
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { connectRedisRooms, type RedisRoomsOptions } from './connect.js';

/** The rooms plugin's options, plus where Redis is. */
export interface QuiverRoomsRedisOptions extends QuiverRoomsPluginOptions {
  /** `redis://host:port[/db]`. Default `process.env.REDIS_URL`; empty or unset: in memory. */
  redisUrl?: string;
  /** Driver options (prefix, heartbeat). */
  redis?: Omit<RedisRoomsOptions, 'url' | 'clock'>;
}

const plugin: FastifyPluginAsync<QuiverRoomsRedisOptions> = async (app, options) => {
  const { redisUrl = process.env.REDIS_URL, redis: driverOptions, ...roomOptions } = options;
  if (!redisUrl) {
    await app.register(quiverRooms, roomOptions);
    return;
  }
  let lastError = '';
  const store = await connectRedisRooms({
    ...driverOptions,
    url: redisUrl,
    clock: roomOptions.clock,
    // One line per kind of failure, not one per reconnection attempt.
    onError: (err) => {
      if (err.message !== lastError) app.log.warn({ err }, 'rooms: Redis connection error');
      lastError = err.message;
    },
  });
  // After the rooms plugin's preClose (rooms disposed, unlisted): then the heartbeat stops and connections close.
  app.addHook('onClose', () => store.close());
  await app.register(quiverRooms, {
    // Many nodes: a node that shuts down hands its clients to the others (`moved`) rather than dropping them.
    drainOnClose: { timeoutMs: 0 },
    ...roomOptions,
    driver: store.driver,
    presence: store.presence,
  });

  // The rooms plugin publishes this process's endpoints once, when it listens (`quiver:processes`, see the rooms
  // README). A Redis restart loses them: publish the same entry again whenever the connection is back.
  let entry: string | undefined;
  app.addHook('onListen', async () => {
    entry = await store.presence.hget(PROCESSES, app.rooms.processId);
  });
  store.redis.on('ready', () => {
    lastError = '';
    if (entry) void store.presence.hset(PROCESSES, app.rooms.processId, entry).catch(() => {});
  });
};

const PROCESSES = 'quiver:processes';

/**
 * Registers the rooms plugin (`app.rooms`) with its registry and presence on Redis when `redisUrl` is set, in memory
 * otherwise. Needs `@quiver/fastify` registered first.
 */
export const quiverRoomsRedis = fp(plugin, {
  name: '@quiver/redis',
  dependencies: ['@quiver/fastify'],
  fastify: '5.x',
});
export default quiverRoomsRedis;
