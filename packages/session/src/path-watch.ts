import type { Clock, TimerHandle } from './clock.js';
import type { Link } from './link.js';
import type { RttEstimator } from './estimators.js';

/** What the path watch reads and whom it tells. */
export interface PathWatchHost {
  clock: Clock;
  rtt: RttEstimator;
  /** True while this end waits for something from the peer: reliable data unacknowledged or a probe unanswered. */
  owed(link: Link): boolean;
  /** The path looks dead: nothing arrived for `silentMs` while the peer owed an answer. */
  suspect(link: Link, silentMs: number): void;
}

/**
 * Notices a dead path within a few RTTs instead of the heartbeat timeout: when nothing has arrived for
 * `max(minMs, 4 × (SRTT + 4 × RTTVAR))` (four RFC 6298 retransmission timeouts, without its 1 s floor) while the
 * peer owes an acknowledgement or a probe answer. A quiet peer that owes nothing is not suspected. It only
 * suspects: the owner decides what to do (the client races a reconnect while it keeps using the link).
 */
export class PathWatch {
  private timer: TimerHandle | undefined;
  private link: Link | null = null;

  constructor(
    private readonly host: PathWatchHost,
    private readonly minMs: number,
  ) {}

  /** The silence after which the path is suspected now (ms). */
  get thresholdMs(): number {
    const r = this.host.rtt;
    return Math.max(this.minMs, 4 * (r.srtt + 4 * r.rttvar));
  }

  watch(link: Link): void {
    this.stop();
    this.link = link;
    this.arm();
  }

  stop(): void {
    this.host.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.link = null;
  }

  private arm(): void {
    this.timer = this.host.clock.setTimeout(() => this.check(), Math.max(20, this.thresholdMs / 4));
  }

  private check(): void {
    this.timer = undefined;
    const link = this.link;
    if (!link || link.closed) return;
    const silent = this.host.clock.now() - link.lastReceived;
    if (silent > this.thresholdMs && this.host.owed(link)) {
      this.link = null;
      this.host.suspect(link, silent);
      return;
    }
    this.arm();
  }
}
