import type { DatagramSendEstimate } from '@quiver/transport';
import type { ChannelState, OutMsg } from './channels.js';
import type { Clock, TimerHandle } from './clock.js';
import type { DropInfo, DropReason } from './peer-options.js';

/** An unreliable message waiting for the transport's queue to shrink. */
interface Held {
  ch: ChannelState;
  msg: OutMsg;
  /** When `send()` was called. */
  at: number;
}

/** What the freshness guard needs from the peer. */
export interface FreshnessHost {
  clock: Clock;
  /** The current link's send estimate; `undefined` while disconnected or when the transport has none. */
  estimate(): DatagramSendEstimate | undefined;
  /** Bytes packed for the wire this turn and not yet handed to the transport. */
  pendingBytes(): number;
  /** Sends now, past the freshness check (the datagram path's other checks still apply). */
  send(ch: ChannelState, msg: OutMsg): boolean;
  drop(reason: DropReason, info: DropInfo): void;
  /** True while a link can carry datagrams. */
  connected(): boolean;
}

/**
 * Keeps unreliable state from arriving late. A message that would wait longer than `maxAgeMs` in the transport's
 * queue (its `datagrams.sendEstimate()`) is not handed to it: it is held, newest kept, and sent once its age plus
 * the wait fits `maxAgeMs`, or dropped as `stale` once it no longer can. A sequenced channel holds one message per
 * key: a newer send replaces the one held (the older counts as `stale`). The held messages are bounded by
 * `maxHeldBytes` (oldest dropped first) and, by construction, by age.
 */
export class FreshnessGuard {
  private held: Held[] = [];
  private heldBytes = 0;
  /** The shared ticker this guard is on while it holds anything. */
  private ticker: Ticker | undefined;

  constructor(
    private readonly host: FreshnessHost,
    /** Largest age at arrival (ms); 0 disables the guard. */
    readonly maxAgeMs: number,
    private readonly maxHeldBytes: number,
  ) {}

  /** Messages held now. */
  get size(): number {
    return this.held.length;
  }

  /**
   * Decides for one unreliable send: `undefined` when the caller should send it now, else the result of `send()`
   * (true: held, to be sent or counted later).
   */
  offer(ch: ChannelState, msg: OutMsg): boolean | undefined {
    if (this.maxAgeMs <= 0) return undefined;
    const now = this.host.clock.now();
    if (ch.mode === 'unreliable-sequenced') this.supersede(ch, msg.key);
    const wait = this.wait(this.host.estimate(), msg.payload.length);
    if (wait === undefined || wait <= this.maxAgeMs) return undefined;
    this.held.push({ ch, msg, at: now });
    this.heldBytes += msg.size;
    while (this.heldBytes > this.maxHeldBytes && this.held.length > 1) this.expire(this.held[0]);
    this.schedule();
    return true;
  }

  /** Drops everything held (the session closed). */
  clear(reason: DropReason): void {
    this.ticker?.leave(this);
    this.ticker = undefined;
    const held = this.held;
    this.held = [];
    this.heldBytes = 0;
    for (const h of held) this.host.drop(reason, info(h));
  }

  /** What a message of `bytes` sent now would wait (ms), `undefined` when the transport gives no estimate. */
  private wait(e: DatagramSendEstimate | undefined, bytes: number): number | undefined {
    if (!e) return undefined;
    const pending = this.host.pendingBytes();
    // Alone behind an empty queue, a message waits for no drain: the rate was measured behind a backlog, maybe long
    // ago, and is only sampled again behind one. Charging it here let a rate measured low once hold every larger
    // message, and with nothing sent the rate was never measured again. So one message goes; if it queues, the
    // estimate sees the queue and the next ones are judged by a fresh rate.
    if (e.queuedBytes <= 0 && pending === 0) return e.delayMs;
    return e.delayMs + (e.sendRate > 0 ? ((pending + bytes) * 1000) / e.sendRate : 0);
  }

  private supersede(ch: ChannelState, key: unknown): void {
    const i = this.held.findIndex((h) => h.ch === ch && h.msg.key === key);
    if (i >= 0) this.expire(this.held[i]);
  }

  private expire(h: Held): void {
    const i = this.held.indexOf(h);
    if (i < 0) return;
    this.held.splice(i, 1);
    this.heldBytes -= h.msg.size;
    this.host.drop('stale', info(h));
  }

  private schedule(): void {
    if (this.ticker !== undefined || this.held.length === 0) return;
    // Often enough that a message goes within a fraction of its age budget once the queue shrinks.
    this.ticker = Ticker.for(this.host.clock, Math.max(5, this.maxAgeMs / 5));
    this.ticker.join(this);
  }

  /**
   * Sends what now fits its age budget, newest first; drops what never can. Called by the ticker; returns whether
   * the guard still holds anything (and stays on the ticker).
   */
  check(): boolean {
    this.recheck();
    if (this.held.length > 0) return true;
    this.ticker = undefined;
    return false;
  }

  private recheck(): void {
    if (!this.host.connected()) {
      this.clear('disconnected');
      return;
    }
    const now = this.host.clock.now();
    const e = this.host.estimate();
    for (let i = this.held.length - 1; i >= 0; i--) {
      const h = this.held[i];
      const age = now - h.at;
      if (age >= this.maxAgeMs) {
        this.expire(h);
        continue;
      }
      const wait = this.wait(e, h.msg.payload.length);
      if (wait !== undefined && age + wait > this.maxAgeMs) continue;
      this.held.splice(i, 1);
      this.heldBytes -= h.msg.size;
      this.host.send(h.ch, h.msg);
    }
  }
}

/**
 * One timer per clock and period for every guard that holds messages, instead of a timer per session: a server's
 * guards hold at once when its loop is late (their send estimates all see the late answers), and a timer each was
 * ~13 % of a busy 1,000-session server's time. A held message is first checked within one period (not exactly one
 * period after it was held), which keeps the guard's promise: sent within a fraction of its age budget once the
 * queue shrinks, dropped once it cannot arrive in time.
 */
class Ticker {
  private static readonly byClock = new WeakMap<Clock, Map<number, Ticker>>();
  private readonly guards = new Set<FreshnessGuard>();
  private timer: TimerHandle | undefined;

  private constructor(
    private readonly clock: Clock,
    private readonly periodMs: number,
  ) {}

  static for(clock: Clock, periodMs: number): Ticker {
    let m = Ticker.byClock.get(clock);
    if (!m) {
      m = new Map();
      Ticker.byClock.set(clock, m);
    }
    let t = m.get(periodMs);
    if (!t) {
      t = new Ticker(clock, periodMs);
      m.set(periodMs, t);
    }
    return t;
  }

  join(g: FreshnessGuard): void {
    this.guards.add(g);
    this.timer ??= this.clock.setTimeout(this.fire, this.periodMs);
  }

  leave(g: FreshnessGuard): void {
    this.guards.delete(g);
    if (this.guards.size > 0) return;
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private readonly fire = (): void => {
    this.timer = undefined;
    for (const g of this.guards) if (!g.check()) this.guards.delete(g);
    // A guard may have joined during the loop (an `onDrop` that sends) and set the timer already.
    if (this.guards.size > 0) this.timer ??= this.clock.setTimeout(this.fire, this.periodMs);
    else {
      this.clock.clearTimeout(this.timer);
      this.timer = undefined;
    }
  };
}

function info(h: Held): DropInfo {
  return { message: h.msg.name, channel: h.ch.name, bytes: h.msg.payload.length };
}
