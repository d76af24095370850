/**
 * Whether an ended session's close reached the peer (draft-ietf-webtrans-http3 §6).
 *
 * A session ends on our side with our FIN on its CONNECT stream (CLOSE_WEBTRANSPORT_SESSION then FIN, or the FIN
 * answering the peer's close). A CONNECTION_CLOSE sent after it can overtake it (CONNECTION_CLOSE is not congestion
 * controlled, RFC 9002 §3), so the adapter waits until every such close is confirmed: the peer's end of the stream
 * (FIN, RESET_STREAM or STOP_SENDING: it will read nothing more of it) or the acknowledgement of our FIN.
 */
export class CloseDelivery {
  /** CONNECT streams we finished whose delivery is not confirmed yet, oldest first (a Set keeps insertion order). */
  private readonly unconfirmed = new Set<number>();
  private forgottenCount = 0;

  /** @param limit Closes waited for at once (the connection's `maxSessions`): a bound on this state. */
  constructor(private readonly limit: number) {}

  /** Ended sessions whose close is not known to have reached the peer (`H3Connection.closesInFlight`). */
  get inFlight(): number {
    return this.unconfirmed.size;
  }

  /**
   * Closes no longer waited for because more than `limit` were in flight at once: the oldest is let go, so a peer
   * that never answers cannot grow this state (`H3Stats.closesForgotten`).
   */
  get forgotten(): number {
    return this.forgottenCount;
  }

  /** We wrote the FIN that ends a session's CONNECT stream (draft §6): wait for its delivery. */
  sent(streamId: number): void {
    this.unconfirmed.add(streamId);
    if (this.unconfirmed.size > this.limit) {
      const oldest = this.unconfirmed.values().next().value as number;
      this.unconfirmed.delete(oldest);
      this.forgottenCount++;
    }
  }

  /** The peer has our close, or ended its side of the stream (it will read nothing more of it). */
  settled(streamId: number): void {
    if (this.unconfirmed.size > 0) this.unconfirmed.delete(streamId);
  }
}
