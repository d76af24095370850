import type { Clock } from './clock.js';
import type { DeliveryMode, MessageType, QoS } from './messages.js';
import { DEFAULT_MAX_DEPTH, MAX_DEPTH_LIMIT } from './msgpack.js';
import type { ReassemblyOptions } from './reassembly.js';
import type { SessionTracer } from './tracing.js';

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
  /**
   * Receiving: an unreliable-sequenced message older than one already delivered. Sending: an unreliable message
   * that would have arrived more than `maxUnreliableAgeMs` after `send()` (the transport's queue was too long), or a
   * held sequenced message replaced by a newer one with the same key.
   */
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

/** What is known about a dropped message; fields are absent where the drop happens before they are known. */
export interface DropInfo {
  /** The message type's name. */
  message?: string;
  /** The channel's name. */
  channel?: string;
  /** Encoded size of the dropped message in bytes. */
  bytes?: number;
}

/** How one channel delivers its messages: reliability, ordering, priority and queue limits. */
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

/** Liveness probing: pings also give RTT samples, and silence beyond `timeoutMs` ends the connection. */
export interface HeartbeatOptions {
  /** Ping interval while messages flow. Default 1000 ms. */
  intervalMs?: number;
  /** Ping interval after `idleAfterMs` without application messages. Default 5000 ms. */
  idleIntervalMs?: number;
  /** Time without application messages after which pings slow to `idleIntervalMs`. Default 10 000 ms. */
  idleAfterMs?: number;
  /** The connection is considered dead after this long without receiving anything. Default 15 000 ms. */
  timeoutMs?: number;
  /**
   * Client: a path is suspected dead when nothing arrived for four RTOs (`4 × min(SRTT + 4 × RTTVAR, 2 × latest
   * RTT)`, RFC 6298), never less than this nor more than five times it, while the server owed an acknowledgement or
   * a probe answer, and again as long after a probe sent then; the client then races a reconnect (resuming the
   * session) while it keeps using the old link. Both ends also watch for acknowledgements that stop while the peer
   * still answers probes (a stream stalled inside the transport): the client races the same reconnect, the server
   * closes the link with 4440 so that the client resumes. Default 600 ms; 0 turns both off (only `timeoutMs` ends
   * a link).
   */
  suspectAfterMs?: number;
}

/** Options both ends of a session understand (the client and server options extend them). */
export interface PeerOptions {
  /** Channels by name, added to (or overriding) {@link defaultChannels}. */
  channels?: Record<string, ChannelOptions>;
  /** Message types known up front: their ids are announced at the handshake. */
  messages?: MessageType<unknown>[];
  /** Time and timers (default the system clock); tests inject a ManualClock. */
  clock?: Clock;
  /** Ping cadence and dead-connection timeout; each field has its default. */
  heartbeat?: HeartbeatOptions;
  /** A cumulative ack is sent after this delay or after `ackEvery` messages. Default 20 ms. */
  ackDelayMs?: number;
  /** Reliable messages received after which a cumulative ack is sent at once. Default 32. */
  ackEvery?: number;
  /**
   * Reliable bytes in flight (sent, not yet acknowledged) across channels: the replay buffer kept for resumption and
   * the flow-control window. Default 256 KiB.
   */
  maxInFlightBytes?: number;
  /** Reliable messages in flight (sent, not yet acknowledged) across channels. Default 1024. */
  maxInFlightMessages?: number;
  /** Outgoing send budget: a token bucket in bytes. Default unlimited. */
  sendBudget?: {
    /** Refill rate of the bucket, in bytes per second. */
    bytesPerSecond: number;
    /** Bucket size: the largest burst, in bytes. Default `bytesPerSecond` (one second's worth). */
    burstBytes?: number;
  };
  /** Cross-channel scheduler for reliable queues: `strict` priority or `weighted` fair share. Default `strict`. */
  scheduler?: 'strict' | 'weighted';
  /** Largest message accepted or sent, in bytes (after encoding). Default 1 MiB. */
  maxMessageBytes?: number;
  /** Limits on fragments of unreliable messages waiting to be reassembled. */
  reassembly?: ReassemblyOptions;
  /**
   * Datagrams an unreliable send may queue beyond the transport's datagram high-water mark; past it, sends are
   * dropped as `congestion`. Default 32 (a fragmented message is written as one burst). A browser page moves
   * about one datagram per event-loop turn into its QUIC stack (Chromium 156 resolves each datagram write in a
   * main-thread task), so on a busy page a deep backlog is stale input waiting for frames: lower it there. What
   * is counted is datagram writes: the messages of one turn are packed into as few datagrams as fit (BUNDLE).
   */
  datagramBacklog?: number;
  /**
   * Unreliable messages that would arrive later than this many ms after `send()` are not sent: when the transport's
   * `datagrams.sendEstimate()` says a datagram would wait longer, the message is held and sent once it can still
   * arrive in time (newest first, one per key on sequenced channels), else dropped and counted as `stale`. For
   * game state an old position is worse than none. Default 100 (two ticks at 20 Hz); 0 disables (transports
   * without an estimate, like the memory transport, are never held). A browser's native WebTransport has no
   * estimate; its W3C `datagrams.outgoingMaxAge` is set to this value instead (W3C WebTransport §5).
   */
  maxUnreliableAgeMs?: number;
  /**
   * Bytes of unreliable messages held for `maxUnreliableAgeMs` at most; beyond it the oldest held are dropped as
   * `stale`. Default 256 KiB.
   */
  maxHeldUnreliableBytes?: number;
  /** Out-of-order reliable messages held per channel before the peer is considered broken. Default 4096. */
  maxOutOfOrder?: number;
  /**
   * Nesting depth of arrays and maps accepted in a received MessagePack payload; deeper is a `DecodeError` (4400).
   * Default 32, at most 1000 (the decoder recurses once per level). (Lengths need no option: a payload of n bytes
   * never allocates more than n entries.)
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
  /**
   * Traces messages and the session's establishment (see `@quiver/session/otel`, `otelTracing()`). Default none:
   * nothing is traced and nothing is added to the wire.
   */
  tracing?: SessionTracer;
}

