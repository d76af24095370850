import { type DatagramSendEstimate, SendDelayEstimator } from '@quiver/transport';
import type { SessionCore } from './core.js';
import type { SocketAdapter } from './socket.js';

/**
 * How long after a `sendEstimate()` call datagram writes keep probing the RTT. An application that asks once per
 * tick, or once per second, keeps its estimate fed; one that never asks costs its peer no PONGs.
 */
export const ESTIMATE_IN_USE_MS = 1000;

/**
 * `datagrams.sendEstimate()` of a WebSocket session: `bufferedAmount` over the rate it is measured to drain at, plus
 * the datagrams not yet framed, plus the RTT above the minimum. The kernel's socket buffer and the network's queues
 * do not show in `bufferedAmount` (`ws` hands bytes to the kernel as long as it takes them), only in the RTT: so
 * while datagrams are sent, a PING goes out every `probeIntervalMs` unless one is still unanswered, and an
 * unanswered PING counts as an RTT of at least its age. A queue building up then shows within one probe interval
 * instead of one answer later.
 */
export class WsSendEstimate {
  private readonly estimator = new SendDelayEstimator();
  /** When `sendEstimate()` was last called; datagram writes probe only while the estimate is in use. */
  private askedAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly core: SessionCore,
    private readonly probeIntervalMs: number,
  ) {}

  /** Bytes handed to the socket (what `queuedAmount`, else `bufferedAmount`, counts until they leave). */
  wrote(bytes: number): void {
    this.estimator.wrote(bytes);
  }

  /** Whether a probe is due: none is under way and the last one is old enough. */
  due(now: number, lastPing: number): boolean {
    if (this.probeIntervalMs <= 0 || this.core.oldestPingSentAt !== undefined) return false;
    return now - lastPing >= this.probeIntervalMs;
  }

  /** `sendEstimate()` was called: datagram writes keep the RTT fresh for {@link ESTIMATE_IN_USE_MS}. */
  asked(now: number): void {
    this.askedAt = now;
  }

  /**
   * A datagram is being written: probes the RTT when one is due and the estimate is in use; true when it sent one.
   * Nobody reads an RTT sampled for an estimate nobody asks for, and each probe costs both ends a message (the
   * PONG goes alone): half again as many WebSocket messages, TLS records and syscalls at a 30 Hz datagram rate.
   */
  sending(now: number, lastPing: number): boolean {
    if (now - this.askedAt > ESTIMATE_IN_USE_MS || !this.due(now, lastPing)) return false;
    this.core.ping(now);
    return true;
  }

  /** The estimate now (the session probes first, see `sendEstimate`). */
  estimate(now: number, adapter: SocketAdapter | undefined): DatagramSendEstimate {
    const pending = this.core.oldestPingSentAt;
    const floor = pending === undefined ? 0 : now - pending;
    // Bytes in flight are not a queue: a tunnel's acknowledgements release them at the rate the application sends,
    // and that rate taken for the link's made every message look late once the sender slowed down (see queuedAmount).
    const queued = adapter ? (adapter.queuedAmount ?? adapter.bufferedAmount) : 0;
    const e = this.estimator.estimate(now, queued, this.core.latestRtt, floor);
    const unframed = this.core.queuedDatagramBytes;
    if (unframed === 0) return e;
    const extra = e.sendRate > 0 ? (unframed / e.sendRate) * 1000 : 0;
    return { ...e, queuedBytes: e.queuedBytes + unframed, delayMs: e.delayMs + extra };
  }
}
