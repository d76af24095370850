import { type DatagramSendEstimate, SendDelayEstimator } from '@quiver/transport';
import type { SessionCore } from './core.js';
import type { SocketAdapter } from './socket.js';

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

  /** Probes the RTT when one is due; true when it sent one. */
  sending(now: number, lastPing: number): boolean {
    if (!this.due(now, lastPing)) return false;
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
