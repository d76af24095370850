/**
 * How long the page's main thread kept the Worker's reports waiting: each report is stamped with the Worker's
 * clock when posted, and the page reads its own (the same epoch clock, `performance.timeOrigin + now()`) when the
 * report is handled. On an idle page this is a fraction of a millisecond; on a page whose frames take 50 ms it is
 * up to 50 ms: the delay any message handled on the main thread has on top of the network's.
 */
export class MainThreadDelay {
  /** The last report's wait, in ms. */
  lastMs = 0;
  /** Exponentially weighted mean of the waits (gain 1/8, as SRTT in RFC 6298), in ms. */
  avgMs = 0;
  private windowStart = 0;
  private windowMax = 0;
  private prevMax = 0;
  /** Reports measured. */
  samples = 0;

  constructor(private readonly windowMs = 1000) {}

  /** One report, posted at `postedAt` and handled at `now` (both epoch ms). */
  add(postedAt: number, now: number): void {
    const d = Math.max(0, now - postedAt);
    this.lastMs = d;
    this.avgMs = this.samples === 0 ? d : this.avgMs + (d - this.avgMs) / 8;
    this.samples++;
    if (now - this.windowStart >= this.windowMs) {
      this.prevMax = now - this.windowStart >= 2 * this.windowMs ? 0 : this.windowMax;
      this.windowMax = 0;
      this.windowStart = now;
    }
    if (d > this.windowMax) this.windowMax = d;
  }

  /** The largest wait over the last one to two windows (1 s by default), in ms. */
  get maxMs(): number {
    return Math.max(this.windowMax, this.prevMax);
  }
}
