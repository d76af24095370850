/** The soak suite's RSS figure that a moving session count does not distort. */

/** One sample: ms since start, the server's RSS and the sessions it held. */
export interface RssSample {
  t: number;
  rssBytes: number;
  sessions: number;
}
/**
 * RSS growth after warm-up with the session count held equal. The server's sessions rise and fall by hundreds with
 * every kill and rejoin, and RSS follows them (tens of KB a session), so the plain ratio of the last samples to the
 * first ones after warm-up measures where the count happened to be, not a leak. A least-squares fit of
 * RSS = a + b·sessions + c·t over the samples after warm-up separates the two: b is the RSS a session costs, and
 * c·(t_end − t_warm), over the RSS the fit gives at the mean session count at t_warm, is the growth that no change
 * in the count explains. Sessions are all the server holds (open and awaiting resume). NaN when the samples cannot
 * separate the two (fewer than 4, or a count that never moves together with a time that does).
 */
export function rssFit(samples: RssSample[]): {
  growth: number;
  perSession: number;
  r2: number;
} {
  const n = samples.length;
  const none = { growth: Number.NaN, perSession: Number.NaN, r2: Number.NaN };
  if (n < 4) return none;
  const avg = (f: (s: (typeof samples)[number]) => number) => samples.reduce((a, s) => a + f(s), 0) / n;
  const mx = avg((s) => s.sessions);
  const mt = avg((s) => s.t);
  const my = avg((s) => s.rssBytes);
  let sxx = 0;
  let stt = 0;
  let sxt = 0;
  let sxy = 0;
  let sty = 0;
  let syy = 0;
  for (const s of samples) {
    const x = s.sessions - mx;
    const t = s.t - mt;
    const y = s.rssBytes - my;
    sxx += x * x;
    stt += t * t;
    sxt += x * t;
    sxy += x * y;
    sty += t * y;
    syy += y * y;
  }
  const det = sxx * stt - sxt * sxt;
  // Collinear (or constant) regressors: the fit cannot tell the count's share from time's.
  if (!(det > 1e-9 * sxx * stt) || stt === 0) return none;
  const b = (sxy * stt - sty * sxt) / det;
  const c = (sty * sxx - sxy * sxt) / det;
  const t0 = samples[0].t;
  const t1 = samples[n - 1].t;
  const base = my + c * (t0 - mt);
  let ssr = 0;
  for (const s of samples) {
    const e = s.rssBytes - (my + b * (s.sessions - mx) + c * (s.t - mt));
    ssr += e * e;
  }
  return { growth: (c * (t1 - t0)) / base, perSession: b, r2: syy > 0 ? 1 - ssr / syy : Number.NaN };
}

/**
 * RSS growth after warm-up compared at equal session counts: every sample of the last third of the samples after
 * warm-up is set against the samples of the first third whose session count is within `tolerance` of its own (at
 * least 5 sessions); the growth is the median of late RSS over the matched early mean, minus 1. Unlike the fit, it
 * assumes no model of how RSS follows the count (RSS lags a fall in the count: freed pages stay with the
 * allocator for a while). NaN when fewer than 3 late samples find a match: the count never came back to a level
 * it had early on, and no figure is made up.
 */
export function rssAtEqualSessions(
  samples: RssSample[],
  tolerance = 0.02,
): { growth: number; matched: number } {
  const third = Math.floor(samples.length / 3);
  const early = samples.slice(0, third);
  const late = samples.slice(samples.length - third);
  const ratios: number[] = [];
  for (const s of late) {
    const near = early.filter(
      (e) => Math.abs(e.sessions - s.sessions) <= Math.max(5, tolerance * s.sessions),
    );
    if (near.length === 0) continue;
    ratios.push(s.rssBytes / (near.reduce((a, e) => a + e.rssBytes, 0) / near.length));
  }
  if (ratios.length < 3) return { growth: Number.NaN, matched: ratios.length };
  ratios.sort((a, b) => a - b);
  const mid = ratios.length >> 1;
  const median = ratios.length % 2 ? ratios[mid] : (ratios[mid - 1] + ratios[mid]) / 2;
  return { growth: median - 1, matched: ratios.length };
}
