/**
 * Glue between one QUIC connection of any engine ({@link QuicEngineConnection}) and the sans-IO HTTP/3 +
 * WebTransport core ({@link H3Connection}): QUIC input goes into the core; the core's commands go to the engine
 * and its events to the {@link WtSession}s. Every call into the core is followed by applying the commands it
 * queued, so nothing waits for a later turn; events are dispatched in {@link WtConnection.pump}. Sessions and
 * streams reach the QUIC connection only through this class: it is the single seam.
 */
import { type DatagramSendEstimate, QuiverTransportError, SendDelayEstimator } from '@quiver/transport';
import type { H3Connection, H3Event, HeaderField, QuicCommand } from '../core/api.js';
import type {
  DatagramRefusal,
  Host,
  QuicCloseInfo,
  QuicConnectionHandler,
  QuicEngineConnection,
  QuicTransportStats,
} from './engine.js';
import type { WtSession } from './session.js';

/** A send estimate younger than this is reused (ms). */
const ESTIMATE_REUSE_MS = 5;

/** RFC 9114 §8.1 H3_NO_ERROR. */
export const H3_NO_ERROR = 0x100;

/**
 * Reason phrase of our H3_NO_ERROR CONNECTION_CLOSE (RFC 9000 §19.19: free diagnostic text). Google's QUIC
 * (Chromium) reads a leading "<number>:" in it as its own error code (quiche `MaybeExtractQuicErrorCode`) and maps an
 * application close without one to QUIC_IETF_GQUIC_ERROR_MISSING. Chromium completes a session's close on a task
 * after the one that read CLOSE_WEBTRANSPORT_SESSION; a CONNECTION_CLOSE read before that task ran with an error
 * code fails the session ("Connection lost"), while QUIC_NO_ERROR ends it with the close code it already has. "0:"
 * is QUIC_NO_ERROR.
 */
export const GRACEFUL_CLOSE_REASON = '0:no WebTransport session left';

export interface WtConnectionOwner {
  /** The handshake completed; return false to refuse the connection (client certificate checks). */
  onHandshake?(conn: WtConnection): boolean;
  /** HTTP/3 is up (control streams queued): a client sends its CONNECT now. */
  onStarted?(conn: WtConnection): void;
  /** Server: an extended CONNECT arrived (RFC 9220). */
  onSessionRequest?(conn: WtConnection, sessionId: number, headers: HeaderField[]): void;
  /** Client: the server answered the CONNECT. */
  onSessionResponse?(conn: WtConnection, sessionId: number, status: number, reason: string): void;
  /** No session and no pending request remains on the connection. */
  onIdle?(conn: WtConnection): void;
  onClosed(conn: WtConnection, info: QuicCloseInfo): void;
}

export interface WtConnectionCounters {
  /** Stream-level protocol errors on non-WebTransport streams (the core reset them). */
  streamErrors: number;
  /** Datagrams the core dropped (unknown session, malformed). */
  datagramsDropped: number;
  /** WebTransport streams that arrived for a session we do not have (reset). */
  orphanStreams: number;
}

export class WtConnection implements QuicConnectionHandler {
  readonly sessions = new Map<number, WtSession>();
  /** Server: session requests awaiting the application's verdict. */
  readonly pendingRequests = new Set<number>();
  readonly counters: WtConnectionCounters = { streamErrors: 0, datagramsDropped: 0, orphanStreams: 0 };
  started = false;
  goawayReceived = false;
  /** The error the connection failed with, for sessions that end with it. */
  connectionError: { code: bigint; reason: string } | undefined;
  private readonly streamOwner = new Map<number, WtSession>();
  private pumping = false;
  private readonly waitingOpeners = new Set<WtSession>();
  /** The connection's DATAGRAM queue is shared by its sessions, so is the estimate of its wait. */
  private readonly sendDelay = new SendDelayEstimator();
  private lastEstimate: { at: number; value: DatagramSendEstimate } | undefined;
  /** A CONNECTION_CLOSE waiting for the sessions' closes to be delivered (see {@link closeWhenDelivered}). */
  private closeWait: { timer: NodeJS.Timeout; abandon: boolean } | undefined;

