/**
 * How long a datagram written now would wait: the Quiver extension `datagrams.sendEstimate()` (see
 * {@link DatagramSendEstimate}) and the estimator every transport computes it with.
 *
 * Two delays add up. The sender's own queue (quiche's DATAGRAM send queue, a WebSocket's `bufferedAmount`) drains
 * at a rate measured here from what actually left it. Queues further on (the kernel's socket buffer, a bottleneck
 * router) cannot be seen, only inferred: the RTT above the smallest RTT seen is queueing delay (the signal of
 * delay-based congestion control, RFC 6817 §2.1). A probe sent and not yet answered is a lower bound on the
 * current RTT, so a queue that just built up shows before any answer arrives.
 */
import type { DatagramSendEstimate } from './types.js';

/** Below this much backlog the drain rate is not sampled: the queue emptied, so the rate says nothing. */
const MIN_SAMPLE_MS = 20;
/**
 * A drain rate not measured again for this long is forgotten. Only a backlog measures the rate, and a sender that
 * holds back what would wait (the session's freshness guard) builds none: a rate measured under a 64 kbit/s cap
 * would otherwise make every datagram look late for good after the cap is lifted.
 */
const RATE_TTL_MS = 1000;

/**
 * Measures how fast a send queue drains and turns queue depth and RTT into a {@link DatagramSendEstimate}. Sans-IO:
 * the caller passes the time and its counters.
 */
export class SendDelayEstimator {
  /** Bytes handed to the queue since creation. */
  private written = 0;
  private lastAt = Number.NaN;
  private lastDrained = 0;
  private lastQueued = 0;
  private rate = 0;
  /** When `rate` was last sampled. */
  private rateAt = Number.NEGATIVE_INFINITY;
  private minRtt = Number.POSITIVE_INFINITY;
  private stalled = false;

  /** `bytes` were handed to the queue. */
  wrote(bytes: number): void {
    this.written += bytes;
  }

  /**
   * The estimate now. `queuedBytes`: what the sender's queue still holds (consistent with {@link wrote}: bytes
   * written minus bytes queued is what drained). `rttMs`: the latest RTT sample, 0 when none. `rttFloorMs`: a lower
   * bound of the current RTT (an unanswered probe's age), which may exceed the sample but never lowers the minimum.
   * `fallbackRate`: bytes/s to assume while no drain was measured (a congestion window over the RTT), 0 when unknown.
   */
  estimate(
    now: number,
    queuedBytes: number,
    rttMs: number,
    rttFloorMs = 0,
    fallbackRate = 0,
  ): DatagramSendEstimate {
    this.sampleRate(now, queuedBytes);
    if (rttMs > 0 && rttMs < this.minRtt) this.minRtt = rttMs;
    const rtt = Math.max(rttMs, rttFloorMs);
    const networkQueueMs = rtt > 0 && Number.isFinite(this.minRtt) ? Math.max(0, rtt - this.minRtt) : 0;
    const sendRate = this.rate > 0 && now - this.rateAt <= RATE_TTL_MS ? this.rate : fallbackRate;
    const queueMs =
      queuedBytes <= 0
        ? 0
        : sendRate > 0 && !this.stalled
          ? (queuedBytes / sendRate) * 1000
          : Number.POSITIVE_INFINITY;
    return { queuedBytes, sendRate, networkQueueMs, delayMs: queueMs + networkQueueMs };
  }

  /** The smallest RTT seen (ms), `Infinity` before any. */
  get minRttMs(): number {
    return this.minRtt;
  }

  private sampleRate(now: number, queued: number): void {
    const drained = this.written - queued;
    if (Number.isNaN(this.lastAt)) {
      this.lastAt = now;
      this.lastDrained = drained;
      this.lastQueued = queued;
      return;
    }
    const dt = now - this.lastAt;
    if (dt < MIN_SAMPLE_MS) return;
    // Only an interval that began with a backlog measures the drain rate; an idle queue drains what it gets.
    if (this.lastQueued > 0) {
      const sample = ((drained - this.lastDrained) * 1000) / dt;
      // Nothing drained: the path is stalled (a blackout), which says nothing of the rate once it flows again.
      this.stalled = sample <= 0;
      // EWMA with gain 1/4: follows a rate change within a few samples.
      if (sample > 0) {
        const known = this.rate > 0 && now - this.rateAt <= RATE_TTL_MS;
        this.rate = known ? 0.75 * this.rate + 0.25 * sample : sample;
        this.rateAt = now;
      }
    } else this.stalled = false;
    this.lastAt = now;
    this.lastDrained = drained;
    this.lastQueued = queued;
  }
}
