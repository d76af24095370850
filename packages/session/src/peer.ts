import type { QuiverSession, TransportName, TransportStats } from '@quiver/transport';
import { type Clock, systemClock, type TimerHandle } from './clock.js';
import { datagramFrame, decodeValue, encodeValue, FLAG_RAW, type Frame, Kind } from './codec.js';
import { type ControlHost, handleControl } from './control.js';
import {
  CloseCode,
  DecodeError,
  MessageTooLargeError,
  QueueFullError,
  SessionClosedError,
  type SessionError,
  UnknownMessageError,
  ValidationError,
} from './errors.js';
import { IncomingBudget } from './limits.js';
import { TokenBucket } from './estimators.js';
import { type ChannelState, channelFromOptions, isRaw, type OutMsg } from './channels.js';
import { datagramBodies } from './datagrams.js';
import { FreshnessGuard } from './freshness.js';
import { AckWatch, pathThresholdMs } from './ack-watch.js';
import { PathWatch } from './path-watch.js';
import { Liveness } from './liveness.js';
import { ReliableWindow } from './reliable.js';
import { Scheduler } from './scheduler.js';
import { type ControlStream, type HandshakeTables, Link } from './link.js';
import { MessageRegistry, type MessageType } from './messages.js';
import {
  type DropInfo,
  type DropReason,
  defaultChannels,
  type Handler,
  type PeerOptions,
  type PeerSink,
  type PeerStats,
  type ResolvedPeerOptions,
  resolvePeerOptions,
  type SendOptions,
} from './peer-options.js';
import { Receiver, type ReceiverHost } from './receiver.js';
import { FLAG_TRACE, type TraceSession } from './tracing.js';

export { channelMode } from './channels.js';
export { ControlStream, type HandshakeTables, Link } from './link.js';
export * from './peer-options.js';

/**
 * The part of a session both ends share: typed messages on channels, reliability with cumulative acks and replay,
 * fragmentation, heartbeats with RTT / loss / clock estimates, send budgets and queue policies. Subclasses do the
 * handshake and decide what happens when a link is lost (the client reconnects, the server waits for a resume).
 */
export abstract class Peer<S> {
  /** The transport connection carrying the session now; `null` while disconnected. */
  protected link: Link | null = null;
  /** Time and timers (`options.clock`, default the system clock). */
  protected readonly clock: Clock;
  /** Message types known to this end, by name, with the wire ids announced at the handshake. */
  protected readonly registry = new MessageRegistry();
  /** Channel state by name: queues, sequence numbers and delivery mode. */
  protected readonly channels = new Map<string, ChannelState>();
  private readonly channelsById = new Map<number, ChannelState>();
  /** Message handlers by message name. */
  // biome-ignore lint/suspicious/noExplicitAny: handlers of every payload type share one table
  protected readonly handlers = new Map<string, Set<Handler<any, S>>>();
  /** Heartbeat schedule and the RTT, loss and idleness estimates it feeds. */
  protected readonly liveness: Liveness;
  private readonly budget: TokenBucket | null;
  /** The read loops, reassembly, ordering and acks of what the peer sends. */
  private readonly receiver: Receiver;
  private fragSeq = 0;
  /** Reliable messages sent and not yet acknowledged: the replay buffer and flow-control window. */
  private readonly window: ReliableWindow;
  private readonly scheduler: Scheduler;
  /** Holds or drops unreliable messages the transport's queue would deliver too late. */
  private readonly freshness: FreshnessGuard;
  /** Set by an end that acts on a suspected dead path (the client): watches each link it attaches. */
  protected pathWatch: PathWatch | null = null;
  /** Set by an end that checks acknowledgements at its heartbeats only (the server; see {@link watchAcks}). */
  private ackWatch: AckWatch | null = null;
  /** True once the session ended for good: nothing is sent or resumed after that. */
  protected closedForGood = false;
  /** What the peer may make this end receive: rates, and bytes of incomplete frames held (see IncomingBudget). */
  protected incoming: IncomingBudget;
  /** Where counters are mirrored as they happen (the server's metrics); `null` when nobody aggregates them. */
  protected sink: PeerSink | null = null;
  /** When true, a message name this end never registered closes the session (servers); else it is counted. */
  protected strictMessages = false;
  /** Live counters since the session was created (not a snapshot). */
  readonly stats: PeerStats = {
    messagesIn: {},
    messagesOut: {},
    bytesIn: {},
    bytesOut: {},
    drops: {},
    pings: 0,
    traceContextInvalid: 0,
  };

