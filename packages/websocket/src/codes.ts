import { ProtocolViolationError } from '@quiver/transport';

/**
 * Quiver WebSocket framing error codes. They travel in the WebSocket close reason as `Q<code> <NAME>: <detail>`
 * next to a WebSocket close code (RFC 6455 §7.4.1) chosen by {@link wsCloseCodeFor}.
 */
export const WsErrorCode = {
  /** Clean close; maps to WebSocket close code 1000. */
  NO_ERROR: 0x0,
  /** A fault of this endpoint, not the peer's; maps to WebSocket close code 1011. */
  INTERNAL_ERROR: 0x1,
  /** Truncated frame, varint beyond 2^53 - 1, invalid UTF-8 in a close reason. */
  FRAME_ENCODING_ERROR: 0x2,
  /** Unknown frame type. */
  FRAME_TYPE_ERROR: 0x3,
  /** Stream id of the wrong parity or direction, never opened, opened out of order, data after FIN or reset. */
  STREAM_STATE_ERROR: 0x4,
  /** More streams opened than the receiver's MAX_STREAMS allows. */
  STREAM_LIMIT_ERROR: 0x5,
  /** Stream data beyond the credit granted by MAX_STREAM_DATA. */
  FLOW_CONTROL_ERROR: 0x6,
  /** Message over the max message size, datagram over the max datagram size, close reason over 1024 bytes. */
  FRAME_SIZE_ERROR: 0x7,
  /** SETTINGS missing, not first, repeated or with an invalid value. */
  SETTINGS_ERROR: 0x8,
  /** A text WebSocket message: the framing is binary only. */
  UNSUPPORTED_DATA: 0x9,
  /** The peer's SETTINGS did not arrive within the handshake timeout. */
  HANDSHAKE_TIMEOUT: 0xa,
  /** Nothing received for longer than the idle timeout. */
  IDLE_TIMEOUT: 0xb,
  /**
   * The peer made this side queue more than it may: answers (PONG) beyond `maxQueuedControlBytes`, or an outgoing
   * socket buffer beyond `maxBufferedAmount` (a peer that sends but never reads, like an HTTP/2 ping flood).
   */
  EXCESSIVE_LOAD: 0xc,
} as const;
export type WsErrorCode = (typeof WsErrorCode)[keyof typeof WsErrorCode];

const names = new Map<number, string>(Object.entries(WsErrorCode).map(([k, v]) => [v, k]));

export function wsErrorName(code: number): string {
  return names.get(code) ?? `UNKNOWN_${code}`;
}

/** RFC 6455 §7.4.1 close code used when closing for a Quiver error code. */
export function wsCloseCodeFor(code: number): number {
  switch (code) {
    case WsErrorCode.NO_ERROR:
      return 1000;
    case WsErrorCode.FRAME_SIZE_ERROR:
      return 1009; // Message Too Big
    case WsErrorCode.STREAM_LIMIT_ERROR:
    case WsErrorCode.HANDSHAKE_TIMEOUT:
    case WsErrorCode.IDLE_TIMEOUT:
    case WsErrorCode.EXCESSIVE_LOAD:
      return 1008; // Policy Violation
    case WsErrorCode.UNSUPPORTED_DATA:
      return 1003; // Unsupported Data
    case WsErrorCode.INTERNAL_ERROR:
      return 1011;
    default:
      return 1002; // Protocol Error
  }
}

/** A framing violation by the peer, as the typed error the session's `closed` rejects with. */
export function violation(code: WsErrorCode, detail: string): ProtocolViolationError {
  return new ProtocolViolationError(`${wsErrorName(code)}: ${detail}`, code, wsErrorName(code));
}

/**
 * The WebSocket close reason for a Quiver error: RFC 6455 §5.5 limits control frame payloads to 125 bytes, of which
 * 2 hold the close code, so the text is cut to 123 UTF-8 bytes.
 */
export function closeReasonFor(code: number, detail: string): string {
  return truncateUtf8(`Q${code} ${wsErrorName(code)}: ${detail}`, 123);
}

/** Parses a close reason written by {@link closeReasonFor}; undefined for any other text. */
export function parseCloseReason(reason: string):
  | {
      /** The {@link WsErrorCode} value. */
      code: number;
      /** Its name, e.g. `FLOW_CONTROL_ERROR`. */
      name: string;
      /** The free text after the name. */
      detail: string;
    }
  | undefined {
  const m = /^Q(\d+) ([A-Z_0-9]+): ?(.*)$/s.exec(reason);
  if (!m) return undefined;
  return { code: Number(m[1]), name: m[2], detail: m[3] };
}

const encoder = new TextEncoder();

/** Cuts `text` to at most `maxBytes` UTF-8 bytes without splitting a code point. */
export function truncateUtf8(text: string, maxBytes: number): string {
  const bytes = encoder.encode(text);
  if (bytes.length <= maxBytes) return text;
  let end = maxBytes;
  // Back up over continuation bytes (10xxxxxx) so the cut falls on a code point boundary.
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return new TextDecoder().decode(bytes.subarray(0, end));
}
