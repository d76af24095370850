/**
 * Application close codes used by the session layer (W3C WebTransport §6.3 `closeCode`; on WebSocket they travel
 * as close codes in the 4000-4999 private range of RFC 6455 §7.4.2, so they mean the same on every transport).
 */
export const CloseCode = {
  /** Normal close by the application (what `close()` defaults to). */
  NORMAL: 0,
  /**
   * What a deliberate, final close puts on the transport when the application gave 0: the peer must not try to
   * resume (a bare 0 also means "the transport went away").
   */
  CLOSED: 4000,
  /** Undecodable frame or MessagePack body. */
  BAD_MESSAGE: 4400,
  /** A data frame before the handshake completed. */
  NOT_AUTHENTICATED: 4401,
  /** The resume token or user did not match. */
  FORBIDDEN: 4403,
  /** A message id or channel id the receiver does not know. */
  UNKNOWN_MESSAGE: 4404,
  /** No HELLO within `firstMessageTimeoutMs`. */
  HANDSHAKE_TIMEOUT: 4408,
  /** The session was taken over by a resumed connection. */
  REPLACED: 4409,
  /** A frame larger than `maxMessageBytes`. */
  MESSAGE_TOO_LARGE: 4413,
  /** The `validate` hook refused a message. */
  VALIDATION_FAILED: 4422,
  /** More messages or bytes per second than `rateLimits.perSession` allows. */
  RATE_LIMITED: 4429,
  /** The peer stopped answering heartbeats. */
  HEARTBEAT_TIMEOUT: 4440,
  /** A reliable queue overflowed with `overflow: 'close'`. */
  QUEUE_OVERFLOW: 4450,
  /** Internal error. */
  INTERNAL: 4500,
  /** The server is shutting down or restarting: clients reconnect with backoff (the session is not resumed). */
  GOING_AWAY: 4503,
} as const;

/**
 * Codes after which the peer does not reconnect: the other end refused or ended this session on purpose
 * (4000-4499), except a heartbeat timeout, which is about the path, not the peer.
 */
export function isFinalCloseCode(code: number): boolean {
  return code >= 4000 && code < 4500 && code !== CloseCode.HEARTBEAT_TIMEOUT;
}
/** One of the {@link CloseCode} values. */
export type CloseCodeValue = (typeof CloseCode)[keyof typeof CloseCode];

/** Base of every error the session layer raises or reports to `onError`. */
export class SessionError extends Error {
  /** `'SessionError'`. */
  override readonly name: string = 'SessionError';
  constructor(
    message: string,
    /** A stable machine-readable kind; also the metrics label. */
    readonly kind: string,
    /** The close code the offending session is closed with, when it is closed. */
    readonly closeCode: number = CloseCode.INTERNAL,
  ) {
    super(message);
  }
}

/** An undecodable frame or MessagePack body; closes the session with `BAD_MESSAGE` (4400). */
export class DecodeError extends SessionError {
  /** `'DecodeError'`. */
  override readonly name = 'DecodeError';
  constructor(message: string) {
    super(message, 'decode', CloseCode.BAD_MESSAGE);
  }
}

/** A message or channel id the receiver does not know; closes with `UNKNOWN_MESSAGE` (4404). */
export class UnknownMessageError extends SessionError {
  /** `'UnknownMessageError'`. */
  override readonly name = 'UnknownMessageError';
  constructor(message: string) {
    super(message, 'unknown-message', CloseCode.UNKNOWN_MESSAGE);
  }
}

/** A frame over `maxMessageBytes`; closes with `MESSAGE_TOO_LARGE` (4413). */
export class MessageTooLargeError extends SessionError {
  /** `'MessageTooLargeError'`. */
  override readonly name = 'MessageTooLargeError';
  constructor(
    message: string,
    /** Size of the offending frame in bytes. */
    readonly size: number,
    /** The `maxMessageBytes` it exceeded. */
    readonly limit: number,
  ) {
    super(message, 'too-large', CloseCode.MESSAGE_TOO_LARGE);
  }
}

