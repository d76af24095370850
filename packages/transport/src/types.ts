/**
 * The one session shape every layer above the transport sees.
 *
 * It is the W3C WebTransport interface (https://www.w3.org/TR/webtransport/) reduced to what Quiver
 * uses, so that a browser's native `WebTransport` object satisfies {@link WebTransportLike} as it is.
 * Every Quiver transport (memory, WebSocket, WebTransport over HTTP/3, ...) implements the richer
 * {@link QuiverSession}, which adds a name, a reliability class and transport statistics.
 */

/** W3C WebTransport §6.3 `WebTransportCloseInfo`. */
export interface WebTransportCloseInfo {
  /** An application error code, 0 to 2^32 - 1. */
  closeCode?: number;
  /** UTF-8, at most 1024 bytes on the wire (W3C WebTransport §6.3). */
  reason?: string;
}

/** W3C WebTransport §7 `WebTransportBidirectionalStream`. */
export interface QuiverBidirectionalStream {
  /** Bytes from the peer, in order; ends when the peer finishes its side, errors when it resets it. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Bytes to the peer, delivered reliably and in order; `close()` finishes the stream, `abort()` resets it. */
  readonly writable: WritableStream<Uint8Array>;
}

/** W3C WebTransport §5 `WebTransportDatagramDuplexStream`. */
export interface QuiverDatagramDuplexStream {
  /** Datagrams from the peer, one chunk per datagram; may miss, reorder or repeat them (see `reliability`). */
  readonly readable: ReadableStream<Uint8Array>;
  /** Datagrams to the peer, one chunk per datagram; a write never blocks on the network, drops are counted. */
  readonly writable: WritableStream<Uint8Array>;
  /** The largest payload that `writable` accepts; larger writes are dropped and counted as `too-large`. */
  readonly maxDatagramSize: number;
  /**
   * Quiver extension, optional (a browser's native `WebTransport` has none): how long a datagram written now would
   * wait before it reaches the peer beyond the path's base delay. Senders of state use it to drop what would arrive
   * too late instead of queueing it (see `@quiver/transport` README, "Send estimate").
   */
  sendEstimate?(): DatagramSendEstimate;
  /**
   * W3C WebTransport §5 `outgoingMaxAge` (ms): datagrams that waited longer in the outgoing queue are dropped
   * (counted `expired`). Present where the platform implements it (browsers' native WebTransport); Quiver's own
   * transports give a `sendEstimate()` instead.
   */
  outgoingMaxAge?: number | null;
}

/** What `datagrams.sendEstimate()` reports. */
export interface DatagramSendEstimate {
  /** Bytes written and still waiting in the transport's own send queue. */
  queuedBytes: number;
  /** The rate that queue drains at, in bytes per second (measured, else derived from the congestion window); 0 when unknown. */
  sendRate: number;
  /** Queueing delay beyond the transport (socket buffers, the network), from RTT above the minimum RTT, in ms. */
  networkQueueMs: number;
  /** `queuedBytes / sendRate` plus `networkQueueMs`, in ms; `Infinity` when the queue holds bytes and nothing drains. */
  delayMs: number;
}

/** What a browser's native `WebTransport` already offers (no Quiver additions). */
export interface WebTransportLike {
  /** Resolves once the session is established; rejects if establishment fails (W3C WebTransport §6.1). */
  readonly ready: Promise<void>;
  /** Resolves with the close code and reason when the session closes cleanly; rejects when it is lost. */
  readonly closed: Promise<WebTransportCloseInfo>;
  /** Closes the session with an application code and reason (W3C WebTransport §6.4); idempotent. */
  close(closeInfo?: WebTransportCloseInfo): void;
  /** Opens a stream in both directions; rejects once the session is closed. */
  createBidirectionalStream(): Promise<QuiverBidirectionalStream>;
  /** Opens a send-only stream; rejects once the session is closed. */
  createUnidirectionalStream(): Promise<WritableStream<Uint8Array>>;
  /** Bidirectional streams the peer opened, in the order they arrived. */
  readonly incomingBidirectionalStreams: ReadableStream<QuiverBidirectionalStream>;
  /** Receive-only streams the peer opened, in the order they arrived. */
  readonly incomingUnidirectionalStreams: ReadableStream<ReadableStream<Uint8Array>>;
  /** Unreliable, unordered messages of at most `datagrams.maxDatagramSize` bytes. */
  readonly datagrams: QuiverDatagramDuplexStream;
}

/**
 * `supports-unreliable`: datagrams may be lost, reordered or duplicated by the network (QUIC datagrams, the
 * memory transport's link model). `reliable-only`: datagrams ride on a reliable, ordered carrier and are only
 * ever lost by an explicit drop policy, which is counted (W3C WebTransport §6.1 `reliability`).
 */
export type TransportReliability = 'supports-unreliable' | 'reliable-only';

/** Why a datagram was dropped. Every drop is counted under one of these. */
export type DatagramDropReason =
  /** Larger than `maxDatagramSize`. */
  | 'too-large'
  /** The sender's queue or the carrier's buffer was above its high-water mark. */
  | 'congestion'
  /** Arrived while the application's readable queue was full. */
  | 'receive-queue-full'
  /** Waited longer than the outgoing max age before it could be sent. */
  | 'expired'
  /** Lost by the (emulated or real) network. Counted only where the transport can know it. */
  | 'lost'
  /** Written after the session closed. */
  | 'closed'
  /** Malformed on the wire (for example an unknown session id). */
  | 'malformed';

