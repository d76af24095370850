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

/** Which end of the QUIC connection the core plays; it decides stream id parity (RFC 9000 §2.1). */
export type Role = 'client' | 'server';

/** A header field as it appears on the wire, lower-case name (RFC 9114 §4.2). */
export type HeaderField = readonly [name: string, value: string];

/** Bounds on what a peer can make the core hold; see {@link DEFAULT_H3_LIMITS}. */
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

/** Options of {@link createH3Connection}. */
export interface H3ConnectionOptions {
  /** Whether this end opened the QUIC connection (`client`) or accepted it (`server`). */
  role: Role;
  /** Overrides of {@link DEFAULT_H3_LIMITS}; omitted fields keep their defaults. */
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
  /** Datagrams delivered to a session as `datagram` events. */
  datagramsReceived: number;
  /** Datagrams queued as `datagram` commands. */
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
  /** Gauge: ended sessions whose close is not known to have reached the peer (see `H3Connection.closesInFlight`). */
  closesInFlight: number;
  /**
   * Closes no longer waited for because more than `maxSessions` were in flight at once (the oldest is let go, so a
   * peer that never answers cannot grow this state).
   */
  closesForgotten: number;
}

/** What the core asks the adapter to do with the QUIC connection. */
export type QuicCommand =
  /** Write to a stream; a stream id never used before opens that stream (RFC 9000 §2.1). */
  | {
      /** Discriminant. */
      type: 'stream-write';
      /** The QUIC stream id. */
      streamId: number;
      /** Bytes to append to the stream, possibly empty. */
      data: Uint8Array;
      /** Finish the stream after `data` (QUIC FIN). */
      fin: boolean;
    }
  /** RESET_STREAM with an HTTP/3 wire error code (RFC 9000 §19.4). */
  | {
      /** Discriminant. */
      type: 'stream-reset';
      /** The QUIC stream id. */
      streamId: number;
      /** The HTTP/3 wire error code. */
      code: bigint;
    }
  /** STOP_SENDING with an HTTP/3 wire error code (RFC 9000 §19.5). */
  | {
      /** Discriminant. */
      type: 'stream-stop-sending';
      /** The QUIC stream id. */
      streamId: number;
      /** The HTTP/3 wire error code. */
      code: bigint;
    }
  /** Send a QUIC DATAGRAM frame (RFC 9221) with this payload (already prefixed with the quarter stream id). */
  | {
      /** Discriminant. */
      type: 'datagram';
      /** The whole DATAGRAM frame payload, quarter stream id included. */
      data: Uint8Array;
    }
  /** Close the QUIC connection with an HTTP/3 application error code (RFC 9114 §8.1). */
  | {
      /** Discriminant. */
      type: 'connection-close';
      /** The HTTP/3 application error code. */
      code: bigint;
      /** Human-readable reason phrase, for logs only. */
      reason: string;
    };

