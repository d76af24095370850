import type { RttEstimator } from './estimators.js';
import type { Link } from './link.js';

/**
 * How long the path watches wait before they act (ms): four retransmission timeouts, at least `minMs`, at most five
 * times that. The timeout is RFC 6298's (`SRTT + 4 × RTTVAR`, without its 1 s floor) or twice the latest sample,
 * whichever is smaller: with one sample per heartbeat, SRTT and RTTVAR (gains 1/8 and 1/4) stay seconds high long
 * after a congested spell ended, and a path that dies then would be noticed late (the issue's address change right
 * after a 64 kbit/s cap). A rising RTT raises both, so a slow path is not taken for a dead one.
 */
export function pathThresholdMs(rtt: RttEstimator, minMs: number): number {
  const rto = rtt.srtt + 4 * rtt.rttvar;
  return Math.min(5 * minMs, Math.max(minMs, 4 * Math.min(rto, 2 * rtt.latest)));
}

/**
 * Notices acknowledgements overdue on a live path. A transport can strand data inside its streams while the
 * connection carries on: quiche 0.18 keeps loss recovery per path, so stream data sent on a path the peer has just
 * left (an address change, before the peer migrated) is never declared lost and never sent again, while datagrams
 * and new data flow on the new path. The peer keeps talking, so silence never shows it; the missing acknowledgement
 * does. Data unacknowledged for a threshold gets a probe; once the peer answered a probe written after the data, and
 * the data is still unacknowledged a threshold after that probe left, the link is stalled. The owner then lets the
 * link go and the session resumes on a new one, which replays what was unacknowledged: every reliable message still
 * arrives exactly once, in order.
 */
export class AckWatch {
  /** When the current link came under watch: data written on an earlier link is judged from here. */
  private watchedAt = 0;
  /**
   * The send time of the first answered probe written after the oldest unacknowledged data: from then on the peer
   * demonstrably received what this end sent, so the data's acknowledgement was due.
   */
  private evidence: number | undefined;

  constructor(
    private readonly host: {
      /** When the oldest reliable message still unacknowledged was last written; undefined when none is. */
      unackedSince(): number | undefined;
      /** Sends a probe on `link` now. */
      probe(link: Link): void;
    },
  ) {}

  /** A new link is watched from `now`. */
  watch(now: number): void {
    this.watchedAt = now;
    this.evidence = undefined;
  }

  /** How long the oldest data has been unacknowledged when `link` is stalled (ms); undefined while it is not. */
  check(link: Link, now: number, thresholdMs: number): number | undefined {
    const unacked = this.host.unackedSince();
    if (unacked === undefined) {
      this.evidence = undefined;
      return undefined;
    }
    const since = Math.max(unacked, this.watchedAt);
    if (this.evidence !== undefined && this.evidence < since) this.evidence = undefined;
    if (this.evidence === undefined && link.answeredProbe >= since) this.evidence = link.answeredProbe;
    if (this.evidence === undefined) {
      if (now - since <= thresholdMs) return undefined;
      // Overdue: ask the peer, unless a probe written after the data is already on its way.
      for (const at of link.pings.values()) if (at >= since) return undefined;
      this.host.probe(link);
      return undefined;
    }
    return now - this.evidence > thresholdMs ? now - since : undefined;
  }
}
