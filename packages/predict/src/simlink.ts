/**
 * A seeded, sans-IO one-way link for simulations, tests and benches: packets go in with their send time and come out
 * at `send + delay + jitter` unless lost. Loss follows a Gilbert-Elliott two-state chain, so losses come in bursts of
 * mean length `meanBurstLength` (1 gives independent losses) while the long-run rate stays `lossRate`. Nothing here
 * reads a clock or schedules a timer: the caller moves time, so a run is reproducible and thousands of simulated
 * seconds take a second.
 */
import { checkOption } from './errors.js';

/** Options of {@link SimLink}. */
export interface SimLinkOptions {
  /** One-way delay (ms). Default 0. */
  delayMs?: number;
  /** Extra delay drawn uniformly from [0, jitterMs) per packet; packets may overtake each other. Default 0. */
  jitterMs?: number;
  /** Long-run share of packets lost, in [0, 0.99]. Default 0. */
  lossRate?: number;
  /** Mean length of a loss burst in packets (default 1: independent losses). */
  meanBurstLength?: number;
  /** Seed of the link's own generator (mulberry32). Default 1. */
  seed?: number;
  /** Packets in flight before further sends are dropped and counted (default 100000). */
  maxInFlight?: number;
}

/** Counters of a {@link SimLink}. */
export interface SimLinkStats {
  /** Calls of `send`. */
  sent: number;
  /** Packets returned by `receive`. */
  delivered: number;
  /** Packets lost by the loss model. */
  lost: number;
  /** Dropped because `maxInFlight` packets were in flight. */
  overflow: number;
}

interface InFlight<T> {
  at: number;
  seq: number;
  payload: T;
}

/** One direction of a simulated network path carrying payloads of type `T` (see the module comment). */
export class SimLink<T> {
  /** Live counters. */
  readonly stats: SimLinkStats = { sent: 0, delivered: 0, lost: 0, overflow: 0 };
  /** One-way delay in force (ms). */
  readonly delayMs: number;
  /** Jitter bound in force (ms). */
  readonly jitterMs: number;
  /** Long-run loss rate in force. */
  readonly lossRate: number;
  readonly #pGoodToBad: number;
  readonly #pBadToGood: number;
  readonly #maxInFlight: number;
  #bad = false;
  #state: number;
  #seq = 0;
  // Binary min-heap on (at, seq).
  #heap: InFlight<T>[] = [];

  constructor(options: SimLinkOptions = {}) {
    this.delayMs = checkOption('delayMs', options.delayMs ?? 0, 0);
    this.jitterMs = checkOption('jitterMs', options.jitterMs ?? 0, 0);
    this.lossRate = checkOption('lossRate', options.lossRate ?? 0, 0, 0.99);
    const burst = checkOption('meanBurstLength', options.meanBurstLength ?? 1, 1);
    this.#maxInFlight = checkOption('maxInFlight', options.maxInFlight ?? 100_000, 1);
    this.#pBadToGood = 1 / burst;
    // Stationary loss of the chain is p / (p + r).
    this.#pGoodToBad = this.lossRate === 0 ? 0 : (this.lossRate * this.#pBadToGood) / (1 - this.lossRate);
    this.#state = (options.seed ?? 1) >>> 0;
  }

  #random(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Packets sent and not yet received. */
  get inFlight(): number {
    return this.#heap.length;
  }

  /** Sends `payload` at `nowMs`; returns false when it is lost. */
  send(nowMs: number, payload: T): boolean {
    this.stats.sent++;
    this.#bad = this.#bad ? this.#random() >= this.#pBadToGood : this.#random() < this.#pGoodToBad;
    const jitter = this.jitterMs > 0 ? this.#random() * this.jitterMs : 0;
    if (this.#bad) {
      this.stats.lost++;
      return false;
    }
    if (this.#heap.length >= this.#maxInFlight) {
      this.stats.overflow++;
      return false;
    }
    this.#push({ at: nowMs + this.delayMs + jitter, seq: this.#seq++, payload });
    return true;
  }

  /** Arrival time of the next packet, or Infinity. */
  get nextArrival(): number {
    return this.#heap.length ? this.#heap[0].at : Number.POSITIVE_INFINITY;
  }

  /** Packets that have arrived by `nowMs`, in arrival order, each with its arrival time. */
  receive(nowMs: number): {
    /** Arrival time (ms). */
    at: number;
    /** What was sent. */
    payload: T;
  }[] {
    const out: { at: number; payload: T }[] = [];
    while (this.#heap.length && this.#heap[0].at <= nowMs) {
      const p = this.#pop();
      out.push({ at: p.at, payload: p.payload });
    }
    this.stats.delivered += out.length;
    return out;
  }

  #less(a: InFlight<T>, b: InFlight<T>): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  #push(item: InFlight<T>): void {
    const h = this.#heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#less(h[i], h[parent])) break;
      [h[i], h[parent]] = [h[parent], h[i]];
      i = parent;
    }
  }

  #pop(): InFlight<T> {
    const h = this.#heap;
    const top = h[0];
    const last = h.pop()!;
    if (h.length) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.#less(h[l], h[m])) m = l;
        if (r < h.length && this.#less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}
