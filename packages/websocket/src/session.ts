import type {
  Clock,
  QuiverBidirectionalStream,
  TimerHandle,
  QuiverDatagramDuplexStream,
  QuiverSession,
  TransportName,
  TransportStats,
  WebTransportCloseInfo,
} from '@quiver/transport';
import {
  ProtocolViolationError,
  QuiverTransportError,
  SessionRejectedError,
  streamErrorCodeOf,
  systemClock,
} from '@quiver/transport';
import { closeReasonFor, truncateUtf8, violation, WsErrorCode, wsCloseCodeFor } from './codes.js';
import { type CoreEvents, MIN_MESSAGE_SIZE, SessionCore } from './core.js';
import type { SocketAdapter } from './socket.js';
import { WsSendEstimate } from './send-estimate.js';
import { MAX_CLOSE_REASON_BYTES } from './wire.js';

/** Limits and timings of one session, on either side. Every field has a documented default (README "Options"). */
export interface WebSocketSessionOptions {
  /** Largest incoming WebSocket message, announced to the peer (ws `maxPayload`). Default 1 MiB. */
  maxMessageSize?: number;
  /** Bidirectional streams the peer may have open at once (MAX_STREAMS). Default 100. */
  maxIncomingBidirectionalStreams?: number;
  /** Unidirectional streams the peer may have open at once (MAX_STREAMS). Default 100. */
  maxIncomingUnidirectionalStreams?: number;
  /** Per-stream receive window in bytes (MAX_STREAM_DATA credit). Default 256 KiB. */
  streamWindow?: number;
  /** Largest datagram payload accepted, and sent. Default 1200, as QUIC's minimum datagram size allows. */
  maxDatagramSize?: number;
  /** Largest STREAM frame payload: the round-robin quantum. Default 16 KiB. */
  maxStreamFrameSize?: number;
  /** Largest outgoing message (also capped by the peer's max message size). Default 64 KiB. */
  maxOutgoingMessageSize?: number;
  /** Stream data is framed only while the socket's bufferedAmount is below this. Default 64 KiB. */
  sendHighWaterMark?: number;
  /** Outgoing datagrams are dropped (`congestion`) while bufferedAmount plus queued datagrams exceed this. Default 128 KiB. */
  datagramDropThreshold?: number;
  /** Incoming datagrams queued for the application before further ones drop (`receive-queue-full`). Default 128. */
  incomingDatagramQueue?: number;
  /** PING interval for RTT samples and keep-alive; 0 disables. Default 5000 ms. */
  pingIntervalMs?: number;
  /**
   * While datagrams are being sent, a PING goes out this often (unless one is unanswered) so that
   * `datagrams.sendEstimate()` sees queues beyond `bufferedAmount` (kernel buffers, the network). 0 disables.
   * Default 50 ms.
   */
  rttProbeIntervalMs?: number;
  /** The session fails when nothing arrives for this long; 0 disables. Default 30000 ms. */
  idleTimeoutMs?: number;
  /** Time for the socket to open and the peer's SETTINGS to arrive. Default 10000 ms. */
  handshakeTimeoutMs?: number;
  /** Time the WebSocket closing handshake may take before the socket is dropped. Default 2000 ms. */
  closeTimeoutMs?: number;
  /** Control frames (PONG answers) the peer's input may leave queued before EXCESSIVE_LOAD. Default 64 KiB. */
  maxQueuedControlBytes?: number;
  /**
   * Outgoing socket buffer (WebSocket `bufferedAmount`, which includes `ws`'s automatic pongs) beyond which the
   * session fails with EXCESSIVE_LOAD: a peer that sends but never reads cannot make us buffer more.
   * Default 1 MiB; at least `sendHighWaterMark + maxOutgoingMessageSize`.
   */
  maxBufferedAmount?: number;
  /** Time and timers (default the system clock); tests inject a ManualClock or a tracked clock. */
  clock?: Clock;
}

