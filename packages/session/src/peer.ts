import type { QuiverBidirectionalStream, QuiverSession, TransportName } from '@quiver/transport';
import { type Clock, systemClock, type TimerHandle } from './clock.js';
import {
  BUNDLE_ENTRY_OVERHEAD,
  BUNDLE_OVERHEAD,
  bundleFrame,
  datagramFrame,
  datagramHeaderSize,
  MAX_BUNDLE_COUNT,
  unbundle,
  decodeValue,
  encodeValue,
  FLAG_RAW,
  type Frame,
  FrameReader,
  Kind,
  parseBody,
  streamFrame,
} from './codec.js';
import {
  CloseCode,
  DecodeError,
  MessageTooLargeError,
  QueueFullError,
  SessionClosedError,
  SessionError,
  UnknownMessageError,
  ValidationError,
} from './errors.js';
import { type BudgetedFrameReader, IncomingBudget } from './limits.js';
import { DEFAULT_MAX_DEPTH } from './msgpack.js';
import { ClockSync, LossEstimator, RttEstimator, TokenBucket } from './estimators.js';
import { type DeliveryMode, MessageRegistry, type MessageType, type QoS } from './messages.js';
import { type ReassemblyOptions, Reassembler, ReceiveTracker } from './reassembly.js';

/** Why a message was dropped. Every drop is counted under one of these. */
export type DropReason =
  /** Unreliable send over the send budget (token bucket). */
  | 'budget'
  /** Unreliable send while the transport's datagram queue is full. */
  | 'congestion'
  /** Unreliable send while no transport is connected. */
  | 'disconnected'
  /**
   * A reliable queue was full: the send was refused (`error`, which also throws `QueueFullError`; `close`), or the
   * oldest message was dropped (`drop-oldest`, or `coalesce` with no key match).
   */
  | 'queue-full'
  /** Replaced by a newer message with the same key (`coalesce`). */
  | 'coalesced'
  /** An unreliable-sequenced message older than one already delivered. */
  | 'stale'
  /** A reliable message received twice (replayed after a reconnect), dropped by dedupe. */
  | 'duplicate'
  /** Fragments that did not all arrive within the reassembly timeout. */
  | 'reassembly-timeout'
  /** Fragments that did not fit the bounded reassembly buffers. */
  | 'reassembly-overflow'
  /** Reliable messages in flight when the server could not resume the session (`recovered: false`). */
  | 'session-lost'
  /** A datagram that could not be parsed (only datagrams: a bad stream frame closes the session). */
  | 'malformed'
  /** A message without any handler. */
  | 'unhandled';

export interface DropInfo {
  message?: string;
  channel?: string;
  bytes?: number;
}

export interface ChannelOptions {
  /** Default `reliable-ordered`, or derived from `qos`. */
  mode?: DeliveryMode;
  /**
   * `at-most-once` = `unreliable`; `at-least-once` = `reliable-unordered` without receive dedupe (a replay after a
   * reconnect may deliver twice); `exactly-once` = `reliable-ordered` with dedupe by sequence number, kept across
   * reconnects for as long as the session resumes.
   */
  qos?: QoS;
  /** Scheduling priority (strict: higher first) or weight (weighted). Default 1. */
  priority?: number;
  /** Reliable: bytes waiting to be sent (not yet in flight). Default 1 MiB. */
  maxQueuedBytes?: number;
  /** Reliable: messages waiting to be sent. Default 4096. */
  maxQueuedMessages?: number;
  /**
   * Reliable queue policy when full. `error`: `send()` throws `QueueFullError`. `drop-oldest`: the oldest waiting
   * message is dropped (counted `queue-full`). `coalesce`: a waiting message with the same key (default: the
   * message name) is replaced (counted `coalesced`), then oldest-first as `drop-oldest`. `close`: the session is
   * closed with 4450. Default `error` on both ends: a refused send is also counted `queue-full` and reported to
   * `onDrop`, so loss on a reliable channel is never silent.
   */
  overflow?: 'error' | 'drop-oldest' | 'coalesce' | 'close';
  /** Unreliable: split messages larger than a datagram into fragments (true, default) or throw (false). */
  fragment?: boolean;
}

/** Channels every session has unless overridden: `reliable` (ordered) and `unreliable` (datagrams). */
export const defaultChannels: Record<string, ChannelOptions> = {
  reliable: { mode: 'reliable-ordered' },
  unreliable: { mode: 'unreliable' },
};

export interface HeartbeatOptions {
  /** Ping interval while messages flow. Default 1000 ms. */
  intervalMs?: number;
  /** Ping interval after `idleAfterMs` without application messages. Default 5000 ms. */
  idleIntervalMs?: number;
  /** Default 10 000 ms. */
  idleAfterMs?: number;
  /** The connection is considered dead after this long without receiving anything. Default 15 000 ms. */
  timeoutMs?: number;
}

