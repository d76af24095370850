/**
 * Capsules (RFC 9297 §3.2) on a WebTransport CONNECT stream: Type (i), Length (i), Value. They travel in the
 * request and response content, i.e. inside HTTP/3 DATA frames, concatenated across frame boundaries (RFC 9297
 * §3.2; what Chromium sends, see the wire notes). The layout matches an HTTP/3 frame, so the frame parser reads
 * them with capsule-specific rules.
 */

import { CapsuleType, H3ErrorCode } from './codes.js';
import { type FrameAction, FrameParser } from './frames.js';
import { ByteWriter } from './varint.js';

/** draft-ietf-webtrans-http3 §6: the close reason is at most 1024 bytes of UTF-8. */
export const MAX_CLOSE_REASON_BYTES = 1024;

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

export function encodeCapsule(type: bigint, value: Uint8Array): Uint8Array {
  return new ByteWriter().varint(type).varint(value.length).bytes(value).finish();
}

/** Truncates to at most `max` UTF-8 bytes without splitting a character (W3C WebTransport §6.3 `close()`). */
export function truncateUtf8(text: string, max: number): Uint8Array {
  const bytes = utf8.encode(text);
  if (bytes.length <= max) return bytes;
  let end = max;
  // Back off over continuation bytes (10xxxxxx) so the cut lands on a character boundary.
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return bytes.slice(0, end);
}

export function encodeCloseCapsule(code: number, reason: string): Uint8Array {
  const reasonBytes = truncateUtf8(reason, MAX_CLOSE_REASON_BYTES);
  const value = new ByteWriter().uint32(code).bytes(reasonBytes).finish();
  return encodeCapsule(CapsuleType.CLOSE_WEBTRANSPORT_SESSION, value);
}

export function encodeDrainCapsule(): Uint8Array {
  return encodeCapsule(CapsuleType.DRAIN_WEBTRANSPORT_SESSION, new Uint8Array(0));
}

/** Parses a CLOSE_WEBTRANSPORT_SESSION value (draft §6); a reason when malformed. */
export function decodeCloseCapsule(value: Uint8Array): { code: number; reason: string } | string {
  if (value.length < 4) return 'CLOSE_WEBTRANSPORT_SESSION shorter than its error code (draft §6)';
  if (value.length - 4 > MAX_CLOSE_REASON_BYTES)
    return 'CLOSE_WEBTRANSPORT_SESSION reason over 1024 bytes (draft §6)';
  const code = ((value[0] << 24) >>> 0) + ((value[1] << 16) | (value[2] << 8) | value[3]);
  let reason: string;
  try {
    reason = utf8Strict.decode(value.subarray(4));
  } catch {
    return 'CLOSE_WEBTRANSPORT_SESSION reason is not UTF-8 (draft §6)';
  }
  return { code, reason };
}

/**
 * A capsule parser bounded by `maxCapsuleSize` for every capsule, known or not: unknown types are skipped
 * without buffering (RFC 9297 §3.2) but still may not exceed the bound, so a peer cannot pin the stream on
 * one endless capsule.
 */
export function createCapsuleParser(maxCapsuleSize: number): FrameParser {
  let closed = false;
  return new FrameParser((type, length): FrameAction => {
    // draft §6: nothing may follow CLOSE_WEBTRANSPORT_SESSION; flag it here, since a skipped capsule yields no item.
    if (closed) {
      return {
        kind: 'error',
        code: H3ErrorCode.H3_MESSAGE_ERROR,
        reason: 'capsule after CLOSE_WEBTRANSPORT_SESSION',
      };
    }
    if (type === CapsuleType.CLOSE_WEBTRANSPORT_SESSION) closed = true;
    if (length > maxCapsuleSize) {
      return {
        kind: 'error',
        code: H3ErrorCode.H3_MESSAGE_ERROR,
        reason: `capsule of ${length} bytes over the ${maxCapsuleSize}-byte limit`,
      };
    }
    if (
      type === CapsuleType.CLOSE_WEBTRANSPORT_SESSION ||
      type === CapsuleType.DRAIN_WEBTRANSPORT_SESSION ||
      type === CapsuleType.DATAGRAM
    ) {
      return { kind: 'buffer' };
    }
    return { kind: 'skip' };
  });
}