/** The defaults of {@link WebSocketSessionOptions} (README "Options"). */
export const DEFAULTS = {
  /** Largest incoming WebSocket message, announced to the peer (ws `maxPayload`). See {@link WebSocketSessionOptions.maxMessageSize}. */
  maxMessageSize: 1024 * 1024,
  /** Bidirectional streams the peer may have open at once (MAX_STREAMS). See {@link WebSocketSessionOptions.maxIncomingBidirectionalStreams}. */
  maxIncomingBidirectionalStreams: 100,
  /** Unidirectional streams the peer may have open at once (MAX_STREAMS). See {@link WebSocketSessionOptions.maxIncomingUnidirectionalStreams}. */
  maxIncomingUnidirectionalStreams: 100,
  /** Per-stream receive window in bytes (MAX_STREAM_DATA credit). See {@link WebSocketSessionOptions.streamWindow}. */
  streamWindow: 256 * 1024,
  /** Largest datagram payload accepted, and sent. See {@link WebSocketSessionOptions.maxDatagramSize}. */
  maxDatagramSize: 1200,
  /** Largest STREAM frame payload: the round-robin quantum. See {@link WebSocketSessionOptions.maxStreamFrameSize}. */
  maxStreamFrameSize: 16 * 1024,
  /** Largest outgoing message (also capped by the peer's max message size). See {@link WebSocketSessionOptions.maxOutgoingMessageSize}. */
  maxOutgoingMessageSize: 64 * 1024,
  /** Stream data is framed only while the socket's bufferedAmount is below this. See {@link WebSocketSessionOptions.sendHighWaterMark}. */
  sendHighWaterMark: 64 * 1024,
  /** Outgoing datagrams are dropped (`congestion`) while bufferedAmount plus queued datagrams exceed this. See {@link WebSocketSessionOptions.datagramDropThreshold}. */
  datagramDropThreshold: 128 * 1024,
  /** Incoming datagrams queued for the application before further ones drop (`receive-queue-full`). See {@link WebSocketSessionOptions.incomingDatagramQueue}. */
  incomingDatagramQueue: 128,
  /** PING interval for RTT samples and keep-alive; 0 disables. See {@link WebSocketSessionOptions.pingIntervalMs}. */
  pingIntervalMs: 5000,
  /** PING cadence while datagrams are sent, for the send estimate; 0 disables. See {@link WebSocketSessionOptions.rttProbeIntervalMs}. */
  rttProbeIntervalMs: 50,
  /** The session fails when nothing arrives for this long; 0 disables. See {@link WebSocketSessionOptions.idleTimeoutMs}. */
  idleTimeoutMs: 30_000,
  /** Time for the socket to open and the peer's SETTINGS to arrive. See {@link WebSocketSessionOptions.handshakeTimeoutMs}. */
  handshakeTimeoutMs: 10_000,
  /** Time the WebSocket closing handshake may take before the socket is dropped. See {@link WebSocketSessionOptions.closeTimeoutMs}. */
  closeTimeoutMs: 2000,
  /** Control frames (PONG answers) the peer's input may leave queued before EXCESSIVE_LOAD. See {@link WebSocketSessionOptions.maxQueuedControlBytes}. */
  maxQueuedControlBytes: 64 * 1024,
  /** Outgoing socket buffer (WebSocket `bufferedAmount`, which includes `ws`'s automatic pongs) beyond which the session fails with EXCESSIVE_LOAD: a peer that sends but never reads cannot make us buffer more. at least `sendHighWaterMark + maxOutgoingMessageSize`. See {@link WebSocketSessionOptions.maxBufferedAmount}. */
  maxBufferedAmount: 1024 * 1024,
} as const;

type Resolved = Required<Omit<WebSocketSessionOptions, 'clock'>> & { clock: Clock };

export function resolveOptions(options: WebSocketSessionOptions = {}): Resolved {
  const o = { ...DEFAULTS, clock: systemClock } as Resolved;
  for (const [k, v] of Object.entries(options)) if (v !== undefined) (o as Record<string, unknown>)[k] = v;
  const int = (name: keyof typeof DEFAULTS, min: number) => {
    const v = o[name];
    if (!Number.isSafeInteger(v) || v < min)
      throw new RangeError(`${name} must be an integer >= ${min}, got ${v}`);
  };
  int('maxMessageSize', MIN_MESSAGE_SIZE);
  int('maxIncomingBidirectionalStreams', 0);
  int('maxIncomingUnidirectionalStreams', 0);
  int('streamWindow', 1);
  int('maxDatagramSize', 0);
  int('maxStreamFrameSize', 1);
  int('maxOutgoingMessageSize', MIN_MESSAGE_SIZE);
  int('sendHighWaterMark', 0);
  int('datagramDropThreshold', 0);
  int('incomingDatagramQueue', 0);
  int('pingIntervalMs', 0);
  int('rttProbeIntervalMs', 0);
  int('idleTimeoutMs', 0);
  int('handshakeTimeoutMs', 1);
  int('closeTimeoutMs', 0);
  int('maxQueuedControlBytes', 0);
  int('maxBufferedAmount', o.sendHighWaterMark + o.maxOutgoingMessageSize);
  if (o.maxDatagramSize > o.maxMessageSize - 16) {
    throw new RangeError(
      `maxDatagramSize ${o.maxDatagramSize} does not fit in maxMessageSize ${o.maxMessageSize}`,
    );
  }
  return o;
}

