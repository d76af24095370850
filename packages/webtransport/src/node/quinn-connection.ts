/**
 * One QUIC connection of the quinn engine, as the HTTP/3 glue sees it ({@link QuicEngineConnection}). The
 * connection itself lives in the native addon's I/O thread; this object keeps what must be answered
 * synchronously in JavaScript (stream send queues, drain waiters) and calls the addon for the rest.
 *
 * Unlike quiche 0.18, quinn-proto reports STOP_SENDING for idle streams as an event and sends a FIN written
 * alone, so there is no idle-stream polling and no held tail byte here.
 */
import type {
  DatagramRefusal,
  Host,
  PathEstimate,
  QuicCloseInfo,
  QuicConnectionHandler,
  QuicEngineConnection,
  QuicTransportStats,
} from './engine.js';
import type { QuinnEndpoint } from './quinn-endpoint.js';

interface SendState {
  queue: Uint8Array[];
  queued: number;
  fin: boolean;
  done: boolean;
  waiting: boolean;
}

/** What `write` in the addon returns besides a byte count (-2, any other refusal: stream gone or closed). */
const W_STOPPED = -1;
const W_NO_CREDIT = -3;

const REFUSALS: DatagramRefusal[] = ['closed', 'congestion', 'too-large', 'closed'];

export interface QuinnConnectionCounters {
  streamSendErrors: number;
  /** The glue wrote something else than the 0.5-RTT preamble the addon sent (a bug): the connection closed. */
  preambleMismatches: number;
  datagramsSent: number;
  datagramsReceived: number;
}

export class QuinnConnection implements QuicEngineConnection {
  handler!: QuicConnectionHandler;
  closed = false;
  established = false;
  readonly counters: QuinnConnectionCounters = {
    streamSendErrors: 0,
    preambleMismatches: 0,
    datagramsSent: 0,
    datagramsReceived: 0,
  };
  private readonly sends = new Map<number, SendState>();
  /** Streams with bytes the addon did not take yet (flow control, stream credit). */
  private readonly pending = new Set<number>();
  /** Cached maxDatagram(), -1 when stale (refreshed on each batch of events). */
  private maxDgram = -1;
  /** Server: bytes the addon sent on our first streams at 0.5-RTT that the glue's first writes repeat. */
  private preset: Map<number, Uint8Array> | undefined;
  /**
   * The addon's path figures and datagram backlog, one native call for both (the send estimate asks for them
   * together): valid for the rest of this event-loop turn, or until a datagram is queued.
   */
  private readonly path = {
    estimate: { smoothedRttMs: 0, congestionWindow: 0, deliveryRate: 0 } as PathEstimate,
    queued: 0,
  };
  private pathValid = false;
  private readonly invalidatePath = () => {
    this.pathValid = false;
  };

  constructor(
    private readonly ep: QuinnEndpoint,
    readonly id: number,
    public peer: Host,
    readonly streamHighWaterMark: number,
  ) {}

  // --- from the endpoint's event batches ---

  /** Called once per batch of events that touched this connection, after they were delivered. */
  afterBatch(): void {
    this.maxDgram = -1;
    this.flushJs();
  }

  /** The glue's turn: let it act, then hand over what waits for credit. */
  flushJs(): void {
    if (this.closed) return;
    this.handler.onFlush();
    if (this.pending.size > 0) this.retryPending();
    this.ep.kickSoon();
  }

  /** The addon wrote `bytes` on the stream already (EV_HALF_RTT): the glue's writes of them are confirmations. */
  presetStream(streamId: number, bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.preset ??= new Map();
    this.preset.set(streamId, bytes);
  }

  onWritable(streamId: number): void {
    if (this.pending.has(streamId)) this.writeQueued(streamId);
  }

  onAvailable(): void {
    if (this.pending.size > 0) this.retryPending();
  }

  onStopped(streamId: number, code: bigint): void {
    const st = this.sends.get(streamId);
    if (st) this.drop(streamId, st);
    this.handler.onStopSending(streamId, code);
    if (st?.waiting) {
      st.waiting = false;
      this.handler.onStreamDrained(streamId);
    }
  }

  onClosedEvent(info: QuicCloseInfo): void {
    if (this.closed) return;
    this.closed = true;
    this.sends.clear();
    this.pending.clear();
    this.ep.release(this);
    this.handler.onClosed(info);
  }

  // --- QuicEngineConnection ---

