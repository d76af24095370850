/**
 * The in-memory QuiverSession: two of these exchange frames over a pair of emulated {@link Link}s.
 *
 * The frame vocabulary mirrors QUIC and WebTransport over HTTP/3 so the semantics match the network transports:
 * stream ids as in RFC 9000 §2.1, per-stream flow control credit (RFC 9000 §4.1 MAX_STREAM_DATA), RESET_STREAM and
 * STOP_SENDING (RFC 9000 §3.1-3.5, §19.4-19.5), datagrams (RFC 9221) and CLOSE_WEBTRANSPORT_SESSION
 * (draft-ietf-webtrans-http3 §5). The application-facing behaviour follows W3C WebTransport.
 */
import type { Clock } from '../clock.js';
import { QuiverTransportError, SessionRejectedError, streamErrorCodeOf } from '../errors.js';
import type {
  DatagramDropReason,
  QuiverBidirectionalStream,
  QuiverDatagramDuplexStream,
  QuiverSession,
  TransportStats,
  WebTransportCloseInfo,
} from '../types.js';
import type { Link } from './link.js';

export type Frame =
  | { type: 'request'; url: string; headers: Record<string, string>; params: TransportParams }
  | { type: 'accept'; params: TransportParams }
  | { type: 'reject'; status: number; reason: string }
  | { type: 'abandon' }
  | { type: 'open'; id: number }
  | { type: 'data'; id: number; bytes: Uint8Array }
  | { type: 'fin'; id: number }
  | { type: 'reset'; id: number; code: number }
  | { type: 'stop'; id: number; code: number }
  | { type: 'credit'; id: number; bytes: number }
  | { type: 'max-streams'; bidi: boolean; count: number }
  | { type: 'datagram'; bytes: Uint8Array }
  | { type: 'close'; code: number; reason: string };

/** Nominal wire size of a control frame, so that control traffic also pays for bandwidth. */
export const CONTROL_FRAME_BYTES = 16;
/** Stream data is cut into frames of at most this many bytes, so that a bandwidth cap paces streams smoothly. */
export const MAX_STREAM_FRAME_BYTES = 16 * 1024;
/** W3C WebTransport §6.3: a close reason is truncated to 1024 UTF-8 bytes. */
export const MAX_CLOSE_REASON_BYTES = 1024;

export function frameSize(frame: Frame): number {
  if (frame.type === 'data' || frame.type === 'datagram') return frame.bytes.byteLength;
  return CONTROL_FRAME_BYTES;
}

/** The limits a memory session enforces (resolved from {@link MemoryTransportOptions}). */
export interface MemorySessionLimits {
  /** Largest outgoing datagram payload; larger writes are dropped as `too-large`. */
  maxDatagramSize: number;
  /** Bytes a stream's writable queues before `writer.ready` waits (WHATWG ByteLengthQueuingStrategy). */
  highWaterMark: number;
  /** Per-stream receive window: unread bytes the peer may send ahead of the reader. */
  streamReceiveWindow: number;
  /**
   * Peer-initiated streams of each type (bidi, uni) open at once; the peer's create calls wait beyond it (RFC 9000
   * §4.6 MAX_STREAMS), so `incomingBidirectionalStreams` never queues more than this.
   */
  maxIncomingStreams: number;
  /** Datagrams queued in `datagrams.readable` before new ones are dropped as `receive-queue-full`. */
  datagramReceiveQueue: number;
  /** Bytes waiting behind the bandwidth cap above which outgoing datagrams are dropped as `congestion`. */
  datagramSendBufferBytes: number;
}

/** What each end tells the other at establishment, like QUIC transport parameters (RFC 9000 §18.2). */
export interface TransportParams {
  /** initial_max_stream_data: the receive window of each stream. */
  streamWindow: number;
  /** initial_max_streams_bidi / _uni: streams the peer may have open toward us at once, per direction type. */
  maxStreams: number;
}

export interface RttFigures {
  minRtt: number;
  smoothedRtt: number;
  rttVariation: number;
}

type State = 'connecting' | 'connected' | 'closed';

