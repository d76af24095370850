/** The counters a listener keeps about session requests and their verdicts. */
export interface VerdictStats {
  /** Requests the application accepted. */
  accepted: number;
  /** Requests the application rejected with `reject(status)`. */
  rejected: number;
  /** Requests answered 408 because nobody decided in time. */
  timedOut: number;
  /** The client went away before the verdict. */
  abandoned: number;
}

/**
 * Session requests of one listener waiting for the application's `accept()` or `reject()` (an `IncomingSession`):
 * at most `max` at once, each answered 408 after `timeoutMs`, each decided once, every outcome counted in `stats`.
 * The listeners of `@quiver/websocket` and `@quiver/http-stream` share it; each answers a refusal its own way.
 */
export class PendingRequests {
  private readonly waiting = new Set<PendingRequest>();

  constructor(
    private readonly o: {
      /** Requests waiting at once at most (the listener answers 503 to more). */
      max: number;
      /** A request undecided for this long is answered 408. */
      timeoutMs: number;
      /** Counted into. */
      stats: VerdictStats;
    },
  ) {}

  /** `max` requests are waiting: the next one should be refused. */
  get full(): boolean {
    return this.waiting.size >= this.o.max;
  }

  /** A request now waiting; `answer(status, reason)` writes its refusal (a timeout, a reject, the listener closing). */
  add(answer: (status: number, reason: string) => void): PendingRequest {
    const p = new PendingRequest(answer, this.o.stats, this.o.timeoutMs, () => this.waiting.delete(p));
    this.waiting.add(p);
    return p;
  }

  /** Refuses every request still waiting (the listener is closing). */
  refuseAll(status: number, reason: string): void {
    for (const p of [...this.waiting]) p.refuse(status, reason);
  }
}

/** One session request waiting for its verdict (see {@link PendingRequests}). */
export class PendingRequest {
  /** The client went away (before or after the verdict). */
  gone = false;
  private decided = false;
  private readonly timer: ReturnType<typeof setTimeout>;
  private readonly cleanups: (() => void)[] = [];

  constructor(
    private readonly answer: (status: number, reason: string) => void,
    private readonly stats: VerdictStats,
    timeoutMs: number,
    release: () => void,
  ) {
    this.cleanups.push(release);
    this.timer = setTimeout(() => {
      stats.timedOut++;
      this.refuse(408, 'Request Timeout');
    }, timeoutMs);
  }

  /** Runs `fn` once the request is decided or its client gone (e.g. to remove socket listeners). */
  onSettled(fn: () => void): void {
    this.cleanups.push(fn);
  }

  /** The client went away: counted as abandoned if nobody had decided. */
  clientGone(): void {
    this.gone = true;
    if (!this.decided) this.stats.abandoned++;
    this.settle();
  }

  /** `IncomingSession.accept()`: throws if already decided; counts it. */
  accept(): void {
    this.decide();
    this.stats.accepted++;
  }

  /** `IncomingSession.reject()`: throws if already decided or `status` is not 400-599; counts and answers it. */
  reject(status: number, reason: string): void {
    if (this.decided) throw new Error('IncomingSession already accepted or rejected');
    if (!Number.isInteger(status) || status < 400 || status > 599) {
      throw new RangeError(`reject status must be 400-599, got ${status}`);
    }
    this.stats.rejected++;
    this.refuse(status, reason);
  }

  /** Answers with a refusal unless a verdict came first. */
  refuse(status: number, reason: string): void {
    if (this.decided) return;
    this.decided = true;
    this.settle();
    this.answer(status, reason);
  }

  private decide(): void {
    if (this.decided) throw new Error('IncomingSession already accepted or rejected');
    this.decided = true;
    this.settle();
  }

  private settle(): void {
    clearTimeout(this.timer);
    for (const fn of this.cleanups.splice(0)) fn();
  }
}

/** A Node request's headers as the `SessionRequest` carries them: lower-case names, repeated values joined. */
export function requestHeaders(raw: Record<string, string | string[] | undefined>): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (v !== undefined) headers[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  }
  return headers;
}