/** What the core tells the adapter happened. */
export type H3Event =
  /** The peer's SETTINGS arrived (RFC 9114 §7.2.4). */
  | {
      /** Discriminant. */
      type: 'settings';
      /** Every setting the peer sent, by identifier ({@link SettingId}), GREASE included. */
      settings: ReadonlyMap<bigint, bigint>;
      /** Which WebTransport dialect the peer's SETTINGS enable; `none` means it cannot speak WebTransport. */
      webTransportDraft: 'draft02' | 'current' | 'none';
    }
  /** Server: an extended CONNECT with `:protocol webtransport` (RFC 9220) awaiting acceptSession/rejectSession. */
  | {
      /** Discriminant. */
      type: 'session-request';
      /** The session: the stream id of its CONNECT request stream. */
      sessionId: number;
      /** The request's header fields, pseudo-headers first. */
      headers: HeaderField[];
    }
  /** Client: the server answered our CONNECT with 2xx. */
  | {
      /** Discriminant. */
      type: 'session-established';
      /** The session: the stream id of its CONNECT request stream. */
      sessionId: number;
      /** The 2xx HTTP status. */
      status: number;
      /** The response's header fields. */
      headers: HeaderField[];
    }
  /**
   * Client: the server answered with a non-2xx status, or the request stream failed before a response (status 0:
   * reset, GOAWAY, a server without WebTransport SETTINGS, or a local `closeSession` before the response).
   */
  | {
      /** Discriminant. */
      type: 'session-rejected';
      /** The session: the stream id of its CONNECT request stream. */
      sessionId: number;
      /** The non-2xx HTTP status, or 0 when no response arrived. */
      status: number;
      /** Why, for logs. */
      reason: string;
    }
  /**
   * CLOSE_WEBTRANSPORT_SESSION received, or the CONNECT stream ended or was reset (draft §6); also raised once
   * for a local `closeSession` (`local: true`). Raised exactly once per session that was requested or
   * established; the core has already reset all of its streams (WT_SESSION_GONE) and raises nothing more for them.
   * `abrupt`: the CONNECT stream was reset or malformed rather than closed cleanly (W3C `closed` rejects).
   */
  | {
      /** Discriminant. */
      type: 'session-closed';
      /** The session: the stream id of its CONNECT request stream. */
      sessionId: number;
      /** The 32-bit application close code; 0 when the peer sent none. */
      code: number;
      /** The close reason (at most 1024 bytes of UTF-8); empty when none was sent. */
      reason: string;
      /** True when the CONNECT stream was reset or malformed rather than closed cleanly. */
      abrupt?: boolean;
      /** True when this end called `closeSession`. */
      local?: boolean;
    }
  /** DRAIN_WEBTRANSPORT_SESSION received (draft §4.7). */
  | {
      /** Discriminant. */
      type: 'session-draining';
      /** The session: the stream id of its CONNECT request stream. */
      sessionId: number;
    }
  /** The peer opened a WebTransport stream in a session (after its signal: 0x41 bidi, 0x54 uni). */
  | {
      /** Discriminant. */
      type: 'stream-opened';
      /** The session the stream belongs to. */
      sessionId: number;
      /** The QUIC stream id. */
      streamId: number;
      /** True for a bidirectional stream, false for a receive-only one. */
      bidirectional: boolean;
    }
  /** Payload bytes of a WebTransport stream (signal stripped). */
  | {
      /** Discriminant. */
      type: 'stream-data';
      /** The QUIC stream id. */
      streamId: number;
      /** The next bytes of the stream, in order; may be empty when only `fin` is news. */
      data: Uint8Array;
      /** The peer finished the stream after `data`. */
      fin: boolean;
    }
  /** The peer reset a WebTransport stream; `code` is the WebTransport application code (draft §4.4 mapping). */
  | {
      /** Discriminant. */
      type: 'stream-reset';
      /** The QUIC stream id. */
      streamId: number;
      /** The WebTransport application error code (0 to 2^32 - 1). */
      code: number;
    }
  /** The peer sent STOP_SENDING on a WebTransport stream; `code` is the WebTransport application code. */
  | {
      /** Discriminant. */
      type: 'stream-stop-sending';
      /** The QUIC stream id. */
      streamId: number;
      /** The WebTransport application error code (0 to 2^32 - 1). */
      code: number;
    }
  /** A WebTransport datagram for a session (quarter stream id stripped, RFC 9297 §2.1). */
  | {
      /** Discriminant. */
      type: 'datagram';
      /** The session: the stream id of its CONNECT request stream. */
      sessionId: number;
      /** The application payload. */
      data: Uint8Array;
    }
  /** GOAWAY received (RFC 9114 §5.2). */
  | {
      /** Discriminant. */
      type: 'goaway';
      /** The first stream id (from a server) or push id (from a client) the peer will not process. */
      id: bigint;
    }
  /** A connection error: the core already queued a `connection-close` command. */
  | {
      /** Discriminant. */
      type: 'connection-error';
      /** The HTTP/3 error code the connection is closed with. */
      code: bigint;
      /** What went wrong, for logs. */
      reason: string;
    }
  /** A stream-level protocol error on a non-WebTransport stream, counted; the core queued the reset. */
  | {
      /** Discriminant. */
      type: 'stream-error';
      /** The QUIC stream id. */
      streamId: number;
      /** The HTTP/3 error code the stream was reset with. */
      code: bigint;
      /** What went wrong, for logs. */
      reason: string;
    }
  /** A datagram dropped by the core (unknown session, malformed), counted. */
  | {
      /** Discriminant. */
      type: 'datagram-dropped';
      /** Why it was dropped; the matching {@link H3Stats} counter was incremented. */
      reason: 'malformed' | 'unknown-session';
    };