export interface PeerOptions {
  channels?: Record<string, ChannelOptions>;
  /** Message types known up front: their ids are announced at the handshake. */
  messages?: MessageType<unknown>[];
  clock?: Clock;
  heartbeat?: HeartbeatOptions;
  /** A cumulative ack is sent after this delay or after `ackEvery` messages. Default 20 ms. */
  ackDelayMs?: number;
  /** Default 32. */
  ackEvery?: number;
  /**
   * Reliable bytes in flight (sent, not yet acknowledged) across channels: the replay buffer kept for resumption and
   * the flow-control window. Default 256 KiB.
   */
  maxInFlightBytes?: number;
  /** Default 1024. */
  maxInFlightMessages?: number;
  /** Outgoing send budget: a token bucket in bytes. Default unlimited. */
  sendBudget?: { bytesPerSecond: number; burstBytes?: number };
  /** Cross-channel scheduler for reliable queues: `strict` priority or `weighted` fair share. Default `strict`. */
  scheduler?: 'strict' | 'weighted';
  /** Largest message accepted or sent, in bytes (after encoding). Default 1 MiB. */
  maxMessageBytes?: number;
  reassembly?: ReassemblyOptions;
  /**
   * Datagrams an unreliable send may queue beyond the transport's datagram high-water mark; past it, sends are
   * dropped as `congestion`. Default 32 (a fragmented message is written as one burst). A browser page moves
   * about one datagram per event-loop turn into its QUIC stack (Chromium 156 resolves each datagram write in a
   * main-thread task), so on a busy page a deep backlog is stale input waiting for frames: lower it there. What
   * is counted is datagram writes: the messages of one turn are packed into as few datagrams as fit (BUNDLE).
   */
  datagramBacklog?: number;
  /** Out-of-order reliable messages held per channel before the peer is considered broken. Default 4096. */
  maxOutOfOrder?: number;
  /**
   * Nesting depth of arrays and maps accepted in a received MessagePack payload; deeper is a `DecodeError` (4400).
   * Default 32. (Lengths need no option: a payload of n bytes never allocates more than n entries.)
   */
  maxDepth?: number;
  /**
   * Bytes of incomplete incoming frames held at once, all streams of the session together (partial frames are
   * also charged to the byte rate as they arrive). Over it the session closes with 4429. Default 4 MiB, and never
   * below `maxMessageBytes` + 64.
   */
  maxReceiveBufferBytes?: number;
  /** Called for every drop, after it is counted. */
  onDrop?: (reason: DropReason, info: DropInfo) => void;
}

export interface SendOptions {
  channel?: string;
  /** Coalescing key (`coalesce` channels); default the message name. */
  key?: unknown;
}

export interface PeerStats {
  messagesIn: Record<string, number>;
  messagesOut: Record<string, number>;
  bytesIn: Record<string, number>;
  bytesOut: Record<string, number>;
  drops: Partial<Record<DropReason, number>>;
  /** Heartbeat probes sent. */
  pings: number;
}

/** Receives counters as they happen (the server aggregates them into its metrics). */
export interface PeerSink {
  message(channel: string, direction: 'in' | 'out', bytes: number): void;
  drop(reason: DropReason): void;
  rtt(ms: number): void;
}

export type Handler<T, S> = (payload: T, session: S) => void;

interface OutMsg {
  name: string;
  flags: number;
  payload: Uint8Array;
  key: unknown;
  size: number;
  seq: number;
}

interface ChannelState {
  name: string;
  id: number;
  mode: DeliveryMode;
  reliable: boolean;
  dedupe: boolean;
  priority: number;
  maxQueuedBytes: number;
  maxQueuedMessages: number;
  overflow: 'error' | 'drop-oldest' | 'coalesce' | 'close';
  fragment: boolean;
  queue: OutMsg[];
  queuedBytes: number;
  retransmit: OutMsg[];
  window: OutMsg[];
  nextSeq: number;
  dgramSeq: number;
  vtime: number;
  served: number;
}

interface RecvChannel {
  name: string;
  mode: DeliveryMode;
  tracker: ReceiveTracker;
  lastSeq: number;
  ackDirty: boolean;
}

interface StreamWriter {
  writer: WritableStreamDefaultWriter<Uint8Array> | null;
  waiting: boolean;
}

/** One transport connection of a session; a session outlives its links when it resumes. */
export class Link {
  readonly writers = new Map<string, StreamWriter>();
  datagramWriter: WritableStreamDefaultWriter<Uint8Array> | null = null;
  /**
   * Datagram bodies sent during the current event-loop turn, already packed: each group becomes one datagram (a
   * BUNDLE when it holds more than one body) when the turn's microtasks run. Chromium moves about one datagram
   * per turn from a page into QUIC, so a write per body would queue the surplus for seconds on a busy page.
   */
  dgramGroups: Uint8Array[][] = [];
  /** Bundled size of the last group, counting the bundle overhead even when it would go out alone. */
  dgramLastSize = 0;
  dgramFlushScheduled = false;
  closed = false;
  unorderedOpen = 0;
  lastReceived: number;
  heartbeatTimer: TimerHandle | undefined;
  ackTimer: TimerHandle | undefined;
  budgetTimer: TimerHandle | undefined;
  pings = new Map<number, number>();
  readonly readers: { cancel(reason?: unknown): Promise<void> }[] = [];

  constructor(
    readonly session: QuiverSession,
    readonly control: ControlStream,
    now: number,
  ) {
    this.lastReceived = now;
  }
}

