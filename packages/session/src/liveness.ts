import { ClockSync, LossEstimator, RttEstimator } from './estimators.js';
import type { Link } from './link.js';
import type { HeartbeatOptions } from './peer-options.js';

/**
 * Heartbeats of a session: when to probe, when the link is dead, and what the answers measure (RTT per RFC 6298,
 * loss of probes sent as datagrams, the peer's clock).
 */
export class Liveness {
  readonly rtt = new RttEstimator();
  readonly loss = new LossEstimator();
  readonly clockSync = new ClockSync();
  /** Probe ids are per session, not per link: a late answer from an old link must not match a new probe. */
  private pingSeq = 0;
  private lastActivity: number;

  constructor(
    private readonly hb: Required<HeartbeatOptions>,
    now: number,
  ) {
    this.lastActivity = now;
  }

  /** An application message was sent or received: probes go at the busy interval. */
  active(now: number): void {
    this.lastActivity = now;
  }

  /** Delay until the next probe. */
  nextDelay(now: number): number {
    return now - this.lastActivity > this.hb.idleAfterMs ? this.hb.idleIntervalMs : this.hb.intervalMs;
  }

  /** Nothing received on `link` for `timeoutMs`. */
  dead(link: Link, now: number): boolean {
    return now - link.lastReceived > this.hb.timeoutMs;
  }

  /** A new probe on `link`: its PING header. `lossy` when it rides datagrams that can be lost (measures loss). */
  probe(link: Link, now: number, lossy: boolean): unknown[] {
    this.loss.expire(now);
    for (const [id, at] of link.pings) if (now - at > this.hb.timeoutMs) link.pings.delete(id);
    const id = ++this.pingSeq;
    link.pings.set(id, now);
    if (lossy) this.loss.sent(id, now + Math.max(2 * this.rtt.rto(), 1000));
    return [id, now];
  }

  /** A PONG `[id, echoed send time, peer time?]` arrived on `link`; returns the RTT sample, if it answers a probe. */
  answer(link: Link, h: unknown[], now: number): number | null {
    const id = h[1] as number;
    const sentAt = link.pings.get(id);
    if (sentAt === undefined || sentAt !== h[2]) return null;
    link.pings.delete(id);
    if (sentAt > link.answeredProbe) link.answeredProbe = sentAt;
    this.loss.answered(id);
    const sample = now - sentAt;
    this.rtt.update(sample);
    if (typeof h[3] === 'number') this.clockSync.add(sentAt, h[3], now);
    return sample;
  }
}
