import {
  type Clock,
  type DatagramDropReason,
  type QuiverBidirectionalStream,
  type QuiverDatagramDuplexStream,
  type QuiverSession,
  QuiverTransportError,
  streamErrorCodeOf,
  systemClock,
  type TimerHandle,
  type TransportStats,
  type WebTransportCloseInfo,
} from '@quiver/transport';
import { guardParser, H2_PROTOCOL_ERROR, type LibSession, nativeOf, type ParserGuard } from './lib.js';

export { H2_PROTOCOL_ERROR };

/** Limits of one session. Every one is a count, never a byte size, because the library queues whole messages. */
export interface H2SessionOptions {
  /**
   * Incoming datagrams held for the application before new ones are dropped as `receive-queue-full`. Default 256.
   * (The library's own datagram readable has no limit; this adapter reads it eagerly and applies this one.)
   */
  incomingDatagramHighWaterMark?: number;
  /**
   * Outgoing datagrams waiting in the library's queue behind a blocked HTTP/2 stream before new ones are dropped as
   * `congestion`. Default 256. (The library queues without a bound.)
   */
  outgoingDatagramHighWaterMark?: number;
  /**
   * After `close()`, how long to wait for the library to report the session closed before the adapter settles
   * `closed` itself and destroys the CONNECT stream. Default 5 000 ms.
   */
  closeGraceMs?: number;
  /** Clock for the adapter's own timers. Default `systemClock`. */
  clock?: Clock;
}

export const DEFAULT_INCOMING_DATAGRAM_HWM = 256;
export const DEFAULT_OUTGOING_DATAGRAM_HWM = 256;
export const DEFAULT_CLOSE_GRACE_MS = 5_000;
/** The library's `getMaxDatagramSize()` for HTTP/2 (an arbitrary value of its own: capsules have no MTU). */
export const LIBRARY_MAX_DATAGRAM_SIZE = 16_384;
/** W3C WebTransport §6.3: the reason is at most 1024 bytes of UTF-8. */
const MAX_REASON_BYTES = 1024;

const noop = (): void => {};

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
  settled: boolean;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const d: Deferred<T> = {
    promise,
    settled: false,
    resolve: (v) => {
      if (d.settled) return;
      d.settled = true;
      resolve(v);
    },
    reject: (e) => {
      if (d.settled) return;
      d.settled = true;
      reject(e);
    },
  };
  promise.catch(noop);
  return d;
}

/** Cuts `reason` to at most 1024 UTF-8 bytes without splitting a character (W3C WebTransport §6.3). */
export function truncateReason(reason: string): string {
  const bytes = new TextEncoder().encode(reason);
  if (bytes.byteLength <= MAX_REASON_BYTES) return reason;
  let end = MAX_REASON_BYTES;
  // Back up over UTF-8 continuation bytes (10xxxxxx) so the cut falls on a character boundary.
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return new TextDecoder().decode(bytes.subarray(0, end));
}

/**
 * Maps the library's errors to W3C WebTransport §9 `WebTransportError`s. The library signals a peer's
 * WT_RESET_STREAM / WT_STOP_SENDING only through the message text (`lib/stream.js`), so the code is parsed from it.
 */
