import type { Clock } from './clock.js';
import { FrameReader } from './codec.js';
import { RateLimitError } from './errors.js';
import { TokenBucket } from './estimators.js';

/** Incoming rate limits of one session (`rateLimits.perSession` on servers). */
export interface IncomingRateOptions {
  messagesPerSecond?: number;
  bytesPerSecond?: number;
  /** Bucket depth in seconds of rate. Default 1. */
  burstSeconds?: number;
}

/**
 * The server's per-session default: four times what a 60 Hz game sending four bundled messages a tick uses (the
 * demo's own limit is 240 messages and 256 kB a second), with two seconds of burst so that a reconnect's catch-up
 * or a 1 MiB message (`maxMessageBytes`) passes. Bundled datagram bodies count one message each.
 */
export const DEFAULT_SESSION_RATE: Required<IncomingRateOptions> = {
  messagesPerSecond: 1000,
  bytesPerSecond: 1 << 20,
  burstSeconds: 2,
};

/**
 * Everything a session lets its peer make it receive, in one place: the message and byte rates (token buckets)
 * and the bytes held for frames that have not completed yet, across all streams (`maxReceiveBufferBytes`).
 *
 * Bytes are charged as they arrive, chunk by chunk, not when a frame completes: a peer that opens many streams
 * and sends most of a large frame on each pays for every byte at once, and the partial data it can make the
 * session hold is capped. Over any bound the session closes with 4429 (`RateLimitError`).
 */
export class IncomingBudget {
  private readonly messages: TokenBucket | null;
  private readonly bytes: TokenBucket | null;
  private buffered = 0;

  constructor(
    private readonly clock: Clock,
    /** Bytes of incomplete frames held at once, all streams together. */
    readonly maxBufferedBytes: number,
    rate?: IncomingRateOptions,
  ) {
    const now = clock.now();
    const burst = rate?.burstSeconds ?? 1;
    const bucket = (perSecond: number | undefined) =>
      perSecond === undefined || perSecond === Number.POSITIVE_INFINITY
        ? null
        : new TokenBucket(perSecond, Math.max(1, perSecond * burst), now);
    this.messages = bucket(rate?.messagesPerSecond);
    this.bytes = bucket(rate?.bytesPerSecond);
  }

  /** Bytes of incomplete frames held now. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Charges received bytes (as they arrive) and messages (as frames complete); throws `RateLimitError` over. */
  charge(bytes: number, messages: number): void {
    const now = this.clock.now();
    // One at a time: a batch larger than the burst would otherwise pass whole when the bucket is full (the bucket
    // lets one oversized item through), and a peer packing thousands of frames into one chunk would skip the limit.
    if (this.messages) {
      for (let i = 0; i < messages; i++) {
        if (!this.messages.take(1, now)) throw new RateLimitError('peer exceeded its message rate limit');
      }
    }
    if (bytes > 0 && this.bytes && !this.bytes.take(bytes, now))
      throw new RateLimitError('peer exceeded its byte rate limit');
  }

  /**
   * A frame reader for one incoming stream whose incomplete frames count against `maxBufferedBytes`; `existing`
   * (a control stream's reader from the handshake) is taken over with what it already holds.
   */
  reader(maxFrameBytes: number, existing?: FrameReader): BudgetedFrameReader {
    const frames = existing ?? new FrameReader(maxFrameBytes);
    frames.maxFrameBytes = maxFrameBytes;
    const r = new BudgetedFrameReader(this, frames);
    r.sync();
    return r;
  }

  /** @internal */
  hold(delta: number): void {
    this.buffered += delta;
    if (delta > 0 && this.buffered > this.maxBufferedBytes) {
      throw new RateLimitError(
        `peer left ${this.buffered} bytes of incomplete frames, over maxReceiveBufferBytes ${this.maxBufferedBytes}`,
      );
    }
  }
}

/** A `FrameReader` whose bytes are charged to an `IncomingBudget` as they arrive. */
export class BudgetedFrameReader {
  private held = 0;

  constructor(
    private readonly budget: IncomingBudget,
    private readonly frames: FrameReader,
  ) {}

  /** Charges `chunk`, then returns the frame bodies it completed (each charged as a message). */
  push(chunk: Uint8Array): Uint8Array[] {
    this.budget.charge(chunk.length, 0);
    const bodies = this.frames.push(chunk);
    this.sync();
    if (bodies.length > 0) this.budget.charge(0, bodies.length);
    return bodies;
  }

  /** @internal Counts what the reader holds now. */
  sync(): void {
    const pending = this.frames.pending;
    const delta = pending - this.held;
    this.held = pending;
    this.budget.hold(delta);
  }

  get pending(): number {
    return this.frames.pending;
  }

  /** The stream is done: what it held no longer counts. */
  release(): void {
    this.budget.hold(-this.held);
    this.held = 0;
  }
}
