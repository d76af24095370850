/**
 * The contract between the sans-IO HTTP/3 + WebTransport core (`src/core/`) and the Node adapter on quiche
 * (`src/node/`). The core never touches sockets or timers: the adapter feeds it what QUIC delivered
 * (stream bytes, resets, stop-sendings, datagrams) and drains the commands it returns (stream writes, resets,
 * datagrams, connection close) and the events it raises (sessions, streams, data).
 *
 * Stream ids are QUIC stream ids (RFC 9000 §2.1) as JS numbers (quiche's binding uses numbers; 2^53 is far
 * beyond any stream count we allow). Session ids are the stream id of the extended CONNECT request stream
 * (draft-ietf-webtrans-http3 §4.2 / draft-02 §4.1).
 */

export type Role = 'client' | 'server';

/** A header field as it appears on the wire, lower-case name (RFC 9114 §4.2). */
export type HeaderField = readonly [name: string, value: string];

export interface H3Limits {
  /** SETTINGS_MAX_FIELD_SECTION_SIZE we advertise and enforce (RFC 9114 §4.2.2). Default 16 KiB. */
  maxFieldSectionSize: number;
  /** Largest HTTP/3 frame payload accepted on control and request streams, except DATA. Default 64 KiB. */
  maxFramePayload: number;
  /**
   * Concurrent WebTransport sessions per connection. Default 16 (client side: as offered by the peer). With a
   * current-draft peer the core advertises and allows 1 (its session flow control is not implemented).
   */
  maxSessions: number;
  /** Concurrent WebTransport streams per session, both directions. Default 1024. */
  maxStreamsPerSession: number;
  /** Bytes buffered for streams and datagrams whose session is not (yet) known (draft §4.6). Default 64 KiB. */
  maxBufferedUnknownSessionBytes: number;
  /** Largest capsule accepted on a CONNECT stream (RFC 9297 §3.2). Default 64 KiB. */
  maxCapsuleSize: number;
}

export interface H3ConnectionOptions {
  role: Role;
  limits?: Partial<H3Limits>;
  /** Extra SETTINGS to send (e.g. GREASE); the WebTransport settings are always sent. */
  extraSettings?: ReadonlyArray<readonly [id: bigint, value: bigint]>;
  /** Seed of the GREASE code points (setting id and value, reserved frame type). Default a fixed constant. */
  seed?: number;
}

/** Counters of what the core dropped or refused (every drop is counted) and current gauges. */
export interface H3Stats {
  /** Sessions currently requested, connecting or established. */
  sessions: number;
  datagramsReceived: number;
  datagramsSent: number;
  /** Datagrams whose quarter stream id could not be read (RFC 9297 §2.1). */
  datagramsDroppedMalformed: number;
  /** Datagrams for a session that ended, is unknown, or over the early-buffer budget (draft §4.6). */
  datagramsDroppedUnknownSession: number;
  /** `sendDatagram` calls on a session that had already ended. */
  datagramsDroppedClosedSession: number;
  /** `sendDatagram` calls while the peer's SETTINGS enable no HTTP Datagrams (RFC 9297 §2.1.1). */
  datagramsDroppedNotNegotiated: number;
  /** Streams reset with WT_BUFFERED_STREAM_REJECTED: their session was unknown and the budget full (draft §4.6). */
  streamsRejectedBufferFull: number;
  /** Streams reset with WT_SESSION_GONE because their session had ended (draft §6). */
  streamsRejectedSessionGone: number;
  /** Streams refused over `maxStreamsPerSession`. */
  streamsRejectedLimit: number;
  /** CONNECT requests refused with H3_REQUEST_REJECTED (session limit, after GOAWAY). */
  requestsRejected: number;
  /** Unidirectional streams of unknown or reserved type, stopped (RFC 9114 §6.2.3). */
  unknownStreamTypes: number;
  /** Payload bytes dropped on streams we refused, stopped or no longer track. */
  bytesDiscarded: number;
  /** Writes, resets or stop-sendings on WebTransport streams that had already ended (no-ops). */
  writesAfterClose: number;
  /** Stream-level protocol errors (`stream-error` events). */
  streamErrors: number;
  /** Bytes currently held for sessions not yet established, stream overhead included. */
  bufferedUnknownSessionBytes: number;
}

/** What the core asks the adapter to do with the QUIC connection. */
export type QuicCommand =
  /** Write to a stream; a stream id never used before opens that stream (RFC 9000 §2.1). */
  | { type: 'stream-write'; streamId: number; data: Uint8Array; fin: boolean }
  /** RESET_STREAM with an HTTP/3 wire error code (RFC 9000 §19.4). */
  | { type: 'stream-reset'; streamId: number; code: bigint }
  /** STOP_SENDING with an HTTP/3 wire error code (RFC 9000 §19.5). */
  | { type: 'stream-stop-sending'; streamId: number; code: bigint }
  /** Send a QUIC DATAGRAM frame (RFC 9221) with this payload (already prefixed with the quarter stream id). */
  | { type: 'datagram'; data: Uint8Array }
  /** Close the QUIC connection with an HTTP/3 application error code (RFC 9114 §8.1). */
  | { type: 'connection-close'; code: bigint; reason: string };

