import type { ChannelState, OutMsg } from './channels.js';

/**
 * Picks the reliable channel to send from next: `strict` priority (highest first, round robin among equals) or
 * `weighted` fair share of bytes (start-time fair queueing).
 */
export class Scheduler {
  private servedCounter = 0;
  /** Start-time fair queueing's virtual time: the start tag of the message served last. */
  private vnow = 0;

  constructor(private readonly mode: 'strict' | 'weighted') {}

  /** The channel to serve among those `ready` says may send now. */
  pick(channels: Iterable<ChannelState>, ready: (ch: ChannelState) => boolean): ChannelState | undefined {
    let best: ChannelState | undefined;
    for (const ch of channels) {
      if (!ready(ch)) continue;
      if (!best) best = ch;
      else if (this.mode === 'strict') {
        if (ch.priority > best.priority || (ch.priority === best.priority && ch.served < best.served))
          best = ch;
      } else if (Math.max(ch.vtime, this.vnow) < Math.max(best.vtime, this.vnow)) best = ch;
    }
    return best;
  }

  /** `msg` was sent from `ch`. */
  served(ch: ChannelState, msg: OutMsg): void {
    // A channel's virtual time advances inversely to its weight; one that was idle restarts from the current
    // virtual time instead of claiming the share it did not use.
    ch.vtime = Math.max(ch.vtime, this.vnow);
    this.vnow = ch.vtime;
    ch.vtime += msg.size / Math.max(ch.priority, 1e-3);
    ch.served = ++this.servedCounter;
  }
}
