/**
 * One direction of an emulated network path: serialization at a bandwidth cap, one-way delay, jitter, loss and
 * reordering, driven only by an injected {@link Clock} and a seeded {@link Rng}, so that a run under a
 * {@link ManualClock} is reproducible frame by frame.
 *
 * Reliable frames (stream data and control) are never lost and keep their order: delay, jitter and the bandwidth cap
 * apply to them, loss does not, unless `retransmitTimeoutMs` is set, in which case a loss costs that much delay and
 * holds back later reliable frames (head-of-line blocking, as QUIC retransmission of ordered stream data would).
 * Unreliable frames (datagrams, RFC 9221) are lost, delayed and reordered independently.
 */
import type { Clock, Rng, TimerHandle } from '../clock.js';
import { TimeHeap } from '../heap.js';

/** The link model of one direction of the memory transport. */
export interface LinkOptions {
  /** One-way propagation delay in ms. Default 0. */
  delayMs?: number;
  /** Extra delay drawn uniformly from [0, jitterMs) per frame. Default 0. Reorders datagrams sent closer than it. */
  jitterMs?: number;
  /** Probability in [0, 1] that a datagram is lost (see `retransmitTimeoutMs` for stream frames). Default 0. */
  lossRate?: number;
  /** Probability in [0, 1] that a datagram is held back by `reorderDelayMs`, arriving after later ones. Default 0. */
  reorderRate?: number;
  /** Extra delay of a held-back datagram in ms. Default `max(1, delayMs)`. */
  reorderDelayMs?: number;
  /** Serialization rate in bytes per second, applied to every frame. Default Infinity (no cap). */
  bandwidthBytesPerSecond?: number;
  /**
   * Default 0: loss never touches stream frames. When > 0, stream and control frames are lost at `lossRate` too and
   * each loss delays the frame by this many ms (and everything behind it); about `3 * delayMs + jitterMs` mimics an
   * RFC 9002 §6.2 probe timeout on a path whose RTT is twice the one-way delay.
   */
  retransmitTimeoutMs?: number;
}

/** {@link LinkOptions} with every default filled in. */
export interface ResolvedLinkOptions {
  /** One-way propagation delay in ms (default 0). */
  delayMs: number;
  /** Upper bound in ms of the uniform per-frame extra delay (default 0). */
  jitterMs: number;
  /** Loss probability in [0, 1] (default 0). */
  lossRate: number;
  /** Probability in [0, 1] that a datagram is held back (default 0). */
  reorderRate: number;
  /** Extra delay in ms of a held-back datagram (default `max(1, delayMs)`). */
  reorderDelayMs: number;
  /** Serialization rate in bytes per second (default Infinity, no cap). */
  bandwidthBytesPerSecond: number;
  /** Delay in ms a lost reliable frame costs; 0 (default) means reliable frames are never lost. */
  retransmitTimeoutMs: number;
}

/**
 * Fills in the defaults of {@link LinkOptions}.
 *
 * @throws RangeError when a delay is negative, a probability is outside [0, 1], the bandwidth is not positive, or
 * `lossRate` is 1 with `retransmitTimeoutMs` set (reliable frames would be retransmitted forever).
 */
export function resolveLinkOptions(options: LinkOptions = {}): ResolvedLinkOptions {
  const nonNegative = (name: string, v: number | undefined, fallback: number) => {
    const value = v ?? fallback;
    if (!(value >= 0)) throw new RangeError(`link option ${name} must be >= 0, got ${v}`);
    return value;
  };
  const probability = (name: string, v: number | undefined) => {
    const value = v ?? 0;
    if (!(value >= 0 && value <= 1)) throw new RangeError(`link option ${name} must be in [0, 1], got ${v}`);
    return value;
  };
  const delayMs = nonNegative('delayMs', options.delayMs, 0);
  const jitterMs = nonNegative('jitterMs', options.jitterMs, 0);
  const bandwidth = options.bandwidthBytesPerSecond ?? Number.POSITIVE_INFINITY;
  if (!(bandwidth > 0))
    throw new RangeError(`link option bandwidthBytesPerSecond must be > 0, got ${bandwidth}`);
  const lossRate = probability('lossRate', options.lossRate);
  const retransmitTimeoutMs = nonNegative('retransmitTimeoutMs', options.retransmitTimeoutMs, 0);
  if (lossRate === 1 && retransmitTimeoutMs > 0) {
    // Reliable frames would be retransmitted forever.
    throw new RangeError('link option lossRate must be < 1 when retransmitTimeoutMs is set');
  }
  return {
    delayMs,
    jitterMs,
    lossRate,
    reorderRate: probability('reorderRate', options.reorderRate),
    reorderDelayMs: nonNegative('reorderDelayMs', options.reorderDelayMs, Math.max(1, delayMs)),
    bandwidthBytesPerSecond: bandwidth,
    retransmitTimeoutMs,
  };
}

interface Scheduled<F> {
  at: number;
  seq: number;
  frame: F;
  size: number;
  unreliable: boolean;
}

/** What a {@link Link} did to the frames it carried. */
export interface LinkCounters {
  /** Frames handed to the link. */
  framesSent: number;
  /** Bytes of the frames handed to the link, as their senders sized them. */
  bytesSent: number;
  /** Frames handed to the receiving end. */
  framesDelivered: number;
  /** Bytes of the frames handed to the receiving end. */
  bytesDelivered: number;
  /** Datagrams lost for good. */
  datagramsLost: number;
  /** Reliable frames lost and sent again (each loss counts once). */
  retransmissions: number;
}

