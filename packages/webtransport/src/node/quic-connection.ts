/**
 * One QUIC connection on the quiche binding: stream send queues that honour flow control, pull-based reads,
 * datagrams and the connection's timer. It knows nothing of HTTP/3: it hands what QUIC delivered to a
 * {@link QuicConnectionHandler} (the HTTP/3 glue) and writes what it is asked to.
 *
 * The binding's costs shape this code (see the package README): `readable()`/`writable()` are walked once per
 * flush, never per packet; "done" results are `null`, errors are exceptions, so the hot paths only take
 * branches that return `null`.
 */
import { performance } from 'node:perf_hooks';
import type {
  DatagramRefusal,
  QuicCloseInfo,
  QuicConnectionHandler,
  PathEstimate,
  QuicEngineConnection,
  QuicTransportStats,
} from './engine.js';
import type { Connection, Host } from './quiche.js';
import { issueSpareConnectionIds } from './migration.js';
import { quiche, quicheErrorCode, quicheErrorName } from './quiche.js';

export type { QuicCloseInfo, QuicConnectionHandler };

/** What the connection needs from the socket it lives on. */
export interface QuicTransmitter {
  readonly local: Host;
  /** Builds packets into memory the endpoint owns and sends them; returns nothing. */
  sendPackets(conn: QuicConnection): void;
  schedule(conn: QuicConnection): void;
  release(conn: QuicConnection): void;
  /** Routes packets whose destination connection id is `key` to `conn` (a spare id we issued). */
  route?(key: string, conn: QuicConnection): void;
}

interface SendState {
  queue: Uint8Array[];
  head: number;
  queued: number;
  fin: boolean;
  finSent: boolean;
  /** Someone waits for `onStreamDrained`. */
  waiting: boolean;
  stopped: boolean;
  /** A WebTransport stream whose STOP_SENDING must be noticed while idle (HTTP/3 control streams are not). */
  tracked: boolean;
  /**
   * Hold the last byte of the latest write until the next flush. quiche 0.18 loses a FIN written alone once the
   * stream's data has been emitted (the FIN frame is never sent and the stream is collected), so the peer's
   * readable would never close. Holding one byte lets a close() that follows a write within the same event-loop
   * turn (the common `write(); close()`) carry the FIN on that byte.
   */
  holdTail: boolean;
}

export interface QuicConnectionCounters {
  recvErrors: number;
  streamSendErrors: number;
  datagramsSent: number;
  datagramsReceived: number;
  /** Client moves to a new local address (RFC 9000 §9.2) that quiche accepted. */
  migrations: number;
  /** Moves quiche refused (no spare connection id, handshake not confirmed, migration disabled by the peer). */
  migrationsFailed: number;
}

const EMPTY = new Uint8Array(0);
/** Idle streams are asked about STOP_SENDING at most this often per connection (see checkStopped). */
const STOP_CHECK_MS = 10;
/**
 * Stream reads land in a shared slab and are handed on as views of it, not copies: the application keeps them,
 * and a slab is never rewritten, only replaced once less than READ_MIN is left (the old one lives as long as a
 * view of it does). A copy and a zeroed allocation per read showed up as several % of a bulk profile.
 */
const READ_SLAB = 256 * 1024;
const READ_MIN = 16 * 1024;
const READ_COPY_BELOW = 1024;
let readSlab = newReadSlab();
let readOff = 0;