  write(streamId: number, data: Uint8Array, fin: boolean): void {
    if (this.preset?.has(streamId)) {
      const rest = this.confirmPreset(streamId, data);
      if (rest === undefined || (rest.length === 0 && !fin)) return;
      data = rest;
    }
    let st = this.sends.get(streamId);
    if (!st) {
      st = { queue: [], queued: 0, fin: false, done: false, waiting: false };
      this.sends.set(streamId, st);
    }
    if (st.done || st.fin || this.closed) return;
    if (st.queue.length === 0) {
      const n = this.ep.addon.write(this.ep.handle, this.id, streamId, data, fin);
      if (n === data.length) {
        if (fin) st.done = true;
        this.ep.kickSoon();
        return;
      }
      if (n < 0 && n !== W_NO_CREDIT) {
        this.refused(streamId, st, n);
        return;
      }
      const taken = Math.max(n, 0);
      // The caller may reuse its buffer once its write resolved: keep a copy of what the addon did not take.
      if (taken < data.length) {
        st.queue.push(data.slice(taken));
        st.queued += data.length - taken;
      }
    } else if (data.length > 0) {
      st.queue.push(data.slice());
      st.queued += data.length;
    }
    if (fin) st.fin = true;
    this.pending.add(streamId);
    this.ep.kickSoon();
  }

  /** What of `data` is left after the part the addon sent already; undefined when the bytes differ. */
  private confirmPreset(streamId: number, data: Uint8Array): Uint8Array | undefined {
    const preset = this.preset!;
    const sent = preset.get(streamId)!;
    const n = Math.min(sent.length, data.length);
    if (Buffer.compare(sent.subarray(0, n), data.subarray(0, n)) !== 0) {
      this.preset = undefined;
      this.counters.preambleMismatches++;
      this.close(H3_INTERNAL_ERROR, 'stream preamble mismatch');
      return undefined;
    }
    if (n === sent.length) preset.delete(streamId);
    else preset.set(streamId, sent.subarray(n));
    if (preset.size === 0) this.preset = undefined;
    return data.subarray(n);
  }

  private refused(streamId: number, st: SendState, code: number): void {
    // Stopped: the Stopped event reports the code to the glue; anything else is a stream we cannot send on.
    if (code !== W_STOPPED) this.counters.streamSendErrors++;
    this.drop(streamId, st);
  }

  private drop(streamId: number, st: SendState): void {
    st.queue = [];
    st.queued = 0;
    st.done = true;
    this.pending.delete(streamId);
  }

  private retryPending(): void {
    for (const id of [...this.pending]) this.writeQueued(id);
  }

  private writeQueued(streamId: number): void {
    const st = this.sends.get(streamId);
    if (!st || st.done) {
      this.pending.delete(streamId);
      return;
    }
    while (st.queue.length > 0) {
      const head = st.queue[0];
      const last = st.queue.length === 1 && st.fin;
      const n = this.ep.addon.write(this.ep.handle, this.id, streamId, head, last);
      if (n < 0 && n !== W_NO_CREDIT) {
        this.refused(streamId, st, n);
        break;
      }
      if (n <= 0) break;
      st.queued -= n;
      if (n < head.length) {
        st.queue[0] = head.subarray(n);
        break;
      }
      st.queue.shift();
      if (last) st.done = true;
    }
    if (st.queue.length === 0 && st.fin && !st.done) {
      const n = this.ep.addon.write(this.ep.handle, this.id, streamId, EMPTY, true);
      if (n === 0) st.done = true;
      else if (n !== W_NO_CREDIT) this.refused(streamId, st, n);
    }
    if (st.queue.length === 0 && (st.done || !st.fin)) this.pending.delete(streamId);
    if (st.waiting && st.queued <= this.streamHighWaterMark / 2) {
      st.waiting = false;
      this.handler.onStreamDrained(streamId);
    }
    this.ep.kickSoon();
  }

  sendRefused(streamId: number): boolean {
    const st = this.sends.get(streamId);
    // `done` with no FIN of ours: refused (stopped, reset or failed), not finished.
    return this.closed || (st !== undefined && st.done && !st.fin);
  }

  queuedBytes(streamId: number): number {
    return this.sends.get(streamId)?.queued ?? 0;
  }

  waitDrained(streamId: number): void {
    const st = this.sends.get(streamId);
    if (st) st.waiting = true;
  }

  /** quinn-proto reports STOP_SENDING on idle streams itself (StreamEvent::Stopped). */
  trackSend(_streamId: number): void {}

  resetStream(streamId: number, code: bigint): void {
    const st = this.sends.get(streamId);
    if (st) this.drop(streamId, st);
    if (this.closed) return;
    this.ep.addon.resetStream(this.ep.handle, this.id, streamId, code);
    this.ep.kickSoon();
  }

  stopSending(streamId: number, code: bigint): void {
    if (this.closed) return;
    this.ep.addon.stopSending(this.ep.handle, this.id, streamId, code);
    this.ep.kickSoon();
  }

  pauseRead(streamId: number): void {
    if (!this.closed) this.ep.addon.setPaused(this.ep.handle, this.id, streamId, true);
  }

