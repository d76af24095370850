/**
 * The sans-IO HTTP/3 (RFC 9114) + WebTransport (draft-ietf-webtrans-http3, draft-02 and current) connection.
 *
 * Inputs are QUIC events (stream bytes, resets, stop-sendings, datagrams); outputs are QUIC commands and H3
 * events, drained by the adapter. Peer misbehaviour never throws: it becomes a `connection-error` (with a queued
 * `connection-close`) or a reset of the one offending stream. Local misuse (unknown ids, bad arguments) throws.
 */

import type {
  H3Connection,
  H3ConnectionOptions,
  H3Event,
  H3Stats,
  HeaderField,
  QuicCommand,
  Role,
} from './api.js';
import { H3ErrorCode, httpCodeToWebTransport } from './codes.js';
import { assertStreamId, type Draft, H3Context } from './context.js';
import { ControlStreams } from './control.js';
import { Datagrams } from './datagrams.js';
import { EarlyBuffer } from './early-buffer.js';
import { InboundStreams } from './inbound.js';
import { RequestStreams } from './request-streams.js';
import { SessionLifecycle } from './sessions.js';
import { WtStreams } from './wt-streams.js';

export { DEFAULT_H3_LIMITS } from './context.js';
export { WT_MAX_SESSIONS_ADVERTISED } from './control.js';
export { BUFFERED_STREAM_OVERHEAD } from './early-buffer.js';

/** Creates the sans-IO HTTP/3 + WebTransport core for one QUIC connection; call `start()` once QUIC is up. */
export function createH3Connection(options: H3ConnectionOptions): H3Connection {
  return new H3ConnectionImpl(options);
}

/**
 * The one object the adapter talks to. Its jobs are split into parts sharing one {@link H3Context}: control and
 * QPACK streams (`control.ts`), routing of inbound streams (`inbound.ts`), request and CONNECT streams
 * (`request-streams.ts`), session lifecycle (`sessions.ts`), WebTransport streams (`wt-streams.ts`), what waits for a
 * session (`early-buffer.ts`), datagrams (`datagrams.ts`) and close delivery (`close-delivery.ts`).
 */
class H3ConnectionImpl implements H3Connection {
  readonly role: Role;
  private readonly c: H3Context;

  constructor(options: H3ConnectionOptions) {
    const c = new H3Context(options);
    this.c = c;
    this.role = c.role;
    c.control = new ControlStreams(c, options);
    c.inbound = new InboundStreams(c);
    c.requests = new RequestStreams(c);
    c.lifecycle = new SessionLifecycle(c);
    c.streams = new WtStreams(c);
    c.buffer = new EarlyBuffer(c);
    c.datagrams = new Datagrams(c);
  }

  drainCommands(): QuicCommand[] {
    const out = this.c.commands;
    this.c.commands = [];
    return out;
  }

  drainEvents(): H3Event[] {
    const out = this.c.events;
    this.c.events = [];
    return out;
  }

  getStats(): H3Stats {
    return {
      ...this.c.stats,
      sessions: this.c.sessions.size,
      bufferedUnknownSessionBytes: this.c.buffer.earlyBytes,
      closesInFlight: this.c.closes.inFlight,
      closesForgotten: this.c.closes.forgotten,
    };
  }

  get closesInFlight(): number {
    return this.c.closes.inFlight;
  }

  get webTransportDraft(): Draft | undefined {
    return this.c.control.draft;
  }

  // ----------------------------------------------------------------------------------------- stream input

  receiveStreamData(streamId: number, data: Uint8Array, fin: boolean): void {
    assertStreamId(streamId);
    this.c.inbound.dataInput(streamId, data, fin);
    // After the input: the FIN it carried may be the one that made us finish our side (draft §6), just now.
    if (fin) this.c.closes.settled(streamId);
  }

  receiveStreamAcked(streamId: number): void {
    assertStreamId(streamId);
    this.c.closes.settled(streamId);
  }

