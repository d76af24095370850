import type { Clock } from './clock.js';
import { type Frame, FLAG_RAW, Kind, parseBody, unbundle } from './codec.js';
import type { ChannelState, RecvChannel } from './channels.js';
import { DecodeError, MessageTooLargeError, SessionError, UnknownMessageError } from './errors.js';
import type { IncomingBudget } from './limits.js';
import type { HandshakeTables, Link } from './link.js';
import type { DropInfo, DropReason } from './peer-options.js';
import { Reassembler, type ReassemblyOptions, ReceiveTracker } from './reassembly.js';
import { FLAG_TRACE, isTraceContext } from './tracing.js';

/** What the receive side needs of the session it reads for. */
export interface ReceiverHost {
  readonly clock: Clock;
  /** Read at each use: the server swaps the budget for the authenticated one after the handshake. */
  readonly incoming: IncomingBudget;
  drop(reason: DropReason, info: DropInfo): void;
  /**
   * A whole application message arrived, its name resolved; `raw` when the payload is not MessagePack; `parent`
   * the sender's trace context when it carried a valid one.
   */
  deliver(channel: string, name: string, raw: boolean, bytes: Uint8Array, parent?: Uint8Array): void;
  /** A message carried a malformed trace context: it was ignored (the message is still delivered). */
  traceContextInvalid(): void;
  /** A control frame (ping, pong, ack, close, handshake) arrived on the control stream or as a datagram. */
  control(link: Link, frame: Frame, viaDatagram: boolean): void;
  /** The peer broke a rule: a final close. */
  fail(err: SessionError): void;
  reportError(err: Error): void;
}

export interface ReceiverLimits {
  maxMessageBytes: number;
  maxOutOfOrder: number;
  ackEvery: number;
  ackDelayMs: number;
}

/**
 * The receive side of a session: reads the control stream, the incoming data streams and the datagrams of a link,
 * decodes their frames within the incoming budget, reassembles, orders and deduplicates, resolves message ids of
 * the peer's handshake tables and acknowledges what arrived. Its receive state outlives a link for a resume.
 */
export class Receiver {
  private peerMessages = new Map<number, string>();
  private peerChannels = new Map<number, RecvChannel>();
  private readonly recv = new Map<string, RecvChannel>();
  private readonly reassembler: Reassembler;
  private pendingAcks = 0;

  constructor(
    private readonly host: ReceiverHost,
    private readonly limits: ReceiverLimits,
    /** This end's channels, for their dedupe setting. */
    private readonly channels: ReadonlyMap<string, ChannelState>,
    reassembly: ReassemblyOptions,
  ) {
    this.reassembler = new Reassembler(reassembly, (reason) => host.drop(reason, {}));
  }

  /** The cumulative ack of every channel received on, for a resume. */
  acks(): [string, number][] {
    return [...this.recv.values()].map((r) => [r.name, r.tracker.cum]);
  }

  /** Takes the message and channel ids `peer` announced; a fresh session forgets what it received before. */
  adopt(peer: HandshakeTables, resumed: boolean): void {
    this.peerMessages = new Map();
    for (const [name, id] of peer.messages ?? []) {
      if (typeof name === 'string' && typeof id === 'number') this.peerMessages.set(id, name);
    }
    this.peerChannels = new Map();
    for (const [name, id, mode] of peer.channels ?? []) {
      if (typeof name !== 'string' || typeof id !== 'number') continue;
      let r = this.recv.get(name);
      if (!r || r.mode !== mode) {
        r = { name, mode, tracker: new ReceiveTracker(), lastSeq: 0, ackDirty: false };
        this.recv.set(name, r);
      }
      this.peerChannels.set(id, r);
    }
    if (!resumed) {
      for (const r of this.recv.values()) {
        r.tracker = new ReceiveTracker();
        r.lastSeq = 0;
      }
    }
  }

  /** Starts the read loops of `link`; they end when it closes. */
  start(link: Link): void {
    this.runControl(link);
    this.runUni(link);
    this.runDatagrams(link);
    this.runBidi(link);
  }

  /** Drops partial messages past their deadline. */
  expire(now: number): void {
    this.reassembler.expire(now);
  }

