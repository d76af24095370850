import type { ChannelState, OutMsg } from './channels.js';
import { QueueFullError } from './errors.js';
import type { DropInfo, DropReason } from './peer-options.js';

/**
 * The reliable send side of a session: the per-channel queues with their overflow policies, and the window of
 * messages sent but not yet acknowledged. The window is at once the replay buffer kept for a resume and the
 * flow-control window (`maxInFlightBytes`, `maxInFlightMessages` across channels).
 */
export class ReliableWindow {
  /** Bytes in flight (sent, not acknowledged), each message counted as its payload plus 16. */
  bytes = 0;
  count = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly maxMessages: number,
    private readonly drop: (reason: DropReason, info: DropInfo) => void,
  ) {}

  /**
   * Queues `msg` on `ch` under the channel's overflow policy. Throws `QueueFullError` (`error`); returns false when
   * the policy is `close` and the queue overflowed (the caller closes the session).
   */
  enqueue(ch: ChannelState, msg: OutMsg): boolean {
    if (ch.overflow === 'coalesce') {
      const i = ch.queue.findIndex((m) => m.key === msg.key);
      if (i >= 0) {
        const old = ch.queue[i];
        ch.queue[i] = msg;
        ch.queuedBytes += msg.size - old.size;
        this.drop('coalesced', { message: old.name, channel: ch.name, bytes: old.payload.length });
        return true;
      }
    }
    while (
      ch.queue.length > 0 &&
      (ch.queuedBytes + msg.size > ch.maxQueuedBytes || ch.queue.length + 1 > ch.maxQueuedMessages)
    ) {
      if (ch.overflow === 'error') {
        this.drop('queue-full', { message: msg.name, channel: ch.name, bytes: msg.payload.length });
        throw new QueueFullError(
          `channel '${ch.name}' queue is full (${ch.queue.length} messages, ${ch.queuedBytes} bytes)`,
        );
      }
      if (ch.overflow === 'close') {
        this.drop('queue-full', { message: msg.name, channel: ch.name, bytes: msg.payload.length });
        return false;
      }
      const old = ch.queue.shift()!;
      ch.queuedBytes -= old.size;
      this.drop('queue-full', { message: old.name, channel: ch.name, bytes: old.payload.length });
    }
    if (msg.size > ch.maxQueuedBytes && ch.overflow === 'error') {
      this.drop('queue-full', { message: msg.name, channel: ch.name, bytes: msg.payload.length });
      throw new QueueFullError(`message larger than channel '${ch.name}' maxQueuedBytes`);
    }
    ch.queue.push(msg);
    ch.queuedBytes += msg.size;
    return true;
  }

  /** Whether `msg` may go in flight now (one message always may, however large). */
  hasRoom(msg: OutMsg): boolean {
    if (this.count === 0) return true;
    return this.bytes + msg.size <= this.maxBytes && this.count < this.maxMessages;
  }

  /** The head of `ch`'s queue goes in flight: it gets its sequence number and a place in the window. */
  sendHead(ch: ChannelState): OutMsg {
    const msg = ch.queue.shift()!;
    ch.queuedBytes -= msg.size;
    msg.seq = ch.nextSeq++;
    ch.window.push(msg);
    this.bytes += msg.size;
    this.count++;
    return msg;
  }

  /** When the oldest message in flight on any of `channels` was last written; undefined when none is in flight. */
  unackedSince(channels: Iterable<ChannelState>): number | undefined {
    let oldest: number | undefined;
    for (const ch of channels) {
      const at = ch.window[0]?.sentAt;
      if (at !== undefined && (oldest === undefined || at < oldest)) oldest = at;
    }
    return oldest;
  }

  /** The peer has everything up to `cum` on `ch`: it leaves the window. */
  ack(ch: ChannelState, cum: number): void {
    let n = 0;
    while (n < ch.window.length && ch.window[n].seq <= cum) {
      this.bytes -= ch.window[n].size;
      this.count--;
      n++;
    }
    if (n > 0) ch.window.splice(0, n);
  }

  /** The session resumed and the peer had everything up to `cum`: the rest is sent again, first, in order. */
  resume(ch: ChannelState, cum: number): void {
    this.ack(ch, cum);
    ch.retransmit = [...ch.window];
  }

  /** A fresh session: what was in flight is lost (counted `session-lost`), sequence numbers start over. */
  reset(ch: ChannelState): void {
    for (const m of ch.window) {
      this.drop('session-lost', { message: m.name, channel: ch.name });
      this.bytes -= m.size;
      this.count--;
    }
    ch.window = [];
    ch.retransmit = [];
    ch.nextSeq = 1;
  }
}