/** Not zero-filled: only bytes quiche wrote are ever exposed. A plain Uint8Array view, as reads always were. */
function newReadSlab(): Uint8Array {
  const b = Buffer.allocUnsafeSlow(READ_SLAB);
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

export class QuicConnection implements QuicEngineConnection {
  handler!: QuicConnectionHandler;
  readonly counters: QuicConnectionCounters = {
    recvErrors: 0,
    streamSendErrors: 0,
    datagramsSent: 0,
    datagramsReceived: 0,
    migrations: 0,
    migrationsFailed: 0,
  };
  /** Connection ids (latin1 keys) under which the endpoint routes packets to us. */
  readonly keys: string[] = [];
  peer: Host;
  private recvInfo: { from: Host; to: Host };
  established = false;
  closed = false;
  /** After close(): free the connection as soon as the CONNECTION_CLOSE left (no draining period). */
  abandonAfterClose = false;
  private readonly sends = new Map<number, SendState>();
  /**
   * Tracked streams with nothing queued: the only ones whose STOP_SENDING quiche reports solely through its
   * writable set (streams with queued bytes learn it from streamSend). Kept up to date as streams change, so a
   * flush does not walk every stream to find them.
   */
  private readonly idleTracked = new Set<number>();
  /** Earliest time of the next idle-stream check (see checkStopped). */
  private nextStopCheck = 0;
  private stopTimer: NodeJS.Timeout | undefined;
  private readonly pendingSend = new Set<number>();
  private readonly readPaused = new Set<number>();
  private readonly resumed = new Set<number>();
  private received = false;
  /** Cached dgramMaxWritableLen(), -1 when stale. */
  private maxDgram = -1;
  private finOnlyWritten = false;
  /** Streams with a held tail byte, and when it is released (see SendState.holdTail). */
  private readonly heldTails = new Map<number, number>();
  private tailTimer: NodeJS.Timeout | undefined;
  /** How long a tail byte may wait for a close() before it is sent alone. */
  tailHoldMs = 0;
  private localClose = false;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    if (this.closed) return;
    this.conn.onTimeout();
    this.received = true;
    this.maxDgram = -1;
    this.flush();
  };

  constructor(
    readonly conn: Connection,
    readonly endpoint: QuicTransmitter,
    peer: Host,
    /** Bytes queued per stream above which writers wait. */
    readonly streamHighWaterMark: number,
  ) {
    this.peer = peer;
    this.recvInfo = { from: peer, to: endpoint.local };
  }

  /** One UDP datagram from the peer. Processing of what it carried is deferred to the next flush. */
  /** Returns false when quiche refused the packet. */
  recv(packet: Uint8Array, from: Host): boolean {
    if (this.closed) return false;
    this.received = true;
    this.maxDgram = -1;
    if (this.recvInfo.from !== from) this.recvInfo = { from, to: this.endpoint.local };
    try {
      this.conn.recv(packet, this.recvInfo);
      return true;
    } catch {
      // RFC 9000 §12.2: undecryptable or malformed packets are discarded; quiche closes the connection itself
      // when a packet is a protocol violation.
      this.counters.recvErrors++;
      return false;
    }
  }

  schedule(): void {
    if (!this.closed) this.endpoint.schedule(this);
  }

  /** Start tracking a stream whose send side we own, so a STOP_SENDING on it is noticed while it is idle. */
  trackSend(streamId: number): void {
    let st = this.sends.get(streamId);
    if (!st) {
      st = newSendState();
      this.sends.set(streamId, st);
    }
    st.tracked = true;
    st.holdTail = true;
    if (st.queue.length === 0 && !st.fin && !st.stopped) this.idleTracked.add(streamId);
  }

  sendRefused(streamId: number): boolean {
    return this.closed || (this.sends.get(streamId)?.stopped ?? false);
  }

  /** Queue bytes (and FIN) for a stream; a new local stream id opens that stream (RFC 9000 §2.1). */
  write(streamId: number, data: Uint8Array, fin: boolean): void {
    let st = this.sends.get(streamId);
    if (!st) {
      st = newSendState();
      this.sends.set(streamId, st);
    }
    if (st.stopped || st.fin) return;
    this.idleTracked.delete(streamId);
    const wasEmpty = st.queue.length === 0;
    if (data.length > 0) {
      st.queue.push(data);
      st.queued += data.length;
    }
    if (fin) st.fin = true;
    // Handing bytes to quiche at once keeps queues short and makes stream-credit checks (peerStreamsLeft*)
    // see the stream; packets are still built once per flush.
    if (!this.closed && !this.pendingSend.has(streamId)) {
      this.pendingSend.add(streamId);
      this.writeOne(streamId, st);
      // A FIN handed over alone must leave before any input is processed (see writeOne).
      if (this.finOnlyWritten) {
        this.finOnlyWritten = false;
        this.endpoint.sendPackets(this);
      }
    } else this.pendingSend.add(streamId);
    // What quiche did not take is copied: the caller may reuse its buffer once its write resolved. Copying
    // only the rest saves a copy of every chunk quiche took at once (it copies into its own buffers).
    if (data.length > 0 && st.queue.length > 0 && st.queue[st.queue.length - 1] === data) {
      const onlyHead = wasEmpty && st.queue.length === 1;
      const rest = onlyHead && st.head > 0 ? data.slice(st.head) : data.slice();
      if (onlyHead) st.head = 0;
      st.queue[st.queue.length - 1] = rest;
    }
    this.schedule();
  }

  /** Bytes accepted by `write` but not yet by quiche. */
  queuedBytes(streamId: number): number {
    return this.sends.get(streamId)?.queued ?? 0;
  }

  /** Resolves through `onStreamDrained` once the stream's queue is at or below the low-water mark. */
  waitDrained(streamId: number): void {
    const st = this.sends.get(streamId);
    if (st) st.waiting = true;
  }

  /** RESET_STREAM (RFC 9000 §19.4); drops what is queued. */
  resetStream(streamId: number, code: bigint): void {
    const st = this.sends.get(streamId);
    if (st && !this.closed) {
      // A stream opened by queued bytes only exists for quiche once something was handed to it: write what
      // fits first (the signal that names the session must reach the peer before the reset, draft §4.4).
      if (this.pendingSend.has(streamId)) this.writeOne(streamId, st);
    }
    if (st) {
      st.queue = [];
      st.queued = 0;
      st.stopped = true;
      this.pendingSend.delete(streamId);
    }
    this.idleTracked.delete(streamId);
    this.shutdown(streamId, quiche.Shutdown.Write, code);
  }

  /** STOP_SENDING (RFC 9000 §19.5); quiche also discards what it buffered for the stream. */
  stopSending(streamId: number, code: bigint): void {
    this.readPaused.delete(streamId);
    this.shutdown(streamId, quiche.Shutdown.Read, code);
  }

  private shutdown(streamId: number, dir: number, code: bigint): void {
    if (this.closed) return;
    try {
      this.conn.streamShutdown(streamId, dir, Number(code));
    } catch {
      // Already finished or reset in that direction: nothing to signal.
    }
    this.schedule();
  }

  /** While paused, quiche's receive buffer fills and QUIC flow control holds the peer back (RFC 9000 §4.1). */
  pauseRead(streamId: number): void {
    this.readPaused.add(streamId);
  }

  resumeRead(streamId: number): void {
    if (!this.readPaused.delete(streamId)) return;
    this.resumed.add(streamId);
    this.schedule();
  }

  /** RFC 9221 DATAGRAM frame. `null` when queued, else why it was not. */
  sendDatagram(data: Uint8Array): DatagramRefusal | null {
    if (this.closed) return 'closed';
    try {
      // A full send queue is quiche's `Done`, which the binding returns as null.
      if (this.conn.dgramSend(data) === null) return 'congestion';
    } catch (e) {
      return quicheErrorName(e) === 'BufferTooShort' ? 'too-large' : 'closed';
    }
    this.counters.datagramsSent++;
    this.schedule();
    return null;
  }

  datagramQueueBytes(): number {
    return this.closed ? 0 : this.conn.dgramSendQueueByteSize();
  }

  /**
   * RFC 9000 §9.2: continue on a new local address (the endpoint's new socket). False when quiche cannot: no spare
   * connection id from the peer (§9.5), the handshake not confirmed, or migration disabled by the peer (§18.2).
   */
  migrateTo(local: Host): boolean {
    if (this.closed) return false;
    try {
      this.conn.migrateSource(local);
    } catch {
      return false;
    }
    this.recvInfo = { from: this.peer, to: local };
    this.schedule();
    return true;
  }

  /** The largest DATAGRAM payload the path allows now (RFC 9221 §3), 0 when the peer did not enable them. */
  maxDatagramPayload(): number {
    if (this.closed) return 0;
    // Asked once per datagram sent: the native call is cached until the next input (it only changes with the
    // handshake's transport parameters and the path, both learnt from received packets).
    if (this.maxDgram < 0) this.maxDgram = this.conn.dgramMaxWritableLen() ?? 0;
    return this.maxDgram;
  }

  peerStreamsLeft(bidi: boolean): number {
    if (this.closed) return 0;
    return bidi ? this.conn.peerStreamsLeftBidi() : this.conn.peerStreamsLeftUni();
  }

  peerCertChain(): Uint8Array[] | null {
    return this.closed ? null : this.conn.peerCertChain();
  }

  /**
   * The path's RTT, congestion window and delivery rate alone: `conn.stats()` costs about twice `pathStats()` in the
   * binding (10 vs 5 µs here) and the send estimate, asked per datagram, needs none of its counters.
   */
  pathEstimate(): PathEstimate | undefined {
    if (this.closed) return undefined;
    const path = this.conn.pathStats()[0];
    return path
      ? { smoothedRttMs: path.rtt, congestionWindow: path.cwnd, deliveryRate: path.deliveryRate }
      : undefined;
  }

  stats(): QuicTransportStats | undefined {
    if (this.closed) return undefined;
    const st = this.conn.stats();
    const path = this.conn.pathStats()[0];
    // The binding reports the smoothed RTT in whole milliseconds (quiche `PathStats::rtt`) and no variation.
    const rtt = path ? path.rtt : 0;
    return {
      smoothedRttMs: rtt,
      minRttMs: rtt,
      rttVariationMs: 0,
      bytesSent: st.sentBytes,
      bytesReceived: st.recvBytes,
      packetsSent: st.sent,
      packetsReceived: st.recv,
      packetsLost: st.lost,
      packetsRetransmitted: st.retrans,
      congestionWindow: path?.cwnd ?? 0,
      deliveryRate: path?.deliveryRate ?? 0,
    };
  }

  flushNow(): void {
    this.flush();
  }

  /** Application CONNECTION_CLOSE (RFC 9000 §10.2); the draining period follows unless abandoned. */
  close(code: number, reason: string, abandon = false, isApp = true): void {
    if (this.closed) return;
    this.localClose = true;
    if (abandon) this.abandonAfterClose = true;
    try {
      this.conn.close(isApp, code, Buffer.from(reason.slice(0, 512), 'utf8'));
    } catch {
      // Already closing.
    }
    this.schedule();
  }

  /** Drop the connection now without sending anything (process shutdown of the endpoint). */
  destroy(): void {
    if (this.closed) return;
    this.finish();
  }

  /** Process input, let the handler act, write stream queues, send packets, re-arm the timer. */
  flush(): void {
    if (this.closed) return;
    if (this.received) {
      this.received = false;
      this.maxDgram = -1;
      if (!this.established && this.conn.isEstablished()) {
        this.established = true;
        issueSpareConnectionIds(this.conn, (key) => this.endpoint.route?.(key, this));
        this.handler.onEstablished();
      }
      if (this.established) {
        // isReadable() is one cheap call, true while quiche's readable-stream set (data, FIN or RESET_STREAM)
        // is not empty *or a DATAGRAM is queued*: datagrams are taken out of quiche first so that it only
        // answers for streams, else every datagram-carrying packet paid the costly readable() walk (~26 us,
        // most of a 30 Hz game server's per-packet time). They are delivered after the streams, as before.
        this.takeDatagrams();
        if (this.conn.isReadable()) this.readStreams();
        this.deliverDatagrams();
        this.checkStopped();
      }
    }
    if (this.resumed.size > 0) {
      for (const id of this.resumed) this.readStream(id);
      this.resumed.clear();
    }
    if (this.closed) return;
    this.handler.onFlush();
    if (this.heldTails.size > 0) this.releaseTails();
    if (this.pendingSend.size > 0) this.writeQueued();
    this.finOnlyWritten = false;
    this.endpoint.sendPackets(this);
    // RFC 9000 §10.2: a peer's CONNECTION_CLOSE puts us in draining, where nothing more is sent, so the sessions
    // learn now rather than after three PTOs. After our own close the closing period runs on quiche's timer,
    // unless the owner abandons the connection (client teardown, listener shutdown).
    if (
      this.conn.isClosed() ||
      (this.localClose && this.abandonAfterClose) ||
      (!this.localClose && this.conn.isDraining())
    ) {
      this.finish();
      return;
    }
    this.armTimer();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.tailTimer) clearTimeout(this.tailTimer);
    this.tailTimer = undefined;
    this.heldTails.clear();
    const peerErr = this.conn.peerError();
    const localErr = this.conn.localError();
    const err = this.localClose ? (localErr ?? peerErr) : (peerErr ?? localErr);
    const info: QuicCloseInfo = {
      local: this.localClose || (!peerErr && !!localErr),
      isApp: err?.isApp ?? false,
      code: err?.errorCode ?? 0,
      reason: err ? Buffer.from(err.reason).toString('utf8') : '',
      timedOut: this.conn.isTimedOut(),
    };
    if (this.stopTimer) clearTimeout(this.stopTimer);
    this.stopTimer = undefined;
    this.sends.clear();
    this.pendingSend.clear();
    this.idleTracked.clear();
    this.endpoint.release(this);
    this.handler.onClosed(info);
  }

  private armTimer(): void {
    const t = this.conn.timeout();
    if (t === null) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      this.timerAt = Number.POSITIVE_INFINITY;
      return;
    }
    const at = performance.now() + t;
    // A timer that fires before quiche's deadline costs one no-op onTimeout(); re-arming on every flush (the
    // idle timer moves with each packet) would cost more.
    if (this.timer && this.timerAt <= at + 1) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(this.onTimer, Math.max(0, Math.ceil(t)));
    this.timer.unref();
  }

  private readStreams(): void {
    // One native walk per flush: readable() costs ~26 us, far more than a packet.
    for (const id of this.conn.readable()) {
      if (!this.readPaused.has(id)) this.readStream(id);
    }
  }

  private readStream(id: number): void {
    for (;;) {
      if (this.closed) return;
      if (readSlab.length - readOff < READ_MIN) {
        readSlab = newReadSlab();
        readOff = 0;
      }
      const room = readSlab.subarray(readOff);
      let r: [number, boolean] | null;
      try {
        r = this.conn.streamRecv(id, room);
      } catch (e) {
        const code = quicheErrorCode(e, 'StreamReset');
        if (code !== undefined) this.handler.onStreamReset(id, code);
        return;
      }
      if (r === null) return;
      const [n, fin] = r;
      let data: Uint8Array = EMPTY;
      if (n >= READ_COPY_BELOW) {
        data = room.subarray(0, n);
        // 8-byte aligned so the next view starts on a word boundary.
        readOff += (n + 7) & ~7;
      } else if (n > 0) {
        // Small reads are copied so that a few kept bytes do not pin a whole slab.
        data = room.slice(0, n);
      }
      if (n > 0 || fin) this.handler.onStreamData(id, data, fin);
      if (fin || this.readPaused.has(id)) return;
      if (n < room.length) {
        // A short read drained quiche's buffer for now: skip the call that would only say "done".
        return;
      }
    }
  }

  /** Datagrams taken from quiche in this flush, delivered by deliverDatagrams; reused across flushes. */
  private readonly inDatagrams: Uint8Array[] = [];

  private takeDatagrams(): void {
    for (;;) {
      const d = this.conn.dgramRecvVec();
      if (d === null) return;
      this.inDatagrams.push(d);
    }
  }

  private deliverDatagrams(): void {
    const q = this.inDatagrams;
    if (q.length === 0) return;
    for (let i = 0; i < q.length; i++) {
      if (this.closed) break;
      this.counters.datagramsReceived++;
      this.handler.onDatagram(q[i]);
    }
    q.length = 0;
  }

  /**
   * RFC 9000 §3.5: a STOP_SENDING for a stream with nothing queued only shows as quiche listing the stream as
   * writable; asking quiche about each idle stream is the only way to learn it. Done for the idle tracked streams
   * only (a set maintained as streams change, empty for datagram-only sessions), and at most once per
   * STOP_CHECK_MS per connection: a game session's idle streams would otherwise cost a native call each on every
   * packet. A check skipped for that reason is made up by a timer, so no STOP_SENDING waits for more input.
   */
  private checkStopped(): void {
    if (this.idleTracked.size === 0) return;
    const now = performance.now();
    if (now < this.nextStopCheck) {
      if (!this.stopTimer) {
        this.stopTimer = setTimeout(
          () => {
            this.stopTimer = undefined;
            this.received = true;
            this.schedule();
          },
          Math.max(1, Math.ceil(this.nextStopCheck - now)),
        );
        this.stopTimer.unref();
      }
      return;
    }
    this.nextStopCheck = now + STOP_CHECK_MS;
    for (const id of this.idleTracked) {
      const st = this.sends.get(id);
      if (!st || st.stopped || st.finSent || st.fin || this.pendingSend.has(id)) {
        this.idleTracked.delete(id);
        continue;
      }
      try {
        this.conn.streamCapacity(id);
      } catch (e) {
        const code = quicheErrorCode(e, 'StreamStopped');
        if (code !== undefined) this.onStopped(id, st, code);
        // Any other error: the stream is gone in quiche (finished); nothing to watch.
        else this.idleTracked.delete(id);
      }
    }
  }

  /** Notices a STOP_SENDING on a stream whose last byte is held, as a send would have. */
  private stoppedWhileHeld(id: number, st: SendState): void {
    try {
      this.conn.streamCapacity(id);
    } catch (e) {
      const code = quicheErrorCode(e, 'StreamStopped');
      if (code === undefined) return;
      this.heldTails.delete(id);
      this.onStopped(id, st, code);
    }
  }

  private onStopped(id: number, st: SendState, code: bigint): void {
    st.stopped = true;
    this.idleTracked.delete(id);
    st.queue = [];
    st.queued = 0;
    this.pendingSend.delete(id);
    this.handler.onStopSending(id, code);
    if (st.waiting) {
      st.waiting = false;
      this.handler.onStreamDrained(id);
    }
  }

  private holdTail(id: number): void {
    if (!this.heldTails.has(id)) this.heldTails.set(id, performance.now() + this.tailHoldMs);
    // Released by a later flush: the one a write schedules, or the tail timer's. An infinite hold has no timer:
    // only the writer's close() or next write releases the byte (see SessionLimits.streamTailHoldMs).
    if (this.tailHoldMs <= 0) this.schedule();
    else if (Number.isFinite(this.tailHoldMs)) this.armTailTimer();
  }

  private armTailTimer(): void {
    if (this.tailTimer || this.closed) return;
    let first = Number.POSITIVE_INFINITY;
    for (const at of this.heldTails.values()) first = Math.min(first, at);
    if (!Number.isFinite(first)) return;
    this.tailTimer = setTimeout(
      () => {
        this.tailTimer = undefined;
        this.schedule();
      },
      Math.max(0, Math.ceil(first - performance.now())),
    );
    this.tailTimer.unref();
  }

  /** Send the tail bytes whose hold expired (a later FIN goes alone, see SendState.holdTail). */
  private releaseTails(): void {
    const now = performance.now();
    for (const [id, at] of this.heldTails) {
      const st = this.sends.get(id);
      if (st && (st.stopped || st.finSent || st.fin)) {
        this.heldTails.delete(id);
        continue;
      }
      if (at > now) continue;
      this.heldTails.delete(id);
      if (!st) continue;
      st.holdTail = false;
      this.writeOne(id, st);
      st.holdTail = true;
    }
    if (this.heldTails.size > 0) this.armTailTimer();
  }

  private writeQueued(): void {
    for (const id of this.pendingSend) {
      const st = this.sends.get(id);
      if (!st) {
        this.pendingSend.delete(id);
        continue;
      }
      this.writeOne(id, st);
    }
  }

  private writeOne(id: number, st: SendState): void {
    {
      let blocked = false;
      while (st.queue.length > 0) {
        const head = st.queue[0];
        let chunk = st.head > 0 ? head.subarray(st.head) : head;
        const last = st.fin && st.queue.length === 1;
        if (st.queue.length === 1 && !st.fin && st.holdTail) {
          // Keep the last byte back until the writer closes (it then carries the FIN) or the next flush.
          if (chunk.length <= 1) {
            this.holdTail(id);
            // quiche reports a STOP_SENDING only to a send or a capacity query; a stream whose byte is held has
            // no send coming (checkStopped skips streams with queued bytes), so it is asked here, once per flush.
            if (!Number.isFinite(this.tailHoldMs)) this.stoppedWhileHeld(id, st);
            blocked = true;
            break;
          }
          chunk = chunk.subarray(0, chunk.length - 1);
        }
        let n: number | null;
        try {
          n = this.conn.streamSend(id, chunk, last);
        } catch (e) {
          const code = quicheErrorCode(e, 'StreamStopped');
          if (code !== undefined) this.onStopped(id, st, code);
          else {
            // Stream limit or a stream quiche already finished: the glue checks limits, so this is counted.
            this.counters.streamSendErrors++;
            st.stopped = true;
            st.queue = [];
            st.queued = 0;
          }
          blocked = true;
          break;
        }
        if (n === null) {
          blocked = true;
          break;
        }
        st.queued -= n;
        if (n < chunk.length || chunk.length < head.length - st.head) {
          st.head += n;
          if (n === chunk.length) this.holdTail(id);
          blocked = true;
          break;
        }
        st.queue.shift();
        st.head = 0;
        if (last) st.finSent = true;
      }
      if (!blocked && st.fin && !st.finSent && !st.stopped) {
        // A FIN with no data left to carry it (see `holdTail` for why this is avoided): hand it over at the
        // highest urgency and build packets at once (see write()), before any ACK is processed.
        try {
          this.conn.streamPriority(id, 0, false);
        } catch {
          // Priority is an optimisation here.
        }
        try {
          if (this.conn.streamSend(id, EMPTY, true) !== null) {
            st.finSent = true;
            this.finOnlyWritten = true;
          } else blocked = true;
        } catch {
          st.stopped = true;
        }
      }
      if (st.waiting && st.queued <= this.streamHighWaterMark / 2) {
        st.waiting = false;
        this.handler.onStreamDrained(id);
      }
      if (!blocked || st.stopped) this.pendingSend.delete(id);
      if (st.finSent || st.stopped) {
        this.idleTracked.delete(id);
        if (!st.waiting) this.sends.delete(id);
      } else if (st.tracked && !st.fin && st.queue.length === 0 && !this.pendingSend.has(id))
        this.idleTracked.add(id);
    }
  }

  /** Forget a stream whose both sides are done (the glue knows; quiche collects its own state). */
  forget(streamId: number): void {
    this.readPaused.delete(streamId);
    this.idleTracked.delete(streamId);
    const st = this.sends.get(streamId);
    if (st && (st.finSent || st.stopped || st.queue.length === 0)) {
      this.sends.delete(streamId);
      this.pendingSend.delete(streamId);
    }
  }
}

function newSendState(): SendState {
  return {
    queue: [],
    head: 0,
    queued: 0,
    fin: false,
    finSent: false,
    waiting: false,
    stopped: false,
    tracked: false,
    holdTail: false,
  };
}