/** What the core tells the adapter happened. */
export type H3Event =
  /** The peer's SETTINGS arrived (RFC 9114 §7.2.4). */
  | {
      type: 'settings';
      settings: ReadonlyMap<bigint, bigint>;
      webTransportDraft: 'draft02' | 'current' | 'none';
    }
  /** Server: an extended CONNECT with `:protocol webtransport` (RFC 9220) awaiting acceptSession/rejectSession. */
  | { type: 'session-request'; sessionId: number; headers: HeaderField[] }
  /** Client: the server answered our CONNECT with 2xx. */
  | { type: 'session-established'; sessionId: number; status: number; headers: HeaderField[] }
  /**
   * Client: the server answered with a non-2xx status, or the request stream failed before a response (status 0:
   * reset, GOAWAY, a server without WebTransport SETTINGS, or a local `closeSession` before the response).
   */
  | { type: 'session-rejected'; sessionId: number; status: number; reason: string }
  /**
   * CLOSE_WEBTRANSPORT_SESSION received, or the CONNECT stream ended or was reset (draft §6); also raised once
   * for a local `closeSession` (`local: true`). Raised exactly once per session that was requested or
   * established; the core has already reset all of its streams (WT_SESSION_GONE) and raises nothing more for them.
   * `abrupt`: the CONNECT stream was reset or malformed rather than closed cleanly (W3C `closed` rejects).
   */
  | {
      type: 'session-closed';
      sessionId: number;
      code: number;
      reason: string;
      abrupt?: boolean;
      local?: boolean;
    }
  /** DRAIN_WEBTRANSPORT_SESSION received (draft §4.7). */
  | { type: 'session-draining'; sessionId: number }
  /** The peer opened a WebTransport stream in a session (after its signal: 0x41 bidi, 0x54 uni). */
  | { type: 'stream-opened'; sessionId: number; streamId: number; bidirectional: boolean }
  /** Payload bytes of a WebTransport stream (signal stripped). */
  | { type: 'stream-data'; streamId: number; data: Uint8Array; fin: boolean }
  /** The peer reset a WebTransport stream; `code` is the WebTransport application code (draft §4.4 mapping). */
  | { type: 'stream-reset'; streamId: number; code: number }
  /** The peer sent STOP_SENDING on a WebTransport stream; `code` is the WebTransport application code. */
  | { type: 'stream-stop-sending'; streamId: number; code: number }
  /** A WebTransport datagram for a session (quarter stream id stripped, RFC 9297 §2.1). */
  | { type: 'datagram'; sessionId: number; data: Uint8Array }
  /** GOAWAY received (RFC 9114 §5.2). */
  | { type: 'goaway'; id: bigint }
  /** A connection error: the core already queued a `connection-close` command. */
  | { type: 'connection-error'; code: bigint; reason: string }
  /** A stream-level protocol error on a non-WebTransport stream, counted; the core queued the reset. */
  | { type: 'stream-error'; streamId: number; code: bigint; reason: string }
  /** A datagram dropped by the core (unknown session, malformed), counted. */
  | { type: 'datagram-dropped'; reason: 'malformed' | 'unknown-session' };

/**
 * The sans-IO HTTP/3 + WebTransport connection. Methods that act return nothing; the adapter then calls
 * `drainCommands()` and `drainEvents()`. All inputs are validated; peer misbehaviour becomes a
 * `connection-error` or `stream-error` event with the matching command, never an exception. Local misuse
 * (e.g. writing to a stream that does not exist) throws.
 */
export interface H3Connection {
  readonly role: Role;
  /** Call once the QUIC handshake completed: queues the control stream, SETTINGS and QPACK streams. */
  start(): void;

  // --- input from QUIC ---
  receiveStreamData(streamId: number, data: Uint8Array, fin: boolean): void;
  /** The peer reset a stream (RESET_STREAM) with this wire code. */
  receiveStreamReset(streamId: number, code: bigint): void;
  /** The peer asked us to stop sending (STOP_SENDING) with this wire code. */
  receiveStopSending(streamId: number, code: bigint): void;
  receiveDatagram(data: Uint8Array): void;

  // --- client ---
  /** Sends an extended CONNECT; returns the session id. Streams may be opened on it right away (draft §4.6). */
  connect(request: { authority: string; path: string; origin?: string; headers?: HeaderField[] }): number;

  // --- server ---
  acceptSession(sessionId: number, headers?: HeaderField[]): void;
  rejectSession(sessionId: number, status: number): void;

  // --- both ---
  /** Opens a WebTransport stream in a session and writes its signal; returns the QUIC stream id. */
  openStream(sessionId: number, bidirectional: boolean): number;
  sendStreamData(streamId: number, data: Uint8Array, fin: boolean): void;
  /** Resets a WebTransport stream with a WebTransport application code (mapped per draft §4.4). */
  resetStream(streamId: number, code: number): void;
  stopSending(streamId: number, code: number): void;
  sendDatagram(sessionId: number, data: Uint8Array): void;
  /** Sends CLOSE_WEBTRANSPORT_SESSION then FIN on the CONNECT stream (draft §6). */
  closeSession(sessionId: number, code: number, reason: string): void;
  /** Sends DRAIN_WEBTRANSPORT_SESSION (draft §4.7). */
  drainSession(sessionId: number): void;
  /** Sends GOAWAY (RFC 9114 §5.2). */
  goaway(): void;

  /** Bytes of datagram payload a session can send given a QUIC max datagram frame payload. */
  datagramOverhead(sessionId: number): number;

  drainCommands(): QuicCommand[];
  drainEvents(): H3Event[];
  /** Counters and gauges; `sessions` tells the adapter when the last session ended. */
  getStats(): H3Stats;
}
