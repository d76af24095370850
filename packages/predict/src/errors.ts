/** Why bytes handed to a decoder were rejected. The decoder's state is left as it was before the call. */
export type PredictErrorCode =
  /** The packet ended before a field it announced. */
  | 'truncated'
  /** A count outside its limits, or bytes left over after the last field. */
  | 'corrupt';

/** A typed rejection of bad input (a malformed input packet); the caller drops the packet and counts it. */
export class PredictError extends Error {
  /** `'PredictError'`. */
  override readonly name = 'PredictError';
  constructor(
    /** Why the input was rejected; stable, for counters and tests. */
    readonly code: PredictErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Validates a numeric option; limits are explicit, so a bad one fails at construction, not later. */
export function checkOption(
  name: string,
  value: number,
  min: number,
  max = Number.POSITIVE_INFINITY,
): number {
  if (!(typeof value === 'number' && value >= min && value <= max))
    throw new RangeError(`option ${name} must be in [${min}, ${max}], got ${value}`);
  return value;
}