export function translateError(error: unknown): QuiverTransportError {
  if (error instanceof QuiverTransportError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const stream = /^(?:Resetstream|StopSending) with code:(\d+)/.exec(message);
  if (stream) {
    return new QuiverTransportError(message, { source: 'stream', streamErrorCode: Number(stream[1]) });
  }
  return new QuiverTransportError(message, { source: 'session' });
}

type Side = 'client' | 'server';

/**
 * One WebTransport-over-HTTP/2 session behind the Quiver interface. The library session is attached with
 * {@link H2Session.bind} once it exists: on the server `accept()` returns before the library has built its session
 * (the 200 goes out a microtask later), on the client the library builds it after TLS and SETTINGS.
 */
export class H2Session implements QuiverSession {
  readonly transport = 'http2-webtransport' as const;
  /** Capsules ride on one TCP connection: datagrams are never lost by the network, only by counted drops. */
  readonly reliability = 'reliable-only' as const;
  readonly ready: Promise<void>;
  readonly closed: Promise<WebTransportCloseInfo>;
  readonly incomingBidirectionalStreams: ReadableStream<QuiverBidirectionalStream>;
  readonly incomingUnidirectionalStreams: ReadableStream<ReadableStream<Uint8Array>>;
  readonly datagrams: QuiverDatagramDuplexStream;

  readonly #clock: Clock;
  readonly #incomingHwm: number;
  readonly #outgoingHwm: number;
  readonly #closeGraceMs: number;
  #lib: LibSession | undefined;
  #state: 'connecting' | 'connected' | 'closed' = 'connecting';
  #localClose: Required<WebTransportCloseInfo> | undefined;
  /** Closing was asked before the library session was ready; applied once it is. */
  #pendingClose = false;
  #closeTimer: TimerHandle | undefined;
  #protocolError: unknown;
  readonly #bound = deferred<LibSession>();
  readonly #ready = deferred<void>();
  readonly #closed = deferred<WebTransportCloseInfo>();
  /** Rejects when the session ends: races every library promise that the library may leave pending forever. */
  readonly #ended = deferred<never>();
  #datagramController: ReadableStreamDefaultController<Uint8Array> | undefined;
  #datagramWriter: WritableStreamDefaultWriter<Uint8Array> | undefined;
  readonly #stats = {
    bytesSent: 0,
    bytesReceived: 0,
    packetsSent: 0,
    packetsReceived: 0,
    minRtt: 0,
    datagramsSent: 0,
    datagramsReceived: 0,
    droppedOutgoing: {} as Partial<Record<DatagramDropReason, number>>,
    droppedIncoming: {} as Partial<Record<DatagramDropReason, number>>,
  };

  constructor(side: Side, options: H2SessionOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#incomingHwm = options.incomingDatagramHighWaterMark ?? DEFAULT_INCOMING_DATAGRAM_HWM;
    this.#outgoingHwm = options.outgoingDatagramHighWaterMark ?? DEFAULT_OUTGOING_DATAGRAM_HWM;
    this.#closeGraceMs = options.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS;
    // A server session exists from accept() on (W3C has no "connecting" state on that side).
    if (side === 'server') this.#state = 'connected';
    this.ready = this.#ready.promise;
    this.closed = this.#closed.promise;

    this.incomingBidirectionalStreams = this.#incoming(
      (lib) => lib.incomingBidirectionalStreams,
      (s) => this.#wrapBidi(s),
    );
    this.incomingUnidirectionalStreams = this.#incoming(
      (lib) => lib.incomingUnidirectionalStreams,
      (r) => this.#wrapReadable(r),
    );

    const readable = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.#datagramController = controller;
        },
      },
      { highWaterMark: this.#incomingHwm },
    );
    const writable = new WritableStream<Uint8Array>({
      write: (chunk) => this.#sendDatagram(chunk),
    });
    const self = this;
    this.datagrams = {
      readable,
      writable,
      get maxDatagramSize() {
        return self.#lib?.datagrams.maxDatagramSize ?? LIBRARY_MAX_DATAGRAM_SIZE;
      },
    };
  }

  /** Attaches the library session. */
  bind(lib: LibSession): void {
    if (this.#lib) throw new Error('H2Session: already bound');
    this.#lib = lib;
    // Normally a no-op (the guard is installed when the library builds its session); covers a library session
    // bound by some other route.
    this.adoptParserGuard(guardParser(nativeOf(lib)));
    this.#bound.resolve(lib);
    this.#datagramWriter = lib.datagrams.createWritable().getWriter();
    this.#datagramWriter.closed.catch(noop);
    lib.ready.then(
      () => {
        if (this.#state === 'connecting') this.#state = 'connected';
        // A client closed while connecting has already failed its promises; a server session closed right after
        // accept() was established all the same.
        if (this.#state === 'connected') this.#ready.resolve();
        void this.#pumpDatagrams(lib);
        if (this.#pendingClose) {
          this.#pendingClose = false;
          lib.close(this.#localClose ?? { closeCode: 0, reason: '' });
          this.#armCloseTimer();
        }
      },
      (error) => this.fail(error),
    );
    lib.closed.then(
      (info) => this.#finish({ closeCode: info?.closeCode ?? 0, reason: info?.reason ?? '' }),
      (error) => this.fail(error),
    );
  }

  /**
   * Takes over the parser guard of this session's native library session (see `guardParser` in lib.ts). The guard
   * itself is installed where the library builds the native session, before any byte can reach the parser; this only
   * connects its report to {@link protocolError}. Internal: called by the listener and the client connector.
   */
  adoptParserGuard(guard: ParserGuard | undefined): void {
    if (!guard) return;
    if (guard.error !== undefined) this.#protocolError ??= guard.error;
    guard.onViolation = (error) => {
      this.#protocolError ??= error;
    };
  }

  /** What the peer sent that the library's parser could not take, once it happened (the session is then closed). */
  get protocolError(): unknown {
    return this.#protocolError;
  }

  /** The attempt failed (refused, unreachable, handshake error): ready and closed reject with `error`. */
  fail(error: unknown): void {
    const e = error instanceof QuiverTransportError ? error : translateError(error);
    this.#state = 'closed';
    this.#bound.reject(e);
    this.#ready.reject(e);
    this.#closed.reject(e);
    this.#end(e);
  }

  close(closeInfo: WebTransportCloseInfo = {}): void {
    const closeCode = closeInfo.closeCode ?? 0;
    if (!Number.isInteger(closeCode) || closeCode < 0 || closeCode > 0xffffffff) {
      throw new TypeError(`closeCode must be an integer in 0..2^32-1, got ${closeCode}`);
    }
    if (this.#state === 'closed' || this.#localClose) return;
    // The library cuts the reason at 1023 UTF-16 units; cut it the same way first so both ends agree.
    const reason = truncateReason(closeInfo.reason ?? '').slice(0, 1023);
    this.#localClose = { closeCode, reason };
    if (this.#state === 'connecting') {
      // W3C WebTransport §6.4 close(): while connecting, the session fails with an error instead of closing.
      this.fail(new QuiverTransportError('session closed before it was established', { source: 'session' }));
      this.#pendingClose = true;
      return;
    }
    const lib = this.#lib;
    if (!lib || !this.#ready.settled) {
      // bind() applies it once the library session is ready.
      this.#pendingClose = true;
      return;
    }
    lib.close({ closeCode, reason });
    this.#armCloseTimer();
  }

  async createBidirectionalStream(): Promise<QuiverBidirectionalStream> {
    const lib = await this.#usable();
    try {
      return this.#wrapBidi(await this.#race(lib.createBidirectionalStream()));
    } catch (error) {
      throw translateError(error);
    }
  }

  async createUnidirectionalStream(): Promise<WritableStream<Uint8Array>> {
    const lib = await this.#usable();
    try {
      return this.#wrapWritable(await this.#race(lib.createUnidirectionalStream()));
    } catch (error) {
      throw translateError(error);
    }
  }

  async getStats(): Promise<TransportStats> {
    const lib = this.#lib;
    // The library's getStats() reports zeros over HTTP/2; the ping RTT its connection keeps is the only RTT there is.
    const rtt = lib ? nativeOf(lib)?.stream?.session?.WTrtt : undefined;
    const s = this.#stats;
    if (typeof rtt === 'number' && rtt > 0) s.minRtt = s.minRtt === 0 ? rtt : Math.min(s.minRtt, rtt);
    return {
      timestamp: this.#clock.now(),
      smoothedRtt: typeof rtt === 'number' ? rtt : 0,
      rttVariation: 0,
      minRtt: s.minRtt,
      bytesSent: s.bytesSent,
      bytesReceived: s.bytesReceived,
      packetsSent: s.packetsSent,
      packetsReceived: s.packetsReceived,
      packetsLost: 0,
      datagrams: {
        sent: s.datagramsSent,
        received: s.datagramsReceived,
        droppedOutgoing: { ...s.droppedOutgoing },
        droppedIncoming: { ...s.droppedIncoming },
      },
    };
  }

  async #usable(): Promise<LibSession> {
    if (this.#state === 'closed') {
      throw new QuiverTransportError('session is closed', { source: 'session' });
    }
    await this.ready;
    if ((this.#state as string) === 'closed' || !this.#lib) {
      throw new QuiverTransportError('session is closed', { source: 'session' });
    }
    return this.#lib;
  }

  #race<T>(p: Promise<T>): Promise<T> {
    return Promise.race([p, this.#ended.promise]);
  }

  #armCloseTimer(): void {
    if (this.#closeTimer !== undefined || this.#closed.settled) return;
    this.#closeTimer = this.#clock.setTimeout(() => {
      this.#closeTimer = undefined;
      // The library never reported the end (a peer that stopped reading): end the CONNECT stream ourselves.
      const native = this.#lib ? nativeOf(this.#lib) : undefined;
      (native?.stream as { destroy?: () => void } | undefined)?.destroy?.();
      this.#finish(this.#localClose ?? { closeCode: 0, reason: '' });
    }, this.#closeGraceMs);
  }

  #finish(info: Required<WebTransportCloseInfo>): void {
    this.#state = 'closed';
    // W3C WebTransport §6.4: the side that called close() sees its own close info.
    const result = this.#localClose ?? info;
    this.#ready.reject(new QuiverTransportError('session closed', { source: 'session' }));
    this.#closed.resolve({ closeCode: result.closeCode, reason: result.reason });
    this.#end(
      new QuiverTransportError(`session closed with code ${result.closeCode}: ${result.reason}`, {
        source: 'session',
      }),
    );
  }

  #end(error: QuiverTransportError): void {
    this.#clock.clearTimeout(this.#closeTimer);
    this.#closeTimer = undefined;
    this.#ended.reject(error);
    try {
      this.#datagramController?.close();
    } catch {
      // already closed or errored
    }
  }

  #incoming<L, Q>(pick: (lib: LibSession) => ReadableStream<L>, wrap: (item: L) => Q): ReadableStream<Q> {
    let reader: ReadableStreamDefaultReader<L> | undefined;
    return new ReadableStream<Q>(
      {
        pull: async (controller) => {
          let lib: LibSession;
          try {
            lib = await this.#bound.promise;
          } catch {
            controller.close();
            return;
          }
          reader ??= pick(lib).getReader();
          try {
            const { value, done } = await reader.read();
            if (done) controller.close();
            else controller.enqueue(wrap(value));
          } catch (error) {
            controller.error(translateError(error));
          }
        },
        cancel: async () => {
          await reader?.cancel().catch(noop);
        },
      },
      { highWaterMark: 0 },
    );
  }

  #wrapBidi(s: { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> }) {
    return { readable: this.#wrapReadable(s.readable), writable: this.#wrapWritable(s.writable) };
  }

  #wrapReadable(lib: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
    const reader = lib.getReader();
    reader.closed.catch(noop);
    const stats = this.#stats;
    return new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          try {
            const { value, done } = await this.#race(reader.read());
            if (done) {
              controller.close();
              return;
            }
            stats.bytesReceived += value.byteLength;
            stats.packetsReceived++;
            controller.enqueue(value);
          } catch (error) {
            controller.error(translateError(error));
          }
        },
        // The library reads the code from `reason.code` (lib/stream.js), not `streamErrorCode`.
        cancel: async (reason) => {
          await reader.cancel({ code: streamErrorCodeOf(reason) }).catch(noop);
        },
      },
      { highWaterMark: 0 },
    );
  }

  #wrapWritable(lib: WritableStream<Uint8Array>): WritableStream<Uint8Array> {
    const writer = lib.getWriter();
    const stats = this.#stats;
    return new WritableStream<Uint8Array>(
      {
        start: (controller) => {
          // W3C WebTransport: the peer's STOP_SENDING errors the writable when it arrives, not at the next write.
          // The library errors its own writable then; pass that on.
          writer.closed.catch((error) => controller.error(translateError(error)));
        },
        write: async (chunk) => {
          if (!(chunk instanceof Uint8Array)) throw new TypeError('chunk must be a Uint8Array');
          // The library skips empty writes itself; nothing goes on the wire.
          if (chunk.byteLength === 0) return;
          // W3C WebTransport §7.4 write: the stream sends a copy; the library would otherwise hold the caller's
          // buffer until the HTTP/2 stream flushed it.
          const copy = chunk.slice();
          try {
            await this.#race(writer.write(copy));
          } catch (error) {
            throw translateError(error);
          }
          stats.bytesSent += copy.byteLength;
          stats.packetsSent++;
        },
        close: async () => {
          try {
            await this.#race(writer.close());
          } catch (error) {
            throw translateError(error);
          }
        },
        abort: async (reason) => {
          await writer.abort({ code: streamErrorCodeOf(reason) }).catch(noop);
        },
      },
      { highWaterMark: 1 },
    );
  }

  #drop(direction: 'droppedOutgoing' | 'droppedIncoming', reason: DatagramDropReason): void {
    const counts = this.#stats[direction];
    counts[reason] = (counts[reason] ?? 0) + 1;
  }

  async #sendDatagram(chunk: Uint8Array): Promise<void> {
    if (!(chunk instanceof Uint8Array)) throw new TypeError('datagram must be a Uint8Array');
    if (this.#state === 'connecting') {
      try {
        await this.ready;
      } catch {
        this.#drop('droppedOutgoing', 'closed');
        return;
      }
    }
    const lib = this.#lib;
    const writer = this.#datagramWriter;
    if (this.#state === 'closed' || this.#localClose || !lib || !writer) {
      this.#drop('droppedOutgoing', 'closed');
      return;
    }
    if (chunk.byteLength > lib.datagrams.maxDatagramSize) {
      this.#drop('droppedOutgoing', 'too-large');
      return;
    }
    const waiting = nativeOf(lib)?.datagramsWaiting_?.length ?? 0;
    if (waiting >= this.#outgoingHwm) {
      this.#drop('droppedOutgoing', 'congestion');
      return;
    }
    try {
      await writer.write(chunk.slice());
    } catch {
      this.#drop('droppedOutgoing', 'closed');
      return;
    }
    this.#stats.datagramsSent++;
    this.#stats.bytesSent += chunk.byteLength;
    this.#stats.packetsSent++;
  }

  async #pumpDatagrams(lib: LibSession): Promise<void> {
    const reader = lib.datagrams.readable.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const controller = this.#datagramController;
        if (!controller) break;
        if ((controller.desiredSize ?? 0) <= 0) {
          this.#drop('droppedIncoming', 'receive-queue-full');
          continue;
        }
        this.#stats.datagramsReceived++;
        this.#stats.bytesReceived += value.byteLength;
        this.#stats.packetsReceived++;
        controller.enqueue(value);
      }
    } catch {
      // the library errors its readable when the session ends
    } finally {
      try {
        this.#datagramController?.close();
      } catch {
        // already closed
      }
    }
  }
}
