import type { QuiverBidirectionalStream, QuiverSession } from '@quiver/transport';
import type { TimerHandle } from './clock.js';
import { type Frame, FrameReader, Kind, parseBody, streamFrame } from './codec.js';
import { DatagramPacker } from './datagrams.js';
import type { BudgetedFrameReader, IncomingBudget } from './limits.js';
import type { DeliveryMode } from './messages.js';

/** What a link needs to know of a channel to carry its reliable messages. */
export interface SendChannel {
  name: string;
  id: number;
  mode: DeliveryMode;
}

export interface StreamWriter {
  writer: WritableStreamDefaultWriter<Uint8Array> | null;
  waiting: boolean;
}

/** One transport connection of a session; a session outlives its links when it resumes. */
export class Link {
  readonly writers = new Map<string, StreamWriter>();
  /** This turn's outgoing datagrams, packed into as few writes as fit. */
  readonly dgram: DatagramPacker;
  closed = false;
  unorderedOpen = 0;
  lastReceived: number;
  heartbeatTimer: TimerHandle | undefined;
  ackTimer: TimerHandle | undefined;
  budgetTimer: TimerHandle | undefined;
  pings = new Map<number, number>();
  /** The send time of the latest probe the peer answered on this link. */
  answeredProbe = Number.NEGATIVE_INFINITY;
  readonly readers: { cancel(reason?: unknown): Promise<void> }[] = [];

  constructor(
    readonly session: QuiverSession,
    readonly control: ControlStream,
    now: number,
  ) {
    this.lastReceived = now;
    this.dgram = new DatagramPacker(session);
  }

  /**
   * Whether `ch` can take a message now: its stream is open and not backpressured (ordered), or fewer than 16
   * single-message streams are in flight (unordered). Opens the stream on first use; `wake` runs when that
   * changes.
   */
  writerReady(ch: SendChannel, wake: () => void): boolean {
    if (ch.mode === 'reliable-unordered') return this.unorderedOpen < 16;
    let w = this.writers.get(ch.name);
    if (!w) {
      w = { writer: null, waiting: false };
      this.writers.set(ch.name, w);
      const entry = w;
      this.session.createUnidirectionalStream().then(
        (ws) => {
          if (this.closed) {
            ws.abort().catch(() => {});
            return;
          }
          entry.writer = ws.getWriter();
          for (const c of streamFrame([Kind.OPEN, ch.id])) entry.writer.write(c).catch(() => {});
          wake();
        },
        () => {},
      );
      return false;
    }
    if (!w.writer) return false;
    if (w.writer.desiredSize !== null && w.writer.desiredSize <= 0) {
      if (!w.waiting) {
        w.waiting = true;
        w.writer.ready.then(
          () => {
            w.waiting = false;
            wake();
          },
          () => {},
        );
      }
      return false;
    }
    return true;
  }

  /**
   * Writes a DATA frame of `ch`: on its long-lived stream (ordered), or on a stream of its own (unordered). `wake`
   * runs when a single-message stream is done, freeing its place. A failed write leaves the message in the replay
   * window: it is sent again on the next link. Resolves once the transport took the frame (rejects when it failed).
   */
  writeReliable(ch: SendChannel, header: unknown[], payload: Uint8Array, wake: () => void): Promise<unknown> {
    if (ch.mode === 'reliable-ordered') {
      const w = this.writers.get(ch.name)!.writer!;
      let last: Promise<void> | undefined;
      for (const c of streamFrame(header, payload)) {
        last = w.write(c);
        last.catch(() => {});
      }
      return last!;
    }
    this.unorderedOpen++;
    return this.session.createUnidirectionalStream().then(
      async (ws) => {
        const w = ws.getWriter();
        try {
          for (const c of streamFrame([Kind.OPEN, ch.id])) w.write(c).catch(() => {});
          for (const c of streamFrame(header, payload)) w.write(c).catch(() => {});
          await w.close();
        } catch {
          // The link died; the message stays in the replay window.
        } finally {
          this.unorderedOpen--;
          wake();
        }
      },
      () => {
        this.unorderedOpen--;
      },
    );
  }
}

/** The control stream (the session's first bidirectional stream): HELLO, WELCOME, ACK, PING/PONG, CLOSE. */
export class ControlStream {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  private readonly frames: FrameReader;
  private budgeted: BudgetedFrameReader | null = null;
  private queued: Uint8Array[] = [];

  /** `maxFrameBytes` bounds the handshake frame; `useBudget` sets the limit for the rest of the session. */
  constructor(stream: QuiverBidirectionalStream, maxFrameBytes: number) {
    this.reader = stream.readable.getReader();
    this.writer = stream.writable.getWriter();
    this.frames = new FrameReader(maxFrameBytes);
  }

  /** From now on every byte received is charged to `budget` as it arrives (what is already buffered included). */
  useBudget(budget: IncomingBudget, maxFrameBytes: number): void {
    this.budgeted?.release();
    this.budgeted = budget.reader(maxFrameBytes, this.frames);
    // Frames that completed before the budget applied still count as messages.
    if (this.queued.length > 0) budget.charge(0, this.queued.length);
  }

  /** The next frame, or null at the end of the stream. Throws `DecodeError` / `MessageTooLargeError`. */
  async next(): Promise<Frame | null> {
    for (;;) {
      const body = this.queued.shift();
      if (body) return parseBody(body);
      const { value, done } = await this.reader.read();
      if (done) return null;
      this.queued = this.budgeted ? this.budgeted.push(value) : this.frames.push(value);
    }
  }

  write(header: unknown[], payload?: Uint8Array): Promise<void> {
    const chunks = streamFrame(header, payload);
    let last: Promise<void> = Promise.resolve();
    for (const c of chunks) last = this.writer.write(c);
    last.catch(() => {});
    return last;
  }

  cancel(reason?: unknown): Promise<void> {
    this.budgeted?.release();
    return this.reader.cancel(reason).catch(() => {});
  }
}

export interface HandshakeTables {
  messages: [string, number][];
  channels: [string, number, DeliveryMode][];
  acks: [string, number][];
}