  /** `options` with every default filled in. */
  protected readonly opts: ResolvedPeerOptions;

  constructor(
    /** The options as given. */
    protected readonly options: PeerOptions,
    defaultOverflow: ChannelState['overflow'],
  ) {
    this.clock = options.clock ?? systemClock;
    this.opts = resolvePeerOptions(options);
    this.liveness = new Liveness(this.opts.heartbeat, this.clock.now());
    const channels = { ...defaultChannels, ...(options.channels ?? {}) };
    let id = 0;
    for (const name of Object.keys(channels).sort()) {
      const ch = channelFromOptions(name, ++id, channels[name], defaultOverflow);
      this.channels.set(name, ch);
      this.channelsById.set(ch.id, ch);
    }
    for (const m of options.messages ?? []) this.registry.register(m);
    const b = options.sendBudget;
    this.budget = b
      ? new TokenBucket(b.bytesPerSecond, b.burstBytes ?? b.bytesPerSecond, this.clock.now())
      : null;
    this.incoming = new IncomingBudget(this.clock, this.opts.maxReceiveBufferBytes);
    this.window = new ReliableWindow(this.opts.maxInFlightBytes, this.opts.maxInFlightMessages, (r, i) =>
      this.drop(r, i),
    );
    this.scheduler = new Scheduler(this.opts.scheduler);
    this.freshness = new FreshnessGuard(
      {
        clock: this.clock,
        estimate: () => {
          const l = this.link;
          return l && !l.closed ? l.session.datagrams.sendEstimate?.() : undefined;
        },
        pendingBytes: () => this.link?.dgram.pendingBytes ?? 0,
        send: (ch, msg) => this.writeDatagram(ch, msg),
        drop: (r, i) => this.drop(r, i),
        connected: () => this.connected,
      },
      this.opts.maxUnreliableAgeMs,
      this.opts.maxHeldUnreliableBytes,
    );
    this.receiver = new Receiver(this.receiverHost(), this.opts, this.channels, options.reassembly ?? {});
  }

  /** What the receive side and control frames act on: delivery, acks, the peer's CLOSE. */
  private receiverHost(): ReceiverHost {
    const control: ControlHost = {
      liveness: this.liveness,
      now: () => this.clock.now(),
      rtt: (sample) => this.sink?.rtt(sample, this.jitter, this.loss, this.transport),
      ack: (id, cum) => {
        const ch = this.channelsById.get(id);
        if (ch?.reliable) this.window.ack(ch, cum);
      },
      acked: () => {
        this.pump();
        this.checkDrained();
      },
      closed: (link, code, reason, reconnect) => {
        this.detach(link);
        try {
          link.session.close({ closeCode: code, reason });
        } catch {
          // already closed
        }
        this.peerClosed(code, reason, reconnect);
      },
      other: (link, frame) => this.onControlFrame(link, frame),
    };
    const peer = this;
    return {
      clock: this.clock,
      get incoming() {
        return peer.incoming;
      },
      drop: (reason, info) => this.drop(reason, info),
      deliver: (channel, name, raw, bytes, parent) => this.deliver(channel, name, raw, bytes, parent),
      traceContextInvalid: () => {
        this.stats.traceContextInvalid++;
        this.sink?.traceContextInvalid();
      },
      control: (link, frame, viaDatagram) => handleControl(control, link, frame, viaDatagram),
      fail: (err) => this.fail(err),
      reportError: (err) => this.reportError(err),
    };
  }

  /** The session this peer is, as handed to handlers. */
  protected abstract get self(): S;
  /** The link died without a deliberate, final close. */
  protected abstract linkLost(code: number, reason: string): void;
  /** A final close: `err` when the peer broke a rule. */
  protected abstract fail(err: SessionError): void;
  /** Reports an error that does not end the session (a throwing handler) to the application's `onError`. */
  protected abstract reportError(err: Error): void;