/** One direction of an emulated link: delays, loses, reorders and paces frames of type `F` by its options. */
export class Link<F> {
  /** The link model in force, defaults filled in. */
  readonly options: ResolvedLinkOptions;
  /** Running totals since the link was created; the object is live, not a snapshot. */
  readonly counters: LinkCounters = {
    framesSent: 0,
    bytesSent: 0,
    framesDelivered: 0,
    bytesDelivered: 0,
    datagramsLost: 0,
    retransmissions: 0,
  };
  #clock: Clock;
  #rng: Rng;
  #deliver: (frame: F, size: number) => void;
  #onLost: ((frame: F) => void) | undefined;
  // Binary min-heap on (at, seq).
  readonly #heap = new TimeHeap<Scheduled<F>>();
  #seq = 0;
  #wireFreeAt = Number.NEGATIVE_INFINITY;
  #lastReliableAt = Number.NEGATIVE_INFINITY;
  #timer: TimerHandle | undefined;
  #timerAt = Number.POSITIVE_INFINITY;
  #closed = false;
  #idleWaiters: (() => void)[] = [];

  constructor(
    clock: Clock,
    rng: Rng,
    options: LinkOptions | ResolvedLinkOptions,
    deliver: (frame: F, size: number) => void,
    onLost?: (frame: F) => void,
  ) {
    this.#clock = clock;
    this.#rng = rng;
    this.options = resolveLinkOptions(options);
    this.#deliver = deliver;
    this.#onLost = onLost;
  }

  /** Frames in flight. */
  get inFlight(): number {
    return this.#heap.size;
  }

  /** Bytes not yet serialized onto the wire at the current time (the sender's queue behind the bandwidth cap). */
  backlogBytes(): number {
    const { bandwidthBytesPerSecond } = this.options;
    if (!Number.isFinite(bandwidthBytesPerSecond)) return 0;
    const backlogMs = this.#wireFreeAt - this.#clock.now();
    return backlogMs > 0 ? (backlogMs * bandwidthBytesPerSecond) / 1000 : 0;
  }

  /**
   * Puts a frame on the link. Returns false when the frame (a datagram) is lost; the caller counts it. Sends on a
   * closed link are ignored (and return false).
   */
  send(frame: F, size: number, unreliable: boolean): boolean {
    if (this.#closed) return false;
    const o = this.options;
    const now = this.#clock.now();
    const start = Math.max(now, this.#wireFreeAt);
    const serialized =
      start + (Number.isFinite(o.bandwidthBytesPerSecond) ? (size * 1000) / o.bandwidthBytesPerSecond : 0);
    this.#wireFreeAt = serialized;
    this.counters.framesSent++;
    this.counters.bytesSent += size;
    let at = serialized + o.delayMs + (o.jitterMs > 0 ? this.#rng.next() * o.jitterMs : 0);
    if (unreliable) {
      if (o.lossRate > 0 && this.#rng.next() < o.lossRate) {
        this.counters.datagramsLost++;
        this.#onLost?.(frame);
        return false;
      }
      if (o.reorderRate > 0 && this.#rng.next() < o.reorderRate) at += o.reorderDelayMs;
    } else {
      if (o.lossRate > 0 && o.retransmitTimeoutMs > 0) {
        while (this.#rng.next() < o.lossRate) {
          this.counters.retransmissions++;
          at += o.retransmitTimeoutMs;
        }
      }
      // Ordered delivery of reliable frames: nothing overtakes an earlier reliable frame.
      at = Math.max(at, this.#lastReliableAt);
      this.#lastReliableAt = at;
    }
    this.#heap.push({ at, seq: this.#seq++, frame, size, unreliable });
    this.#arm();
    return true;
  }

  /**
   * Drops the frames in flight that `which` selects (default: all) and returns them in schedule order, so the caller
   * can count them. Dropped frames free the wire: the bandwidth backlog restarts from now.
   */
  dropInFlight(which: (frame: F) => boolean = () => true): F[] {
    const dropped: F[] = [];
    const kept: Scheduled<F>[] = [];
    while (this.#heap.size > 0) {
      const item = this.#heap.pop()!;
      if (which(item.frame)) dropped.push(item.frame);
      else kept.push(item);
    }
    this.#lastReliableAt = Number.NEGATIVE_INFINITY;
    for (const item of kept) {
      this.#heap.push(item);
      if (!item.unreliable) this.#lastReliableAt = item.at;
    }
    this.#wireFreeAt = Math.min(this.#wireFreeAt, this.#clock.now());
    this.#disarm();
    this.#arm();
    if (this.#heap.size === 0) this.#notifyIdle();
    return dropped;
  }

  /** Stops the link for good: what is in flight is dropped and later sends are ignored. */
  close(): F[] {
    this.#closed = true;
    return this.dropInFlight();
  }

  /** Resolves when nothing is in flight. */
  whenIdle(): Promise<void> {
    if (this.#heap.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #fire = (): void => {
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    const now = this.#clock.now();
    try {
      while (this.#heap.size > 0 && this.#heap.peek()!.at <= now) {
        const item = this.#heap.pop()!;
        this.counters.framesDelivered++;
        this.counters.bytesDelivered += item.size;
        this.#deliver(item.frame, item.size);
        if (this.#closed) break;
      }
    } finally {
      // Even if a receiver threw, later frames must still be delivered and whenIdle() must still settle.
      this.#arm();
      if (this.#heap.size === 0) this.#notifyIdle();
    }
  };

  #arm(): void {
    if (this.#heap.size === 0) {
      this.#disarm();
      return;
    }
    const at = this.#heap.peek()!.at;
    if (this.#timer !== undefined && this.#timerAt <= at) return;
    this.#disarm();
    this.#timerAt = at;
    this.#timer = this.#clock.setTimeout(this.#fire, at - this.#clock.now());
  }

  #disarm(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
  }

  #notifyIdle(): void {
    const waiters = this.#idleWaiters.splice(0);
    for (const w of waiters) w();
  }
}
