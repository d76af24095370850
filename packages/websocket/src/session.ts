import type {
  QuiverBidirectionalStream,
  TimerHandle,
  QuiverDatagramDuplexStream,
  QuiverSession,
  TransportName,
  TransportStats,
  WebTransportCloseInfo,
} from '@quiver/transport';
import { ProtocolViolationError, QuiverTransportError, SessionRejectedError } from '@quiver/transport';
import { closeReasonFor, truncateUtf8, violation, WsErrorCode, wsCloseCodeFor } from './codes.js';
import { type CoreEvents, SessionCore } from './core.js';
import { type Resolved, resolveOptions, type WebSocketSessionOptions } from './options.js';
import { WsDatagrams } from './datagrams.js';
import type { SocketAdapter } from './socket.js';
import { WsStreams } from './streams.js';
import { MAX_CLOSE_REASON_BYTES } from './wire.js';

function noop(): void {}

/**
 * Runs `fn` once the microtask queue has drained. A WritableStream hands its sink one chunk per promise hop, so a
 * flush queued as a microtask after the first of a burst of datagram writes sent that datagram alone, then the next:
 * 100 datagrams written in one turn made 100 WebSocket messages, 100 TLS records and 100 syscalls. In Node a
 * `nextTick` queued from a microtask runs only after the microtask queue is empty (`processTicksAndRejections`), still
 * before the event loop goes on, so the burst leaves in one message with no added wait. Browsers have no such hook:
 * a microtask, as before.
 */
const afterMicrotasks: (fn: () => void) => void =
  typeof process !== 'undefined' && typeof process.nextTick === 'function'
    ? (fn) => queueMicrotask(() => process.nextTick(fn))
    : (fn) => queueMicrotask(fn);

/** Runs `fn` after this turn's timers, I/O callbacks and microtasks: Node's check phase, else a zero timer. */
const endOfTurn: (fn: () => void) => void =
  typeof setImmediate === 'function' ? (fn) => void setImmediate(fn) : (fn) => void setTimeout(fn, 0);

/**
 * One Quiver session over one WebSocket: a {@link QuiverSession} built on the sans-IO {@link SessionCore} and a
 * {@link SocketAdapter}. Used by both the client (Node and browsers) and the server.
 */
export class WebSocketSession implements QuiverSession {
  /** `'websocket'`, or the name of a transport that carries this framing over another carrier (`'http'`). */
  readonly transport: TransportName;
  readonly reliability = 'reliable-only' as const;
  readonly ready: Promise<void>;
  readonly closed: Promise<WebTransportCloseInfo>;
  readonly incomingBidirectionalStreams: ReadableStream<QuiverBidirectionalStream>;
  readonly incomingUnidirectionalStreams: ReadableStream<ReadableStream<Uint8Array>>;
  readonly datagrams: QuiverDatagramDuplexStream;
  /** Resolves once the underlying socket is closed and every timer is released. */
  readonly released: Promise<void>;

  private readonly o: Resolved;
  private readonly core: SessionCore;
  private readonly dgrams: WsDatagrams;
  private adapter: SocketAdapter | undefined;
  private readonly streams: WsStreams;
  private resolveReady!: () => void;
  private rejectReady!: (e: Error) => void;
  private resolveClosed!: (info: WebTransportCloseInfo) => void;
  private rejectClosed!: (e: Error) => void;
  private resolveReleased!: () => void;
  private finished = false;
  /** Messages produced by a close() before the socket was attached. */
  private finalMessages: Uint8Array[] = [];
  /** A server session gets its socket after accept(); until then, closing waits for attach(). */
  private awaitingSocket: boolean;
  private socketClosed = false;
  private flushScheduled = false;
  private datagramFlushScheduled = false;
  private probeFlushScheduled = false;
  /** `sendEstimate()` asked for an RTT probe: the next flush sends a PING. */
  private probeWanted = false;
  private pollTimer: TimerHandle | undefined;
  private tickTimer: TimerHandle | undefined;
  private handshakeTimer: TimerHandle | undefined;
  private closeTimer: TimerHandle | undefined;
  private lastReceived: number;
  private lastPing = Number.NEGATIVE_INFINITY;
  private creditWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private bidiController!: ReadableStreamDefaultController<QuiverBidirectionalStream>;
  private uniController!: ReadableStreamDefaultController<ReadableStream<Uint8Array>>;

