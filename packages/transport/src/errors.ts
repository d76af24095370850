/**
 * W3C WebTransport §9 `WebTransportError`, usable in Node where the browser class does not exist.
 *
 * Streams reset by the peer reject reads with `source: 'stream'` and the peer's `streamErrorCode`; a stream
 * aborted locally with a `QuiverTransportError` (or the browser's `WebTransportError`) carries its
 * `streamErrorCode` to the peer as RESET_STREAM / STOP_SENDING (or the transport's equivalent).
 */
export class QuiverTransportError extends Error {
  /** `'WebTransportError'`, the browser class's name, so that one check matches errors from either. */
  override readonly name: string = 'WebTransportError';
  /** Whether one stream (`'stream'`, the default) or the whole session (`'session'`) failed. */
  readonly source: 'stream' | 'session';
  /** The application error code (0 to 2^32 - 1) of a stream reset or stop; `null` when there is none. */
  readonly streamErrorCode: number | null;

  constructor(message = '', init: { source?: 'stream' | 'session'; streamErrorCode?: number | null } = {}) {
    super(message);
    this.source = init.source ?? 'stream';
    this.streamErrorCode = init.streamErrorCode ?? null;
  }
}

/**
 * What `ready` rejects with when the server refused the session request with an HTTP status: a non-2xx response to
 * the extended CONNECT (draft-ietf-webtrans-http3 §3.3), a refused WebSocket upgrade (RFC 6455 §4.1), or the memory
 * transport's `reject`. `status` is that HTTP status (401, 403, 404, 429, 503, ...). A browser's native
 * `WebTransport` exposes no status, so code that also handles browser sessions must allow for its absence.
 */
export class SessionRejectedError extends QuiverTransportError {
  /** The HTTP status the server refused with. */
  readonly status: number;

  constructor(message: string, status: number) {
    super(message, { source: 'session' });
    this.status = status;
  }
}

/** The application error code carried by an abort or cancel reason; 0 when the reason carries none. */
export function streamErrorCodeOf(reason: unknown): number {
  if (reason && typeof reason === 'object' && 'streamErrorCode' in reason) {
    const code = (reason as { streamErrorCode: unknown }).streamErrorCode;
    if (typeof code === 'number' && Number.isInteger(code) && code >= 0 && code <= 0xffffffff) return code;
  }
  return 0;
}

/**
 * A violation of a transport's wire protocol or limits by the peer. The offending stream or session is closed
 * with `code`; the process goes on.
 */
export class ProtocolViolationError extends Error {
  /** `'ProtocolViolationError'`. */
  override readonly name: string = 'ProtocolViolationError';
  constructor(
    message: string,
    /** The transport's own error code (e.g. an HTTP/3 error code, a WebSocket close code). */
    readonly code: number,
    /** The spec's name for `code` (e.g. `H3_FRAME_ERROR`), for logs and metric labels; `'protocol'` if none. */
    readonly kind: string = 'protocol',
  ) {
    super(message);
  }
}
