/**
 * RTT smoothing as RFC 6298 §2 (alpha = 1/8, beta = 1/4), the same constants RFC 9002 §5.3 uses for QUIC.
 * `jitter` is RTTVAR: the smoothed mean deviation of RTT samples.
 */
export class RttEstimator {
  /** Smoothed RTT in ms; 0 before the first sample. */
  srtt = 0;
  /** RTTVAR in ms: smoothed mean deviation of the samples. */
  rttvar = 0;
  /** Smallest sample in ms; Infinity before the first. */
  min = Number.POSITIVE_INFINITY;
  /** Most recent sample in ms. */
  latest = 0;
  /** Samples taken so far. */
  samples = 0;

  /** Adds an RTT sample in ms; negative or non-finite samples are ignored. */
  update(sample: number): void {
    if (!(sample >= 0) || !Number.isFinite(sample)) return;
    this.latest = sample;
    this.min = Math.min(this.min, sample);
    if (this.samples === 0) {
      // RFC 6298 §2.2: first measurement.
      this.srtt = sample;
      this.rttvar = sample / 2;
    } else {
      // RFC 6298 §2.3: RTTVAR is updated before SRTT, using the old SRTT.
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - sample);
      this.srtt = 0.875 * this.srtt + 0.125 * sample;
    }
    this.samples++;
  }

  /** RFC 6298 §2.3 RTO = SRTT + max(G, 4 * RTTVAR), here with a floor instead of clock granularity. */
  rto(floorMs = 50): number {
    if (this.samples === 0) return 1000;
    return this.srtt + Math.max(floorMs, 4 * this.rttvar);
  }
}

/**
 * NTP-style offset estimate (RFC 5905 §8, simplified to one server and symmetric paths): each ping/pong exchange
 * gives `offset = serverTime - (t0 + t1) / 2` with an error of at most `rtt / 2`. The sample with the smallest RTT
 * in the last `window` exchanges has the tightest bound, so it wins.
 */
export class ClockSync {
  private readonly samples: { offset: number; rtt: number }[] = [];
  /** Server clock minus local clock, in ms, from the best sample; 0 before any. */
  offset = 0;
  /** Half the RTT of the chosen sample; `Infinity` until a sample exists. */
  error = Number.POSITIVE_INFINITY;

  constructor(private readonly window = 16) {}

  /**
   * Adds one exchange: `t0` local time the ping left, `serverTime` the server's clock in its answer, `t1` local
   * time the answer arrived (all ms). Ignored when `t1 < t0`.
   */
  add(t0: number, serverTime: number, t1: number): void {
    const rtt = t1 - t0;
    if (!(rtt >= 0)) return;
    this.samples.push({ offset: serverTime - (t0 + t1) / 2, rtt });
    if (this.samples.length > this.window) this.samples.shift();
    let best = this.samples[0];
    for (const s of this.samples) if (s.rtt < best.rtt) best = s;
    this.offset = best.offset;
    this.error = best.rtt / 2;
  }

  /** True once at least one sample exists. */
  get synced(): boolean {
    return this.samples.length > 0;
  }
}

/**
 * Loss over probes: an exponentially weighted fraction of heartbeats that got no answer within their deadline.
 * Only meaningful where probes travel unreliably (datagrams); on reliable-only transports it stays 0.
 */
export class LossEstimator {
  /** Estimated loss fraction in [0, 1]; 0 before any probe expired. */
  value = 0;
  private readonly pending = new Map<number, number>();

  constructor(private readonly weight = 0.1) {}

  /** Records probe `id`, counted lost if not answered by `deadline` (clock ms). */
  sent(id: number, deadline: number): void {
    this.pending.set(id, deadline);
  }

  /** Returns false for an answer to a probe already counted lost or never sent. */
  answered(id: number): boolean {
    if (!this.pending.delete(id)) return false;
    this.value = (1 - this.weight) * this.value;
    return true;
  }

  /** Probes whose deadline passed count as lost. */
  expire(now: number): number {
    let lost = 0;
    for (const [id, deadline] of this.pending) {
      if (deadline <= now) {
        this.pending.delete(id);
        this.value = (1 - this.weight) * this.value + this.weight;
        lost++;
      }
    }
    return lost;
  }
}

/** A token bucket: `rate` tokens per second up to `burst`. Used for send budgets and incoming rate limits. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    /** Refill rate, tokens per second; Infinity disables the bucket. */
    readonly rate: number,
    /** Capacity: the most tokens that can accumulate (and the initial fill). */
    readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  private refill(now: number): void {
    if (now > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.rate) / 1000);
      this.last = now;
    }
  }

  /** Takes `n` tokens if available. */
  take(n: number, now: number): boolean {
    if (!Number.isFinite(this.rate)) return true;
    this.refill(now);
    // A single item larger than the burst can never fit; let it through when the bucket is full so it is not
    // starved forever, the debt then delays what follows.
    if (this.tokens >= n || (n > this.burst && this.tokens >= this.burst)) {
      this.tokens -= n;
      return true;
    }
    return false;
  }

  /** Milliseconds until `n` tokens are available. */
  waitFor(n: number, now: number): number {
    if (!Number.isFinite(this.rate)) return 0;
    this.refill(now);
    const need = Math.min(n, this.burst) - this.tokens;
    return need <= 0 ? 0 : Math.ceil((need * 1000) / this.rate);
  }
}

/** Exponential backoff with jitter between reconnect attempts. */
export interface BackoffOptions {
  /** First delay in ms. Default 250. */
  initialMs?: number;
  /**
   * Upper bound in ms. Default 2000: a client whose network returns after a long blackout is back within about this
   * (plus one attempt), instead of sleeping through the return at a long backoff step.
   */
  maxMs?: number;
  /** Growth factor. Default 2. */
  factor?: number;
  /** Fraction of the delay randomised away ("equal jitter"): 0 none, 1 full. Default 0.5. */
  jitter?: number;
}

/** Exponential backoff with seeded jitter, so that clients that lost the same server do not return in lockstep. */
export function backoffDelay(attempt: number, rng: () => number, options: BackoffOptions = {}): number {
  const initial = options.initialMs ?? 250;
  const max = options.maxMs ?? 2000;
  const factor = options.factor ?? 2;
  const jitter = Math.min(1, Math.max(0, options.jitter ?? 0.5));
  const base = Math.min(max, initial * factor ** Math.max(0, attempt));
  return Math.round(base * (1 - jitter) + base * jitter * rng());
}
