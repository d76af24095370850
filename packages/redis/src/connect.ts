import type { Clock } from '@quiver/session';
import { Redis } from 'ioredis';
import { RedisDriver, type RedisDriverOptions } from './driver.js';
import { RedisPresence } from './presence.js';

/** Options of {@link connectRedisRooms}: the connection, plus the driver's options. */
export interface RedisRoomsOptions extends Omit<RedisDriverOptions, 'redis' | 'ownsClient' | 'clock'> {
  /** `redis://host:port[/db]`, e.g. `process.env.REDIS_URL`. */
  url: string;
  /** Time source of the driver (seat expiry, heartbeat). Default the system clock. */
  clock?: Clock;
  /** Connection errors (refused, reset); `ioredis` reconnects by itself. Default: ignored. */
  onError?: (err: Error) => void;
  /**
   * Reconnection attempts a command waits through before it fails (ioredis `maxRetriesPerRequest`). Low, so that
   * matchmaking fails fast (`matchmake-failed`) while Redis is down instead of hanging. Default 2.
   */
  maxRetriesPerRequest?: number;
}

/** A driver and presence on one Redis, for `RoomServer` or the rooms plugin: `{ driver, presence }`. */
export interface RedisRooms {
  /** The command connection. */
  redis: Redis;
  /** The room registry, for `RoomServer`'s `driver`. */
  driver: RedisDriver;
  /** Presence on the same connection (plus its subscriber), for `RoomServer`'s `presence`. */
  presence: RedisPresence;
  /** Stops the heartbeat and closes the connections; after the room server closed. */
  close(): Promise<void>;
}

/** Connects to `url` (commands, plus one subscriber connection made on the first subscription). */
export async function connectRedisRooms(options: RedisRoomsOptions): Promise<RedisRooms> {
  const { url, onError, maxRetriesPerRequest = 2, ...driverOptions } = options;
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest });
  redis.on('error', onError ?? (() => {}));
  await redis.connect();
  const driver = new RedisDriver({ ...driverOptions, redis });
  const presence = new RedisPresence({ redis });
  return {
    redis,
    driver,
    presence,
    async close() {
      await driver.close();
      await presence.close();
      await redis.quit();
    },
  };
}
