import { ProtocolViolationError } from '@quiver/transport';

/** QPACK_DECOMPRESSION_FAILED (RFC 9204 §6): the peer sent a field section we cannot (or may not) decode. */
export const QPACK_DECOMPRESSION_FAILED = 0x200;
/** H3_EXCESSIVE_LOAD (RFC 9114 §8.1), the default code for a field section over our advertised limit. */
export const H3_EXCESSIVE_LOAD = 0x107;

/**
 * A malformed or forbidden encoded field section. RFC 9204 §2.2.3 and §6 make this a connection error of type
 * QPACK_DECOMPRESSION_FAILED (`code`).
 */
export class QpackDecompressionError extends ProtocolViolationError {
  /** `'QpackDecompressionError'`. */
  override readonly name: string = 'QpackDecompressionError';
  constructor(
    message: string,
    /** Offset in the encoded field section where decoding failed. */
    readonly offset: number,
  ) {
    super(message, QPACK_DECOMPRESSION_FAILED, 'qpack');
  }
}

/**
 * The decoded field section exceeds SETTINGS_MAX_FIELD_SECTION_SIZE as computed by RFC 9114 §4.2.2 (name + value
 * + 32 per field). The section itself was well-formed so far; the caller decides how to refuse it (a server may
 * answer 431, RFC 6585 §5; otherwise a stream error, `code` H3_EXCESSIVE_LOAD by default).
 */
export class FieldSectionTooLargeError extends ProtocolViolationError {
  /** `'FieldSectionTooLargeError'`. */
  override readonly name: string = 'FieldSectionTooLargeError';
  constructor(
    /** The size reached when the limit was crossed (at least `limit + 1`, not the full section's size). */
    readonly size: number,
    /** The limit crossed: our advertised SETTINGS_MAX_FIELD_SECTION_SIZE, in RFC 9114 §4.2.2 units. */
    readonly limit: number,
  ) {
    super(
      `field section size exceeds ${limit} bytes (RFC 9114 §4.2.2)`,
      H3_EXCESSIVE_LOAD,
      'field-section-size',
    );
  }
}