interface StreamIO {
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

function toBytes(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
  if (ArrayBuffer.isView(chunk)) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new TypeError('chunk must be a BufferSource');
}

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
  private readonly sendDelay: WsSendEstimate;
  private adapter: SocketAdapter | undefined;
  private readonly streams = new Map<number, StreamIO>();
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
  private datagramController!: ReadableStreamDefaultController<Uint8Array>;

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
    const datagramReadable = new ReadableStream<Uint8Array>(
      {
        start: (c) => {
          this.datagramController = c;
        },
      },
      { highWaterMark: o.incomingDatagramQueue },
    );
    const datagramWritable = new WritableStream<Uint8Array>({
      write: (chunk) => this.writeDatagram(toBytes(chunk)),
    });
    const core = this.core;
    this.sendDelay = new WsSendEstimate(core, o.rttProbeIntervalMs);
    this.datagrams = {
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
        if (this.sendDelay.due(now, this.lastPing)) {
          this.lastPing = now;
          this.probeWanted = true;
          this.scheduleProbeFlush();
        }
        return this.sendDelay.estimate(now, this.adapter);
      },
    };
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
        const io = this.makeStream(id, true, bidirectional);
        this.scheduleFlush();
        return bidirectional ? { readable: io.readable!, writable: io.writable! } : io.writable!;
      }
      // RFC 9000 §4.6: the peer's MAX_STREAMS is reached; wait for it to grow.
      await new Promise<void>((resolve, reject) => this.creditWaiters.push({ resolve, reject }));
    }
  }

  private makeStream(
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

  private coreEvents(): CoreEvents {
    return {
      ready: () => {
        this.o.clock.clearTimeout(this.handshakeTimer);
        this.handshakeTimer = undefined;
        this.resolveReady();
        this.tick();
      },
      incomingStream: (id, bidirectional) => {
        const io = this.makeStream(id, false, bidirectional);
        if (bidirectional) this.bidiController.enqueue({ readable: io.readable!, writable: io.writable! });
        else this.uniController.enqueue(io.readable!);
      },
      streamData: (id, data, fin) => {
        const io = this.streams.get(id);
        if (!io || io.readEnded) {
          // The application already cancelled (STOP_SENDING is on its way): drop, but keep the accounting right.
          this.core.consumed(id, data.length);
          return;
        }
        if (data.length > 0) io.queue.push(data);
        if (fin) io.fin = true;
        this.wake(io);
      },
      streamReset: (id, code) => {
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
      },
      stopSending: (id, code) => {
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
      },
      streamCredit: () => {
        const waiters = this.creditWaiters;
        this.creditWaiters = [];
        for (const w of waiters) w.resolve();
      },
      datagram: (data) => {
        const s = this.core.stats.datagrams;
        s.received++;
        const c = this.datagramController;
        if ((c.desiredSize ?? 0) <= 0) {
          this.core.countDatagramDrop('incoming', 'receive-queue-full');
          return;
        }
        c.enqueue(data);
      },
      closeReceived: (code, reason) => {
        this.finish({ closeCode: code, reason }, undefined);
        this.closeSocket(1000, '');
      },
    };
  }

  /**
   * The datagram writable's write algorithm. Synchronous once the session is ready (a promise only while it is
   * not): every tick writes a datagram per session, and an async function cost each one more promises and turns.
   */
  private writeDatagram(bytes: Uint8Array): Promise<void> | undefined {
    // W3C WebTransport §5: writes wait for the session to be ready, then never block.
    if (!this.core.ready && !this.finished) {
      return this.ready.catch(noop).then(() => this.sendDatagramNow(bytes));
    }
    this.sendDatagramNow(bytes);
    return undefined;
  }

  private sendDatagramNow(bytes: Uint8Array): void {
    if (this.finished) {
      this.core.countDatagramDrop('outgoing', 'closed');
      return;
    }
    if (bytes.length <= this.core.maxDatagramSize) {
      const buffered = (this.adapter?.bufferedAmount ?? 0) + this.core.queuedDatagramBytes;
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
      if (this.sendDelay.sending(now, this.lastPing)) this.lastPing = now;
      // A full message's worth (or half the drop threshold) is queued: hand it to the socket now rather than hold a
      // long burst until the turn ends, where everything past datagramDropThreshold would drop unsent.
      const o = this.o;
      if (this.core.queuedDatagramBytes >= Math.min(o.maxOutgoingMessageSize, o.datagramDropThreshold / 2))
        this.flush();
      else this.scheduleDatagramFlush();
    }
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
    this.core.terminate();
    const waiters = this.creditWaiters;
    this.creditWaiters = [];
    for (const w of waiters) w.reject(sessionError);
    if (info) {
      for (const c of [this.bidiController, this.uniController, this.datagramController]) {
        try {
          c.close();
        } catch {
          // Already closed.
        }
      }
      this.rejectReady(new QuiverTransportError('session closed before it was ready', { source: 'session' }));
      this.resolveClosed(info);
    } else {
      this.bidiController.error(sessionError);
      this.uniController.error(sessionError);
      this.datagramController.error(sessionError);
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

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      this.flushScheduled = false;
      this.flush();
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
      this.sendDelay.wrote(m.length);
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