/** Datagram counters of a session's `getStats()`. */
export interface DatagramStats {
  /** Datagrams handed to the wire. */
  sent: number;
  /** Datagrams delivered to the application. */
  received: number;
  /** Outgoing datagrams dropped before reaching the wire, by reason. */
  droppedOutgoing: Partial<Record<DatagramDropReason, number>>;
  /** Incoming datagrams dropped before reaching the application, by reason. */
  droppedIncoming: Partial<Record<DatagramDropReason, number>>;
}

/** What a session's `getStats()` reports (shaped like W3C WebTransport's `WebTransportConnectionStats`). */
export interface TransportStats {
  /** Milliseconds since the epoch of the clock the transport uses. */
  timestamp: number;
  /** RFC 9002 §5.3 smoothed RTT in milliseconds; 0 until a sample exists. */
  smoothedRtt: number;
  /** RFC 9002 §5.3 rttvar in milliseconds. */
  rttVariation: number;
  /** RFC 9002 §5.2 min_rtt in milliseconds. */
  minRtt: number;
  /** Bytes sent on the wire, headers included where the transport knows them. */
  bytesSent: number;
  /** Bytes received from the wire. */
  bytesReceived: number;
  /** Packets (QUIC) or frames (WebSocket, memory) sent. */
  packetsSent: number;
  /** Packets or frames received. */
  packetsReceived: number;
  /** Packets the transport knows it lost (QUIC loss detection); 0 where it cannot know. */
  packetsLost: number;
  /** Packets retransmitted (QUIC); absent where the transport leaves retransmission to TCP. */
  packetsRetransmitted?: number;
  /** The congestion controller's window in bytes (QUIC); absent where the kernel's TCP holds it. */
  congestionWindow?: number;
  /** The congestion controller's delivery rate estimate, what pacing follows, in bytes per second (QUIC). */
  deliveryRate?: number;
  /** Datagram counters. */
  datagrams: DatagramStats;
}

/** Which transport carries a session; the built-in names, or any other a third-party transport chooses. */
export type TransportName = 'memory' | 'websocket' | 'webtransport' | 'http2-webtransport' | (string & {});

/** The session every layer above the transport sees. */
export interface QuiverSession extends WebTransportLike {
  /** Which transport carries this session. */
  readonly transport: TransportName;
  /** Whether datagrams can be lost by the network or only by a counted drop policy. */
  readonly reliability: TransportReliability;
  /** Transport statistics; async like W3C WebTransport `getStats()`. */
  getStats(): Promise<TransportStats>;
}

/** What the server knows of a session request before the session exists. */
export interface SessionRequest {
  /** Which transport the request arrived on. */
  readonly transport: TransportName;
  /** Path without the query string, e.g. `/game`. */
  readonly path: string;
  /** Path with the query string, e.g. `/game?token=abc`. */
  readonly url: string;
  /** The parsed query string of `url` (empty when there is none). */
  readonly query: URLSearchParams;
  /** Lower-case header names; pseudo-headers (`:authority`, ...) included where the protocol has them. */
  readonly headers: Readonly<Record<string, string>>;
  /** The `origin` request header; `undefined` when the client sent none (non-browser clients). */
  readonly origin: string | undefined;
  /** The peer's IP address as the socket reports it (not taken from any header). */
  readonly remoteAddress: string;
  /** The peer's UDP (QUIC) or TCP (WebSocket) port. */
  readonly remotePort: number;
}

/**
 * A request waiting for the application's verdict. Exactly one of `accept` or `reject` must be called; a
 * listener rejects requests left undecided for longer than its `requestTimeoutMs` with 408.
 */
export interface IncomingSession {
  /** What the peer asked for, to decide on before calling `accept` or `reject`. */
  readonly request: SessionRequest;
  /** Completes establishment (WebTransport: a 200 response; WebSocket: the upgrade) and returns the session. */
  accept(): QuiverSession;
  /** Refuses with an HTTP status (e.g. 401, 403, 404, 429, 503) and a reason; no session is created. */
  reject(status: number, reason?: string): void;
}

/** The server end of a transport: yields session requests. */
export interface TransportListener {
  /** Which transport this listener serves. */
  readonly transport: TransportName;
  /** One entry per establishment attempt, before the session exists: the place where authentication hooks in. */
  readonly incomingSessions: ReadableStream<IncomingSession>;
  /** The bound address (port resolved when 0 was asked for). */
  readonly address: {
    /** The bound host or IP address. */
    host: string;
    /** The bound port. */
    port: number;
  };
  /**
   * Stops accepting, closes every session (close code 0 unless given) and releases sockets and timers. Resolves
   * when all are released.
   */
  close(closeInfo?: WebTransportCloseInfo): Promise<void>;
}

/** Options every client connector understands; transports may accept more. */
export interface ConnectOptions {
  /**
   * W3C WebTransport §6.2: accept a self-signed certificate by its SHA-256 hash (WebTransport only). `value` is a
   * `BufferSource`, spelled out so that Node apps need no DOM lib.
   */
  serverCertificateHashes?: {
    /** The only algorithm W3C WebTransport §6.2 allows. */
    algorithm: 'sha-256';
    /** The 32-byte SHA-256 digest of the certificate's DER encoding. */
    value: ArrayBuffer | ArrayBufferView<ArrayBuffer>;
  }[];
  /** Milliseconds before `ready` rejects and the attempt is abandoned. */
  connectTimeoutMs?: number;
  /** Extra request headers where the platform allows them (not in browsers). */
  headers?: Record<string, string>;
  /** Aborting it before `ready` resolves abandons the attempt and rejects `ready`; later aborts are ignored. */
  signal?: AbortSignal;
}

/** A client connector: `url` is `https://host:port/path?query` (WebSocket transports map it to `wss:`/`ws:`). */
export type Connector = (url: string, options?: ConnectOptions) => QuiverSession;