  constructor(
    private readonly quic: QuicEngineConnection,
    readonly h3: H3Connection,
    readonly owner: WtConnectionOwner,
  ) {
    quic.handler = this;
  }

  // --- QuicConnectionHandler ---

  onEstablished(): void {
    if (this.owner.onHandshake && !this.owner.onHandshake(this)) return;
    this.started = true;
    this.h3.start();
    this.owner.onStarted?.(this);
    this.pump();
  }

  onStreamData(streamId: number, data: Uint8Array, fin: boolean): void {
    this.h3.receiveStreamData(streamId, data, fin);
    this.pump();
  }

  onStreamReset(streamId: number, code: bigint): void {
    this.h3.receiveStreamReset(streamId, code);
    this.pump();
  }

  onStopSending(streamId: number, code: bigint): void {
    this.h3.receiveStopSending(streamId, code);
    this.pump();
  }

  onDatagram(data: Uint8Array): void {
    this.h3.receiveDatagram(data);
    this.pump();
  }

  onStreamDrained(streamId: number): void {
    this.streamOwner.get(streamId)?.streams.get(streamId)?.onDrained();
  }

  onStreamAcked(streamId: number): void {
    // Reported for every stream we finish; only a CONNECT stream whose close is in flight matters.
    if (this.h3.closesInFlight === 0) return;
    this.h3.receiveStreamAcked(streamId);
    this.checkCloseWait();
  }

  onFlush(): void {
    if (this.waitingOpeners.size > 0) {
      for (const s of [...this.waitingOpeners]) {
        this.waitingOpeners.delete(s);
        s.processPendingOpens();
      }
    }
    this.pump();
  }

  onClosed(info: QuicCloseInfo): void {
    this.cancelClose();
    if (this.sessions.size > 0) {
      const why = info.timedOut
        ? 'idle timeout'
        : `connection closed (${info.local ? 'local' : 'peer'} ${info.isApp ? 'application' : 'transport'} code ${info.code}${info.reason ? `: ${info.reason}` : ''})`;
      const err = new QuiverTransportError(why, { source: 'session' });
      for (const s of [...this.sessions.values()]) s.finish(undefined, err);
    }
    this.pendingRequests.clear();
    this.owner.onClosed(this, info);
  }

  // --- core plumbing ---