function toBytes(chunk: unknown): Uint8Array {
  // Copy: the caller may reuse its buffer once the write resolves, while the frame is still "on the wire".
  if (chunk instanceof Uint8Array) return new Uint8Array(chunk);
  if (ArrayBuffer.isView(chunk)) {
    return new Uint8Array(chunk.buffer.slice(chunk.byteOffset, chunk.byteOffset + chunk.byteLength));
  }
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk.slice(0));
  throw new TypeError('a WebTransport stream or datagram chunk must be a BufferSource (Uint8Array)');
}

function truncateUtf8(text: string, maxBytes: number): string {
  const bytes = new TextEncoder().encode(text);
  if (bytes.byteLength <= maxBytes) return text;
  let end = maxBytes;
  // Back off to a code point boundary: continuation bytes are 0b10xxxxxx.
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return new TextDecoder().decode(bytes.subarray(0, end));
}

const sessionError = (message: string) => new QuiverTransportError(message, { source: 'session' });

class SendHalf {
  readonly writable: WritableStream<Uint8Array>;
  state: 'open' | 'finished' | 'reset' | 'errored' = 'open';
  #controller!: WritableStreamDefaultController;
  #credit: number;
  #error: unknown;
  #pending:
    | { bytes: Uint8Array; offset: number; resolve: () => void; reject: (e: unknown) => void }
    | undefined;

  constructor(
    private readonly session: MemorySession,
    readonly id: number,
    credit: number,
    highWaterMark: number,
    private readonly onTerminal: () => void,
  ) {
    this.#credit = credit;
    this.writable = new WritableStream<Uint8Array>(
      {
        start: (controller) => {
          this.#controller = controller;
          // Abort must not wait for a write stalled on flow control (WHATWG waits for the in-flight write).
          controller.signal.addEventListener('abort', () => this.#abort(controller.signal.reason));
        },
        write: (chunk) => this.#write(chunk),
        close: () => {
          if (this.state !== 'open') throw this.#error ?? sessionError('stream is no longer writable');
          this.state = 'finished';
          this.session.sendFrame({ type: 'fin', id: this.id });
          this.onTerminal();
        },
        abort: (reason) => this.#abort(reason),
      },
      new ByteLengthQueuingStrategy({ highWaterMark }),
    );
  }

  #write(chunk: Uint8Array): Promise<void> | undefined {
    if (this.state !== 'open') throw this.#error ?? sessionError('stream is no longer writable');
    let bytes: Uint8Array;
    try {
      bytes = toBytes(chunk);
    } catch (error) {
      // The writable errors with the TypeError; reset the stream so the peer's reader does not wait forever.
      this.#abort(error);
      throw error;
    }
    if (bytes.byteLength === 0) return undefined;
    return new Promise<void>((resolve, reject) => {
      this.#pending = { bytes, offset: 0, resolve, reject };
      this.pump();
    });
  }

  pump(): void {
    const p = this.#pending;
    if (!p || this.state !== 'open') return;
    while (p.offset < p.bytes.byteLength && this.#credit > 0) {
      const n = Math.min(this.#credit, p.bytes.byteLength - p.offset, MAX_STREAM_FRAME_BYTES);
      this.session.sendFrame({ type: 'data', id: this.id, bytes: p.bytes.subarray(p.offset, p.offset + n) });
      this.#credit -= n;
      p.offset += n;
    }
    if (p.offset >= p.bytes.byteLength) {
      this.#pending = undefined;
      p.resolve();
    }
  }

  onCredit(bytes: number): void {
    this.#credit += bytes;
    this.pump();
  }

  #abort(reason: unknown): void {
    if (this.state === 'open') {
      this.state = 'reset';
      this.#error = reason;
      this.session.sendFrame({ type: 'reset', id: this.id, code: streamErrorCodeOf(reason) });
      this.onTerminal();
    }
    this.#rejectPending(reason);
  }

  /** The peer's STOP_SENDING: error the writable with its code and answer with RESET_STREAM (RFC 9000 §3.5). */
  onStopSending(code: number): void {
    if (this.state !== 'open') return;
    const error = new QuiverTransportError(`the peer stopped reading (STOP_SENDING, code ${code})`, {
      source: 'stream',
      streamErrorCode: code,
    });
    this.state = 'reset';
    this.#error = error;
    this.#controller.error(error);
    this.#rejectPending(error);
    this.session.sendFrame({ type: 'reset', id: this.id, code });
    this.onTerminal();
  }