  receiveStreamReset(streamId: number, code: bigint): void {
    assertStreamId(streamId);
    this.c.closes.settled(streamId);
    if (this.c.failed) return;
    if (this.c.discarding.delete(streamId) || this.c.requests.closedByCapsule.delete(streamId)) return;
    const wt = this.c.wtStreams.get(streamId);
    if (wt) {
      if (wt.early) {
        // Never shown to the application: forget it quietly.
        this.c.buffer.dropEarlyStream(wt);
        return;
      }
      if (!wt.recvOpen) return;
      wt.recvOpen = false;
      this.c.events.push({ type: 'stream-reset', streamId, code: httpCodeToWebTransport(code) ?? 0 });
      this.c.streams.maybeForget(wt);
      return;
    }
    if (this.c.inbound.peerCriticalStreams.has(streamId)) {
      this.c.connectionError(
        H3ErrorCode.H3_CLOSED_CRITICAL_STREAM,
        `critical stream ${streamId} reset (RFC 9114 §6.2.1)`,
      );
      return;
    }
    const s = this.c.inStreams.get(streamId);
    if (!s) return;
    this.c.inStreams.delete(streamId);
    if (s.kind !== 'request' || !s.session) return;
    const session = s.session;
    if (session.state === 'connecting') {
      this.c.lifecycle.failConnecting(
        session,
        0,
        `CONNECT stream reset with 0x${code.toString(16)}`,
        undefined,
      );
      return;
    }
    // draft §6: a reset CONNECT stream ends the session; we reset our side in turn.
    if (session.sendOpen) {
      session.sendOpen = false;
      this.c.commands.push({ type: 'stream-reset', streamId, code: H3ErrorCode.WT_SESSION_GONE });
    }
    this.c.lifecycle.endSession(session, 0, `CONNECT stream reset with 0x${code.toString(16)}`, true);
  }

  receiveStopSending(streamId: number, code: bigint): void {
    assertStreamId(streamId);
    this.c.closes.settled(streamId);
    if (this.c.failed) return;
    if (this.c.control.ownCriticalStreams.has(streamId)) {
      // RFC 9114 §6.2.1 / RFC 9204 §4.2: the peer must not ask us to close a critical stream.
      this.c.connectionError(
        H3ErrorCode.H3_CLOSED_CRITICAL_STREAM,
        `STOP_SENDING on our critical stream ${streamId}`,
      );
      return;
    }
    const wt = this.c.wtStreams.get(streamId);
    if (wt) {
      if (!wt.sendOpen) return;
      wt.sendOpen = false;
      if (wt.early) {
        // Replayed when the stream is shown to the application.
        wt.early.stopCode = httpCodeToWebTransport(code) ?? 0;
        return;
      }
      this.c.events.push({ type: 'stream-stop-sending', streamId, code: httpCodeToWebTransport(code) ?? 0 });
      this.c.streams.maybeForget(wt);
      return;
    }
    const session = this.c.sessions.get(streamId);
    // draft §6: the peer no longer reads the CONNECT stream (it closed the session or is about to).
    if (session) session.sendOpen = false;
  }

  // ------------------------------------------------------------------------------- the parts' operations

  start(): void {
    this.c.control.start();
  }

  receiveDatagram(data: Uint8Array): void {
    this.c.datagrams.receiveDatagram(data);
  }

  sendDatagram(sessionId: number, data: Uint8Array): void {
    this.c.datagrams.sendDatagram(sessionId, data);
  }

  datagramOverhead(sessionId: number): number {
    return this.c.datagrams.datagramOverhead(sessionId);
  }

  connect(request: { authority: string; path: string; origin?: string; headers?: HeaderField[] }): number {
    return this.c.lifecycle.connect(request);
  }

  acceptSession(sessionId: number, headers: HeaderField[] = []): void {
    this.c.lifecycle.acceptSession(sessionId, headers);
  }

  rejectSession(sessionId: number, status: number): void {
    this.c.lifecycle.rejectSession(sessionId, status);
  }

  closeSession(sessionId: number, code: number, reason: string): void {
    this.c.lifecycle.closeSession(sessionId, code, reason);
  }

  drainSession(sessionId: number): void {
    this.c.lifecycle.drainSession(sessionId);
  }

  openStream(sessionId: number, bidirectional: boolean): number {
    return this.c.streams.openStream(sessionId, bidirectional);
  }

  sendStreamData(streamId: number, data: Uint8Array, fin: boolean): void {
    this.c.streams.sendStreamData(streamId, data, fin);
  }

  resetStream(streamId: number, code: number): void {
    this.c.streams.resetStream(streamId, code);
  }

  stopSending(streamId: number, code: number): void {
    this.c.streams.stopSending(streamId, code);
  }

  goaway(): void {
    this.c.control.goaway();
  }
}
