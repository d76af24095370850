/**
 * WebTransport streams (draft §4): attached to their session by their header, opened by us, written, reset and
 * stopped, forgotten once both directions ended, and reset with WT_SESSION_GONE when their session ends (§6).
 */

import { H3ErrorCode, webTransportCodeToHttp, WT_BIDI_SIGNAL, WT_UNI_STREAM_TYPE } from './codes.js';
import { assertStreamId, type H3Context, type Session, type WtStream } from './context.js';
import { ByteWriter } from './varint.js';

/** The WebTransport streams of all sessions of one connection. */
export class WtStreams {
  constructor(private readonly c: H3Context) {}

  attachWtStream(id: number, sessionId: number, bidi: boolean, rest: Uint8Array, fin: boolean): void {
    const wt: WtStream = { id, sessionId, bidi, local: false, recvOpen: true, sendOpen: bidi };
    if (this.c.endedSessions.has(sessionId)) {
      this.c.stats.streamsRejectedSessionGone++;
      this.c.stats.bytesDiscarded += rest.length;
      this.c.refuseStream(id, H3ErrorCode.WT_SESSION_GONE, bidi, fin);
      return;
    }
    const session = this.c.sessions.get(sessionId);
    if (this.c.role === 'client' && !session && sessionId >= this.c.nextBidi) {
      // We open every client bidi stream, so the server names a stream that does not exist.
      this.c.connectionError(
        H3ErrorCode.H3_ID_ERROR,
        `stream for session ${sessionId} we never opened (draft §4)`,
      );
      return;
    }
    if (session?.state === 'established') {
      if (session.streams.size >= this.c.limits.maxStreamsPerSession) {
        this.c.stats.streamsRejectedLimit++;
        this.c.refuseStream(id, H3ErrorCode.H3_REQUEST_REJECTED, bidi, fin);
        return;
      }
      session.streams.add(id);
      this.c.wtStreams.set(id, wt);
      this.c.events.push({ type: 'stream-opened', sessionId, streamId: id, bidirectional: bidi });
      if (rest.length || fin) this.wtInput(wt, rest, fin);
      return;
    }
    // draft §4.6: a session not established yet (or not known yet): buffer within the budget.
    if (!this.c.buffer.holdStream(wt, rest, fin)) {
      this.c.stats.streamsRejectedBufferFull++;
      this.c.stats.bytesDiscarded += rest.length;
      this.c.refuseStream(id, H3ErrorCode.WT_BUFFERED_STREAM_REJECTED, bidi, fin);
      return;
    }
    if (fin) wt.recvOpen = false;
    this.c.wtStreams.set(id, wt);
  }

  wtInput(wt: WtStream, data: Uint8Array, fin: boolean): void {
    if (!wt.recvOpen) {
      this.c.stats.bytesDiscarded += data.length;
      return;
    }
    if (wt.early) {
      this.c.buffer.append(wt, wt.early, data, fin);
      return;
    }
    if (data.length === 0 && !fin) return; // nothing to tell
    if (fin) wt.recvOpen = false;
    this.c.events.push({ type: 'stream-data', streamId: wt.id, data, fin });
    this.maybeForget(wt);
  }

  maybeForget(wt: WtStream): void {
    if (wt.recvOpen || wt.sendOpen) return;
    this.c.wtStreams.delete(wt.id);
    this.c.sessions.get(wt.sessionId)?.streams.delete(wt.id);
  }

  /** draft §6: every stream of an ended session is reset and stopped with WT_SESSION_GONE. */
  closeSessionStreams(session: Session): void {
    const code = H3ErrorCode.WT_SESSION_GONE;
    for (const id of session.streams) {
      const wt = this.c.wtStreams.get(id);
      if (!wt) continue;
      this.c.wtStreams.delete(id);
      if (wt.sendOpen) this.c.commands.push({ type: 'stream-reset', streamId: id, code });
      if (wt.recvOpen) {
        this.c.commands.push({ type: 'stream-stop-sending', streamId: id, code });
        this.c.discarding.add(id);
      }
    }
    session.streams.clear();
    this.c.buffer.rejectEarly(session.id, code);
  }

  openStream(sessionId: number, bidirectional: boolean): number {
    const session = this.c.lifecycle.liveSession(sessionId, 'openStream');
    if (!session) throw new Error(`openStream: session ${sessionId} is closed`);
    if (this.c.failed) throw new Error('connection failed');
    if (session.streams.size >= this.c.limits.maxStreamsPerSession) {
      throw new Error(
        `openStream: session ${sessionId} has ${session.streams.size} streams (maxStreamsPerSession)`,
      );
    }
    const id = bidirectional ? this.c.allocBidi() : this.c.allocUni();
    const wt: WtStream = {
      id,
      sessionId,
      bidi: bidirectional,
      local: true,
      recvOpen: bidirectional,
      sendOpen: true,
    };
    this.c.wtStreams.set(id, wt);
    session.streams.add(id);
    // draft §4.2 / §4.3: the stream header links the stream to its session.
    const header = new ByteWriter()
      .varint(bidirectional ? WT_BIDI_SIGNAL : WT_UNI_STREAM_TYPE)
      .varint(sessionId)
      .finish();
    this.c.write(id, header);
    return id;
  }

  private localWtStream(streamId: number, what: string): WtStream | undefined {
    assertStreamId(streamId);
    const wt = this.c.wtStreams.get(streamId);
    if (wt && !wt.early) return wt;
    // Ids we allocated or saw are known; a stream that ended since is a no-op (counted), any other id throws.
    const local = ((streamId & 1) === 0) === (this.c.role === 'client');
    const known = local ? streamId < ((streamId & 2) !== 0 ? this.c.nextUni : this.c.nextBidi) : true;
    if (!known) throw new Error(`${what}: no stream ${streamId}`);
    this.c.stats.writesAfterClose++;
    return undefined;
  }

  sendStreamData(streamId: number, data: Uint8Array, fin: boolean): void {
    const wt = this.localWtStream(streamId, 'sendStreamData');
    if (!wt || this.c.failed) return;
    if (!wt.sendOpen) {
      this.c.stats.writesAfterClose++;
      return;
    }
    if (fin) wt.sendOpen = false;
    this.c.write(streamId, data, fin);
    this.maybeForget(wt);
  }

  resetStream(streamId: number, code: number): void {
    const wire = webTransportCodeToHttp(code);
    const wt = this.localWtStream(streamId, 'resetStream');
    if (!wt || this.c.failed || !wt.sendOpen) return;
    wt.sendOpen = false;
    this.c.commands.push({ type: 'stream-reset', streamId, code: wire });
    this.maybeForget(wt);
  }

  stopSending(streamId: number, code: number): void {
    const wire = webTransportCodeToHttp(code);
    const wt = this.localWtStream(streamId, 'stopSending');
    if (!wt || this.c.failed || !wt.recvOpen) return;
    wt.recvOpen = false;
    this.c.discarding.add(streamId);
    this.c.commands.push({ type: 'stream-stop-sending', streamId, code: wire });
    this.maybeForget(wt);
  }
}
