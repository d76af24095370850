/**
 * A network emulator inside the page: wraps a `Connector` so that everything the session sends and receives
 * (streams and datagrams, heartbeats included) is delayed by `latencyMs` each way, and datagrams are dropped with
 * probability `loss` each way. Stream data is only delayed, never dropped or reordered: it models a reliable
 * carrier. Because it sits under the session layer, the RTT, jitter and loss the overlay shows include it, as
 * they would on a real slow link; the settings are read on every packet, so changing them needs no reconnect.
 */
import type {
  ConnectOptions,
  Connector,
  QuiverBidirectionalStream,
  QuiverSession,
  TransportStats,
} from '@quiver/transport';

export interface LinkSettings {
  /** One-way delay added in each direction (ms). */
  latencyMs: number;
  /** Probability of dropping a datagram, each direction, in [0, 1]. */
  loss: number;
}

export interface ShaperStats {
  /** Datagrams dropped by the emulated loss. */
  droppedIn: number;
  droppedOut: number;
}

/** Releases items in order, each no earlier than `latencyMs` after it was queued. */
class DelayLine<T> {
  #queue: { at: number; item: T }[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #last = 0;
  constructor(
    private readonly settings: LinkSettings,
    private readonly release: (item: T) => void,
  ) {}

  push(item: T): void {
    const latency = this.settings.latencyMs;
    if (latency <= 0 && this.#queue.length === 0) {
      this.release(item);
      return;
    }
    // Never earlier than what is queued: a shorter latency set meanwhile must not reorder.
    const at = Math.max(performance.now() + latency, this.#last);
    this.#last = at;
    this.#queue.push({ at, item });
    this.#schedule();
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#queue.length === 0) return;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        const now = performance.now();
        while (this.#queue.length && this.#queue[0].at <= now + 0.5) this.release(this.#queue.shift()!.item);
        this.#schedule();
      },
      Math.max(0, this.#queue[0].at - performance.now()),
    );
  }

  clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#queue = [];
  }
}

function delayedReadable<T>(
  source: ReadableStream<T>,
  settings: LinkSettings,
  drop: () => boolean,
  onClose: (line: DelayLine<unknown>) => void,
): ReadableStream<T> {
  const reader = source.getReader();
  let controller!: ReadableStreamDefaultController<T>;
  let done = false;
  const line = new DelayLine<{ chunk?: T; end?: 'close' | { error: unknown } }>(settings, (e) => {
    if (done) return;
    try {
      if (e.end === 'close') {
        done = true;
        controller.close();
      } else if (e.end) {
        done = true;
        controller.error(e.end.error);
      } else controller.enqueue(e.chunk as T);
    } catch {
      // cancelled by the consumer meanwhile
    }
  });
  onClose(line as DelayLine<unknown>);
  return new ReadableStream<T>({
    start(c) {
      controller = c;
      void (async () => {
        try {
          for (;;) {
            const { value, done: end } = await reader.read();
            if (end) {
              line.push({ end: 'close' });
              return;
            }
            if (!drop()) line.push({ chunk: value });
          }
        } catch (error) {
          line.push({ end: { error } });
        }
      })();
    },
    cancel(reason) {
      done = true;
      line.clear();
      return reader.cancel(reason);
    },
  });
}

function delayedWritable<T>(
  target: WritableStream<T>,
  settings: LinkSettings,
  drop: () => boolean,
  highWaterMark: number,
): WritableStream<T> {
  const writer = target.getWriter();
  let failed: unknown;
  let pending = 0;
  let wake: (() => void) | undefined;
  let ended: Promise<void> | undefined;
  const line = new DelayLine<{ chunk?: T; close?: true }>(settings, (e) => {
    if (e.close) {
      ended = writer.close().catch(() => {});
      return;
    }
    writer.write(e.chunk as T).then(
      () => {
        pending--;
        wake?.();
      },
      (err) => {
        failed ??= err;
        pending--;
        wake?.();
      },
    );
  });
  return new WritableStream<T>(
    {
      async write(chunk) {
        if (failed) throw failed;
        if (drop()) return;
        pending++;
        line.push({ chunk });
        // Backpressure: a full emulated pipe holds the writer, as a full socket buffer would.
        while (pending > 1024 && !failed) await new Promise<void>((r) => (wake = r));
      },
      async close() {
        line.push({ close: true });
        while (!ended) await new Promise((r) => setTimeout(r, settings.latencyMs || 1));
        await ended;
      },
      abort(reason) {
        line.clear();
        return writer.abort(reason);
      },
    },
    new CountQueuingStrategy({ highWaterMark }),
  );
}

/** Wraps `connector` with the emulated link; `settings` is read live. */
export function shapeConnector(connector: Connector, settings: LinkSettings, stats: ShaperStats): Connector {
  return (url: string, options?: ConnectOptions): QuiverSession => {
    const inner = connector(url, options);
    const lines: DelayLine<unknown>[] = [];
    const keep = (l: DelayLine<unknown>) => lines.push(l);
    const dropIn = () => {
      const d = settings.loss > 0 && Math.random() < settings.loss;
      if (d) stats.droppedIn++;
      return d;
    };
    const dropOut = () => {
      const d = settings.loss > 0 && Math.random() < settings.loss;
      if (d) stats.droppedOut++;
      return d;
    };
    const never = () => false;
    const wrapBidi = (s: QuiverBidirectionalStream): QuiverBidirectionalStream => ({
      readable: delayedReadable(s.readable, settings, never, keep),
      writable: delayedWritable(s.writable, settings, never, 1),
    });
    const mapStream = <A, B>(src: ReadableStream<A>, f: (a: A) => B): ReadableStream<B> =>
      src.pipeThrough(new TransformStream<A, B>({ transform: (a, c) => c.enqueue(f(a)) }));
    const closed = inner.closed.finally(() => {
      for (const l of lines) l.clear();
    });
    // The session layer handles the rejection of `closed`; this branch only keeps it from being reported twice.
    closed.catch(() => {});
    let datagrams: QuiverSession['datagrams'] | undefined;
    let incomingBidi: ReadableStream<QuiverBidirectionalStream> | undefined;
    let incomingUni: ReadableStream<ReadableStream<Uint8Array>> | undefined;
    const session: QuiverSession = {
      get transport() {
        return inner.transport;
      },
      get reliability() {
        return inner.reliability;
      },
      ready: inner.ready,
      closed,
      close: (info) => inner.close(info),
      getStats: (): Promise<TransportStats> => inner.getStats(),
      async createBidirectionalStream() {
        return wrapBidi(await inner.createBidirectionalStream());
      },
      async createUnidirectionalStream() {
        return delayedWritable(await inner.createUnidirectionalStream(), settings, never, 1);
      },
      get incomingBidirectionalStreams() {
        incomingBidi ??= mapStream(inner.incomingBidirectionalStreams, wrapBidi);
        return incomingBidi;
      },
      get incomingUnidirectionalStreams() {
        incomingUni ??= mapStream(inner.incomingUnidirectionalStreams, (r) =>
          delayedReadable(r, settings, never, keep),
        );
        return incomingUni;
      },
      get datagrams() {
        if (!datagrams) {
          const d = inner.datagrams;
          const readable = delayedReadable(d.readable, settings, dropIn, keep);
          const writable = delayedWritable(d.writable, settings, dropOut, 64);
          datagrams = {
            readable,
            writable,
            get maxDatagramSize() {
              return d.maxDatagramSize;
            },
          };
        }
        return datagrams;
      },
    };
    return session;
  };
}
