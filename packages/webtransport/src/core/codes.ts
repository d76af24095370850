/**
 * Code points of HTTP/3 (RFC 9114), QPACK (RFC 9204), HTTP Datagrams and capsules (RFC 9297), extended CONNECT
 * (RFC 9220) and WebTransport over HTTP/3 (draft-ietf-webtrans-http3, draft-02 as spoken by Chromium and Firefox,
 * and the current draft).
 */

/** RFC 9114 §8.1 and RFC 9204 §6 error codes, and the WebTransport ones (draft-ietf-webtrans-http3 §9.5). */
export const H3ErrorCode = {
  /** No error: a graceful close or a stream no longer needed (RFC 9114 §8.1). */
  H3_NO_ERROR: 0x100n,
  /** A protocol violation no more specific code covers (RFC 9114 §8.1). */
  H3_GENERAL_PROTOCOL_ERROR: 0x101n,
  /** An internal error of the endpoint, not the peer's fault (RFC 9114 §8.1). */
  H3_INTERNAL_ERROR: 0x102n,
  /** The peer opened a stream of a type or in a direction it may not (RFC 9114 §8.1). */
  H3_STREAM_CREATION_ERROR: 0x103n,
  /** A stream the connection needs (control, QPACK) was closed or reset (RFC 9114 §6.2.1). */
  H3_CLOSED_CRITICAL_STREAM: 0x104n,
  /** A frame not allowed in its current state or on its stream (RFC 9114 §8.1). */
  H3_FRAME_UNEXPECTED: 0x105n,
  /** A frame whose layout or size is invalid (RFC 9114 §8.1). */
  H3_FRAME_ERROR: 0x106n,
  /** The peer generates more load than the endpoint is willing to handle (RFC 9114 §8.1). */
  H3_EXCESSIVE_LOAD: 0x107n,
  /** A stream or push id used wrongly, e.g. above a limit or reused (RFC 9114 §8.1). */
  H3_ID_ERROR: 0x108n,
  /** Invalid SETTINGS content, e.g. a repeated or HTTP/2-only identifier (RFC 9114 §7.2.4). */
  H3_SETTINGS_ERROR: 0x109n,
  /** The control stream did not start with SETTINGS (RFC 9114 §6.2.1). */
  H3_MISSING_SETTINGS: 0x10an,
  /** A request refused before any processing, safe to retry (RFC 9114 §4.1.1). */
  H3_REQUEST_REJECTED: 0x10bn,
  /** A request or its response is no longer wanted (RFC 9114 §4.1.1). */
  H3_REQUEST_CANCELLED: 0x10cn,
  /** A request stream ended before the request was complete (RFC 9114 §8.1). */
  H3_REQUEST_INCOMPLETE: 0x10dn,
  /** A malformed HTTP message, e.g. bad pseudo-headers (RFC 9114 §4.1.2). */
  H3_MESSAGE_ERROR: 0x10en,
  /** The connection of a CONNECT request was reset or closed abnormally (RFC 9114 §4.4). */
  H3_CONNECT_ERROR: 0x10fn,
  /** The request should be retried over HTTP/1.1 (RFC 9114 §8.1). */
  H3_VERSION_FALLBACK: 0x110n,
  /** A field section could not be decoded (RFC 9204 §6). */
  QPACK_DECOMPRESSION_FAILED: 0x200n,
  /** An encoder-stream instruction could not be interpreted (RFC 9204 §6). */
  QPACK_ENCODER_STREAM_ERROR: 0x201n,
  /** A decoder-stream instruction could not be interpreted (RFC 9204 §6). */
  QPACK_DECODER_STREAM_ERROR: 0x202n,
  /** A malformed HTTP datagram or DATAGRAM capsule (RFC 9297 §5.2). */
  H3_DATAGRAM_ERROR: 0x33n,
  /** Resets a stream that arrived before its session was established when the endpoint will not buffer it (draft-ietf-webtrans-http3 §4.6). */
  WT_BUFFERED_STREAM_REJECTED: 0x3994bd84n,
  /** Resets a WebTransport stream whose session has closed (draft-ietf-webtrans-http3 §4.6). */
  WT_SESSION_GONE: 0x170d7b68n,
  /** A capsule not allowed on a WebTransport CONNECT stream (draft-ietf-webtrans-http3 §6). */
  WT_INVALID_CAPSULE: 0x0d189ed4n,
} as const;

/** RFC 9114 §7.2 frame types. */
export const FrameType = {
  /** Carries a request or response body (RFC 9114 §7.2.1). */
  DATA: 0x00n,
  /** Carries a QPACK-encoded field section (RFC 9114 §7.2.2). */
  HEADERS: 0x01n,
  /** Cancels a server push (RFC 9114 §7.2.3); Quiver never pushes. */
  CANCEL_PUSH: 0x03n,
  /** The first frame of each control stream (RFC 9114 §7.2.4). */
  SETTINGS: 0x04n,
  /** Announces a server push (RFC 9114 §7.2.5); Quiver never pushes. */
  PUSH_PROMISE: 0x05n,
  /** Starts a graceful shutdown: no requests above the given id will be served (RFC 9114 §7.2.6). */
  GOAWAY: 0x07n,
  /** Limits server push ids (RFC 9114 §7.2.7). */
  MAX_PUSH_ID: 0x0dn,
  /** draft-ietf-webtrans-http3 §4.3: WT_STREAM, only valid as the first bytes of a bidi stream. */
  WT_STREAM: 0x41n,
} as const;

