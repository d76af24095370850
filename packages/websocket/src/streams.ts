/**
 * The streams of one WebSocket session as WHATWG streams: readers are handed queued data only as they pull, so
 * credit (MAX_STREAM_DATA) goes back to the peer only as the application reads; cancel, abort and close become
 * STOP_SENDING, RESET_STREAM and FIN on the core.
 */

import { QuiverTransportError, streamErrorCodeOf } from '@quiver/transport';
import type { SessionCore } from './core.js';

export interface StreamIO {
  id: number;
  rc: ReadableStreamDefaultController<Uint8Array> | undefined;
  wc: WritableStreamDefaultController | undefined;
  queue: Uint8Array[];
  fin: boolean;
  /** The readable side is finished (closed, errored or cancelled) or absent. */
  readEnded: boolean;
  /** The writable side is finished (FIN sent, reset or errored) or absent. */
  writeEnded: boolean;
  waiting: (() => void) | undefined;
}

export function toBytes(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
  if (ArrayBuffer.isView(chunk)) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new TypeError('chunk must be a BufferSource');
}

/** The open streams of one session, by id; a stream is forgotten once both its sides ended. */
export class WsStreams {
  private readonly streams = new Map<number, StreamIO>();

  constructor(
    private readonly core: SessionCore,
    /** Asks the session to move the core's output to the socket (once, later in this turn). */
    private readonly scheduleFlush: () => void,
  ) {}

  /**
   * Registers stream `id` and builds its WHATWG sides: a readable unless it is our unidirectional stream, a writable
   * unless it is the peer's.
   */
  make(
    id: number,
    local: boolean,
    bidirectional: boolean,
  ): StreamIO & { readable?: ReadableStream<Uint8Array>; writable?: WritableStream<Uint8Array> } {
    const io: StreamIO = {
      id,
      rc: undefined,
      wc: undefined,
      queue: [],
      fin: false,
      readEnded: true,
      writeEnded: true,
      waiting: undefined,
    };
    this.streams.set(id, io);
    let readable: ReadableStream<Uint8Array> | undefined;
    let writable: WritableStream<Uint8Array> | undefined;
    if (bidirectional || !local) {
      io.readEnded = false;
      readable = new ReadableStream<Uint8Array>(
        {
          start: (c) => {
            io.rc = c;
          },
          pull: () => {
            if (this.deliver(io)) return;
            return new Promise<void>((resolve) => {
              io.waiting = resolve;
            });
          },
          cancel: (reason) => {
            this.discardQueue(io);
            io.readEnded = true;
            this.core.stopSending(id, streamErrorCodeOf(reason));
            this.scheduleFlush();
            this.forget(io);
          },
        },
        // Data waits in io.queue, not in the stream's queue: credit is returned only as the application reads.
        { highWaterMark: 0 },
      );
    }
    if (bidirectional || local) {
      io.writeEnded = false;
      writable = new WritableStream<Uint8Array>({
        start: (c) => {
          io.wc = c;
        },
        write: (chunk) => {
          const bytes = toBytes(chunk);
          if (bytes.length === 0) return;
          return new Promise<void>((resolve, reject) => {
            this.core.write(id, bytes, (e) => (e ? reject(e) : resolve()));
            this.scheduleFlush();
          });
        },
        close: () =>
          new Promise<void>((resolve, reject) => {
            this.core.finish(id, (e) => {
              io.writeEnded = true;
              this.forget(io);
              if (e) reject(e);
              else resolve();
            });
            this.scheduleFlush();
          }),
        abort: (reason) => {
          io.writeEnded = true;
          this.core.resetStream(id, streamErrorCodeOf(reason));
          this.scheduleFlush();
          this.forget(io);
        },
      });
    }
    return Object.assign(io, { readable, writable });
  }

  /** Hands one queued chunk (or the end) to a waiting reader; false when there is nothing to hand over. */
  private deliver(io: StreamIO): boolean {
    if (io.readEnded) return true;
    const c = io.rc!;
    if (io.queue.length > 0) {
      const chunk = io.queue.shift()!;
      c.enqueue(chunk);
      this.core.consumed(io.id, chunk.length);
      this.scheduleFlush();
      if (io.queue.length === 0 && io.fin) this.endRead(io);
      return true;
    }
    if (io.fin) {
      this.endRead(io);
      return true;
    }
    return false;
  }

  private endRead(io: StreamIO): void {
    io.readEnded = true;
    try {
      io.rc!.close();
    } catch {
      // Already closed or errored by the application.
    }
    this.forget(io);
  }

  /** Drops data received but never read (cancel, reset): counted, as every drop is. */
  private discardQueue(io: StreamIO): void {
    for (const chunk of io.queue) this.core.stats.discardedStreamBytes += chunk.length;
    io.queue = [];
  }

  private forget(io: StreamIO): void {
    if (io.readEnded && io.writeEnded) this.streams.delete(io.id);
  }

  private wake(io: StreamIO): void {
    const w = io.waiting;
    if (w && this.deliver(io)) {
      io.waiting = undefined;
      w();
    }
  }

  /** Stream data from the peer, queued for the reader; dropped (credit returned) once the reader is gone. */
  data(id: number, data: Uint8Array, fin: boolean): void {
    const io = this.streams.get(id);
    if (!io || io.readEnded) {
      // The application already cancelled (STOP_SENDING is on its way): drop, but keep the accounting right.
      this.core.consumed(id, data.length);
      return;
    }
    if (data.length > 0) io.queue.push(data);
    if (fin) io.fin = true;
    this.wake(io);
  }

  /** The peer reset a stream (RESET_STREAM): what was not read is dropped and counted, the reader errors. */
  reset(id: number, code: number): void {
    const io = this.streams.get(id);
    if (!io || io.readEnded) return;
    this.discardQueue(io);
    io.readEnded = true;
    io.rc!.error(
      new QuiverTransportError('stream reset by peer', { source: 'stream', streamErrorCode: code }),
    );
    io.waiting?.();
    io.waiting = undefined;
    this.forget(io);
  }

  /** The peer asked us to stop sending (STOP_SENDING): the writer errors. */
  stopSending(id: number, code: number): void {
    const io = this.streams.get(id);
    if (!io || io.writeEnded) return;
    io.writeEnded = true;
    io.wc!.error(
      new QuiverTransportError('stop sending requested by peer', {
        source: 'stream',
        streamErrorCode: code,
      }),
    );
    this.forget(io);
  }

  /** The session ended: every stream still open errors with `streamError` (W3C WebTransport §6.5 cleanup). */
  failAll(streamError: Error): void {
    for (const io of this.streams.values()) {
      if (!io.writeEnded) {
        io.writeEnded = true;
        io.wc?.error(streamError);
      }
      // A stream whose FIN already arrived keeps its data: it was delivered completely before the close.
      if (!io.readEnded && !io.fin) {
        io.readEnded = true;
        io.queue = [];
        io.rc?.error(streamError);
        io.waiting?.();
        io.waiting = undefined;
      }
    }
  }
}