  /** Smoothed RTT in ms (RFC 6298); 0 before the first sample. */
  get rtt(): number {
    return this.liveness.rtt.srtt;
  }

  /** RTTVAR in ms (RFC 6298): the mean deviation of RTT samples. */
  get jitter(): number {
    return this.liveness.rtt.rttvar;
  }

  /** Fraction of heartbeat probes lost (EWMA); only measured where datagrams are unreliable. */
  get loss(): number {
    return this.liveness.loss.value;
  }

  /** Smallest RTT sample in ms; 0 before the first sample. */
  get minRtt(): number {
    return Number.isFinite(this.liveness.rtt.min) ? this.liveness.rtt.min : 0;
  }

  /** The transport currently carrying the session, or undefined while disconnected. */
  get transport(): TransportName | undefined {
    return this.link?.session.transport;
  }

  /** True while a transport connection carries the session. */
  get connected(): boolean {
    return this.link !== null && !this.link.closed;
  }

  /** Bytes this session holds for sending: queued plus in flight (the replay buffer). */
  get bufferedBytes(): number {
    let n = this.window.bytes;
    for (const ch of this.channels.values()) n += ch.queuedBytes;
    return n;
  }

  /** The statistics of the transport carrying the session now (QUIC loss and congestion figures where it has them). */
  transportStats(): Promise<TransportStats> | undefined {
    return this.link?.session.getStats();
  }

  /** Reliable messages waiting to be sent (not yet in flight), across channels: the send-queue depth. */
  get queuedMessages(): number {
    let n = 0;
    for (const ch of this.channels.values()) n += ch.queue.length;
    return n;
  }

  private drainWaiters: { bytes: number; resolve: () => void }[] = [];