/** The control stream (the session's first bidirectional stream): HELLO, WELCOME, ACK, PING/PONG, CLOSE. */
export class ControlStream {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  private readonly frames: FrameReader;
  private budgeted: BudgetedFrameReader | null = null;
  private queued: Uint8Array[] = [];

  /** `maxFrameBytes` bounds the handshake frame; `useBudget` sets the limit for the rest of the session. */
  constructor(stream: QuiverBidirectionalStream, maxFrameBytes: number) {
    this.reader = stream.readable.getReader();
    this.writer = stream.writable.getWriter();
    this.frames = new FrameReader(maxFrameBytes);
  }

  /** From now on every byte received is charged to `budget` as it arrives (what is already buffered included). */
  useBudget(budget: IncomingBudget, maxFrameBytes: number): void {
    this.budgeted?.release();
    this.budgeted = budget.reader(maxFrameBytes, this.frames);
    // Frames that completed before the budget applied still count as messages.
    if (this.queued.length > 0) budget.charge(0, this.queued.length);
  }

  /** The next frame, or null at the end of the stream. Throws `DecodeError` / `MessageTooLargeError`. */
  async next(): Promise<Frame | null> {
    for (;;) {
      const body = this.queued.shift();
      if (body) return parseBody(body);
      const { value, done } = await this.reader.read();
      if (done) return null;
      this.queued = this.budgeted ? this.budgeted.push(value) : this.frames.push(value);
    }
  }

  write(header: unknown[], payload?: Uint8Array): Promise<void> {
    const chunks = streamFrame(header, payload);
    let last: Promise<void> = Promise.resolve();
    for (const c of chunks) last = this.writer.write(c);
    last.catch(() => {});
    return last;
  }

  cancel(reason?: unknown): Promise<void> {
    this.budgeted?.release();
    return this.reader.cancel(reason).catch(() => {});
  }
}

export interface HandshakeTables {
  messages: [string, number][];
  channels: [string, number, DeliveryMode][];
  acks: [string, number][];
}

function isRaw(payload: unknown): payload is Uint8Array {
  return payload instanceof Uint8Array;
}

/** The delivery mode a channel's options describe (`mode`, else derived from `qos`). */
export function channelMode(o: ChannelOptions): DeliveryMode {
  return (
    o.mode ??
    (o.qos === 'at-most-once'
      ? 'unreliable'
      : o.qos === 'at-least-once'
        ? 'reliable-unordered'
        : 'reliable-ordered')
  );
}

function channelFromOptions(
  name: string,
  id: number,
  o: ChannelOptions,
  defaultOverflow: ChannelState['overflow'],
) {
  const mode = channelMode(o);
  const reliable = mode === 'reliable-ordered' || mode === 'reliable-unordered';
  const state: ChannelState = {
    name,
    id,
    mode,
    reliable,
    dedupe: o.qos !== 'at-least-once',
    priority: o.priority ?? 1,
    maxQueuedBytes: o.maxQueuedBytes ?? 1 << 20,
    maxQueuedMessages: o.maxQueuedMessages ?? 4096,
    overflow: o.overflow ?? defaultOverflow,
    fragment: o.fragment ?? true,
    queue: [],
    queuedBytes: 0,
    retransmit: [],
    window: [],
    nextSeq: 1,
    dgramSeq: 0,
    vtime: 0,
    served: 0,
  };
  return state;
}

/**
 * The part of a session both ends share: typed messages on channels, reliability with cumulative acks and replay,
 * fragmentation, heartbeats with RTT / loss / clock estimates, send budgets and queue policies. Subclasses do the
 * handshake and decide what happens when a link is lost (the client reconnects, the server waits for a resume).
 */
export abstract class Peer<S> {
  protected link: Link | null = null;
  protected readonly clock: Clock;
  protected readonly registry = new MessageRegistry();
  protected readonly channels = new Map<string, ChannelState>();
  private readonly channelsById = new Map<number, ChannelState>();
  private peerMessages = new Map<number, string>();
  private peerChannels = new Map<number, RecvChannel>();
  private readonly recv = new Map<string, RecvChannel>();
  // biome-ignore lint/suspicious/noExplicitAny: handlers of every payload type share one table
  protected readonly handlers = new Map<string, Set<Handler<any, S>>>();
  private readonly rttEst = new RttEstimator();
  protected readonly clockSync = new ClockSync();
  private readonly lossEst = new LossEstimator();
  private readonly budget: TokenBucket | null;
  private readonly reassembler: Reassembler;
  private fragSeq = 0;
  private windowBytes = 0;
  private windowCount = 0;
  private lastActivity: number;
  protected closedForGood = false;
  /** What the peer may make this end receive: rates, and bytes of incomplete frames held (see IncomingBudget). */
  protected incoming: IncomingBudget;
  protected sink: PeerSink | null = null;
  /** When true, a message name this end never registered closes the session (servers); else it is counted. */
  protected strictMessages = false;
  readonly stats: PeerStats = {
    messagesIn: {},
    messagesOut: {},
    bytesIn: {},
    bytesOut: {},
    drops: {},
    pings: 0,
  };

