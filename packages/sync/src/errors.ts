/** Why a packet or an ack was rejected. The receiver's state is left exactly as it was before the call. */
export type SyncErrorCode =
  /** The packet ended before a field it announced. */
  | 'truncated'
  /** A value outside its declared range, an unknown record kind, trailing garbage, invalid UTF-8. */
  | 'corrupt'
  /** The packet was encoded with a different schema (the header's schema hash differs). */
  | 'schema-mismatch'
  /** The packet is a delta against a snapshot this client no longer (or never) held. */
  | 'baseline-missing'
  /** An ack names a snapshot that was never sent to this client. */
  | 'unknown-snapshot'
  /** An ack names a snapshot older than the server's window. */
  | 'out-of-window'
  /** An ack or packet for a client the server does not know. */
  | 'unknown-client';

/** A typed rejection of bad input; thrown by `SyncClient.receive` and `SyncServer.receiveAck`. */
export class SyncError extends Error {
  /** `'SyncError'`. */
  override readonly name = 'SyncError';
  constructor(
    /** Why the input was rejected; stable, for counters and tests. */
    readonly code: SyncErrorCode,
    message: string,
  ) {
    super(message);
  }
}