  /**
   * Resolves once `bufferedBytes` is at or below `bytes` (default 0): a producer awaits it to follow the pace of
   * the peer instead of filling the queues.
   */
  drained(bytes = 0): Promise<void> {
    if (this.bufferedBytes <= bytes || this.closedForGood) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push({ bytes, resolve }));
  }

  /** Resolves the `drained()` promises whose threshold `bufferedBytes` has reached. */
  protected checkDrained(): void {
    if (this.drainWaiters.length === 0) return;
    const n = this.bufferedBytes;
    const still: typeof this.drainWaiters = [];
    for (const w of this.drainWaiters) {
      if (n <= w.bytes || this.closedForGood) w.resolve();
      else still.push(w);
    }
    this.drainWaiters = still;
  }

  /** Registers a handler; returns a function that removes it. */
  onMessage<T>(type: MessageType<T>, handler: Handler<T, S>): () => void {
    this.registry.register(type);
    let set = this.handlers.get(type.name);
    if (!set) {
      set = new Set();
      this.handlers.set(type.name, set);
    }
    set.add(handler);
    return () => set.delete(handler);
  }

  /**
   * Sends a message. Returns false when an unreliable message was dropped (counted, `onDrop` called); throws
   * `MessageTooLargeError`, `QueueFullError` (overflow `error`) or `SessionClosedError`.
   */
  send<T>(type: MessageType<T>, payload: T, options: SendOptions = {}): boolean {
    if (this.closedForGood) throw new SessionClosedError('session is closed');
    this.registry.register(type);
    const chName = options.channel ?? type.channel ?? 'reliable';
    const ch = this.channels.get(chName);
    if (!ch) throw new TypeError(`unknown channel '${chName}'`);
    const raw = isRaw(payload);
    const bytes = raw ? payload : encodeValue(payload);
    if (bytes.length > this.opts.maxMessageBytes) {
      throw new MessageTooLargeError(
        `message '${type.name}' is ${bytes.length} bytes, more than maxMessageBytes ${this.opts.maxMessageBytes}`,
        bytes.length,
        this.opts.maxMessageBytes,
      );
    }
    this.liveness.active(this.clock.now());
    const msg: OutMsg = {
      name: type.name,
      flags: raw ? FLAG_RAW : 0,
      payload: bytes,
      key: options.key ?? type.name,
      size: bytes.length + 16,
      seq: 0,
    };
    const tracer = this.options.tracing;
    if (tracer) {
      const trace = tracer.send(ch.name, msg.name, bytes.length, this.traceSession);
      if (trace) {
        msg.trace = trace;
        const wire = trace.wire;
        if (wire) {
          msg.tp = wire;
          msg.flags |= FLAG_TRACE;
          msg.size += wire.length + 2;
        }
      }
    }
    if (!ch.reliable) return this.sendDatagram(ch, msg);
    this.enqueue(ch, msg);
    return true;
  }

  /** What spans of this session's messages are about: made once, read only by spans that record. */
  private readonly traceSession: TraceSession = {
    transport: () => this.link?.session.transport,
    sessionId: () => this.sessionIdForTrace,
    sampled: () => this.traceSampled,
  };

  /** @internal Whether the tracer sampled this session's latest establishment (set by the client and the server). */
  traceSampled = false;

  /** The handlers' call for the tracer, made once rather than a closure per message. */
  private readonly dispatchTraced = (name: string, payload: unknown): boolean => this.dispatch(name, payload);

  /** The server's id of the session, once known (attributes of spans). */
  protected abstract get sessionIdForTrace(): string | undefined;

  /** Ids announced at the current handshake; names registered later travel as strings. */
  private announced = new Map<string, number>();
  /**
   * Ids of the handshake under way; they take effect when its link is attached, not before: a link still in use
   * meanwhile (a raced reconnect) must keep the ids its peer knows.
   */
  private announcing = new Map<string, number>();

  private wireId(name: string): number | string {
    return this.announced.get(name) ?? name;
  }

  /** Counts a dropped message in `stats`, mirrors it to the sink and tells `onDrop`. */
  protected drop(reason: DropReason, info: DropInfo): void {
    this.stats.drops[reason] = (this.stats.drops[reason] ?? 0) + 1;
    this.sink?.drop(reason);
    try {
      this.options.onDrop?.(reason, info);
    } catch (err) {
      this.reportError(err as Error);
    }
  }

  private countOut(ch: string, bytes: number): void {
    this.stats.messagesOut[ch] = (this.stats.messagesOut[ch] ?? 0) + 1;
    this.stats.bytesOut[ch] = (this.stats.bytesOut[ch] ?? 0) + bytes;
    this.sink?.message(ch, 'out', bytes);
  }

  private sendDatagram(ch: ChannelState, msg: OutMsg): boolean {
    if (this.link && !this.link.closed) {
      const held = this.freshness.offer(ch, msg);
      if (held !== undefined) return held;
    }
    return this.writeDatagram(ch, msg);
  }

  private writeDatagram(ch: ChannelState, msg: OutMsg): boolean {
    const link = this.link;
    if (!link || link.closed) {
      this.dropTraced(msg, 'disconnected', ch);
      return false;
    }
    const seq = ch.mode === 'unreliable-sequenced' ? ++ch.dgramSeq : 0;
    const header: unknown[] = [Kind.DGRAM, ch.id, this.wireId(msg.name), seq, msg.flags];
    if (msg.tp) header.push(msg.tp);
    const frames = datagramBodies(header, msg.payload, link.session.datagrams.maxDatagramSize, () => ({
      allowed: ch.fragment,
      id: () => {
        this.fragSeq = (this.fragSeq + 1) >>> 0;
        return this.fragSeq;
      },
      what: `message '${msg.name}'`,
      note: ch.fragment ? '' : ` and channel '${ch.name}' does not fragment`,
    }));
    let total = 0;
    for (const f of frames) total += f.length;
    const writer = link.dgram.writer;
    // Unreliable data is never queued behind congestion: stale state is worse than lost state. A small backlog
    // beyond the transport's high-water mark (often 1) absorbs bursts written in one tick. What counts is the
    // datagrams (bundles) this turn will write, not the messages in them.
    const datagrams = link.dgram.datagramsWith(frames);
    if (writer.desiredSize !== null && writer.desiredSize - datagrams < -this.opts.datagramBacklog) {
      this.dropTraced(msg, 'congestion', ch);
      return false;
    }
    if (this.budget && !this.budget.take(total, this.clock.now())) {
      this.dropTraced(msg, 'budget', ch);
      return false;
    }
    // Queued for this turn's datagram: the transport takes it when the turn ends, so the write span is this call.
    msg.trace?.write(seq)();
    link.dgram.queue(frames);
    this.countOut(ch.name, msg.payload.length);
    return true;
  }

  /** Drops an unreliable message; its `DropInfo` is made only here, not for every message sent. */
  private dropTraced(msg: OutMsg, reason: DropReason, ch: ChannelState): void {
    msg.trace?.end(reason);
    this.drop(reason, { message: msg.name, channel: ch.name, bytes: msg.payload.length });
  }

  private enqueue(ch: ChannelState, msg: OutMsg): void {
    if (!this.window.enqueue(ch, msg)) {
      this.fail(new QueueFullError(`channel '${ch.name}' queue overflowed`));
      return;
    }
    this.pump();
  }

  private pickChannel(link: Link): ChannelState | undefined {
    return this.scheduler.pick(this.channels.values(), (ch) => {
      if (!ch.reliable) return false;
      const head = ch.retransmit[0] ?? ch.queue[0];
      if (!head) return false;
      if (ch.retransmit.length === 0 && !this.window.hasRoom(head)) return false;
      return link.writerReady(ch, () => this.pump());
    });
  }

  /** Writes queued reliable messages to the link while the scheduler, flow-control window and writer allow. */
  protected pump(): void {
    const link = this.link;
    if (!link || link.closed) return;
    for (;;) {
      const ch = this.pickChannel(link);
      if (!ch) return;
      const retx = ch.retransmit.length > 0;
      const msg = retx ? ch.retransmit[0] : ch.queue[0];
      const now = this.clock.now();
      if (this.budget && !this.budget.take(msg.size, now)) {
        if (link.budgetTimer === undefined) {
          link.budgetTimer = this.clock.setTimeout(
            () => {
              link.budgetTimer = undefined;
              this.pump();
            },
            this.budget.waitFor(msg.size, now),
          );
        }
        return;
      }
      if (retx) ch.retransmit.shift();
      else {
        this.window.sendHead(ch);
        this.countOut(ch.name, msg.payload.length);
      }
      this.scheduler.served(ch, msg);
      msg.sentAt = now;
      this.pathWatch?.sent(link, now);
      const header: unknown[] = [Kind.DATA, this.wireId(msg.name), msg.seq, msg.flags];
      if (msg.tp) header.push(msg.tp);
      const written = link.writeReliable(ch, header, msg.payload, () => this.pump());
      if (msg.trace) {
        // Only the first write is traced: a replay after a reconnect carries the same context, without a span.
        const done = msg.trace.write(msg.seq);
        msg.trace = undefined;
        written.then(
          () => done(),
          (err) => done(err),
        );
      }
    }
  }

  // ---- links ------------------------------------------------------------------------------------------------

  /** The message and channel tables this end announces in its handshake. */
  protected localTables(): Omit<HandshakeTables, 'acks'> {
    const messages = this.registry.table();
    this.announcing = new Map(messages);
    return {
      messages,
      channels: [...this.channels.values()].map((c) => [c.name, c.id, c.mode]),
    };
  }

  /** Per reliable channel name, the cumulative ack (all sequence numbers up to it received), sent on resume so the peer replays the rest. */
  protected localAcks(): [string, number][] {
    return this.receiver.acks();
  }

  /**
   * Watches links for a dead path (see {@link PathWatch}); `suspect` runs once per link when nothing arrived for a
   * few RTTs while the peer owed an answer, `stalled` when the peer answers but its acknowledgements do not come.
   */
  protected watchPaths(
    suspect: (link: Link, silentMs: number) => void,
    stalled: (link: Link, overdueMs: number) => void,
  ): void {
    this.pathWatch = new PathWatch(
      {
        clock: this.clock,
        rtt: this.liveness.rtt,
        owed: (link) => {
          if (this.window.bytes > 0) return true;
          for (const at of link.pings.values()) if (at > link.lastReceived) return true;
          return false;
        },
        probe: (link) => this.ping(link),
        suspect,
        unackedSince: () => this.window.unackedSince(this.channels.values()),
        stalled,
      },
      this.opts.heartbeat.suspectAfterMs,
    );
  }

  /**
   * Checks at every heartbeat that acknowledgements still come while the peer answers (see {@link AckWatch}): the
   * server's side of a stranded stream. A stalled link is let go with a resumable close (`HEARTBEAT_TIMEOUT`), so
   * that the client resumes on a new one and what was unacknowledged is replayed. A timer per session at the
   * heartbeat's pace, not the client's finer path watch: a server holds many sessions.
   */
  protected watchAcks(): void {
    // The heartbeat sends its probe right after the check: the watch needs none of its own.
    this.ackWatch = new AckWatch({
      unackedSince: () => this.window.unackedSince(this.channels.values()),
      probe: () => {},
    });
  }

  /** Starts using `session` after a completed handshake. `peer` is what the other end announced. */
  protected attach(
    session: QuiverSession,
    control: ControlStream,
    peer: HandshakeTables,
    resumed: boolean,
  ): void {
    control.useBudget(this.incoming, this.opts.maxMessageBytes + 64);
    // A reconnect raced while the old link was still in use (a suspected path) won: the old link is let go.
    const old = this.link;
    if (old && !old.closed) {
      this.detach(old);
      try {
        old.session.close({ closeCode: CloseCode.REPLACED, reason: 'replaced by a new connection' });
      } catch {
        // already closed
      }
    }
    const link = new Link(session, control, this.clock.now());
    this.link = link;
    this.announced = this.announcing;
    const maxAge = this.opts.maxUnreliableAgeMs;
    if (maxAge > 0 && !session.datagrams.sendEstimate && 'outgoingMaxAge' in session.datagrams) {
      try {
        session.datagrams.outgoingMaxAge = maxAge;
      } catch {
        // A browser that refuses the value keeps its own default.
      }
    }
    this.receiver.adopt(peer, resumed);
    const acked = new Map<string, number>();
    for (const [name, cum] of peer.acks ?? []) acked.set(name, cum);
    for (const ch of this.channels.values()) {
      if (!ch.reliable) continue;
      // Resumed: what was sent on the dead link and maybe lost with it goes again, first, in order.
      if (resumed) this.window.resume(ch, acked.get(ch.name) ?? 0);
      else this.window.reset(ch);
    }
    this.receiver.start(link);
    session.closed.then(
      (info) => this.onTransportClosed(link, info?.closeCode ?? 0, info?.reason ?? ''),
      (err) => this.onTransportClosed(link, 0, String((err as Error)?.message ?? err)),
    );
    this.scheduleHeartbeat(link, true);
    this.pathWatch?.watch(link);
    this.ackWatch?.watch(this.clock.now());
    this.pump();
  }

  private onTransportClosed(link: Link, code: number, reason: string): void {
    if (link.closed || this.link !== link) return;
    this.detach(link);
    this.linkLost(code, reason);
  }

  /** Forgets a link: timers, readers, writers. The session's reliable state stays for a resume. */
  protected detach(link: Link): void {
    if (link.closed) return;
    link.closed = true;
    if (this.link === link) {
      this.link = null;
      this.pathWatch?.stop();
    }
    this.clock.clearTimeout(link.heartbeatTimer);
    this.clock.clearTimeout(link.ackTimer);
    this.clock.clearTimeout(link.budgetTimer);
    link.control.cancel().catch(() => {});
    for (const r of link.readers) r.cancel().catch(() => {});
    for (const w of link.writers.values()) w.writer?.releaseLock();
    link.dgram.release();
    for (const ch of this.channels.values()) ch.retransmit = [];
  }

  /** Closes the current link deliberately, telling the peer whether it may resume. */
  protected async closeLink(code: number, reason: string, reconnect: boolean): Promise<void> {
    const link = this.link;
    if (!link || link.closed) return;
    this.receiver.flushAcks(link);
    const sent = link.control.write([Kind.CLOSE, code, reason, reconnect]);
    this.detach(link);
    // Give the CLOSE frame a moment to leave before the transport tears the streams down.
    let timer: TimerHandle | undefined;
    await Promise.race([
      sent.catch(() => {}),
      new Promise((r) => {
        timer = this.clock.setTimeout(() => r(undefined), 50);
      }),
    ]);
    this.clock.clearTimeout(timer);
    try {
      // The transport's close code carries the intent too, for when it overtakes the CLOSE frame.
      const wire = code === CloseCode.NORMAL && !reconnect ? CloseCode.CLOSED : code;
      link.session.close({ closeCode: wire, reason: reason.slice(0, 200) });
    } catch {
      // already closed
    }
  }

  private deliver(
    channel: string,
    name: string,
    raw: boolean,
    bytes: Uint8Array,
    parent: Uint8Array | undefined,
  ): void {
    const type = this.knownType(name);
    if (!type && this.strictMessages) throw new UnknownMessageError(`unknown message '${name}'`);
    const payload = raw ? bytes : decodeValue(bytes, this.opts.maxDepth);
    this.validateIncoming(name, channel, payload, type);
    this.liveness.active(this.clock.now());
    this.stats.messagesIn[channel] = (this.stats.messagesIn[channel] ?? 0) + 1;
    this.stats.bytesIn[channel] = (this.stats.bytesIn[channel] ?? 0) + bytes.length;
    this.sink?.message(channel, 'in', bytes.length);
    const tracer = this.options.tracing;
    const handled = tracer
      ? tracer.receive(channel, name, bytes.length, this.traceSession, parent, this.dispatchTraced, payload)
      : this.dispatch(name, payload);
    if (!handled) this.drop('unhandled', { message: name, channel });
  }

  /** The local definition of a message name, if this end knows it. */
  protected knownType(name: string): MessageType | undefined {
    return this.registry.get(name);
  }

  /** Runs the message type's `validate`; throws a {@link ValidationError} (close 4422) when it fails or throws. */
  protected validateIncoming(
    name: string,
    _channel: string,
    payload: unknown,
    type: MessageType | undefined,
  ): void {
    let ok = true;
    try {
      ok = type?.validate ? type.validate(payload) : true;
    } catch {
      ok = false;
    }
    if (!ok) throw new ValidationError(`message '${name}' failed validation`, name);
  }

  /** Calls the handlers of `name`; returns false when there were none. */
  protected dispatch(name: string, payload: unknown): boolean {
    const set = this.handlers.get(name);
    if (!set || set.size === 0) return false;
    for (const h of set) {
      try {
        h(payload, this.self);
      } catch (err) {
        this.reportError(err as Error);
      }
    }
    return true;
  }

  /** Control frames other than the shared ones (the subclasses' handshake frames). */
  protected onControlFrame(_link: Link, frame: Frame): void {
    throw new DecodeError(`unexpected control frame kind ${String(frame.header[0])}`);
  }

  /** The peer sent CLOSE. */
  protected abstract peerClosed(code: number, reason: string, reconnect: boolean): void;

  // ---- heartbeats -------------------------------------------------------------------------------------------

  private scheduleHeartbeat(link: Link, immediate = false): void {
    const delay = immediate ? 0 : this.liveness.nextDelay(this.clock.now());
    link.heartbeatTimer = this.clock.setTimeout(() => this.heartbeat(link), delay);
  }

  private heartbeat(link: Link): void {
    if (link.closed) return;
    const now = this.clock.now();
    if (this.liveness.dead(link, now)) {
      this.closeLink(CloseCode.HEARTBEAT_TIMEOUT, 'heartbeat timeout', true);
      this.linkLost(CloseCode.HEARTBEAT_TIMEOUT, 'heartbeat timeout');
      return;
    }
    const overdue = this.ackWatch?.check(
      link,
      now,
      pathThresholdMs(this.liveness.rtt, this.opts.heartbeat.suspectAfterMs),
    );
    if (overdue !== undefined) {
      const reason = `no acknowledgement for ${Math.round(overdue)} ms on a live path`;
      this.closeLink(CloseCode.HEARTBEAT_TIMEOUT, reason, true);
      this.linkLost(CloseCode.HEARTBEAT_TIMEOUT, reason);
      return;
    }
    this.receiver.expire(now);
    this.ping(link);
    this.scheduleHeartbeat(link);
  }

  private ping(link: Link): void {
    const now = this.clock.now();
    // Probes ride datagrams where datagrams can be lost, so that unanswered ones measure loss.
    const lossy = link.session.reliability === 'supports-unreliable';
    const ping = [Kind.PING, ...this.liveness.probe(link, now, lossy)];
    this.stats.pings++;
    this.pathWatch?.sent(link, now);
    if (lossy) link.dgram.queue([datagramFrame(ping)], true);
    else link.control.write(ping);
  }
}