  onSessionClosed(error: QuiverTransportError): void {
    if (this.state === 'open') {
      this.state = 'errored';
      this.#error = error;
      this.#controller.error(error);
    }
    this.#rejectPending(error);
  }

  #rejectPending(error: unknown): void {
    const p = this.#pending;
    this.#pending = undefined;
    p?.reject(error);
  }
}

class RecvHalf {
  readonly readable: ReadableStream<Uint8Array>;
  state: 'open' | 'done' | 'reset' | 'cancelled' | 'errored' = 'open';
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #queue: Uint8Array[] = [];
  #fin = false;
  #wake: (() => void) | undefined;
  #unannounced = 0;

  constructor(
    private readonly session: MemorySession,
    readonly id: number,
    private readonly window: number,
    private readonly onTerminal: () => void,
  ) {
    // highWaterMark 0: nothing is pulled before the application reads, so unread data stays in our queue and its
    // credit is withheld; that is what makes a stalled reader stall the writer.
    this.readable = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.#controller = controller;
        },
        pull: (controller) => this.#pull(controller),
        cancel: (reason) => this.#cancel(reason),
      },
      { highWaterMark: 0 },
    );
  }

  #pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> | undefined {
    if (this.state !== 'open') return undefined;
    const chunk = this.#queue.shift();
    if (chunk) {
      controller.enqueue(chunk);
      if (!this.#fin) {
        this.#unannounced += chunk.byteLength;
        // Batch credit like QUIC's MAX_STREAM_DATA: announcing every read would double the frame count.
        if (this.#unannounced >= this.window / 4) {
          this.session.sendFrame({ type: 'credit', id: this.id, bytes: this.#unannounced });
          this.#unannounced = 0;
        }
      }
      return undefined;
    }
    if (this.#fin) {
      this.state = 'done';
      controller.close();
      this.onTerminal();
      return undefined;
    }
    return new Promise<void>((resolve) => {
      this.#wake = resolve;
    }).then(() => this.#pull(controller));
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  onData(bytes: Uint8Array): void {
    if (this.state !== 'open' || this.#fin) return;
    this.#queue.push(bytes);
    this.#wakeUp();
  }

  onFin(): void {
    if (this.state !== 'open') return;
    this.#fin = true;
    this.#wakeUp();
  }

  /** RESET_STREAM: unread data is discarded and reads reject with the peer's code (RFC 9000 §3.2). */
  onReset(code: number): void {
    if (this.state !== 'open') return;
    this.state = 'reset';
    this.#queue = [];
    this.#controller.error(
      new QuiverTransportError(`the peer reset the stream (RESET_STREAM, code ${code})`, {
        source: 'stream',
        streamErrorCode: code,
      }),
    );
    this.#wakeUp();
    this.onTerminal();
  }

  #cancel(reason: unknown): void {
    if (this.state !== 'open') return;
    this.state = 'cancelled';
    this.#queue = [];
    this.session.sendFrame({ type: 'stop', id: this.id, code: streamErrorCodeOf(reason) });
    this.#wakeUp();
    this.onTerminal();
  }

  onSessionClosed(error: QuiverTransportError): void {
    if (this.state !== 'open') return;
    this.state = 'errored';
    this.#queue = [];
    this.#controller.error(error);
    this.#wakeUp();
  }
}

interface StreamRecord {
  send?: SendHalf;
  recv?: RecvHalf;
}

export interface MemorySessionInit {
  role: 'client' | 'server';
  clock: Clock;
  out: Link<Frame>;
  limits: MemorySessionLimits;
  rtt: RttFigures;
  /** Known when the session starts connected (pairs, accepted server sessions). */
  peer?: TransportParams;
  /** Called once when the session reaches `closed`. */
  onClosed?: () => void;
}

export class MemorySession implements QuiverSession {
  readonly transport = 'memory' as const;
  // The link model can lose datagrams, so applications must not rely on them even when no loss is configured.
  readonly reliability = 'supports-unreliable' as const;
  readonly ready: Promise<void>;
  readonly closed: Promise<WebTransportCloseInfo>;
  readonly incomingBidirectionalStreams: ReadableStream<QuiverBidirectionalStream>;
  readonly incomingUnidirectionalStreams: ReadableStream<ReadableStream<Uint8Array>>;
  readonly datagrams: QuiverDatagramDuplexStream;

  #state: State;
  #role: 'client' | 'server';
  #clock: Clock;
  #out: Link<Frame>;
  #limits: MemorySessionLimits;
  #rtt: RttFigures;
  #peer: TransportParams;
  /** Streams we may still open, per type (the peer's MAX_STREAMS minus what we opened). */
  #openCredit = { bidi: 0, uni: 0 };
  #creditWaiters: { bidi: boolean; resolve: () => void; reject: (e: unknown) => void }[] = [];
  #onClosed: (() => void) | undefined;
  #resolveReady!: () => void;
  #rejectReady!: (e: unknown) => void;
  #resolveClosed!: (info: WebTransportCloseInfo) => void;
  #rejectClosed!: (e: unknown) => void;
  #streams = new Map<number, StreamRecord>();
  // RFC 9000 §2.1: bit 0 is the initiator (0 client, 1 server), bit 1 the direction (0 bidi, 1 uni).
  #nextBidi: number;
  #nextUni: number;
  #incomingBidi!: ReadableStreamDefaultController<QuiverBidirectionalStream>;
  #incomingUni!: ReadableStreamDefaultController<ReadableStream<Uint8Array>>;
  #datagramsIn!: ReadableStreamDefaultController<Uint8Array>;
  /** Arrived datagrams the application has not read yet; the oldest goes first when it is full. */
  #datagramQueue: Uint8Array[] = [];
  #datagramWake: (() => void) | undefined;
  #datagramsOut!: WritableStreamDefaultController;
  #bytesReceived = 0;
  #packetsReceived = 0;
  #datagramsSent = 0;
  #datagramsReceived = 0;
  #droppedOutgoing: Partial<Record<DatagramDropReason, number>> = {};
  #droppedIncoming: Partial<Record<DatagramDropReason, number>> = {};

  constructor(init: MemorySessionInit) {
    this.#role = init.role;
    this.#clock = init.clock;
    this.#out = init.out;
    this.#limits = init.limits;
    this.#rtt = init.rtt;
    this.#onClosed = init.onClosed;
    this.#peer = init.peer ?? { streamWindow: 0, maxStreams: 0 };
    this.#openCredit = { bidi: this.#peer.maxStreams, uni: this.#peer.maxStreams };
    this.#state = init.peer === undefined ? 'connecting' : 'connected';
    this.#nextBidi = init.role === 'client' ? 0 : 1;
    this.#nextUni = init.role === 'client' ? 2 : 3;
    this.ready = new Promise<void>((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    this.closed = new Promise<WebTransportCloseInfo>((resolve, reject) => {
      this.#resolveClosed = resolve;
      this.#rejectClosed = reject;
    });
    // Like a browser's WebTransport: a failed session does not surface as an unhandled rejection.
    this.ready.catch(() => {});
    this.closed.catch(() => {});
    if (this.#state === 'connected') this.#resolveReady();
    this.incomingBidirectionalStreams = new ReadableStream({
      start: (c) => {
        this.#incomingBidi = c;
      },
    });
    this.incomingUnidirectionalStreams = new ReadableStream({
      start: (c) => {
        this.#incomingUni = c;
      },
    });
    // Our own queue behind a highWaterMark-0 readable, so that a full queue can drop its oldest datagram (a game
    // wants the freshest state; W3C WebTransport's incoming datagram queue drops the oldest too).
    const readable = new ReadableStream<Uint8Array>(
      {
        start: (c) => {
          this.#datagramsIn = c;
        },
        pull: (c) => this.#pullDatagram(c),
        cancel: () => {
          this.#datagramQueue = [];
        },
      },
      { highWaterMark: 0 },
    );
    const writable = new WritableStream<Uint8Array>({
      start: (c) => {
        this.#datagramsOut = c;
      },
      write: (chunk) => this.#sendDatagram(chunk),
    });
    this.datagrams = { readable, writable, maxDatagramSize: this.#limits.maxDatagramSize };
  }

  /** `connecting` until `ready` resolves, then `connected`, and `closed` once the session has closed. */
  get state(): State {
    return this.#state;
  }

  /**
   * @internal Puts a frame on the outgoing link; ignored once the session closed (nothing may follow CLOSE).
   */
  sendFrame(frame: Frame): boolean {
    if (this.#state === 'closed') return false;
    return this.#out.send(frame, frameSize(frame), frame.type === 'datagram');
  }

  #drop(direction: 'out' | 'in', reason: DatagramDropReason): void {
    const table = direction === 'out' ? this.#droppedOutgoing : this.#droppedIncoming;
    table[reason] = (table[reason] ?? 0) + 1;
  }

  /** @internal The link model lost a datagram on its way here: the simulation knows, so it is counted. */
  noteLost(frame: Frame): void {
    if (frame.type === 'datagram' && this.#state !== 'closed') this.#drop('in', 'lost');
  }

  async #sendDatagram(chunk: Uint8Array): Promise<void> {
    if (this.#state === 'connecting') await this.ready.catch(() => {});
    if (this.#state !== 'connected') {
      this.#drop('out', 'closed');
      throw sessionError('the session is closed');
    }
    const bytes = toBytes(chunk);
    if (bytes.byteLength > this.#limits.maxDatagramSize) {
      // W3C WebTransport §5: a datagram above maxDatagramSize is dropped and the write still resolves.
      this.#drop('out', 'too-large');
      return;
    }
    if (this.#out.backlogBytes() + bytes.byteLength > this.#limits.datagramSendBufferBytes) {
      this.#drop('out', 'congestion');
      return;
    }
    this.#datagramsSent++;
    this.sendFrame({ type: 'datagram', bytes });
  }

  #pullDatagram(c: ReadableStreamDefaultController<Uint8Array>): Promise<void> | undefined {
    if (this.#state === 'closed') return undefined;
    const datagram = this.#datagramQueue.shift();
    if (datagram) {
      this.#datagramsReceived++;
      c.enqueue(datagram);
      return undefined;
    }
    return new Promise<void>((resolve) => {
      this.#datagramWake = resolve;
    }).then(() => this.#pullDatagram(c));
  }

  #stream(id: number, bidi: boolean, local: boolean): StreamRecord {
    const record: StreamRecord = {};
    const maybeForget = () => {
      const sendDone = record.send?.state !== 'open';
      const recvDone = record.recv?.state !== 'open';
      if (!sendDone || !recvDone || !this.#streams.has(id)) return;
      this.#streams.delete(id);
      // A peer-initiated stream is over: the peer may open another one (RFC 9000 §4.6).
      if (!local) this.sendFrame({ type: 'max-streams', bidi, count: 1 });
    };
    if (bidi || local) {
      record.send = new SendHalf(this, id, this.#peer.streamWindow, this.#limits.highWaterMark, maybeForget);
    }
    if (bidi || !local) record.recv = new RecvHalf(this, id, this.#limits.streamReceiveWindow, maybeForget);
    this.#streams.set(id, record);
    return record;
  }

  /** Waits for `ready` and for the peer to allow one more stream of this type. */
  async #ensureOpen(bidi: boolean): Promise<void> {
    await this.ready;
    for (;;) {
      if (this.#state !== 'connected') throw sessionError('the session is closed');
      const key = bidi ? 'bidi' : 'uni';
      if (this.#openCredit[key] > 0) {
        this.#openCredit[key]--;
        return;
      }
      await new Promise<void>((resolve, reject) => this.#creditWaiters.push({ bidi, resolve, reject }));
    }
  }

  async createBidirectionalStream(): Promise<QuiverBidirectionalStream> {
    await this.#ensureOpen(true);
    const id = this.#nextBidi;
    this.#nextBidi += 4;
    const record = this.#stream(id, true, true);
    this.sendFrame({ type: 'open', id });
    return { readable: record.recv!.readable, writable: record.send!.writable };
  }

  async createUnidirectionalStream(): Promise<WritableStream<Uint8Array>> {
    await this.#ensureOpen(false);
    const id = this.#nextUni;
    this.#nextUni += 4;
    const record = this.#stream(id, false, true);
    this.sendFrame({ type: 'open', id });
    return record.send!.writable;
  }

  async getStats(): Promise<TransportStats> {
    const c = this.#out.counters;
    return {
      timestamp: this.#clock.now(),
      smoothedRtt: this.#rtt.smoothedRtt,
      rttVariation: this.#rtt.rttVariation,
      minRtt: this.#rtt.minRtt,
      bytesSent: c.bytesSent,
      bytesReceived: this.#bytesReceived,
      packetsSent: c.framesSent,
      packetsReceived: this.#packetsReceived,
      packetsLost: c.datagramsLost + c.retransmissions,
      datagrams: {
        sent: this.#datagramsSent,
        received: this.#datagramsReceived,
        droppedOutgoing: { ...this.#droppedOutgoing },
        droppedIncoming: { ...this.#droppedIncoming },
      },
    };
  }

  close(closeInfo: WebTransportCloseInfo = {}): void {
    const closeCode = closeInfo.closeCode ?? 0;
    if (!Number.isInteger(closeCode) || closeCode < 0 || closeCode > 0xffffffff) {
      // W3C WebTransport §6.3: closeCode is an [EnforceRange] unsigned long.
      throw new TypeError(`closeCode must be an integer in [0, 2^32 - 1], got ${closeCode}`);
    }
    const reason = truncateUtf8(closeInfo.reason ?? '', MAX_CLOSE_REASON_BYTES);
    if (this.#state === 'closed') return;
    if (this.#state === 'connecting') {
      this.sendFrame({ type: 'abandon' });
      this.terminate(null, sessionError('the session was closed before it was established'));
      return;
    }
    this.#dropInFlight();
    this.sendFrame({ type: 'close', code: closeCode, reason });
    this.terminate({ closeCode, reason });
  }

  /**
   * Stream data and datagrams still in flight are abandoned when the session closes (datagrams count as `closed`);
   * control frames stay, so that an `accept` still precedes the `close` that follows it.
   */
  #dropInFlight(): void {
    const dropped = this.#out.dropInFlight((f) => f.type === 'data' || f.type === 'datagram');
    for (const frame of dropped) if (frame.type === 'datagram') this.#drop('out', 'closed');
  }

  /** @internal Ends a connection attempt with an error (reject, timeout, abort, no listener). */
  fail(error: QuiverTransportError, abandon: boolean): void {
    if (this.#state !== 'connecting') return;
    if (abandon) this.sendFrame({ type: 'abandon' });
    this.terminate(null, error);
  }

  /**
   * @internal Moves to `closed`. With `info` (a clean close) `closed` resolves with it and the incoming-stream readables close;
   * without, `ready`/`closed` reject with `error` and they error. Open streams error either way (W3C WebTransport
   * §6.4 cleanup).
   */
  terminate(info: { closeCode: number; reason: string } | null, error?: QuiverTransportError): void {
    if (this.#state === 'closed') return;
    const wasConnecting = this.#state === 'connecting';
    this.#state = 'closed';
    const streamError =
      error ??
      sessionError(
        `the session closed (code ${info?.closeCode ?? 0}${info?.reason ? `: ${info.reason}` : ''})`,
      );
    for (const record of this.#streams.values()) {
      record.send?.onSessionClosed(streamError);
      record.recv?.onSessionClosed(streamError);
    }
    this.#streams.clear();
    for (const waiter of this.#creditWaiters.splice(0)) waiter.reject(streamError);
    for (let i = 0; i < this.#datagramQueue.length; i++) this.#drop('in', 'closed');
    this.#datagramQueue = [];
    this.#datagramWake?.();
    this.#datagramWake = undefined;
    const clean = info !== null && !wasConnecting;
    for (const c of [
      this.#incomingBidi,
      this.#incomingUni,
      this.#datagramsIn,
    ] as ReadableStreamDefaultController<unknown>[]) {
      try {
        if (clean) c.close();
        else c.error(streamError);
      } catch {
        // already closed by the application cancelling it
      }
    }
    this.#datagramsOut.error(streamError);
    if (clean) {
      this.#resolveClosed(info);
    } else {
      this.#rejectReady(streamError);
      this.#rejectClosed(streamError);
    }
    this.#onClosed?.();
  }

  /** @internal A frame delivered by the incoming link. */
  receive(frame: Frame, size: number): void {
    this.#bytesReceived += size;
    this.#packetsReceived++;
    if (this.#state === 'closed') {
      // Our abandon crossed the server's accept: close the session the server just made, so it does not linger.
      if (frame.type === 'accept') {
        this.#out.send({ type: 'close', code: 0, reason: 'abandoned' }, CONTROL_FRAME_BYTES, false);
      }
      return;
    }
    switch (frame.type) {
      case 'accept':
        if (this.#state === 'connecting') {
          this.#peer = frame.params;
          this.#openCredit = { bidi: frame.params.maxStreams, uni: frame.params.maxStreams };
          this.#state = 'connected';
          this.#resolveReady();
        }
        return;
      case 'reject':
        this.#out.close();
        this.terminate(
          null,
          new SessionRejectedError(
            `the server rejected the session: ${frame.status}${frame.reason ? ` ${frame.reason}` : ''}`,
            frame.status,
          ),
        );
        return;
      case 'open': {
        if (this.#streams.has(frame.id)) return;
        // Only ids the peer may open: bit 0 must be the peer's role.
        if ((frame.id & 1) !== (this.#role === 'client' ? 1 : 0)) return;
        const bidi = (frame.id & 2) === 0;
        let open = 0;
        for (const [id] of this.#streams) if ((id & 3) === (frame.id & 3)) open++;
        if (open >= this.#limits.maxIncomingStreams) {
          // The peer ignored our MAX_STREAMS: RFC 9000 §4.6 makes that a connection error (STREAM_LIMIT_ERROR).
          this.close({
            closeCode: 0,
            reason: 'STREAM_LIMIT_ERROR: the peer opened more streams than allowed',
          });
          return;
        }
        const record = this.#stream(frame.id, bidi, false);
        try {
          if (bidi) {
            this.#incomingBidi.enqueue({ readable: record.recv!.readable, writable: record.send!.writable });
          } else {
            this.#incomingUni.enqueue(record.recv!.readable);
          }
        } catch {
          // The application cancelled the incoming-stream readable: refuse the stream like an unread one.
          void record.recv!.readable.cancel();
          void record.send?.writable.abort();
        }
        return;
      }
      case 'data':
        this.#streams.get(frame.id)?.recv?.onData(frame.bytes);
        return;
      case 'fin':
        this.#streams.get(frame.id)?.recv?.onFin();
        return;
      case 'reset':
        this.#streams.get(frame.id)?.recv?.onReset(frame.code);
        return;
      case 'stop':
        this.#streams.get(frame.id)?.send?.onStopSending(frame.code);
        return;
      case 'credit':
        this.#streams.get(frame.id)?.send?.onCredit(frame.bytes);
        return;
      case 'max-streams': {
        this.#openCredit[frame.bidi ? 'bidi' : 'uni'] += frame.count;
        const waiters = this.#creditWaiters;
        this.#creditWaiters = [];
        for (const waiter of waiters) {
          if (waiter.bidi === frame.bidi) waiter.resolve();
          else this.#creditWaiters.push(waiter);
        }
        return;
      }
      case 'datagram': {
        this.#datagramQueue.push(frame.bytes);
        if (this.#datagramQueue.length > this.#limits.datagramReceiveQueue) {
          this.#datagramQueue.shift();
          this.#drop('in', 'receive-queue-full');
        }
        const wake = this.#datagramWake;
        this.#datagramWake = undefined;
        wake?.();
        return;
      }
      case 'close':
        // The peer said its last word; nothing we still have in flight toward it matters.
        this.#dropInFlight();
        this.#out.close();
        this.terminate({ closeCode: frame.code, reason: frame.reason });
        return;
      default:
        return;
    }
  }
}
