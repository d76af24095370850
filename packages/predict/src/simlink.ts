/**
 * A seeded, sans-IO one-way link for simulations, tests and benches: packets go in with their send time and come out
 * at `send + delay + jitter` unless lost. Loss follows a Gilbert-Elliott two-state chain, so losses come in bursts of
 * mean length `meanBurstLength` (1 gives independent losses) while the long-run rate stays `lossRate`. Nothing here
 * reads a clock or schedules a timer: the caller moves time, so a run is reproducible and thousands of simulated
 * seconds take a second.
 */
import { createRng, TimeHeap } from '@quiver/transport';
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
  /** Seed of the link's own generator (`createRng` of @quiver/transport). Default 1. */
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
  #seq = 0;
  readonly #heap = new TimeHeap<InFlight<T>>();
  readonly #random: () => number;

  constructor(options: SimLinkOptions = {}) {
    this.delayMs = checkOption('delayMs', options.delayMs ?? 0, 0);
    this.jitterMs = checkOption('jitterMs', options.jitterMs ?? 0, 0);
    this.lossRate = checkOption('lossRate', options.lossRate ?? 0, 0, 0.99);
    const burst = checkOption('meanBurstLength', options.meanBurstLength ?? 1, 1);
    this.#maxInFlight = checkOption('maxInFlight', options.maxInFlight ?? 100_000, 1);
    this.#pBadToGood = 1 / burst;
    // Stationary loss of the chain is p / (p + r).
    this.#pGoodToBad = this.lossRate === 0 ? 0 : (this.lossRate * this.#pBadToGood) / (1 - this.lossRate);
    this.#random = createRng(options.seed ?? 1).next;
  }

  /** Packets sent and not yet received. */
  get inFlight(): number {
    return this.#heap.size;
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
    if (this.#heap.size >= this.#maxInFlight) {
      this.stats.overflow++;
      return false;
    }
    this.#heap.push({ at: nowMs + this.delayMs + jitter, seq: this.#seq++, payload });
    return true;
  }

  /** Arrival time of the next packet, or Infinity. */
  get nextArrival(): number {
    return this.#heap.size ? this.#heap.peek()!.at : Number.POSITIVE_INFINITY;
  }

  /** Packets that have arrived by `nowMs`, in arrival order, each with its arrival time. */
  receive(nowMs: number): {
    /** Arrival time (ms). */
    at: number;
    /** What was sent. */
    payload: T;
  }[] {
    const out: { at: number; payload: T }[] = [];
    while (this.#heap.size && this.#heap.peek()!.at <= nowMs) {
      const p = this.#heap.pop()!;
      out.push({ at: p.at, payload: p.payload });
    }
    this.stats.delivered += out.length;
    return out;
  }
}
