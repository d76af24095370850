import type { Presence } from '@quiver/rooms';
import type { Redis } from 'ioredis';
import { DEL_IF, runScript } from './scripts.js';

/** Options of {@link RedisPresence}. */
export interface RedisPresenceOptions {
  /** Commands and publishing. */
  redis: Redis;
  /**
   * The subscriber connection (a connection in subscriber mode takes no other command). Default
   * `redis.duplicate()`, created on the first `subscribe` and closed by `close()`.
   */
  subscriber?: Redis;
  /** `close()` also quits `redis` (and `subscriber` when given). Default false. */
  ownsClient?: boolean;
}

/**
 * `Presence` on Redis: strings, sets and hashes with expiry, and pub/sub. Keys are used as given (rooms already
 * names them `quiver:...`). A key of the wrong kind is Redis's `WRONGTYPE` error, as `MemoryPresence` throws a
 * `TypeError`.
 */
export class RedisPresence implements Presence {
  private readonly redis: Redis;
  private sub: Redis | undefined;
  private readonly ownsSub: boolean;
  private readonly ownsClient: boolean;
  private readonly listeners = new Map<string, Set<(message: string) => void>>();
  private wired = false;

  constructor(options: RedisPresenceOptions) {
    this.redis = options.redis;
    this.sub = options.subscriber;
    this.ownsSub = !options.subscriber || (options.ownsClient ?? false);
    this.ownsClient = options.ownsClient ?? false;
  }

  async set(key: string, value: string, options: { ttlMs?: number; onlyIfAbsent?: boolean } = {}) {
    const { ttlMs, onlyIfAbsent } = options;
    let r: string | null;
    if (ttlMs !== undefined && onlyIfAbsent) r = await this.redis.set(key, value, 'PX', ttlMs, 'NX');
    else if (ttlMs !== undefined) r = await this.redis.set(key, value, 'PX', ttlMs);
    else if (onlyIfAbsent) r = await this.redis.set(key, value, 'NX');
    else r = await this.redis.set(key, value);
    return r === 'OK';
  }

  async get(key: string) {
    return (await this.redis.get(key)) ?? undefined;
  }

  async del(key: string, ifValue?: string) {
    if (ifValue === undefined) return (await this.redis.del(key)) > 0;
    return (await runScript(this.redis, DEL_IF, [key], [ifValue])) === 1;
  }

  async expire(key: string, ttlMs: number) {
    return (await this.redis.pexpire(key, ttlMs)) === 1;
  }

  async sadd(key: string, member: string) {
    return (await this.redis.sadd(key, member)) === 1;
  }

  async srem(key: string, member: string) {
    return (await this.redis.srem(key, member)) === 1;
  }

  smembers(key: string) {
    return this.redis.smembers(key);
  }

  async hset(key: string, field: string, value: string) {
    await this.redis.hset(key, field, value);
  }

  async hget(key: string, field: string) {
    return (await this.redis.hget(key, field)) ?? undefined;
  }

  async hdel(key: string, field: string) {
    return (await this.redis.hdel(key, field)) === 1;
  }

  hgetall(key: string) {
    return this.redis.hgetall(key);
  }

  publish(channel: string, message: string) {
    return this.redis.publish(channel, message);
  }

  async subscribe(channel: string, listener: (message: string) => void) {
    const sub = this.subscriber();
    let set = this.listeners.get(channel);
    if (!set) {
      set = new Set();
      this.listeners.set(channel, set);
      await sub.subscribe(channel);
    }
    set.add(listener);
    return async () => {
      const s = this.listeners.get(channel);
      if (!s?.delete(listener) || s.size > 0) return;
      this.listeners.delete(channel);
      await sub.unsubscribe(channel);
    };
  }

  /** Drops every listener and quits the connections this presence owns (see `ownsClient`). */
  async close(): Promise<void> {
    this.listeners.clear();
    if (this.sub && this.ownsSub) await this.sub.quit();
    if (this.ownsClient) await this.redis.quit();
  }

  private subscriber(): Redis {
    if (!this.sub) {
      // ioredis resubscribes by itself after a reconnect, so subscriptions survive a Redis restart.
      this.sub = this.redis.duplicate();
      // An outage shows on the command connection too, where the application listens for 'error'.
      this.sub.on('error', () => {});
    }
    if (!this.wired) {
      this.wired = true;
      this.sub.on('message', (channel: string, message: string) => {
        for (const l of [...(this.listeners.get(channel) ?? [])]) l(message);
      });
    }
    return this.sub;
  }
}
