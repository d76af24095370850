import { ByteWriter } from '@quiver/websocket';
import { HttpErrorCode, httpViolation, type TunnelFrame, writeTunnelFrame } from './wire.js';

/** The bounds one end of a tunnel enforces on its peer. */
export interface TunnelLimits {
  /** Largest message (DATA payload) accepted. */
  maxMessageSize: number;
  /** How far beyond the next expected sequence number a message may be (held until the gap fills). */
  receiveWindow: number;
  /** Bytes held out of order at most. */
  receiveWindowBytes: number;
  /** Bytes waiting to be sent or acknowledged at most: the peer must acknowledge, or the session fails. */
  maxUnackedBytes: number;
}

/** Message counters of one end of a tunnel, in frames. */
export interface TunnelStats {
  /** DATA frames sent, including retransmissions. */
  messagesSent: number;
  /** DATA frames sent again after their carrier was lost. */
  retransmitted: number;
  /** Distinct messages received in order. */
  messagesReceived: number;
  /** DATA frames whose sequence number had already arrived (retransmissions of delivered messages), dropped. */
  duplicates: number;
  /** DATA frames that arrived ahead of a gap and were held. */
  reordered: number;
}

interface Outgoing {
  seq: number;
  data: Uint8Array;
  /** The carrier (POST or downstream response) it was last sent on; undefined while it waits to be sent. */
  carrier: number | undefined;
  /** Sent at least once (a later send is a retransmission). */
  sentBefore: boolean;
}

/** What one incoming batch delivered. */
export interface BatchResult {
  /** Messages now in order, to hand to the WebSocket framing core. */
  messages: Uint8Array[];
  /** The peer closed the carrier with this code and reason. */
  close:
    | {
        /** An RFC 6455 §7.4 close code. */
        code: number;
        /** UTF-8, at most 123 bytes. */
        reason: string;
      }
    | undefined;
  /** The server's HELLO: the new session's id and the secret token that resumes it (client side only). */
  hello:
    | {
        /** The session id. */
        sessionId: string;
        /** The secret that authorises resumes and POSTs of the session. */
        token: string;
      }
    | undefined;
  /** An ACK freed sent bytes. */
  acked: boolean;
}

/**
 * The sans-IO reliability core of one end of an HTTP tunnel: numbered messages out, kept until acknowledged and
 * sent again when the request or event stream that carried them is lost; numbered messages in, delivered once and
 * in order, duplicates dropped and counted, gaps held within a bounded window. It knows no sockets, no timers and
 * no HTTP: the client and server adapters call it with batches and carrier events.
 *
 * Numbering: each direction counts its messages 1, 2, 3, ... An ACK of n says that every message up to n has
 * arrived (cumulative, like a TCP acknowledgement, RFC 9293 §3.4), so one lost acknowledgement is repaired by the
 * next.
 */
export class TunnelCore {
  /** Live counters; read, never reset. */
  readonly stats: TunnelStats = {
    messagesSent: 0,
    retransmitted: 0,
    messagesReceived: 0,
    duplicates: 0,
    reordered: 0,
  };
  private nextSeq = 1;
  /** Unacknowledged messages in sequence order. */
  private outgoing: Outgoing[] = [];
  private outgoingBytes = 0;
  private unsentCount = 0;
  private unsentBytes = 0;
  /** Highest sequence number acknowledged by the peer. */
  private peerAcked = 0;
  /** Next sequence number expected from the peer. */
  private expected = 1;
  private held = new Map<number, Uint8Array>();
  private heldBytes = 0;
  /** The last acknowledgement sent; an ACK is due when `expected - 1` moved past it. */
  private ackSent = 0;
  private lastTakenSeq = 0;

  constructor(private readonly limits: TunnelLimits) {}

  /** Bytes sent but not acknowledged, plus bytes not sent yet (the adapter's `bufferedAmount`). */
  get bufferedBytes(): number {
    return this.outgoingBytes;
  }

  /** Bytes of the messages no carrier has taken yet (the adapter's `queuedAmount`). */
  get queuedBytes(): number {
    return this.unsentBytes;
  }

  /** Messages are queued that no carrier has taken yet. */
  get hasUnsent(): boolean {
    return this.unsentCount > 0;
  }

  /** Messages arrived since the last acknowledgement sent: the adapter should send one. */
  get ackDue(): boolean {
    return this.expected - 1 > this.ackSent;
  }

  /** The cumulative acknowledgement for what has arrived. */
  get ack(): number {
    return this.expected - 1;
  }

  /** The peer's cumulative acknowledgement: every message up to this one has arrived. */
  get peerAck(): number {
    return this.peerAcked;
  }

  /** The sequence number of the last message a batch took (0 before any). */
  get lastTaken(): number {
    return this.lastTakenSeq;
  }

  /** Messages sent or queued that the peer has not acknowledged. */
  get unacked(): number {
    return this.outgoing.length;
  }

  /** Queues one message of the WebSocket framing. Throws BUFFER_LIMIT when the peer leaves too much unacknowledged. */
  queue(data: Uint8Array): void {
    if (this.outgoingBytes + data.length > this.limits.maxUnackedBytes) {
      throw httpViolation(
        HttpErrorCode.BUFFER_LIMIT,
        `${this.outgoingBytes + data.length} bytes unacknowledged > ${this.limits.maxUnackedBytes}`,
      );
    }
    this.outgoing.push({ seq: this.nextSeq++, data, carrier: undefined, sentBefore: false });
    this.outgoingBytes += data.length;
    this.unsentCount++;
    this.unsentBytes += data.length;
  }

