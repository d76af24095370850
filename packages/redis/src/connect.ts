import type { Clock } from '@quiver/session';
import { Redis } from 'ioredis';
import { RedisDriver, type RedisDriverOptions } from './driver.js';
import { RedisPresence } from './presence.js';

export interface RedisRoomsOptions extends Omit<RedisDriverOptions, 'redis' | 'ownsClient' | 'clock'> {
  /** `redis://host:port[/db]`, e.g. `process.env.REDIS_URL`. */
  url: string;
  clock?: Clock;
}

/** A driver and presence on one Redis, for `RoomServer` or the rooms plugin: `{ driver, presence }`. */
export interface RedisRooms {
  driver: RedisDriver;
  presence: RedisPresence;
  /** Stops the heartbeat and closes the connections; after the room server closed. */
  close(): Promise<void>;
}

/** Connects to `url` (commands, plus one subscriber connection made on the first subscription). */
export async function connectRedisRooms(options: RedisRoomsOptions): Promise<RedisRooms> {
  const { url, ...driverOptions } = options;
  const redis = new Redis(url, { lazyConnect: true });
  await redis.connect();
  const driver = new RedisDriver({ ...driverOptions, redis });
  const presence = new RedisPresence({ redis });
  return {
    driver,
    presence,
    async close() {
      await driver.close();
      await presence.close();
      await redis.quit();
    },
  };
}
