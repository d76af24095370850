/**
 * The pre-authentication budget: connections that have not completed their HELLO yet (authenticate running, or
 * accepted and waiting for HELLO), capped in total and per remote address, separately from `maxSessions`.
 *
 * When a cap is reached the *oldest* pending handshake is evicted to make room, rather than the newcomer refused.
 * A peer that opens sockets and never says HELLO then cannot lock anyone out: a well-behaved client completes its
 * handshake in a round trip or two, long before the cap's worth of newer connections pushes it out, while idle
 * sockets are the oldest and go first. The per-address cap keeps one address from churning everyone else's
 * handshakes out of the shared pool.
 */

/** The pre-authentication budget of a session server (`SessionServerOptions.preAuth`). */
export interface PreAuthOptions {
  /** Connections that have not completed HELLO, in total. Default 1024. */
  maxPending?: number;
  /** The same per remote address. Default 16. */
  maxPendingPerIp?: number;
  /**
   * Largest HELLO frame accepted (bytes), so that pending handshakes hold at most `maxPending` times this.
   * Default 64 KiB (a HELLO carries the client's message and channel tables).
   */
  maxHelloBytes?: number;
}

interface Entry {
  ip: string;
  evict: () => void;
  done: boolean;
}

/** Bounded set of handshakes in progress, evicting the oldest at a cap so idle sockets cannot lock others out. */
export class PendingHandshakes {
  private readonly order = new Set<Entry>();
  private readonly byIp = new Map<string, Set<Entry>>();
  /** The total cap in force (default 1024, at least 1). */
  readonly maxPending: number;
  /** The per-address cap in force (default 16, at least 1). */
  readonly maxPendingPerIp: number;
  /** Pending handshakes evicted to make room (also counted by the caller in its metrics). */
  evictions = 0;

  constructor(options: PreAuthOptions = {}) {
    this.maxPending = Math.max(1, options.maxPending ?? 1024);
    this.maxPendingPerIp = Math.max(1, options.maxPendingPerIp ?? 16);
  }

  /** Handshakes pending now. */
  get size(): number {
    return this.order.size;
  }

  /**
   * Takes a slot for a handshake from `ip`, evicting the oldest pending one (of that address first) if a cap is
   * reached. `evict` is called at most once, if this handshake is pushed out; the returned function frees the slot.
   */
  admit(ip: string, evict: () => void): () => void {
    let mine = this.byIp.get(ip);
    if (mine && mine.size >= this.maxPendingPerIp) this.evictOldest(mine);
    if (this.order.size >= this.maxPending) this.evictOldest(this.order);
    const entry: Entry = { ip, evict, done: false };
    this.order.add(entry);
    mine = this.byIp.get(ip);
    if (!mine) {
      mine = new Set();
      this.byIp.set(ip, mine);
    }
    mine.add(entry);
    return () => this.release(entry);
  }

  private evictOldest(set: Set<Entry>): void {
    const oldest = set.values().next().value;
    if (!oldest) return;
    this.release(oldest);
    this.evictions++;
    oldest.evict();
  }

  private release(entry: Entry): void {
    if (entry.done) return;
    entry.done = true;
    this.order.delete(entry);
    const mine = this.byIp.get(entry.ip);
    mine?.delete(entry);
    if (mine?.size === 0) this.byIp.delete(entry.ip);
  }
}