  protected readonly opts: Required<
    Pick<
      PeerOptions,
      'ackDelayMs' | 'ackEvery' | 'maxInFlightBytes' | 'maxInFlightMessages' | 'maxMessageBytes'
    >
  > & {
    heartbeat: Required<HeartbeatOptions>;
    scheduler: 'strict' | 'weighted';
    maxOutOfOrder: number;
    datagramBacklog: number;
    maxDepth: number;
    maxReceiveBufferBytes: number;
  };

  constructor(
    protected readonly options: PeerOptions,
    defaultOverflow: ChannelState['overflow'],
  ) {
    this.clock = options.clock ?? systemClock;
    const hb = options.heartbeat ?? {};
    this.opts = {
      ackDelayMs: options.ackDelayMs ?? 20,
      ackEvery: options.ackEvery ?? 32,
      maxInFlightBytes: options.maxInFlightBytes ?? 256 * 1024,
      maxInFlightMessages: options.maxInFlightMessages ?? 1024,
      maxMessageBytes: options.maxMessageBytes ?? 1 << 20,
      scheduler: options.scheduler ?? 'strict',
      maxOutOfOrder: options.maxOutOfOrder ?? 4096,
      datagramBacklog: options.datagramBacklog ?? 32,
      maxDepth: options.maxDepth ?? DEFAULT_MAX_DEPTH,
      // A session must be able to receive one frame of the largest message it accepts.
      maxReceiveBufferBytes: Math.max(
        options.maxReceiveBufferBytes ?? 4 << 20,
        (options.maxMessageBytes ?? 1 << 20) + 64,
      ),
      heartbeat: {
        intervalMs: hb.intervalMs ?? 1000,
        idleIntervalMs: hb.idleIntervalMs ?? 5000,
        idleAfterMs: hb.idleAfterMs ?? 10_000,
        timeoutMs: hb.timeoutMs ?? 15_000,
      },
    };
    this.lastActivity = this.clock.now();
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
    this.reassembler = new Reassembler(options.reassembly ?? {}, (reason) => this.drop(reason, {}));
    this.incoming = new IncomingBudget(this.clock, this.opts.maxReceiveBufferBytes);
  }

  /** The session this peer is, as handed to handlers. */
  protected abstract get self(): S;
  /** The link died without a deliberate, final close. */
  protected abstract linkLost(code: number, reason: string): void;
  /** A final close: `err` when the peer broke a rule. */
  protected abstract fail(err: SessionError): void;
  protected abstract reportError(err: Error): void;

  /** Smoothed RTT in ms (RFC 6298); 0 before the first sample. */
  get rtt(): number {
    return this.rttEst.srtt;
  }

  /** RTTVAR in ms (RFC 6298): the mean deviation of RTT samples. */
  get jitter(): number {
    return this.rttEst.rttvar;
  }

  /** Fraction of heartbeat probes lost (EWMA); only measured where datagrams are unreliable. */
  get loss(): number {
    return this.lossEst.value;
  }

  get minRtt(): number {
    return Number.isFinite(this.rttEst.min) ? this.rttEst.min : 0;
  }

  /** The transport currently carrying the session, or undefined while disconnected. */
  get transport(): TransportName | undefined {
    return this.link?.session.transport;
  }

  get connected(): boolean {
    return this.link !== null && !this.link.closed;
  }

  /** Bytes this session holds for sending: queued plus in flight (the replay buffer). */
  get bufferedBytes(): number {
    let n = this.windowBytes;
    for (const ch of this.channels.values()) n += ch.queuedBytes;
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
    this.lastActivity = this.clock.now();
    const msg: OutMsg = {
      name: type.name,
      flags: raw ? FLAG_RAW : 0,
      payload: bytes,
      key: options.key ?? type.name,
      size: bytes.length + 16,
      seq: 0,
    };
    if (!ch.reliable) return this.sendDatagram(ch, msg);
    this.enqueue(ch, msg);
    return true;
  }

  /** Ids announced at the current handshake; names registered later travel as strings. */
  private announced = new Map<string, number>();