  resumeRead(streamId: number): void {
    if (!this.closed) this.ep.addon.setPaused(this.ep.handle, this.id, streamId, false);
  }

  forget(streamId: number): void {
    const st = this.sends.get(streamId);
    if (st && (st.done || st.queue.length === 0)) {
      this.sends.delete(streamId);
      this.pending.delete(streamId);
    }
  }

  sendDatagram(data: Uint8Array): DatagramRefusal | null {
    if (this.closed) return 'closed';
    const code = this.ep.addon.sendDatagram(this.ep.handle, this.id, data);
    if (code === 0) {
      this.counters.datagramsSent++;
      this.pathValid = false;
      this.ep.kickSoon();
      return null;
    }
    return REFUSALS[code] ?? 'closed';
  }

  datagramQueueBytes(): number {
    if (this.closed || this.ep.datagramSendBytes <= 0) return 0;
    const p = this.readPath();
    if (p) return p.queued;
    return Math.max(0, this.ep.datagramSendBytes - this.ep.addon.datagramSpace(this.ep.handle, this.id));
  }

  /**
   * Smoothed RTT and congestion window without `stats()`'s JSON (asked up to once per datagram sent). quinn-proto
   * measures no delivery rate: the estimate falls back on the window per RTT until it measured the queue drain.
   * The object is reused: the next read overwrites it (the estimate reads it at once).
   */
  pathEstimate(): PathEstimate | undefined {
    if (this.closed) return undefined;
    const p = this.readPath();
    if (p) return p.estimate;
    const st = this.stats();
    return st
      ? { smoothedRttMs: st.smoothedRttMs, congestionWindow: st.congestionWindow, deliveryRate: 0 }
      : undefined;
  }

  /** One `pathEstimate` call into the addon per turn (see {@link path}); `undefined` when the addon lacks it. */
  private readPath(): { estimate: PathEstimate; queued: number } | undefined {
    if (this.pathValid) return this.path;
    const { addon, handle, pathOut: out } = this.ep;
    if (!addon.pathEstimate) return undefined;
    if (addon.pathEstimate(handle, this.id, out) !== 1) return undefined;
    this.path.estimate.smoothedRttMs = out[0];
    this.path.estimate.congestionWindow = out[1];
    this.path.queued = Math.max(0, this.ep.datagramSendBytes - out[2]);
    this.pathValid = true;
    queueMicrotask(this.invalidatePath);
    return this.path;
  }

  maxDatagramPayload(): number {
    if (this.closed) return 0;
    if (this.maxDgram < 0) this.maxDgram = this.ep.addon.maxDatagram(this.ep.handle, this.id);
    return this.maxDgram;
  }

  peerStreamsLeft(bidi: boolean): number {
    return this.closed ? 0 : this.ep.addon.streamsLeft(this.ep.handle, this.id, bidi);
  }

  peerCertChain(): Uint8Array[] | null {
    return this.closed ? null : this.ep.addon.peerCerts(this.ep.handle, this.id);
  }

  stats(): QuicTransportStats | undefined {
    if (this.closed) return undefined;
    const text = this.ep.addon.stats(this.ep.handle, this.id);
    if (!text) return undefined;
    const s = JSON.parse(text) as {
      rttMs: number;
      cwnd: number;
      sentPackets: number;
      lostPackets: number;
      txBytes: number;
      rxBytes: number;
      rxPackets: number;
    };
    return {
      smoothedRttMs: s.rttMs,
      minRttMs: s.rttMs,
      rttVariationMs: 0,
      bytesSent: s.txBytes,
      bytesReceived: s.rxBytes,
      packetsSent: s.sentPackets,
      packetsReceived: s.rxPackets,
      packetsLost: s.lostPackets,
      // quinn-proto counts no retransmissions as such: the frames of every lost packet are sent again.
      packetsRetransmitted: s.lostPackets,
      congestionWindow: s.cwnd,
      deliveryRate: 0,
    };
  }

  schedule(): void {
    if (!this.closed) this.ep.scheduleFlush(this);
  }

  close(code: number, reason: string, abandon = false, isApp = true): void {
    if (this.closed) return;
    this.ep.addon.close(this.ep.handle, this.id, code, reason.slice(0, 512), isApp, abandon);
  }

  flushNow(): void {
    if (!this.closed) this.ep.addon.kick(this.ep.handle);
  }

  destroy(): void {
    if (this.closed) return;
    this.ep.addon.destroy(this.ep.handle, this.id);
    this.onClosedEvent({ local: true, isApp: true, code: 0, reason: '', timedOut: false });
  }
}

const EMPTY = new Uint8Array(0);
/** RFC 9114 §8.1. */
const H3_INTERNAL_ERROR = 0x102;
