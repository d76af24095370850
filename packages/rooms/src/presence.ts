import { type Clock, systemClock } from '@quiver/session';

/**
 * Shared state between the processes of one deployment: keys, sets and hashes with expiry, and pub/sub. The
 * in-memory implementation serves one process; a Redis implementation (a later issue) serves many. Every method is
 * async so that a networked store fits the same interface.
 */
export interface Presence {
  /** Sets `key`; with `ttlMs` it expires. `onlyIfAbsent` makes it a lock: returns false when the key exists. */
  set(key: string, value: string, options?: { ttlMs?: number; onlyIfAbsent?: boolean }): Promise<boolean>;
  /** The string at `key`; undefined when absent or expired. */
  get(key: string): Promise<string | undefined>;
  /** Deletes `key` (of any kind); with `ifValue`, only when it holds that value (releasing one's own lock). */
  del(key: string, ifValue?: string): Promise<boolean>;
  /** Sets the expiry of an existing key; false when there is none. */
  expire(key: string, ttlMs: number): Promise<boolean>;
  /** Adds `member` to the set at `key`; false when it was already a member. */
  sadd(key: string, member: string): Promise<boolean>;
  /** Removes `member` from the set at `key`; false when it was not a member. */
  srem(key: string, member: string): Promise<boolean>;
  /** The members of the set at `key`, in no particular order; empty when absent. */
  smembers(key: string): Promise<string[]>;
  /** Sets `field` of the hash at `key`, creating the hash if needed. */
  hset(key: string, field: string, value: string): Promise<void>;
  /** `field` of the hash at `key`; undefined when the hash or the field is absent. */
  hget(key: string, field: string): Promise<string | undefined>;
  /** Deletes `field` of the hash at `key`; false when it was absent. */
  hdel(key: string, field: string): Promise<boolean>;
  /** Every field of the hash at `key`; empty when absent. */
  hgetall(key: string): Promise<Record<string, string>>;
  /** Sends `message` to the current subscribers of `channel` (not stored); returns how many received it. */
  publish(channel: string, message: string): Promise<number>;
  /** Returns a function that unsubscribes. */
  subscribe(channel: string, listener: (message: string) => void): Promise<() => Promise<void>>;
}

type Entry =
  | { kind: 'string'; value: string; expiresAt: number }
  | { kind: 'set'; value: Set<string>; expiresAt: number }
  | { kind: 'hash'; value: Map<string, string>; expiresAt: number };

/** `Presence` in this process's memory. Expiry is evaluated lazily against the injected clock. */
export class MemoryPresence implements Presence {
  private readonly entries = new Map<string, Entry>();
  private readonly channels = new Map<string, Set<(message: string) => void>>();

  constructor(private readonly clock: Clock = systemClock) {}

  private live(key: string): Entry | undefined {
    const e = this.entries.get(key);
    if (e && e.expiresAt <= this.clock.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return e;
  }

  private of<K extends Entry['kind']>(key: string, kind: K): Extract<Entry, { kind: K }> | undefined {
    const e = this.live(key);
    if (!e) return undefined;
    if (e.kind !== kind) throw new TypeError(`presence key '${key}' holds a ${e.kind}, not a ${kind}`);
    return e as Extract<Entry, { kind: K }>;
  }

  async set(key: string, value: string, options: { ttlMs?: number; onlyIfAbsent?: boolean } = {}) {
    if (options.onlyIfAbsent && this.live(key)) return false;
    const expiresAt =
      options.ttlMs === undefined ? Number.POSITIVE_INFINITY : this.clock.now() + options.ttlMs;
    this.entries.set(key, { kind: 'string', value, expiresAt });
    return true;
  }

  async get(key: string) {
    return this.of(key, 'string')?.value;
  }

  async del(key: string, ifValue?: string) {
    const e = this.live(key);
    if (!e) return false;
    if (ifValue !== undefined && (e.kind !== 'string' || e.value !== ifValue)) return false;
    return this.entries.delete(key);
  }

  async expire(key: string, ttlMs: number) {
    const e = this.live(key);
    if (!e) return false;
    e.expiresAt = this.clock.now() + ttlMs;
    return true;
  }

  async sadd(key: string, member: string) {
    let e = this.of(key, 'set');
    if (!e) {
      e = { kind: 'set', value: new Set(), expiresAt: Number.POSITIVE_INFINITY };
      this.entries.set(key, e);
    }
    if (e.value.has(member)) return false;
    e.value.add(member);
    return true;
  }

  async srem(key: string, member: string) {
    const e = this.of(key, 'set');
    if (!e) return false;
    const had = e.value.delete(member);
    if (e.value.size === 0) this.entries.delete(key);
    return had;
  }

  async smembers(key: string) {
    return [...(this.of(key, 'set')?.value ?? [])];
  }

  async hset(key: string, field: string, value: string) {
    let e = this.of(key, 'hash');
    if (!e) {
      e = { kind: 'hash', value: new Map(), expiresAt: Number.POSITIVE_INFINITY };
      this.entries.set(key, e);
    }
    e.value.set(field, value);
  }

  async hget(key: string, field: string) {
    return this.of(key, 'hash')?.value.get(field);
  }

  async hdel(key: string, field: string) {
    const e = this.of(key, 'hash');
    if (!e) return false;
    const had = e.value.delete(field);
    if (e.value.size === 0) this.entries.delete(key);
    return had;
  }

  async hgetall(key: string) {
    return Object.fromEntries(this.of(key, 'hash')?.value ?? []);
  }

  async publish(channel: string, message: string) {
    const subs = this.channels.get(channel);
    if (!subs) return 0;
    // Delivered on a later turn, as a networked broker would: a publisher never runs its subscribers inline.
    for (const l of [...subs]) queueMicrotask(() => l(message));
    return subs.size;
  }

  async subscribe(channel: string, listener: (message: string) => void) {
    let subs = this.channels.get(channel);
    if (!subs) {
      subs = new Set();
      this.channels.set(channel, subs);
    }
    subs.add(listener);
    return async () => {
      subs.delete(listener);
      if (subs.size === 0) this.channels.delete(channel);
    };
  }
}
