/**
 * Code points of HTTP/3 (RFC 9114), QPACK (RFC 9204), HTTP Datagrams and capsules (RFC 9297), extended CONNECT
 * (RFC 9220) and WebTransport over HTTP/3 (draft-ietf-webtrans-http3, draft-02 as spoken by Chromium and Firefox,
 * and the current draft).
 */

/** RFC 9114 §8.1 and RFC 9204 §6 error codes, and the WebTransport ones (draft-ietf-webtrans-http3 §9.5). */
export const H3ErrorCode = {
  H3_NO_ERROR: 0x100n,
  H3_GENERAL_PROTOCOL_ERROR: 0x101n,
  H3_INTERNAL_ERROR: 0x102n,
  H3_STREAM_CREATION_ERROR: 0x103n,
  H3_CLOSED_CRITICAL_STREAM: 0x104n,
  H3_FRAME_UNEXPECTED: 0x105n,
  H3_FRAME_ERROR: 0x106n,
  H3_EXCESSIVE_LOAD: 0x107n,
  H3_ID_ERROR: 0x108n,
  H3_SETTINGS_ERROR: 0x109n,
  H3_MISSING_SETTINGS: 0x10an,
  H3_REQUEST_REJECTED: 0x10bn,
  H3_REQUEST_CANCELLED: 0x10cn,
  H3_REQUEST_INCOMPLETE: 0x10dn,
  H3_MESSAGE_ERROR: 0x10en,
  H3_CONNECT_ERROR: 0x10fn,
  H3_VERSION_FALLBACK: 0x110n,
  QPACK_DECOMPRESSION_FAILED: 0x200n,
  QPACK_ENCODER_STREAM_ERROR: 0x201n,
  QPACK_DECODER_STREAM_ERROR: 0x202n,
  H3_DATAGRAM_ERROR: 0x33n,
  WT_BUFFERED_STREAM_REJECTED: 0x3994bd84n,
  WT_SESSION_GONE: 0x170d7b68n,
  WT_INVALID_CAPSULE: 0x0d189ed4n,
} as const;

/** RFC 9114 §7.2 frame types. */
export const FrameType = {
  DATA: 0x00n,
  HEADERS: 0x01n,
  CANCEL_PUSH: 0x03n,
  SETTINGS: 0x04n,
  PUSH_PROMISE: 0x05n,
  GOAWAY: 0x07n,
  MAX_PUSH_ID: 0x0dn,
  /** draft-ietf-webtrans-http3 §4.3: WT_STREAM, only valid as the first bytes of a bidi stream. */
  WT_STREAM: 0x41n,
} as const;

/** RFC 9114 §7.2.8 / §11.2.1: frame types of HTTP/2 with no HTTP/3 equivalent; receiving one is H3_FRAME_UNEXPECTED. */
export const HTTP2_ONLY_FRAME_TYPES: ReadonlySet<bigint> = new Set([0x02n, 0x06n, 0x08n, 0x09n]);

/** RFC 9114 §6.2 unidirectional stream types. */
export const StreamType = {
  CONTROL: 0x00n,
  PUSH: 0x01n,
  QPACK_ENCODER: 0x02n,
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
  QPACK_MAX_TABLE_CAPACITY: 0x01n,
  MAX_FIELD_SECTION_SIZE: 0x06n,
  QPACK_BLOCKED_STREAMS: 0x07n,
  ENABLE_CONNECT_PROTOCOL: 0x08n,
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
  DATAGRAM: 0x00n,
  CLOSE_WEBTRANSPORT_SESSION: 0x2843n,
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