  private wireId(name: string): number | string {
    return this.announced.get(name) ?? name;
  }

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
    const link = this.link;
    const info = { message: msg.name, channel: ch.name, bytes: msg.payload.length };
    if (!link || link.closed) {
      this.drop('disconnected', info);
      return false;
    }
    const dg = link.session.datagrams;
    const max = dg.maxDatagramSize;
    const seq = ch.mode === 'unreliable-sequenced' ? ++ch.dgramSeq : 0;
    const wire = this.wireId(msg.name);
    const header = [Kind.DGRAM, ch.id, wire, seq, msg.flags];
    let frames: Uint8Array[];
    if (datagramHeaderSize(header) + msg.payload.length <= max) {
      frames = [datagramFrame(header, msg.payload)];
    } else {
      this.fragSeq = (this.fragSeq + 1) >>> 0;
      const fragId = this.fragSeq;
      // The largest header a fragment can have: the room left is what every fragment may carry.
      const room = max - datagramHeaderSize([...header, fragId, 0xffff, 0xffff]);
      const count = room > 0 ? Math.ceil(msg.payload.length / room) : Number.POSITIVE_INFINITY;
      if (!ch.fragment || count > 0xffff) {
        throw new MessageTooLargeError(
          `message '${msg.name}' (${msg.payload.length} bytes) does not fit a datagram of ${max} bytes` +
            (ch.fragment ? '' : ` and channel '${ch.name}' does not fragment`),
          msg.payload.length,
          max,
        );
      }
      frames = [];
      for (let i = 0; i < count; i++) {
        frames.push(
          datagramFrame([...header, fragId, i, count], msg.payload.subarray(i * room, (i + 1) * room)),
        );
      }
    }
    let total = 0;
    for (const f of frames) total += f.length;
    const writer = this.datagramWriter(link);
    // Unreliable data is never queued behind congestion: stale state is worse than lost state. A small backlog
    // beyond the transport's high-water mark (often 1) absorbs bursts written in one tick. What counts is the
    // datagrams (bundles) this turn will write, not the messages in them.
    const datagrams = link.dgramGroups.length + this.packDatagrams(link, frames, max, true);
    if (writer.desiredSize !== null && writer.desiredSize - datagrams < -this.opts.datagramBacklog) {
      this.drop('congestion', info);
      return false;
    }
    if (this.budget && !this.budget.take(total, this.clock.now())) {
      this.drop('budget', info);
      return false;
    }
    this.queueDatagrams(link, frames);
    this.countOut(ch.name, msg.payload.length);
    return true;
  }

  private datagramWriter(link: Link): WritableStreamDefaultWriter<Uint8Array> {
    if (!link.datagramWriter) link.datagramWriter = link.session.datagrams.writable.getWriter();
    return link.datagramWriter;
  }

  /**
   * Adds bodies to the turn's datagrams, first fit into the last one, in order (so a sequenced channel's bodies
   * keep their order on the wire); returns how many datagrams it opened. `dryRun` only counts.
   */
  private packDatagrams(link: Link, bodies: Uint8Array[], max: number, dryRun: boolean): number {
    let opened = 0;
    let size = link.dgramLastSize;
    let count = link.dgramGroups.at(-1)?.length ?? 0;
    for (const b of bodies) {
      const entry = BUNDLE_ENTRY_OVERHEAD + b.length;
      if (count === 0 || count >= MAX_BUNDLE_COUNT || size + entry > max) {
        opened++;
        size = BUNDLE_OVERHEAD + entry;
        count = 1;
        if (!dryRun) link.dgramGroups.push([b]);
      } else {
        size += entry;
        count++;
        if (!dryRun) link.dgramGroups[link.dgramGroups.length - 1].push(b);
      }
    }
    if (!dryRun) link.dgramLastSize = size;
    return opened;
  }

  /**
   * Queues bodies for this turn's datagrams and makes sure they are written once the turn's code is done. `now`
   * writes at once what the turn has so far, the bodies included: a heartbeat probe carries a timestamp, and RTT is
   * measured from it, so it must not wait; whatever the turn sent before it rides along in its bundle.
   */
  private queueDatagrams(link: Link, bodies: Uint8Array[], now = false): void {
    this.packDatagrams(link, bodies, link.session.datagrams.maxDatagramSize, false);
    if (now) {
      this.flushDatagrams(link);
      return;
    }
    if (link.dgramFlushScheduled) return;
    link.dgramFlushScheduled = true;
    queueMicrotask(() => {
      link.dgramFlushScheduled = false;
      this.flushDatagrams(link);
    });
  }

  /** One write per packed group: a lone body goes out as is, several as a BUNDLE. */
  private flushDatagrams(link: Link): void {
    const groups = link.dgramGroups;
    if (groups.length === 0) return;
    link.dgramGroups = [];
    link.dgramLastSize = 0;
    const writer = this.datagramWriter(link);
    for (const g of groups) writer.write(bundleFrame(g)).catch(() => {});
  }

  private enqueue(ch: ChannelState, msg: OutMsg): void {
    if (ch.overflow === 'coalesce') {
      const i = ch.queue.findIndex((m) => m.key === msg.key);
      if (i >= 0) {
        const old = ch.queue[i];
        ch.queue[i] = msg;
        ch.queuedBytes += msg.size - old.size;
        this.drop('coalesced', { message: old.name, channel: ch.name, bytes: old.payload.length });
        this.pump();
        return;
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
        this.fail(new QueueFullError(`channel '${ch.name}' queue overflowed`));
        return;
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
    this.pump();
  }

  private windowHasRoom(msg: OutMsg): boolean {
    if (this.windowCount === 0) return true;
    return (
      this.windowBytes + msg.size <= this.opts.maxInFlightBytes &&
      this.windowCount < this.opts.maxInFlightMessages
    );
  }

  private writerReady(link: Link, ch: ChannelState): boolean {
    if (ch.mode === 'reliable-unordered') return link.unorderedOpen < 16;
    let w = link.writers.get(ch.name);
    if (!w) {
      w = { writer: null, waiting: false };
      link.writers.set(ch.name, w);
      const entry = w;
      link.session.createUnidirectionalStream().then(
        (ws) => {
          if (link.closed) {
            ws.abort().catch(() => {});
            return;
          }
          entry.writer = ws.getWriter();
          for (const c of streamFrame([Kind.OPEN, ch.id])) entry.writer.write(c).catch(() => {});
          this.pump();
        },
        () => {},
      );
      return false;
    }
    if (!w.writer) return false;
    if (w.writer.desiredSize !== null && w.writer.desiredSize <= 0) {
      if (!w.waiting) {
        w.waiting = true;
        w.writer.ready.then(
          () => {
            w.waiting = false;
            this.pump();
          },
          () => {},
        );
      }
      return false;
    }
    return true;
  }

  private pickChannel(link: Link): ChannelState | undefined {
    let best: ChannelState | undefined;
    for (const ch of this.channels.values()) {
      if (!ch.reliable) continue;
      const head = ch.retransmit[0] ?? ch.queue[0];
      if (!head) continue;
      if (ch.retransmit.length === 0 && !this.windowHasRoom(head)) continue;
      if (!this.writerReady(link, ch)) continue;
      if (!best) best = ch;
      else if (this.opts.scheduler === 'strict') {
        if (ch.priority > best.priority || (ch.priority === best.priority && ch.served < best.served))
          best = ch;
      } else if (Math.max(ch.vtime, this.vnow) < Math.max(best.vtime, this.vnow)) best = ch;
    }
    return best;
  }

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
        ch.queue.shift();
        ch.queuedBytes -= msg.size;
        msg.seq = ch.nextSeq++;
        ch.window.push(msg);
        this.windowBytes += msg.size;
        this.windowCount++;
        this.countOut(ch.name, msg.payload.length);
      }
      // Weighted fair share (start-time fair queueing): a channel's virtual time advances inversely to its weight;
      // one that was idle restarts from the current virtual time instead of claiming the share it did not use.
      ch.vtime = Math.max(ch.vtime, this.vnow);
      this.vnow = ch.vtime;
      ch.vtime += msg.size / Math.max(ch.priority, 1e-3);
      ch.served = ++this.servedCounter;
      const header = [Kind.DATA, this.wireId(msg.name), msg.seq, msg.flags];
      if (ch.mode === 'reliable-ordered') {
        const w = link.writers.get(ch.name)!.writer!;
        for (const c of streamFrame(header, msg.payload)) w.write(c).catch(() => {});
      } else {
        link.unorderedOpen++;
        link.session.createUnidirectionalStream().then(
          async (ws) => {
            const w = ws.getWriter();
            try {
              for (const c of streamFrame([Kind.OPEN, ch.id])) w.write(c).catch(() => {});
              for (const c of streamFrame(header, msg.payload)) w.write(c).catch(() => {});
              await w.close();
            } catch {
              // The link died; the message stays in the replay window.
            } finally {
              link.unorderedOpen--;
              this.pump();
            }
          },
          () => {
            link.unorderedOpen--;
          },
        );
      }
    }
  }

  private servedCounter = 0;
  private pingSeq = 0;
  /** Start-time fair queueing's virtual time: the start tag of the message served last. */
  private vnow = 0;

  // ---- links ------------------------------------------------------------------------------------------------

  protected localTables(): Omit<HandshakeTables, 'acks'> {
    const messages = this.registry.table();
    this.announced = new Map(messages);
    return {
      messages,
      channels: [...this.channels.values()].map((c) => [c.name, c.id, c.mode]),
    };
  }

  protected localAcks(): [string, number][] {
    return [...this.recv.values()].map((r) => [r.name, r.tracker.cum]);
  }

  /** Starts using `session` after a completed handshake. `peer` is what the other end announced. */
  protected attach(
    session: QuiverSession,
    control: ControlStream,
    peer: HandshakeTables,
    resumed: boolean,
  ): void {
    control.useBudget(this.incoming, this.opts.maxMessageBytes + 64);
    const link = new Link(session, control, this.clock.now());
    this.link = link;
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
    const acked = new Map<string, number>();
    for (const [name, cum] of peer.acks ?? []) acked.set(name, cum);
    for (const ch of this.channels.values()) {
      if (!ch.reliable) continue;
      if (resumed) {
        this.ackChannel(ch, acked.get(ch.name) ?? 0);
        // The rest was sent on the dead link and maybe lost with it: send it again, first, in order.
        ch.retransmit = [...ch.window];
      } else {
        for (const m of ch.window) this.drop('session-lost', { message: m.name, channel: ch.name });
        this.windowBytes -= ch.window.reduce((n, m) => n + m.size, 0);
        this.windowCount -= ch.window.length;
        ch.window = [];
        ch.retransmit = [];
        ch.nextSeq = 1;
      }
    }
    if (!resumed) {
      for (const r of this.recv.values()) {
        r.tracker = new ReceiveTracker();
        r.lastSeq = 0;
      }
    }
    this.runControl(link);
    this.runUni(link);
    this.runDatagrams(link);
    this.runBidi(link);
    session.closed.then(
      (info) => this.onTransportClosed(link, info?.closeCode ?? 0, info?.reason ?? ''),
      (err) => this.onTransportClosed(link, 0, String((err as Error)?.message ?? err)),
    );
    this.scheduleHeartbeat(link, true);
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
    if (this.link === link) this.link = null;
    this.clock.clearTimeout(link.heartbeatTimer);
    this.clock.clearTimeout(link.ackTimer);
    this.clock.clearTimeout(link.budgetTimer);
    link.control.cancel().catch(() => {});
    for (const r of link.readers) r.cancel().catch(() => {});
    for (const w of link.writers.values()) w.writer?.releaseLock();
    // Datagrams already accepted (and counted out) this turn still go, before the writer is let go.
    if (link.dgramGroups.length > 0) this.flushDatagrams(link);
    link.datagramWriter?.releaseLock();
    for (const ch of this.channels.values()) ch.retransmit = [];
  }

  /** Closes the current link deliberately, telling the peer whether it may resume. */
  protected async closeLink(code: number, reason: string, reconnect: boolean): Promise<void> {
    const link = this.link;
    if (!link || link.closed) return;
    this.flushAcks(link);
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

  private onError(link: Link, err: unknown): void {
    if (link.closed) return;
    if (err instanceof SessionError) this.fail(err);
    // A read that failed because the transport session closed is the link going away, not an error: `closed`
    // of the transport reports it (and the read may lose that race).
    else if ((err as { source?: unknown })?.source === 'session') return;
    else this.reportError(err as Error);
  }

  private async runControl(link: Link): Promise<void> {
    try {
      for (;;) {
        const frame = await link.control.next();
        if (link.closed) return;
        if (!frame) return; // the transport's close will follow
        link.lastReceived = this.clock.now();
        this.handleControl(link, frame, false);
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
    const frames = this.incoming.reader(this.opts.maxMessageBytes + 64);
    let ch: RecvChannel | undefined;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (link.closed) return;
        if (done) {
          if (frames.pending > 0) throw new DecodeError('stream ended inside a frame');
          return;
        }
        link.lastReceived = this.clock.now();
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
          this.receiveReliable(link, ch, seq, header[1], header[3], payload);
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
        link.lastReceived = this.clock.now();
        // Charged before anything is decoded: a flood of datagrams costs the peer its budget, not the server CPU.
        this.incoming.charge(value.length, 1);
        let frame: Frame;
        let bodies: Uint8Array[] | null = null;
        try {
          frame = parseBody(value);
          if (frame.header[0] === Kind.BUNDLE) bodies = unbundle(frame);
        } catch {
          this.drop('malformed', {});
          continue;
        }
        // A bundled body counts as a message of its own, as it would had it come alone (only split, not decoded).
        if (bodies) this.incoming.charge(0, bodies.length - 1);
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
            this.drop('malformed', {});
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
      this.handleControl(link, frame, true);
      return;
    }
    if (h[0] !== Kind.DGRAM) {
      this.drop('malformed', {});
      return;
    }
    const ch = this.peerChannels.get(h[1] as number);
    if (!ch) throw new UnknownMessageError(`unknown channel id ${String(h[1])}`);
    let payload: Uint8Array | undefined = frame.payload;
    const now = this.clock.now();
    this.reassembler.expire(now);
    if (h.length >= 8) {
      payload = this.reassembler.add(`${h[1]}:${h[5]}`, h[6] as number, h[7] as number, payload, now);
      if (!payload) return;
      if (payload.length > this.opts.maxMessageBytes) {
        throw new MessageTooLargeError(
          'reassembled message too large',
          payload.length,
          this.opts.maxMessageBytes,
        );
      }
    }
    if (ch.mode === 'unreliable-sequenced') {
      const seq = h[3] as number;
      if (typeof seq !== 'number' || seq <= ch.lastSeq) {
        this.drop('stale', { channel: ch.name });
        return;
      }
      ch.lastSeq = seq;
    }
    this.deliver(ch.name, h[2], h[4], payload);
  }

  private receiveReliable(
    link: Link,
    ch: RecvChannel,
    seq: number,
    wire: unknown,
    flags: unknown,
    payload: Uint8Array,
  ): void {
    const chState = this.channels.get(ch.name);
    const dedupe = chState ? chState.dedupe : true;
    const fresh = ch.tracker.accept(seq);
    if (ch.tracker.outOfOrder > this.opts.maxOutOfOrder) {
      throw new DecodeError(`more than ${this.opts.maxOutOfOrder} out-of-order messages on '${ch.name}'`);
    }
    ch.ackDirty = true;
    this.scheduleAck(link);
    if (!fresh && dedupe) {
      this.drop('duplicate', { channel: ch.name });
      return;
    }
    this.deliver(ch.name, wire, flags, payload);
  }

  private deliver(channel: string, wire: unknown, flags: unknown, bytes: Uint8Array): void {
    let name: string | undefined;
    if (typeof wire === 'number') name = this.peerMessages.get(wire);
    else if (typeof wire === 'string') name = wire;
    if (name === undefined) throw new UnknownMessageError(`unknown message id ${String(wire)}`);
    const type = this.knownType(name);
    if (!type && this.strictMessages) throw new UnknownMessageError(`unknown message '${name}'`);
    const payload =
      typeof flags === 'number' && flags & FLAG_RAW ? bytes : decodeValue(bytes, this.opts.maxDepth);
    this.validateIncoming(name, channel, payload, type);
    this.lastActivity = this.clock.now();
    this.stats.messagesIn[channel] = (this.stats.messagesIn[channel] ?? 0) + 1;
    this.stats.bytesIn[channel] = (this.stats.bytesIn[channel] ?? 0) + bytes.length;
    this.sink?.message(channel, 'in', bytes.length);
    if (!this.dispatch(name, payload)) this.drop('unhandled', { message: name, channel });
  }

  /** The local definition of a message name, if this end knows it. */
  protected knownType(name: string): MessageType | undefined {
    return this.registry.get(name);
  }

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

  private handleControl(link: Link, frame: Frame, viaDatagram: boolean): void {
    const h = frame.header;
    const now = this.clock.now();
    switch (h[0]) {
      case Kind.PING: {
        const pong = [Kind.PONG, h[1], h[2], now];
        if (viaDatagram) {
          // Probes are tiny and rare: they are written even when the datagram queue is momentarily full, and ride
          // this turn's bundle rather than costing a datagram write of their own.
          this.queueDatagrams(link, [datagramFrame(pong)], true);
        } else link.control.write(pong);
        return;
      }
      case Kind.PONG: {
        const id = h[1] as number;
        const sentAt = link.pings.get(id);
        if (sentAt === undefined || sentAt !== h[2]) return;
        link.pings.delete(id);
        this.lossEst.answered(id);
        const sample = now - sentAt;
        this.rttEst.update(sample);
        this.sink?.rtt(sample);
        if (typeof h[3] === 'number') this.clockSync.add(sentAt, h[3], now);
        return;
      }
      case Kind.ACK: {
        if (!Array.isArray(h[1])) throw new DecodeError('bad ACK');
        for (const entry of h[1] as unknown[]) {
          if (!Array.isArray(entry)) throw new DecodeError('bad ACK entry');
          const ch = this.channelsById.get(entry[0] as number);
          if (ch?.reliable && typeof entry[1] === 'number') this.ackChannel(ch, entry[1]);
        }
        this.pump();
        this.checkDrained();
        return;
      }
      case Kind.CLOSE: {
        const code = typeof h[1] === 'number' ? h[1] : 0;
        const reason = typeof h[2] === 'string' ? h[2] : '';
        const reconnect = h[3] === true;
        this.detach(link);
        try {
          link.session.close({ closeCode: code, reason });
        } catch {
          // already closed
        }
        this.peerClosed(code, reason, reconnect);
        return;
      }
      default:
        this.onControlFrame(link, frame);
    }
  }

  /** Control frames other than the shared ones (the subclasses' handshake frames). */
  protected onControlFrame(_link: Link, frame: Frame): void {
    throw new DecodeError(`unexpected control frame kind ${String(frame.header[0])}`);
  }

  /** The peer sent CLOSE. */
  protected abstract peerClosed(code: number, reason: string, reconnect: boolean): void;

  private ackChannel(ch: ChannelState, cum: number): void {
    let n = 0;
    while (n < ch.window.length && ch.window[n].seq <= cum) {
      this.windowBytes -= ch.window[n].size;
      this.windowCount--;
      n++;
    }
    if (n > 0) ch.window.splice(0, n);
  }

  private pendingAcks = 0;

  private scheduleAck(link: Link): void {
    if (++this.pendingAcks >= this.opts.ackEvery) {
      this.flushAcks(link);
      return;
    }
    if (link.ackTimer === undefined) {
      link.ackTimer = this.clock.setTimeout(() => {
        link.ackTimer = undefined;
        this.flushAcks(link);
      }, this.opts.ackDelayMs);
    }
  }

  private flushAcks(link: Link): void {
    this.pendingAcks = 0;
    if (link.ackTimer !== undefined) {
      this.clock.clearTimeout(link.ackTimer);
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

  // ---- heartbeats -------------------------------------------------------------------------------------------

  private scheduleHeartbeat(link: Link, immediate = false): void {
    const now = this.clock.now();
    const hb = this.opts.heartbeat;
    const idle = now - this.lastActivity > hb.idleAfterMs;
    link.heartbeatTimer = this.clock.setTimeout(
      () => this.heartbeat(link),
      immediate ? 0 : idle ? hb.idleIntervalMs : hb.intervalMs,
    );
  }

  private heartbeat(link: Link): void {
    if (link.closed) return;
    const now = this.clock.now();
    if (now - link.lastReceived > this.opts.heartbeat.timeoutMs) {
      this.closeLink(CloseCode.HEARTBEAT_TIMEOUT, 'heartbeat timeout', true);
      this.linkLost(CloseCode.HEARTBEAT_TIMEOUT, 'heartbeat timeout');
      return;
    }
    this.lossEst.expire(now);
    this.reassembler.expire(now);
    for (const [id, at] of link.pings) if (now - at > this.opts.heartbeat.timeoutMs) link.pings.delete(id);
    // Ids are per session, not per link: a late answer from an old link must not match a new probe.
    const id = ++this.pingSeq;
    link.pings.set(id, now);
    this.stats.pings++;
    const ping = [Kind.PING, id, now];
    if (link.session.reliability === 'supports-unreliable') {
      // Probes ride datagrams where datagrams can be lost, so that unanswered ones measure loss.
      this.lossEst.sent(id, now + Math.max(2 * this.rttEst.rto(), 1000));
      this.queueDatagrams(link, [datagramFrame(ping)], true);
    } else {
      link.control.write(ping);
    }
    this.scheduleHeartbeat(link);
  }
}