  private onError(link: Link, err: unknown): void {
    if (link.closed) return;
    if (err instanceof SessionError) this.host.fail(err);
    // A read that failed because the transport session closed is the link going away, not an error: `closed`
    // of the transport reports it (and the read may lose that race).
    else if ((err as { source?: unknown })?.source === 'session') return;
    else this.host.reportError(err as Error);
  }

  private async runControl(link: Link): Promise<void> {
    try {
      for (;;) {
        const frame = await link.control.next();
        if (link.closed) return;
        if (!frame) return; // the transport's close will follow
        link.lastReceived = this.host.clock.now();
        this.host.control(link, frame, false);
      }
    } catch (err) {
      this.onError(link, err);
    }
  }

  private async runUni(link: Link): Promise<void> {
    const reader = link.session.incomingUnidirectionalStreams.getReader();
    link.readers.push(reader);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || link.closed) return;
        this.runStream(link, value);
      }
    } catch (err) {
      this.onError(link, err);
    }
  }

  private async runBidi(link: Link): Promise<void> {
    const reader = link.session.incomingBidirectionalStreams.getReader();
    link.readers.push(reader);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || link.closed) return;
        // Only one bidirectional stream (the control stream) is part of the protocol.
        value.readable.cancel().catch(() => {});
        value.writable.abort().catch(() => {});
      }
    } catch {
      // closing
    }
  }

  private async runStream(link: Link, stream: ReadableStream<Uint8Array>): Promise<void> {
    const reader = stream.getReader();
    link.readers.push(reader);
    const frames = this.host.incoming.reader(this.limits.maxMessageBytes + 64);
    let ch: RecvChannel | undefined;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (link.closed) return;
        if (done) {
          if (frames.pending > 0) throw new DecodeError('stream ended inside a frame');
          return;
        }
        link.lastReceived = this.host.clock.now();
        for (const body of frames.push(value)) {
          const { header, payload } = parseBody(body);
          if (!ch) {
            if (header[0] !== Kind.OPEN) throw new DecodeError('a stream must start with OPEN');
            ch = this.peerChannels.get(header[1] as number);
            if (!ch) throw new UnknownMessageError(`unknown channel id ${String(header[1])}`);
            continue;
          }
          if (header[0] !== Kind.DATA)
            throw new DecodeError(`unexpected frame kind ${header[0]} on a data stream`);
          const seq = header[2];
          if (typeof seq !== 'number' || !Number.isInteger(seq) || seq < 1)
            throw new DecodeError('bad sequence');
          this.receiveReliable(link, ch, seq, header, payload);
        }
      }
    } catch (err) {
      this.onError(link, err);
    } finally {
      frames.release();
      reader.releaseLock();
    }
  }

  private async runDatagrams(link: Link): Promise<void> {
    const reader = link.session.datagrams.readable.getReader();
    link.readers.push(reader);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || link.closed) return;
        link.lastReceived = this.host.clock.now();
        // Charged before anything is decoded: a flood of datagrams costs the peer its budget, not the server CPU.
        this.host.incoming.charge(value.length, 1);
        let frame: Frame;
        let bodies: Uint8Array[] | null = null;
        try {
          frame = parseBody(value);
          if (frame.header[0] === Kind.BUNDLE) bodies = unbundle(frame);
        } catch {
          this.host.drop('malformed', {});
          continue;
        }
        // A bundled body counts as a message of its own, as it would had it come alone (only split, not decoded).
        if (bodies) this.host.incoming.charge(0, bodies.length - 1);
        if (!bodies) {
          this.handleDatagram(link, frame);
          continue;
        }
        for (const body of bodies) {
          if (link.closed) return;
          let inner: Frame;
          try {
            inner = parseBody(body);
          } catch {
            this.host.drop('malformed', {});
            continue;
          }
          // Bundles do not nest: a BUNDLE inside one is dropped as malformed by handleDatagram.
          this.handleDatagram(link, inner);
        }
      }
    } catch (err) {
      this.onError(link, err);
    }
  }

  private handleDatagram(link: Link, frame: Frame): void {
    const h = frame.header;
    if (h[0] === Kind.PING || h[0] === Kind.PONG) {
      this.host.control(link, frame, true);
      return;
    }
    if (h[0] !== Kind.DGRAM) {
      this.host.drop('malformed', {});
      return;
    }
    const ch = this.peerChannels.get(h[1] as number);
    if (!ch) throw new UnknownMessageError(`unknown channel id ${String(h[1])}`);
    // A trace context sits right after the flags; taken out, the fragment fields are where they always were.
    const tp = traced(h[4]) ? h.splice(5, 1)[0] : undefined;
    let payload: Uint8Array | undefined = frame.payload;
    const now = this.host.clock.now();
    this.reassembler.expire(now);
    if (h.length >= 8) {
      payload = this.reassembler.add(`${h[1]}:${h[5]}`, h[6] as number, h[7] as number, payload, now);
      if (!payload) return;
      if (payload.length > this.limits.maxMessageBytes) {
        throw new MessageTooLargeError(
          'reassembled message too large',
          payload.length,
          this.limits.maxMessageBytes,
        );
      }
    }
    if (ch.mode === 'unreliable-sequenced') {
      const seq = h[3] as number;
      if (typeof seq !== 'number' || seq <= ch.lastSeq) {
        this.host.drop('stale', { channel: ch.name });
        return;
      }
      ch.lastSeq = seq;
    }
    this.deliver(ch.name, h[2], h[4], payload, tp);
  }

  private receiveReliable(
    link: Link,
    ch: RecvChannel,
    seq: number,
    header: unknown[],
    payload: Uint8Array,
  ): void {
    const dedupe = this.channels.get(ch.name)?.dedupe ?? true;
    const fresh = ch.tracker.accept(seq);
    if (ch.tracker.outOfOrder > this.limits.maxOutOfOrder) {
      throw new DecodeError(`more than ${this.limits.maxOutOfOrder} out-of-order messages on '${ch.name}'`);
    }
    ch.ackDirty = true;
    this.scheduleAck(link);
    if (!fresh && dedupe) {
      this.host.drop('duplicate', { channel: ch.name });
      return;
    }
    // [DATA, id, seq, flags, traceContext?]
    this.deliver(ch.name, header[1], header[3], payload, traced(header[3]) ? header[4] : undefined);
  }

  /**
   * Resolves a wire message id (announced at the handshake) or name, and the trace context when the flags say one
   * is there: a malformed one is counted and ignored, never a reason to refuse the message.
   */
  private deliver(channel: string, wire: unknown, flags: unknown, bytes: Uint8Array, tp: unknown): void {
    let name: string | undefined;
    if (typeof wire === 'number') name = this.peerMessages.get(wire);
    else if (typeof wire === 'string') name = wire;
    if (name === undefined) throw new UnknownMessageError(`unknown message id ${String(wire)}`);
    let parent: Uint8Array | undefined;
    if (traced(flags)) {
      if (isTraceContext(tp)) parent = tp;
      else this.host.traceContextInvalid();
    }
    this.host.deliver(channel, name, typeof flags === 'number' && (flags & FLAG_RAW) !== 0, bytes, parent);
  }

  private scheduleAck(link: Link): void {
    if (++this.pendingAcks >= this.limits.ackEvery) {
      this.flushAcks(link);
      return;
    }
    if (link.ackTimer === undefined) {
      link.ackTimer = this.host.clock.setTimeout(() => {
        link.ackTimer = undefined;
        this.flushAcks(link);
      }, this.limits.ackDelayMs);
    }
  }

  /** Sends the acks owed now rather than at the ack delay (before a close, or every `ackEvery` messages). */
  flushAcks(link: Link): void {
    this.pendingAcks = 0;
    if (link.ackTimer !== undefined) {
      this.host.clock.clearTimeout(link.ackTimer);
      link.ackTimer = undefined;
    }
    if (link.closed) return;
    const entries: [number, number][] = [];
    for (const [id, r] of this.peerChannels) {
      if (r.ackDirty) {
        r.ackDirty = false;
        entries.push([id, r.tracker.cum]);
      }
    }
    if (entries.length > 0) link.control.write([Kind.ACK, entries]);
  }
}

function traced(flags: unknown): boolean {
  return typeof flags === 'number' && (flags & FLAG_TRACE) !== 0;
}