  /**
   * Frames unsent messages, oldest first, up to `maxBytes` (at least one message if any waits), and the ACK if
   * `withAck`. They count as sent on `carrier` until acknowledged or until {@link carrierLost} for it.
   */
  takeBatch(maxBytes: number, carrier: number, withAck: boolean): Uint8Array {
    const w = new ByteWriter(256);
    if (withAck) {
      writeTunnelFrame(w, { type: 'ack', seq: this.ack });
      this.ackSent = this.ack;
    }
    for (const m of this.outgoing) {
      if (this.unsentCount === 0) break;
      if (m.carrier !== undefined) continue;
      if (w.length > 0 && w.length + m.data.length + 18 > maxBytes) break;
      writeTunnelFrame(w, { type: 'data', seq: m.seq, data: m.data });
      m.carrier = carrier;
      this.lastTakenSeq = m.seq;
      this.unsentCount--;
      this.unsentBytes -= m.data.length;
      this.stats.messagesSent++;
      if (m.sentBefore) this.stats.retransmitted++;
      m.sentBefore = true;
    }
    return w.finish();
  }

  /** An ACK-only batch (what a POST response carries). */
  takeAck(): Uint8Array {
    const w = new ByteWriter(10);
    writeTunnelFrame(w, { type: 'ack', seq: this.ack });
    this.ackSent = this.ack;
    return w.finish();
  }

  /** An acknowledgement sent may not have arrived (its carrier was lost): the next batch carries one again. */
  ackLost(): void {
    this.ackSent = 0;
  }

  /** The request or response `carrier` was lost: what it carried and nobody acknowledged is sent again. */
  carrierLost(carrier: number): void {
    for (const m of this.outgoing) {
      if (m.carrier === carrier) {
        m.carrier = undefined;
        this.unsentCount++;
        this.unsentBytes += m.data.length;
      }
    }
  }

  /** Every carrier was lost (a new event stream replaces the old one): everything unacknowledged goes again. */
  resendAll(): void {
    for (const m of this.outgoing) m.carrier = undefined;
    this.unsentCount = this.outgoing.length;
    this.unsentBytes = this.outgoingBytes;
  }

  /** Applies a cumulative acknowledgement; returns whether it freed anything. */
  onAck(seq: number): boolean {
    if (seq >= this.nextSeq) {
      throw httpViolation(
        HttpErrorCode.SEQUENCE_ERROR,
        `ACK ${seq} for a message never sent (last ${this.nextSeq - 1})`,
      );
    }
    if (seq <= this.peerAcked) return false;
    this.peerAcked = seq;
    let n = 0;
    while (n < this.outgoing.length && this.outgoing[n].seq <= seq) {
      const m = this.outgoing[n];
      this.outgoingBytes -= m.data.length;
      if (m.carrier === undefined) {
        this.unsentCount--;
        this.unsentBytes -= m.data.length;
      }
      n++;
    }
    this.outgoing.splice(0, n);
    return n > 0;
  }

  /** Applies one incoming batch (already decoded). Throws ProtocolViolationError on a sequence violation. */
  receive(frames: TunnelFrame[]): BatchResult {
    const result: BatchResult = { messages: [], close: undefined, hello: undefined, acked: false };
    for (const f of frames) {
      switch (f.type) {
        case 'data':
          this.onData(f.seq, f.data, result.messages);
          break;
        case 'ack':
          if (this.onAck(f.seq)) result.acked = true;
          break;
        case 'close':
          result.close = { code: f.code, reason: f.reason };
          return result;
        case 'hello':
          result.hello = { sessionId: f.sessionId, token: f.token };
          break;
      }
    }
    return result;
  }

  private onData(seq: number, data: Uint8Array, out: Uint8Array[]): void {
    if (seq < this.expected || this.held.has(seq)) {
      this.stats.duplicates++;
      return;
    }
    if (seq - this.expected >= this.limits.receiveWindow) {
      throw httpViolation(
        HttpErrorCode.SEQUENCE_ERROR,
        `message ${seq} beyond the receive window (${this.expected} + ${this.limits.receiveWindow})`,
      );
    }
    if (seq > this.expected) {
      if (this.heldBytes + data.length > this.limits.receiveWindowBytes) {
        throw httpViolation(
          HttpErrorCode.BUFFER_LIMIT,
          `${this.heldBytes + data.length} bytes held out of order > ${this.limits.receiveWindowBytes}`,
        );
      }
      // A view into the request body would pin the whole body: keep a copy of just this message.
      this.held.set(seq, data.slice());
      this.heldBytes += data.length;
      this.stats.reordered++;
      return;
    }
    out.push(data);
    this.expected++;
    this.stats.messagesReceived++;
    for (let next = this.held.get(this.expected); next; next = this.held.get(this.expected)) {
      this.held.delete(this.expected);
      this.heldBytes -= next.length;
      out.push(next);
      this.expected++;
      this.stats.messagesReceived++;
    }
  }
}

export type { TunnelFrame };
