/**
 * State staleness: how old the newest update a receiver holds is, sampled on a fixed time grid while updates flow.
 *
 * Percentiles over delivered messages alone flatter a lossy transport: a datagram that never arrives leaves no
 * sample, while a reliable transport's retransmitted message leaves a slow one. For real-time state (a position
 * sent at 60 Hz) what matters is how stale the receiver's copy is at any moment, whatever was lost: a lost update
 * leaves the previous one in place for one more interval, a stalled stream leaves it in place until the
 * retransmission arrives. Sampling the age on a grid measures both alike.
 */

/** Flat pairs `[receivedAt0, sentAt0, receivedAt1, sentAt1, ...]` on one clock (ms). */
export type Arrivals = number[];

export interface StalenessWindow {
  /** First grid point (ms, same clock). */
  from: number;
  /** Last grid point, inclusive. */
  to: number;
  /** Grid step, default 1 ms. */
  stepMs?: number;
  /**
   * When the stream started (the first send): before anything arrived, the receiver's "newest update" is the
   * absence of one, as old as the stream.
   */
  streamStart: number;
}

/**
 * Age of the newest update held (by send time: a late, reordered datagram older than what is held does not make
 * the state older) at each grid point of `window`.
 */
export function stalenessSamples(arrivals: Arrivals, window: StalenessWindow): number[] {
  const n = arrivals.length / 2;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => arrivals[2 * a] - arrivals[2 * b]);
  const step = window.stepMs ?? 1;
  const out: number[] = [];
  let k = 0;
  let newest = Number.NEGATIVE_INFINITY;
  for (let t = window.from; t <= window.to; t += step) {
    while (k < n && arrivals[2 * order[k]] <= t) {
      newest = Math.max(newest, arrivals[2 * order[k] + 1]);
      k++;
    }
    out.push(t - (Number.isFinite(newest) ? newest : window.streamStart));
  }
  return out;
}