/**
 * The sans-IO HTTP/3 + WebTransport connection. Methods that act return nothing; the adapter then calls
 * `drainCommands()` and `drainEvents()`. All inputs are validated; peer misbehaviour becomes a
 * `connection-error` or `stream-error` event with the matching command, never an exception. Local misuse
 * (e.g. writing to a stream that does not exist) throws.
 */
export interface H3Connection {
  /** The role given at creation. */
  readonly role: Role;
  /** Call once the QUIC handshake completed: queues the control stream, SETTINGS and QPACK streams. */
  start(): void;

  // --- input from QUIC ---
  /** Bytes QUIC delivered on a stream, in order; `fin` when the peer finished it. */
  receiveStreamData(streamId: number, data: Uint8Array, fin: boolean): void;
  /** The peer reset a stream (RESET_STREAM) with this wire code. */
  receiveStreamReset(streamId: number, code: bigint): void;
  /** The peer asked us to stop sending (STOP_SENDING) with this wire code. */
  receiveStopSending(streamId: number, code: bigint): void;
  /**
   * QUIC reports that the peer acknowledged everything we sent on a stream, FIN included (RFC 9000 §3.1 "Data
   * Recvd"). Engines that cannot tell never call it; the peer's own FIN on a CONNECT stream then says the same.
   */
  receiveStreamAcked(streamId: number): void;
  /** A QUIC DATAGRAM frame payload (RFC 9221), quarter stream id first (RFC 9297 §2.1). */
  receiveDatagram(data: Uint8Array): void;

  // --- client ---
  /** Sends an extended CONNECT; returns the session id. Streams may be opened on it right away (draft §4.6). */
  connect(request: { authority: string; path: string; origin?: string; headers?: HeaderField[] }): number;

  // --- server ---
  /** Answers a `session-request` with 200 and the given extra headers; the session is then established. */
  acceptSession(sessionId: number, headers?: HeaderField[]): void;
  /** Answers a `session-request` with a 3xx to 5xx `status` (else RangeError), finishes and stops its stream. */
  rejectSession(sessionId: number, status: number): void;

  // --- both ---
  /** Opens a WebTransport stream in a session and writes its signal; returns the QUIC stream id. */
  openStream(sessionId: number, bidirectional: boolean): number;
  /** Writes payload bytes to a WebTransport stream; `fin` finishes it. */
  sendStreamData(streamId: number, data: Uint8Array, fin: boolean): void;
  /** Resets a WebTransport stream with a WebTransport application code (mapped per draft §4.4). */
  resetStream(streamId: number, code: number): void;
  /** Asks the peer to stop sending on a WebTransport stream, with an application code (mapped per draft §4.4). */
  stopSending(streamId: number, code: number): void;
  /** Queues a datagram for a session; dropped and counted if the session ended or datagrams were not negotiated. */
  sendDatagram(sessionId: number, data: Uint8Array): void;
  /** Sends CLOSE_WEBTRANSPORT_SESSION then FIN on the CONNECT stream (draft §6). */
  closeSession(sessionId: number, code: number, reason: string): void;
  /** Sends DRAIN_WEBTRANSPORT_SESSION (draft §4.7). */
  drainSession(sessionId: number): void;
  /** Sends GOAWAY (RFC 9114 §5.2). */
  goaway(): void;

  /** Bytes of datagram payload a session can send given a QUIC max datagram frame payload. */
  datagramOverhead(sessionId: number): number;

  /** Returns and forgets the commands queued since the last call, in the order they must be executed. */
  drainCommands(): QuicCommand[];
  /** Returns and forgets the events raised since the last call, in order. */
  drainEvents(): H3Event[];
  /** Counters and gauges; `sessions` tells the adapter when the last session ended. */
  getStats(): H3Stats;
  /**
   * Ended sessions whose close is not known to have reached the peer: we finished their CONNECT stream (draft §6:
   * CLOSE_WEBTRANSPORT_SESSION then FIN, or the FIN answering the peer's close) and neither the peer's end of that
   * stream (FIN, RESET_STREAM or STOP_SENDING) nor the acknowledgement of our FIN (`receiveStreamAcked`) arrived.
   * A CONNECTION_CLOSE sent meanwhile can overtake the close (it is not congestion controlled, RFC 9002 §3), so
   * the adapter waits for 0, bounded by a timer of its own. Rejected requests and reset streams are not counted.
   */
  readonly closesInFlight: number;
}