/** RFC 9114 §7.2.8 / §11.2.1: frame types of HTTP/2 with no HTTP/3 equivalent; receiving one is H3_FRAME_UNEXPECTED. */
export const HTTP2_ONLY_FRAME_TYPES: ReadonlySet<bigint> = new Set([0x02n, 0x06n, 0x08n, 0x09n]);

/** RFC 9114 §6.2 unidirectional stream types. */
export const StreamType = {
  /** The control stream, one per endpoint (RFC 9114 §6.2.1). */
  CONTROL: 0x00n,
  /** A server push stream (RFC 9114 §6.2.2); Quiver never opens one. */
  PUSH: 0x01n,
  /** QPACK encoder instructions (RFC 9204 §4.2). */
  QPACK_ENCODER: 0x02n,
  /** QPACK decoder instructions (RFC 9204 §4.2). */
  QPACK_DECODER: 0x03n,
  /** draft-ietf-webtrans-http3 §4.2. */
  WEBTRANSPORT: 0x54n,
} as const;

/** The signal starting a bidirectional WebTransport stream (draft-ietf-webtrans-http3 §4.3). */
export const WT_BIDI_SIGNAL = 0x41;
/** The stream type of a unidirectional WebTransport stream (draft-ietf-webtrans-http3 §4.2). */
export const WT_UNI_STREAM_TYPE = 0x54;

/** SETTINGS identifiers (RFC 9114 §7.2.4.1, RFC 9204 §5, RFC 9220 §3, RFC 9297 §2.1.1, the WebTransport drafts). */
export const SettingId = {
  /** Largest dynamic table the decoder allows (RFC 9204 §5); default 0. */
  QPACK_MAX_TABLE_CAPACITY: 0x01n,
  /** Largest field section the endpoint accepts, in RFC 9114 §4.2.2 size units (RFC 9114 §7.2.4.1). */
  MAX_FIELD_SECTION_SIZE: 0x06n,
  /** Streams that may wait on dynamic table updates (RFC 9204 §5); default 0. */
  QPACK_BLOCKED_STREAMS: 0x07n,
  /** 1 allows extended CONNECT with `:protocol` (RFC 9220 §3). */
  ENABLE_CONNECT_PROTOCOL: 0x08n,
  /** 1 allows HTTP datagrams (RFC 9297 §2.1.1). */
  H3_DATAGRAM: 0x33n,
  /** draft-ietf-masque-h3-datagram-04, still sent and checked by Chromium. */
  H3_DATAGRAM_DRAFT04: 0xffd277n,
  /** draft-ietf-webtrans-http3-02 §3.1 SETTINGS_ENABLE_WEBTRANSPORT. */
  ENABLE_WEBTRANSPORT_DRAFT02: 0x2b603742n,
  /** SETTINGS_WT_MAX_SESSIONS of the current draft (§3.1, §9.2). */
  WT_MAX_SESSIONS: 0xc671706an,
  /** SETTINGS_WEBTRANSPORT_MAX_SESSIONS of drafts 07 to 12: same meaning, earlier code point. */
  WT_MAX_SESSIONS_DRAFT07: 0x14e9cd29n,
} as const;

/** RFC 9114 §7.2.4.1 / §11.2.2: the HTTP/2 settings that have no HTTP/3 meaning; receiving one is H3_SETTINGS_ERROR. */
export const HTTP2_ONLY_SETTING_IDS: ReadonlySet<bigint> = new Set([0x00n, 0x02n, 0x03n, 0x04n, 0x05n]);

/** Capsule types (RFC 9297 §3.2, draft-ietf-webtrans-http3 §6 / §4.7). */
export const CapsuleType = {
  /** An HTTP datagram carried in a capsule on the CONNECT stream (RFC 9297 §3.5). */
  DATAGRAM: 0x00n,
  /** Closes the session with a 32-bit code and a reason of at most 1024 bytes (draft-ietf-webtrans-http3 §6). */
  CLOSE_WEBTRANSPORT_SESSION: 0x2843n,
  /** Asks the peer to finish up and close the session gracefully (draft-ietf-webtrans-http3 §4.7). */
  DRAIN_WEBTRANSPORT_SESSION: 0x78aen,
} as const;

/** RFC 9114 §7.2.8 / §8.1 / §9: reserved GREASE code points are `0x1f * N + 0x21`. */
export function isReservedCodepoint(value: bigint): boolean {
  return value >= 0x21n && (value - 0x21n) % 0x1fn === 0n;
}

const WT_APP_FIRST = 0x52e4a40fa8dbn;
const WT_APP_LAST = 0x52e5ac983162n;

/**
 * WebTransport application stream error code (u32) → HTTP/3 wire code (draft-ietf-webtrans-http3 §4.4): the
 * codes live in [0x52e4a40fa8db, 0x52e5ac983162], skipping the reserved `0x1f * N + 0x21` code points, hence
 * one extra step per 0x1e codes.
 */
export function webTransportCodeToHttp(code: number): bigint {
  if (!Number.isInteger(code) || code < 0 || code > 0xffffffff) throw new RangeError(`not a u32: ${code}`);
  return WT_APP_FIRST + BigInt(code) + BigInt(Math.floor(code / 0x1e));
}

/**
 * HTTP/3 wire code → WebTransport application code; `undefined` when the code is outside the WebTransport range
 * or is a reserved code point (the caller treats those as 0, see draft §4.4).
 */
export function httpCodeToWebTransport(wire: bigint): number | undefined {
  if (wire < WT_APP_FIRST || wire > WT_APP_LAST) return undefined;
  if (isReservedCodepoint(wire)) return undefined;
  const shifted = wire - WT_APP_FIRST;
  return Number(shifted - shifted / 0x1fn);
}