  constructor(
    role: 'client' | 'server',
    options: WebSocketSessionOptions = {},
    transport: TransportName = 'websocket',
  ) {
    this.transport = transport;
    this.o = resolveOptions(options);
    this.awaitingSocket = role === 'server';
    const o = this.o;
    this.lastReceived = o.clock.now();
    this.ready = new Promise<void>((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.closed = new Promise<WebTransportCloseInfo>((resolve, reject) => {
      this.resolveClosed = resolve;
      this.rejectClosed = reject;
    });
    this.released = new Promise<void>((resolve) => {
      this.resolveReleased = resolve;
    });
    // The application may never look at these promises; a rejection must not become an unhandled one.
    this.ready.catch(noop);
    this.closed.catch(noop);
    this.core = new SessionCore(
      {
        role,
        local: {
          maxMessageSize: o.maxMessageSize,
          initialMaxStreamsBidi: o.maxIncomingBidirectionalStreams,
          initialMaxStreamsUni: o.maxIncomingUnidirectionalStreams,
          initialMaxStreamData: o.streamWindow,
          maxDatagramSize: o.maxDatagramSize,
        },
        maxStreamFrameSize: o.maxStreamFrameSize,
        maxOutgoingMessageSize: o.maxOutgoingMessageSize,
        maxQueuedControlBytes: o.maxQueuedControlBytes,
      },
      this.coreEvents(),
    );
    this.streams = new WsStreams(this.core, () => this.scheduleFlush());
    this.incomingBidirectionalStreams = new ReadableStream({
      start: (c) => {
        this.bidiController = c;
      },
    });
    this.incomingUnidirectionalStreams = new ReadableStream({
      start: (c) => {
        this.uniController = c;
      },
    });
    this.dgrams = new WsDatagrams(this.core, o, this.ready, {
      finished: () => this.finished,
      adapter: () => this.adapter,
      lastPing: () => this.lastPing,
      setLastPing: (now) => {
        this.lastPing = now;
      },
      probe: () => {
        this.probeWanted = true;
        this.scheduleProbeFlush();
      },
      scheduleDatagramFlush: () => this.scheduleDatagramFlush(),
      flushNow: () => this.flush(),
    });
    this.datagrams = this.dgrams.stream;
    this.handshakeTimer = o.clock.setTimeout(() => {
      this.handshakeTimer = undefined;
      if (this.core.ready || this.finished) return;
      this.fail(
        role === 'server'
          ? violation(WsErrorCode.HANDSHAKE_TIMEOUT, `no SETTINGS within ${o.handshakeTimeoutMs} ms`)
          : new QuiverTransportError(`handshake not complete within ${o.handshakeTimeoutMs} ms`, {
              source: 'session',
            }),
      );
    }, o.handshakeTimeoutMs);
  }

  /** Binds the socket. The client attaches a connecting socket, the server an open one. */
  attach(adapter: SocketAdapter): void {
    if (this.adapter) throw new Error('socket already attached');
    this.adapter = adapter;
    adapter.listen({
      open: () => this.scheduleFlush(),
      message: (data) => this.onMessage(data),
      control: () => this.checkBuffered(),
      textMessage: () => this.fail(violation(WsErrorCode.UNSUPPORTED_DATA, 'text message')),
      close: (code, reason, error) => this.onSocketClose(code, reason, error),
      drain: () => {
        if (this.core.hasPendingOutput) this.flush();
      },
    });
    if (this.finished) {
      if (adapter.isOpen && this.finalMessages.length > 0) {
        for (const m of this.finalMessages.splice(0)) adapter.send(m);
        this.closeSocket(1000, '');
      } else {
        adapter.terminate();
      }
      return;
    }
    if (adapter.isOpen) this.scheduleFlush();
  }

  async getStats(): Promise<TransportStats> {
    const s = this.core.stats;
    return {
      timestamp: this.o.clock.now(),
      smoothedRtt: s.smoothedRtt,
      rttVariation: s.rttVariation,
      minRtt: s.minRtt,
      bytesSent: s.bytesSent,
      bytesReceived: s.bytesReceived,
      // A "packet" here is a framing-level frame (README "Statistics").
      packetsSent: s.framesSent,
      packetsReceived: s.framesReceived,
      packetsLost: 0,
      datagrams: {
        sent: s.datagrams.sent,
        received: s.datagrams.received,
        droppedOutgoing: { ...s.datagrams.droppedOutgoing },
        droppedIncoming: { ...s.datagrams.droppedIncoming },
      },
    };
  }

  /**
   * Framing-level counters beyond TransportStats: messages, stream bytes received but dropped unread (the
   * application cancelled the stream or the peer reset it), open streams.
   */
  get wireStats(): {
    /** WebSocket messages sent, each carrying one or more frames. */
    messagesSent: number;
    /** WebSocket messages received. */
    messagesReceived: number;
    /** Bytes that arrived on streams the application had cancelled (dropped, counted). */
    discardedStreamBytes: number;
    /** Streams open now, both directions and both openers. */
    openStreams: number;
  } {
    const s = this.core.stats;
    return {
      messagesSent: s.messagesSent,
      messagesReceived: s.messagesReceived,
      discardedStreamBytes: s.discardedStreamBytes,
      openStreams: this.core.streamCount,
    };
  }

  close(closeInfo: WebTransportCloseInfo = {}): void {
    if (this.finished) return;
    const code = closeInfo.closeCode ?? 0;
    if (!Number.isInteger(code) || code < 0 || code > 0xffffffff) {
      throw new RangeError(`closeCode must be a 32-bit unsigned integer, got ${code}`);
    }
    // W3C WebTransport §6.4 close(): the reason is cut to 1024 UTF-8 bytes rather than refused.
    const reason = truncateUtf8(closeInfo.reason ?? '', MAX_CLOSE_REASON_BYTES);
    this.core.close(code, reason);
    if (this.adapter?.isOpen) this.flush(true);
    else {
      // Not connected yet (a server closing right after accept): keep SETTINGS + CLOSE_SESSION for attach().
      for (let m = this.core.nextMessage(); m; m = this.core.nextMessage()) this.finalMessages.push(m);
    }
    this.finish({ closeCode: code, reason }, undefined);
    this.closeSocket(1000, '');
  }

  createBidirectionalStream(): Promise<QuiverBidirectionalStream> {
    return this.openStream(true) as Promise<QuiverBidirectionalStream>;
  }

  createUnidirectionalStream(): Promise<WritableStream<Uint8Array>> {
    return this.openStream(false) as Promise<WritableStream<Uint8Array>>;
  }

  /** The socket will never come (the client left during the upgrade): fail and release. */
  abandon(error: Error): void {
    this.awaitingSocket = false;
    if (this.finished) this.release();
    else this.fail(error);
  }

  /** Closes the session because of a local decision or a peer's violation (ProtocolViolationError). */
  fail(error: Error): void {
    if (this.finished) return;
    this.core.terminate();
    this.finish(undefined, error);
    if (error instanceof ProtocolViolationError) {
      this.closeSocket(
        wsCloseCodeFor(error.code),
        closeReasonFor(error.code, error.message.replace(/^[A-Z_]+: /, '')),
      );
    } else {
      this.closeSocket(1011, truncateUtf8(error.message, 123));
    }
  }

  // ---- internals ----

  private async openStream(
    bidirectional: boolean,
  ): Promise<QuiverBidirectionalStream | WritableStream<Uint8Array>> {
    await this.ready;
    for (;;) {
      if (this.finished) throw new QuiverTransportError('session is closed', { source: 'session' });
      const id = this.core.openStream(bidirectional);
      if (id !== undefined) {
        const io = this.streams.make(id, true, bidirectional);
        this.scheduleFlush();
        return bidirectional ? { readable: io.readable!, writable: io.writable! } : io.writable!;
      }
      // RFC 9000 §4.6: the peer's MAX_STREAMS is reached; wait for it to grow.
      await new Promise<void>((resolve, reject) => this.creditWaiters.push({ resolve, reject }));
    }
  }

  private coreEvents(): CoreEvents {
    return {
      ready: () => {
        this.o.clock.clearTimeout(this.handshakeTimer);
        this.handshakeTimer = undefined;
        this.resolveReady();
        this.tick();
      },
      incomingStream: (id, bidirectional) => {
        const io = this.streams.make(id, false, bidirectional);
        if (bidirectional) this.bidiController.enqueue({ readable: io.readable!, writable: io.writable! });
        else this.uniController.enqueue(io.readable!);
      },
      streamData: (id, data, fin) => this.streams.data(id, data, fin),
      streamReset: (id, code) => this.streams.reset(id, code),
      stopSending: (id, code) => this.streams.stopSending(id, code),
      streamCredit: () => {
        const waiters = this.creditWaiters;
        this.creditWaiters = [];
        for (const w of waiters) w.resolve();
      },
      datagram: (data) => this.dgrams.received(data),
      closeReceived: (code, reason) => {
        this.finish({ closeCode: code, reason }, undefined);
        this.closeSocket(1000, '');
      },
    };
  }

  /** Fails the session when the peer made us buffer more than `maxBufferedAmount` (it sends but never reads). */
  private checkBuffered(): boolean {
    const buffered = this.adapter?.bufferedAmount ?? 0;
    if (this.finished || buffered <= this.o.maxBufferedAmount) return true;
    this.fail(
      violation(
        WsErrorCode.EXCESSIVE_LOAD,
        `${buffered} bytes buffered for a peer that does not read > ${this.o.maxBufferedAmount}`,
      ),
    );
    return false;
  }

  private onMessage(data: Uint8Array): void {
    if (this.finished || !this.checkBuffered()) return;
    this.lastReceived = this.o.clock.now();
    try {
      this.core.receive(data, this.lastReceived);
    } catch (e) {
      this.fail(
        e instanceof ProtocolViolationError
          ? e
          : violation(WsErrorCode.INTERNAL_ERROR, e instanceof Error ? e.message : String(e)),
      );
      return;
    }
    this.scheduleFlush();
  }

  private onSocketClose(code: number, reason: string, error: Error | undefined): void {
    this.socketClosed = true;
    this.o.clock.clearTimeout(this.closeTimer);
    this.closeTimer = undefined;
    if (!this.finished) {
      this.core.terminate();
      if (error instanceof ProtocolViolationError || error instanceof SessionRejectedError)
        this.finish(undefined, error);
      else if (code === 1000 && this.core.ready && !error) {
        // Like a CONNECT stream closed without CLOSE_WEBTRANSPORT_SESSION (draft-ietf-webtrans-http3 §5): code 0.
        this.finish({ closeCode: 0, reason: '' }, undefined);
      } else {
        const detail = error ? error.message : `WebSocket closed with ${code}${reason ? ` (${reason})` : ''}`;
        this.finish(undefined, new QuiverTransportError(detail, { source: 'session' }));
      }
    }
    this.release();
  }

  private closeSocket(code: number, reason: string): void {
    const adapter = this.adapter;
    if (!adapter) {
      if (!this.awaitingSocket) this.release();
      return;
    }
    if (this.socketClosed) return;
    adapter.close(code, reason);
    if (this.closeTimer === undefined && !this.socketClosed) {
      this.closeTimer = this.o.clock.setTimeout(() => {
        this.closeTimer = undefined;
        // The peer did not finish the closing handshake (RFC 6455 §7.1.1): drop the TCP connection.
        adapter.terminate();
      }, this.o.closeTimeoutMs);
    }
  }

  private release(): void {
    this.clearTimers();
    this.resolveReleased();
  }

  private clearTimers(): void {
    const clock = this.o.clock;
    clock.clearTimeout(this.pollTimer);
    clock.clearTimeout(this.tickTimer);
    clock.clearTimeout(this.handshakeTimer);
    this.pollTimer = this.tickTimer = this.handshakeTimer = undefined;
  }

  /** Settles everything once: `info` for a clean close, `error` for an abrupt one (W3C WebTransport §6.5 cleanup). */
  private finish(info: WebTransportCloseInfo | undefined, error: Error | undefined): void {
    if (this.finished) return;
    this.finished = true;
    const clock = this.o.clock;
    clock.clearTimeout(this.pollTimer);
    clock.clearTimeout(this.tickTimer);
    clock.clearTimeout(this.handshakeTimer);
    this.pollTimer = this.tickTimer = this.handshakeTimer = undefined;
    const streamError = error ?? new QuiverTransportError('session closed', { source: 'session' });
    const sessionError =
      error instanceof QuiverTransportError || error instanceof ProtocolViolationError
        ? error
        : new QuiverTransportError(streamError.message, { source: 'session' });
    this.streams.failAll(streamError);
    this.core.terminate();
    const waiters = this.creditWaiters;
    this.creditWaiters = [];
    for (const w of waiters) w.reject(sessionError);
    if (info) {
      for (const c of [this.bidiController, this.uniController]) {
        try {
          c.close();
        } catch {
          // Already closed.
        }
      }
      this.dgrams.close();
      this.rejectReady(new QuiverTransportError('session closed before it was ready', { source: 'session' }));
      this.resolveClosed(info);
    } else {
      this.bidiController.error(sessionError);
      this.uniController.error(sessionError);
      this.dgrams.error(sessionError);
      this.rejectReady(sessionError);
      this.rejectClosed(sessionError);
    }
  }

  /**
   * Sends a probe that `sendEstimate()` asked for. The caller asks for the estimate just before it writes a
   * datagram, and that datagram reaches the core a microtask later (through the datagram stream): a flush in this
   * turn's microtasks would send the PING alone and the datagram in a second message, two TLS records and two
   * syscalls per tick instead of one. So the PING is made by the next flush and rides in the datagram's message;
   * only when nothing is written this turn (every datagram held) does it go alone, at the end of the turn. It is
   * stamped when that flush makes it, not when it was asked for: the wait until the end of a busy turn is not RTT.
   */
  private scheduleProbeFlush(): void {
    if (this.probeFlushScheduled) return;
    this.probeFlushScheduled = true;
    endOfTurn(() => {
      this.probeFlushScheduled = false;
      if (this.probeWanted) this.flush();
    });
  }

  /**
   * A datagram was queued: flush once every datagram written in this turn is queued too (see `afterMicrotasks`).
   * Only datagrams wait so: a stream write's promise resolves when its data is framed, so a writer awaiting each
   * write gets its next chunk in only after a flush, and stream data flushes a microtask later, as it always did.
   */
  private scheduleDatagramFlush(): void {
    if (this.datagramFlushScheduled) return;
    this.datagramFlushScheduled = true;
    afterMicrotasks(() => {
      this.datagramFlushScheduled = false;
      this.flush();
    });
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** Moves messages from the core to the socket while its buffer is below the high-water mark. */
  private flush(ignoreBuffer = false): void {
    const a = this.adapter;
    if (!a?.isOpen) return;
    if (this.probeWanted) {
      this.probeWanted = false;
      this.core.ping(this.o.clock.now());
    }
    while (ignoreBuffer || a.bufferedAmount < this.o.sendHighWaterMark) {
      const m = this.core.nextMessage();
      if (!m) break;
      a.send(m);
      this.dgrams.sendDelay.wrote(m.length);
    }
    if (this.core.hasPendingOutput && !a.emitsDrain && this.pollTimer === undefined && !this.finished) {
      // Browsers have no drain event: look at bufferedAmount again shortly.
      this.pollTimer = this.o.clock.setTimeout(() => {
        this.pollTimer = undefined;
        this.flush();
      }, 4);
    }
  }

  /** Keep-alive, RTT sampling (framing-level PING, which browsers can send unlike WebSocket pings) and idle check. */
  private tick(): void {
    if (this.finished) return;
    const o = this.o;
    const now = o.clock.now();
    if (o.idleTimeoutMs > 0 && now - this.lastReceived >= o.idleTimeoutMs) {
      this.fail(
        violation(WsErrorCode.IDLE_TIMEOUT, `nothing received for ${Math.round(now - this.lastReceived)} ms`),
      );
      return;
    }
    if (o.pingIntervalMs > 0 && now - this.lastPing >= o.pingIntervalMs) {
      this.lastPing = now;
      this.core.ping(now);
      this.scheduleFlush();
    }
    const periods = [o.pingIntervalMs, o.idleTimeoutMs / 2].filter((p) => p > 0);
    if (periods.length === 0) return;
    this.tickTimer = o.clock.setTimeout(
      () => {
        this.tickTimer = undefined;
        this.tick();
      },
      Math.min(...periods),
    );
  }
}
