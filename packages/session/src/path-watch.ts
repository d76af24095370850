import { AckWatch, pathThresholdMs } from './ack-watch.js';
import type { Clock, TimerHandle } from './clock.js';
import type { RttEstimator } from './estimators.js';
import type { Link } from './link.js';

/** What the path watch reads and whom it tells. */
export interface PathWatchHost {
  clock: Clock;
  rtt: RttEstimator;
  /** True while this end waits for something from the peer: reliable data unacknowledged or a probe unanswered. */
  owed(link: Link): boolean;
  /** Sends a heartbeat probe on `link` now. */
  probe(link: Link): void;
  /** The path looks dead: nothing arrived for `silentMs` while the peer owed an answer. */
  suspect(link: Link, silentMs: number): void;
  /** When the oldest reliable message still unacknowledged was last written; undefined when none is. */
  unackedSince(): number | undefined;
  /** The peer answers but does not acknowledge: data unacknowledged for `overdueMs` (see {@link AckWatch}). */
  stalled(link: Link, overdueMs: number): void;
}

/**
 * Notices a dead path within a few RTTs instead of the heartbeat timeout. The peer is "silent" for the time since
 * the later of its last arrival and the first thing sent after it that it must answer (reliable data to acknowledge,
 * a probe). Silent for `max(minMs, 4 × (SRTT + 4 × RTTVAR))` (four RFC 6298 retransmission timeouts without its 1 s
 * floor): a probe goes out at once; silent that long again after the probe, the path is suspected. The second strike
 * keeps one lost probe on an idle, lossy path from looking like a dead path. A peer that owes nothing is never
 * suspected. While the peer is heard from, an {@link AckWatch} looks for acknowledgements that stopped coming. The
 * watch only suspects: the owner decides (the client races a reconnect while it keeps the link).
 */
export class PathWatch {
  private timer: TimerHandle | undefined;
  private link: Link | null = null;
  /** When something the peer must answer was first sent after its last arrival. */
  private owedAt: number | undefined;
  /** When the watch's own probe went out (the first strike); undefined without one since the last arrival. */
  private probedAt: number | undefined;
  private readonly acks: AckWatch;

  constructor(
    private readonly host: PathWatchHost,
    private readonly minMs: number,
  ) {
    this.acks = new AckWatch(host);
  }

  /**
   * The silence after which the path is probed, then suspected (ms): four RTOs, at least `minMs`, at most five
   * times that (an RTT inflated by a congested spell decays slowly, and must not hide a dead path for long).
   */
  get thresholdMs(): number {
    return pathThresholdMs(this.host.rtt, this.minMs);
  }

  watch(link: Link): void {
    this.stop();
    this.link = link;
    this.acks.watch(this.host.clock.now());
    this.arm();
  }

  stop(): void {
    this.host.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.link = null;
    this.owedAt = undefined;
    this.probedAt = undefined;
  }

  /** Something the peer must answer went out on `link` now. */
  sent(link: Link, now: number): void {
    if (link !== this.link) return;
    if (this.owedAt === undefined || this.owedAt < link.lastReceived) this.owedAt = now;
  }

  private arm(): void {
    this.timer = this.host.clock.setTimeout(() => this.check(), Math.max(20, this.thresholdMs / 4));
  }

  private check(): void {
    this.timer = undefined;
    const link = this.link;
    if (!link || link.closed) return;
    const now = this.host.clock.now();
    const since = Math.max(link.lastReceived, this.owedAt ?? Number.POSITIVE_INFINITY);
    if (this.probedAt !== undefined && this.probedAt < link.lastReceived) this.probedAt = undefined;
    if (now - since > this.thresholdMs && this.host.owed(link)) {
      if (this.probedAt === undefined) {
        this.probedAt = now;
        this.host.probe(link);
      } else if (now - this.probedAt > this.thresholdMs) {
        this.link = null;
        this.host.suspect(link, now - since);
        return;
      }
    } else {
      const overdue = this.acks.check(link, now, this.thresholdMs);
      if (overdue !== undefined) {
        this.link = null;
        this.host.stalled(link, overdue);
        return;
      }
    }
    this.arm();
  }
}