  /** Applies queued commands and dispatches queued events until the core has nothing more. */
  pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (;;) {
        const cmds = this.h3.drainCommands();
        const evs = this.h3.drainEvents();
        if (cmds.length === 0 && evs.length === 0) break;
        if (cmds.length > 0) this.apply(cmds);
        for (const e of evs) this.dispatch(e);
      }
    } finally {
      this.pumping = false;
    }
    if (this.closeWait) this.checkCloseWait();
  }

  /** Applies the core's commands; returns what became of the last datagram among them (none: `undefined`). */
  private apply(cmds: QuicCommand[]): DatagramRefusal | null | undefined {
    let dgram: DatagramRefusal | null | undefined;
    const q = this.quic;
    for (const c of cmds) {
      switch (c.type) {
        case 'stream-write':
          q.write(c.streamId, c.data, c.fin);
          break;
        case 'stream-reset':
          q.resetStream(c.streamId, c.code);
          break;
        case 'stream-stop-sending':
          q.stopSending(c.streamId, c.code);
          break;
        case 'datagram':
          dgram = q.sendDatagram(c.data);
          break;
        case 'connection-close':
          q.close(Number(c.code), c.reason);
          break;
      }
    }
    return dgram;
  }

  private applyNow(): void {
    const cmds = this.h3.drainCommands();
    if (cmds.length > 0) this.apply(cmds);
    this.quic.schedule();
  }

  private dispatch(e: H3Event): void {
    switch (e.type) {
      case 'session-request':
        this.pendingRequests.add(e.sessionId);
        this.owner.onSessionRequest?.(this, e.sessionId, e.headers);
        break;
      case 'session-established': {
        const s = this.sessions.get(e.sessionId);
        this.owner.onSessionResponse?.(this, e.sessionId, e.status, '');
        s?.markReady();
        break;
      }
      case 'session-rejected': {
        this.owner.onSessionResponse?.(this, e.sessionId, e.status, e.reason);
        const s = this.sessions.get(e.sessionId);
        s?.finish(
          undefined,
          new QuiverTransportError(
            `session rejected with status ${e.status}${e.reason ? `: ${e.reason}` : ''}`,
            {
              source: 'session',
            },
          ),
        );
        break;
      }
      case 'session-closed': {
        if (this.pendingRequests.delete(e.sessionId)) this.checkIdle();
        const s = this.sessions.get(e.sessionId);
        // W3C WebTransport §6.5: a reset or malformed CONNECT stream makes `closed` reject; a capsule or FIN
        // resolves it. The core already reset the session's streams (WT_SESSION_GONE, draft §6).
        if (s && e.abrupt)
          s.finish(
            undefined,
            new QuiverTransportError(`session ended abruptly${e.reason ? `: ${e.reason}` : ''}`, {
              source: 'session',
            }),
          );
        else s?.finish({ closeCode: e.code, reason: e.reason });
        break;
      }
      case 'session-draining':
        this.sessions.get(e.sessionId)?.markDraining();
        break;
      case 'goaway':
        this.goawayReceived = true;
        for (const s of this.sessions.values()) s.markDraining();
        break;
      case 'stream-opened': {
        const s = this.sessions.get(e.sessionId);
        if (!s || s.isClosed) {
          // The core only raises this for sessions it knows; a session we already finished gets the stream
          // refused (draft §4.6 leaves the choice to the endpoint).
          this.counters.orphanStreams++;
          this.guard(() => {
            if (e.bidirectional || (e.streamId & 0x2) === 0) this.h3.resetStream(e.streamId, 0);
            this.h3.stopSending(e.streamId, 0);
          });
          break;
        }
        this.streamOwner.set(e.streamId, s);
        s.onIncomingStream(e.streamId, e.bidirectional);
        break;
      }
      case 'stream-data':
        this.streamOwner.get(e.streamId)?.streams.get(e.streamId)?.onData(e.data, e.fin);
        break;
      case 'stream-reset':
        this.streamOwner.get(e.streamId)?.streams.get(e.streamId)?.onReset(e.code);
        break;
      case 'stream-stop-sending':
        this.streamOwner.get(e.streamId)?.streams.get(e.streamId)?.onStopSending(e.code);
        break;
      case 'datagram': {
        const s = this.sessions.get(e.sessionId);
        if (s) s.onDatagram(e.data);
        else this.counters.datagramsDropped++;
        break;
      }
      case 'datagram-dropped': {
        this.counters.datagramsDropped++;
        // With one session the drop is attributable; with several it is counted on the connection only. An
        // unknown session id counts as `malformed` (see DatagramDropReason).
        if (this.sessions.size === 1)
          for (const s of this.sessions.values()) s.countIncomingDrop('malformed');
        break;
      }
      case 'connection-error':
        this.connectionError = { code: e.code, reason: e.reason };
        break;
      case 'stream-error':
        this.counters.streamErrors++;
        break;
      case 'settings':
        break;
    }
  }

  /** Local misuse of the core (e.g. a stream the core already closed) becomes a stream error, not a crash. */
  private guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      throw new QuiverTransportError(e instanceof Error ? e.message : String(e), { source: 'stream' });
    } finally {
      this.applyNow();
    }
  }

  // --- used by sessions and streams ---

  sendStreamData(streamId: number, data: Uint8Array, fin: boolean): void {
    this.guard(() => this.h3.sendStreamData(streamId, data, fin));
  }

  resetStream(streamId: number, code: number): void {
    try {
      this.guard(() => this.h3.resetStream(streamId, code));
    } catch {
      // The stream is already gone on the wire: nothing left to reset.
    }
  }

  stopSending(streamId: number, code: number): void {
    try {
      this.guard(() => this.h3.stopSending(streamId, code));
    } catch {
      // Idem.
    }
  }

  /**
   * `null` when the datagram was queued on the QUIC connection. The core refuses some without a word (a session
   * it no longer has, a peer whose SETTINGS disable HTTP datagrams, RFC 9297 §2.1.1): it then queues no datagram
   * command, and that is a refusal too, never a datagram counted as sent.
   */
  sendDatagram(sessionId: number, data: Uint8Array): DatagramRefusal | null {
    if (this.quic.closed) return 'closed';
    try {
      this.h3.sendDatagram(sessionId, data);
    } catch {
      return 'closed';
    }
    const cmds = this.h3.drainCommands();
    const r = this.apply(cmds);
    if (r === null) this.sendDelay.wrote(data.length + this.h3.datagramOverhead(sessionId));
    return r === undefined ? 'closed' : r;
  }

  /**
   * How long a datagram queued now would wait: quiche's DATAGRAM queue over its measured drain rate (else the
   * congestion window per RTT), plus the RTT above the minimum (queues in the network). Recomputed at most every
   * {@link ESTIMATE_REUSE_MS}: the engine's statistics are native calls that allocate.
   */
  datagramSendEstimate(): DatagramSendEstimate {
    const now = performance.now();
    const last = this.lastEstimate;
    if (last && now - last.at < ESTIMATE_REUSE_MS) return last.value;
    const st = this.quic.closed ? undefined : (this.quic.pathEstimate?.() ?? this.quic.stats());
    const queued = this.quic.datagramQueueBytes?.() ?? 0;
    const rtt = st?.smoothedRttMs ?? 0;
    const cwndRate = st && rtt > 0 ? (st.congestionWindow * 1000) / rtt : 0;
    const value = this.sendDelay.estimate(now, queued, rtt, 0, Math.max(cwndRate, st?.deliveryRate ?? 0));
    this.lastEstimate = { at: now, value };
    return value;
  }

  maxDatagramSize(sessionId: number): number {
    const max = this.quic.maxDatagramPayload();
    if (max <= 0) return 0;
    return Math.max(0, max - this.h3.datagramOverhead(sessionId));
  }

  /** Opens a WebTransport stream if the peer's stream limit allows (RFC 9000 §4.6), else `undefined`. */
  openStream(sessionId: number, bidi: boolean): number | undefined {
    const left = this.quic.peerStreamsLeft(bidi);
    if (left <= 0) {
      const s = this.sessions.get(sessionId);
      if (s) this.waitingOpeners.add(s);
      return undefined;
    }
    const id = this.guard(() => this.h3.openStream(sessionId, bidi));
    const s = this.sessions.get(sessionId);
    if (s) this.streamOwner.set(id, s);
    return id;
  }

  // --- the QUIC connection, as sessions and streams need it ---

  get isClosed(): boolean {
    return this.quic.closed;
  }

  get peer(): Host {
    return this.quic.peer;
  }

  peerCertChain(): Uint8Array[] | null {
    return this.quic.peerCertChain();
  }

  transportStats(): QuicTransportStats | undefined {
    return this.quic.closed ? undefined : this.quic.stats();
  }

  trackSend(streamId: number): void {
    this.quic.trackSend(streamId);
  }

  queuedBytes(streamId: number): number {
    return this.quic.queuedBytes(streamId);
  }

  sendRefused(streamId: number): boolean {
    return this.quic.sendRefused(streamId);
  }

  waitDrained(streamId: number): void {
    this.quic.waitDrained(streamId);
  }

  pauseRead(streamId: number): void {
    this.quic.pauseRead(streamId);
  }

  resumeRead(streamId: number): void {
    this.quic.resumeRead(streamId);
  }

  /** Send what is queued at once (a closing listener's last word), then drop the connection. */
  flushAndDestroy(): void {
    this.quic.flushNow();
    this.quic.destroy();
  }

  destroy(): void {
    this.quic.destroy();
  }

  schedule(): void {
    this.quic.schedule();
  }

  forgetStream(streamId: number): void {
    this.streamOwner.delete(streamId);
    this.quic.forget(streamId);
  }

  closeSession(sessionId: number, code: number, reason: string): void {
    try {
      this.guard(() => this.h3.closeSession(sessionId, code, reason));
    } catch {
      // Already closed by the core (e.g. the peer closed at the same time).
    }
  }

  /** A session closed before it was established: reset its CONNECT stream (RFC 9114 §4.1.1 H3_REQUEST_CANCELLED). */
  abandonSession(sessionId: number): void {
    this.closeSession(sessionId, 0, '');
  }

  drainSession(sessionId: number): void {
    try {
      this.guard(() => this.h3.drainSession(sessionId));
    } catch {
      // Idem.
    }
  }

  goaway(): void {
    try {
      this.guard(() => this.h3.goaway());
    } catch {
      // Idem.
    }
  }

  acceptSession(sessionId: number, session: WtSession): void {
    this.pendingRequests.delete(sessionId);
    session.bind(sessionId);
    this.guard(() => this.h3.acceptSession(sessionId));
    session.markReady();
    this.pump();
  }

  rejectSession(sessionId: number, status: number): void {
    if (!this.pendingRequests.delete(sessionId)) return;
    try {
      this.guard(() => this.h3.rejectSession(sessionId, status));
    } catch {
      // The request stream is already gone.
    }
    this.checkIdle();
  }

  onSessionFinished(s: WtSession): void {
    if (s.sessionId >= 0 && this.sessions.get(s.sessionId) === s) this.sessions.delete(s.sessionId);
    this.waitingOpeners.delete(s);
    this.checkIdle();
  }

  private checkIdle(): void {
    if (this.sessions.size === 0 && this.pendingRequests.size === 0 && !this.quic.closed)
      this.owner.onIdle?.(this);
  }

  /** Application close of the QUIC connection with H3_NO_ERROR (RFC 9114 §5.2 graceful close). */
  close(abandon: boolean, code = H3_NO_ERROR, reason = GRACEFUL_CLOSE_REASON, isApp = true): void {
    this.cancelClose();
    this.quic.close(code, reason, abandon, isApp);
  }

  /**
   * Graceful close of a connection whose sessions ended: CONNECTION_CLOSE (H3_NO_ERROR) once the peer has every
   * session's close (the core's `closesInFlight` is 0: draft §6, its FIN or our FIN's acknowledgement arrived),
   * else after `timeoutMs`, when `onTimeout` is told first so that a peer that never answers is counted. A
   * CONNECTION_CLOSE is not congestion controlled: sent at once, it can overtake a close capsule still queued
   * behind stream data, and the peer would see its session lost instead of closed.
   */
  closeWhenDelivered(abandon: boolean, timeoutMs: number, onTimeout: () => void): void {
    if (this.quic.closed || this.closeWait) return;
    if (this.h3.closesInFlight === 0) {
      this.close(abandon);
      return;
    }
    const timer = setTimeout(() => {
      this.closeWait = undefined;
      if (this.quic.closed || this.sessions.size > 0 || this.pendingRequests.size > 0) return;
      onTimeout();
      this.close(abandon);
    }, timeoutMs);
    timer.unref();
    this.closeWait = { timer, abandon };
  }

  /** Whether a {@link closeWhenDelivered} waits for the peer. */
  get awaitingDelivery(): boolean {
    return this.closeWait !== undefined;
  }

  /** Drops a waiting {@link closeWhenDelivered} (a new session request arrived, or the connection closed). */
  cancelClose(): void {
    if (!this.closeWait) return;
    clearTimeout(this.closeWait.timer);
    this.closeWait = undefined;
  }

  private checkCloseWait(): void {
    const w = this.closeWait;
    if (!w || this.h3.closesInFlight > 0) return;
    if (this.sessions.size > 0 || this.pendingRequests.size > 0) this.cancelClose();
    else this.close(w.abandon);
  }
}
