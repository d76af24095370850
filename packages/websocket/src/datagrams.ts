/**
 * The datagram side of a WebSocket session (W3C WebTransport §5 `datagrams`): a readable bounded by
 * `incomingDatagramQueue` (further ones dropped, counted), a writable that waits for the session to be ready and
 * then never blocks (dropped, counted, on a congested socket), and the send estimate with its RTT probes.
 */

import type { QuiverDatagramDuplexStream } from '@quiver/transport';
import type { SessionCore } from './core.js';
import type { Resolved } from './options.js';
import { WsSendEstimate } from './send-estimate.js';
import type { SocketAdapter } from './socket.js';
import { toBytes } from './streams.js';

function noop(): void {}

/** What the datagram side reads of its session, and asks of it. */
export interface DatagramHost {
  finished(): boolean;
  adapter(): SocketAdapter | undefined;
  /** When the last PING went out (keep-alive or probe); one clock for both, so probes are not sent twice. */
  lastPing(): number;
  setLastPing(now: number): void;
  /** An RTT probe is wanted: the session's next flush sends a PING. */
  probe(): void;
  /** Flush once every datagram written in this turn is queued too (the session's `scheduleDatagramFlush`). */
  scheduleDatagramFlush(): void;
  /** Hand what is queued to the socket now. */
  flushNow(): void;
}

/** Datagrams in and out of one session. */
export class WsDatagrams {
  /** The session's `datagrams`. */
  readonly stream: QuiverDatagramDuplexStream;
  readonly sendDelay: WsSendEstimate;
  private controller!: ReadableStreamDefaultController<Uint8Array>;

  constructor(
    private readonly core: SessionCore,
    private readonly o: Resolved,
    private readonly ready: Promise<void>,
    private readonly host: DatagramHost,
  ) {
    const datagramReadable = new ReadableStream<Uint8Array>(
      {
        start: (c) => {
          this.controller = c;
        },
      },
      { highWaterMark: o.incomingDatagramQueue },
    );
    const datagramWritable = new WritableStream<Uint8Array>({
      write: (chunk) => this.write(toBytes(chunk)),
    });
    this.sendDelay = new WsSendEstimate(core, o.rttProbeIntervalMs);
    this.stream = {
      readable: datagramReadable,
      writable: datagramWritable,
      get maxDatagramSize() {
        return core.maxDatagramSize;
      },
      // Asking probes too when the RTT sample is old: a sender that holds everything back because the estimate is
      // high writes no datagrams, and must still see the queue drain.
      sendEstimate: () => {
        const now = o.clock.now();
        this.sendDelay.asked(now);
        if (this.sendDelay.due(now, host.lastPing())) {
          host.setLastPing(now);
          host.probe();
        }
        return this.sendDelay.estimate(now, host.adapter());
      },
    };
  }

  /** A datagram from the peer: queued for the application, or dropped (counted) when its queue is full. */
  received(data: Uint8Array): void {
    const s = this.core.stats.datagrams;
    s.received++;
    const c = this.controller;
    if ((c.desiredSize ?? 0) <= 0) {
      this.core.countDatagramDrop('incoming', 'receive-queue-full');
      return;
    }
    c.enqueue(data);
  }

  /** The session closed cleanly: the readable ends. */
  close(): void {
    try {
      this.controller.close();
    } catch {
      // Already closed.
    }
  }

  /** The session failed: the readable errors. */
  error(e: Error): void {
    this.controller.error(e);
  }

  /**
   * The writable's write algorithm. Synchronous once the session is ready (a promise only while it is not): every
   * tick writes a datagram per session, and an async function cost each one more promises and turns.
   */
  private write(bytes: Uint8Array): Promise<void> | undefined {
    // W3C WebTransport §5: writes wait for the session to be ready, then never block.
    if (!this.core.ready && !this.host.finished()) {
      return this.ready.catch(noop).then(() => this.sendNow(bytes));
    }
    this.sendNow(bytes);
    return undefined;
  }

  private sendNow(bytes: Uint8Array): void {
    if (this.host.finished()) {
      this.core.countDatagramDrop('outgoing', 'closed');
      return;
    }
    if (bytes.length <= this.core.maxDatagramSize) {
      const buffered = (this.host.adapter()?.bufferedAmount ?? 0) + this.core.queuedDatagramBytes;
      if (buffered > this.o.datagramDropThreshold) {
        // Datagrams are unreliable by policy: on a congested socket they are dropped, never queued without bound.
        this.core.countDatagramDrop('outgoing', 'congestion');
        return;
      }
    }
    const dropped = this.core.sendDatagram(bytes);
    if (dropped) this.core.countDatagramDrop('outgoing', dropped);
    else {
      const now = this.o.clock.now();
      if (this.sendDelay.sending(now, this.host.lastPing())) this.host.setLastPing(now);
      // A full message's worth (or half the drop threshold) is queued: hand it to the socket now rather than hold a
      // long burst until the turn ends, where everything past datagramDropThreshold would drop unsent.
      const o = this.o;
      if (this.core.queuedDatagramBytes >= Math.min(o.maxOutgoingMessageSize, o.datagramDropThreshold / 2))
        this.host.flushNow();
      else this.host.scheduleDatagramFlush();
    }
  }
}
