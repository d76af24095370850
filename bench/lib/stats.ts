/** Order statistics over raw samples; percentiles by nearest rank so every figure is a value that was observed. */
export interface Summary {
  samples: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export function summarize(values: readonly number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    samples: n,
    min: n ? sorted[0] : Number.NaN,
    mean: n ? sum / n : Number.NaN,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: n ? sorted[n - 1] : Number.NaN,
  };
}

/** A quantile (nearest rank, as `percentile`) with a confidence interval. */
export interface QuantileCi {
  value: number;
  lo: number;
  hi: number;
}

/**
 * The `q` quantile and its confidence interval by order statistics: the rank of the true quantile among n samples is
 * binomial (n, q), so the samples at ranks nq ∓ z·√(nq(1−q)) bound it (normal approximation; `z` 1.96 for 95 %). No
 * assumption about the distribution, which has heavy tails on a shared machine. With too few samples for a tail
 * quantile (nq(1−q) well below 1) a side of the interval is the sample extreme, i.e. not bounded: say so, or take
 * more samples.
 */
export function quantileCi(values: readonly number[], q: number, z = 1.96): QuantileCi {
  const s = [...values].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return { value: Number.NaN, lo: Number.NaN, hi: Number.NaN };
  const half = z * Math.sqrt(n * q * (1 - q));
  const at = (rank: number) => s[Math.min(n - 1, Math.max(0, rank - 1))];
  return {
    value: percentile(s, q * 100),
    lo: at(Math.floor(n * q - half)),
    hi: at(Math.ceil(n * q + half)),
  };
}

/**
 * The difference `a − b` of the `q` quantiles of two samples, with an interval that holds it with at least 95 %
 * probability: each quantile's interval at 97.5 % (z 2.2414; Bonferroni), so it needs no independence between the
 * samples (the cluster probe's same-node and cross-node latencies share the machine's noise).
 */
export function quantileDiffCi(a: readonly number[], b: readonly number[], q: number) {
  const z = 2.2414;
  const ca = quantileCi(a, q, z);
  const cb = quantileCi(b, q, z);
  return { value: ca.value - cb.value, lo: ca.lo - cb.hi, hi: ca.hi - cb.lo, a: ca, b: cb };
}