/** Per-call options of `send()`. */
export interface SendOptions {
  /** The channel to send on; default the message type's channel, else `reliable`. */
  channel?: string;
  /** Coalescing key (`coalesce` channels); default the message name. */
  key?: unknown;
}

/** A session's counters since it was created. */
export interface PeerStats {
  /** Messages received, by channel name. */
  messagesIn: Record<string, number>;
  /** Messages sent, by channel name. */
  messagesOut: Record<string, number>;
  /** Encoded bytes received, by channel name. */
  bytesIn: Record<string, number>;
  /** Encoded bytes sent, by channel name. */
  bytesOut: Record<string, number>;
  /** Messages dropped, by reason. */
  drops: Partial<Record<DropReason, number>>;
  /** Heartbeat probes sent. */
  pings: number;
  /** Received trace contexts that were malformed and ignored (the messages were delivered). */
  traceContextInvalid: number;
}

/** Receives counters as they happen (the server aggregates them into its metrics). */
export interface PeerSink {
  message(channel: string, direction: 'in' | 'out', bytes: number): void;
  drop(reason: DropReason): void;
  /** An RTT sample in ms, with the session's jitter (RTTVAR, ms) and heartbeat loss (0..1) as they are now. */
  rtt(ms: number, jitterMs: number, loss: number, transport: string | undefined): void;
  traceContextInvalid(): void;
}

/** A message handler: the decoded payload and the session it arrived on. */
export type Handler<T, S> = (payload: T, session: S) => void;

/** The options a peer reads while running, with their defaults (documented on `PeerOptions`) filled in. */
export type ResolvedPeerOptions = Required<
  Pick<
    PeerOptions,
    'ackDelayMs' | 'ackEvery' | 'maxInFlightBytes' | 'maxInFlightMessages' | 'maxMessageBytes'
  >
> & {
  heartbeat: Required<HeartbeatOptions>;
  scheduler: 'strict' | 'weighted';
  maxOutOfOrder: number;
  datagramBacklog: number;
  maxUnreliableAgeMs: number;
  maxHeldUnreliableBytes: number;
  maxDepth: number;
  maxReceiveBufferBytes: number;
};

export function resolvePeerOptions(options: PeerOptions): ResolvedPeerOptions {
  const hb = options.heartbeat ?? {};
  return {
    ackDelayMs: options.ackDelayMs ?? 20,
    ackEvery: options.ackEvery ?? 32,
    maxInFlightBytes: options.maxInFlightBytes ?? 256 * 1024,
    maxInFlightMessages: options.maxInFlightMessages ?? 1024,
    maxMessageBytes: options.maxMessageBytes ?? 1 << 20,
    scheduler: options.scheduler ?? 'strict',
    maxOutOfOrder: options.maxOutOfOrder ?? 4096,
    datagramBacklog: options.datagramBacklog ?? 32,
    maxUnreliableAgeMs: options.maxUnreliableAgeMs ?? 100,
    maxHeldUnreliableBytes: options.maxHeldUnreliableBytes ?? 256 * 1024,
    maxDepth: Math.min(options.maxDepth ?? DEFAULT_MAX_DEPTH, MAX_DEPTH_LIMIT),
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
      suspectAfterMs: hb.suspectAfterMs ?? 600,
    },
  };
}
