/**
 * Time and randomness are injected so that heartbeats, clock sync, reassembly timeouts and reconnection backoff
 * are deterministic under test. The clock is the transport's own ({@link Clock}, {@link systemClock},
 * {@link ManualClock}), so one manual clock drives a memory transport and the sessions on it together.
 */
import { createRng as createTransportRng } from '@quiver/transport';

export { type Clock, ManualClock, systemClock, type TimerHandle } from '@quiver/transport';

/** A seeded generator returning floats in [0, 1). Used for backoff jitter, never for secrets. */
export type Rng = () => number;

/**
 * The transport's mulberry32 ({@link createTransportRng}) as a plain function, the shape `backoffDelay` and the
 * session's callers take; same seed, same sequence as `createRng(seed).next()` of `@quiver/transport`.
 */
export function createRng(seed: number): Rng {
  return createTransportRng(seed).next;
}

/** Unpredictable bytes for resume tokens and session ids (Web Crypto exists in browsers and Node >= 20). */
export function randomToken(bytes = 18): string {
  const buf = new Uint8Array(bytes);
  globalThis.crypto.getRandomValues(buf);
  let s = '';
  for (const b of buf) s += b.toString(16).padStart(2, '0');
  return s;
}
