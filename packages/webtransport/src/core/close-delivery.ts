/**
 * Whether an ended session's close reached the peer (draft-ietf-webtrans-http3 §6).
 *
 * A session ends on our side with our FIN on its CONNECT stream (CLOSE_WEBTRANSPORT_SESSION then FIN, or the FIN
 * answering the peer's close). A CONNECTION_CLOSE sent after it can overtake it (CONNECTION_CLOSE is not congestion
 * controlled, RFC 9002 §3), so the adapter waits until every such close is confirmed: the peer's end of the stream
 * (FIN, RESET_STREAM or STOP_SENDING: it will read nothing more of it) or the acknowledgement of our FIN.
 *
 * The same confirmation orders a session's own close: the RESET_STREAM and STOP_SENDING of the streams of a
 * session we closed are held here until it (see {@link hold}).
 */
import type { QuicCommand } from './api.js';

export class CloseDelivery {
  /** CONNECT streams we finished whose delivery is not confirmed yet, oldest first (a Set keeps insertion order). */
  private readonly unconfirmed = new Set<number>();
  private forgottenCount = 0;
  /** Held stream resets of sessions we closed, by CONNECT stream. */
  private readonly held = new Map<number, QuicCommand[]>();

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

  /**
   * We wrote the FIN that ends a session's CONNECT stream (draft §6): wait for its delivery. Returns the held
   * resets of a close let go to stay within the limit, which are due now.
   */
  sent(streamId: number): QuicCommand[] | undefined {
    this.unconfirmed.add(streamId);
    if (this.unconfirmed.size > this.limit) {
      const oldest = this.unconfirmed.values().next().value as number;
      this.unconfirmed.delete(oldest);
      this.forgottenCount++;
      return this.release(oldest);
    }
    return undefined;
  }

  /**
   * The peer has our close, or ended its side of the stream (it will read nothing more of it). Returns the held
   * resets of that session, which are due now.
   */
  settled(streamId: number): QuicCommand[] | undefined {
    if (this.unconfirmed.size > 0) this.unconfirmed.delete(streamId);
    return this.held.size > 0 ? this.release(streamId) : undefined;
  }

  /**
   * Holds the RESET_STREAM and STOP_SENDING (draft §6, WT_SESSION_GONE) of the streams of a session we closed
   * until the peer has the close (call before {@link sent}). Why: Chromium (quiche's WebTransportHttp3 client)
   * rejects `closed` with "Connection lost" instead of the close code when, under load, the resets of its streams
   * arrive together with the CLOSE_WEBTRANSPORT_SESSION and FIN (about 1 close in 10 with data in flight on a busy
   * machine; none in 120 once the resets follow the close). quiche itself resets a session's streams only once the
   * CONNECT stream is closed in both directions, the order this restores. Bounded: one entry per close in flight.
   */
  hold(sessionId: number, commands: QuicCommand[]): void {
    if (commands.length > 0) this.held.set(sessionId, commands);
  }

  /** Whether a session's resets are still held. */
  holds(sessionId: number): boolean {
    return this.held.has(sessionId);
  }

  /** The held resets of a session, now due (the close settled, or the adapter stopped waiting); each once. */
  release(sessionId: number): QuicCommand[] | undefined {
    const commands = this.held.get(sessionId);
    if (commands) this.held.delete(sessionId);
    return commands;
  }
}