/** A data frame before the handshake completed; closes with `NOT_AUTHENTICATED` (4401). */
export class NotAuthenticatedError extends SessionError {
  /** `'NotAuthenticatedError'`. */
  override readonly name = 'NotAuthenticatedError';
  constructor(message: string) {
    super(message, 'not-authenticated', CloseCode.NOT_AUTHENTICATED);
  }
}

/** The `validate` hook refused a message; closes with `VALIDATION_FAILED` (4422). */
export class ValidationError extends SessionError {
  /** `'ValidationError'`. */
  override readonly name = 'ValidationError';
  constructor(
    message: string,
    /** The name of the message type that failed validation. */
    readonly messageName: string,
  ) {
    super(message, 'validation', CloseCode.VALIDATION_FAILED);
  }
}

/** The peer exceeded `rateLimits.perSession`; closes with `RATE_LIMITED` (4429). */
export class RateLimitError extends SessionError {
  /** `'RateLimitError'`. */
  override readonly name = 'RateLimitError';
  constructor(message: string) {
    super(message, 'rate-limit', CloseCode.RATE_LIMITED);
  }
}

/** No HELLO within `firstMessageTimeoutMs`; closes with `HANDSHAKE_TIMEOUT` (4408). */
export class HandshakeTimeoutError extends SessionError {
  /** `'HandshakeTimeoutError'`. */
  override readonly name = 'HandshakeTimeoutError';
  constructor(message: string) {
    super(message, 'handshake-timeout', CloseCode.HANDSHAKE_TIMEOUT);
  }
}

/**
 * The server has no room for this handshake: `server-full` (maxSessions reached when the HELLO came) or
 * `handshake-evicted` (the pre-authentication budget was full and this was the oldest pending handshake). Closes
 * with 4503: the client may come back later.
 */
export class ServerBusyError extends SessionError {
  /** `'ServerBusyError'`. */
  override readonly name = 'ServerBusyError';
  constructor(message: string, kind: 'server-full' | 'handshake-evicted') {
    super(message, kind, CloseCode.GOING_AWAY);
  }
}

/** A reliable send refused because the queue is full and the channel's overflow policy is `error`. */
export class QueueFullError extends SessionError {
  /** `'QueueFullError'`. */
  override readonly name = 'QueueFullError';
  constructor(message: string) {
    super(message, 'queue-full', CloseCode.QUEUE_OVERFLOW);
  }
}

/** The session is closed for good (not merely reconnecting). */
export class SessionClosedError extends SessionError {
  /** `'SessionClosedError'`. */
  override readonly name = 'SessionClosedError';
  constructor(
    message: string,
    /** The close code the session ended with. */
    readonly code: number = CloseCode.NORMAL,
  ) {
    super(message, 'closed', code);
  }
}

/** Every connector of `connect()` failed; `attempts` tells why each one did. */
export class ConnectError extends SessionError {
  /** `'ConnectError'`. */
  override readonly name = 'ConnectError';
  constructor(
    message: string,
    /** One entry per connector, in the order of the race (a remembered winner first). */
    readonly attempts: readonly {
      /** The connector's name (e.g. `webtransport`, `websocket`). */
      name: string;
      /** How the attempt ended (see `AttemptOutcome`). */
      outcome: 'won' | 'failed' | 'timeout' | 'unsupported' | 'lost-race' | 'skipped';
      /** The error message of a failed, timed-out or unsupported attempt. */
      error?: string;
      /** HTTP status of a refusal, when the transport reports one. */
      status?: number;
      /** Milliseconds from the attempt's start to its outcome (0 when skipped). */
      ms: number;
    }[],
    /** The HTTP status when the server refused the session (401, 403, 429, 503), if known. */
    readonly status?: number,
  ) {
    super(message, 'connect');
  }
}
