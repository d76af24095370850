/**
 * Streams and datagrams that name a session not established yet (draft §4.6): held within one budget
 * (`maxBufferedUnknownSessionBytes`), delivered when the session is established, refused when it is not.
 */

import { H3ErrorCode } from './codes.js';
import type { H3Context, Session, WtStream } from './context.js';
import { concatBytes } from './varint.js';

/**
 * Each stream buffered for a not-yet-known session also costs this many bytes of
 * `maxBufferedUnknownSessionBytes`, so the budget bounds the number of buffered streams, not only their bytes.
 */
export const BUFFERED_STREAM_OVERHEAD = 64;

/** What is held for sessions not established yet. */
export class EarlyBuffer {
  /** Streams and datagrams for sessions not established yet (draft §4.6). */
  private readonly early = new Map<number, { streams: WtStream[]; datagrams: Uint8Array[] }>();
  earlyBytes = 0;

  constructor(private readonly c: H3Context) {}

  /** Holds a new stream's first bytes; false (nothing held) when over the budget. */
  holdStream(wt: WtStream, rest: Uint8Array, fin: boolean): boolean {
    const cost = BUFFERED_STREAM_OVERHEAD + rest.length;
    if (this.earlyBytes + cost > this.c.limits.maxBufferedUnknownSessionBytes) return false;
    this.earlyBytes += cost;
    wt.early = { chunks: rest.length ? [rest.slice()] : [], bytes: cost, fin };
    this.entry(wt.sessionId).streams.push(wt);
    return true;
  }

  /** Holds a datagram; false (nothing held) when over the budget. */
  holdDatagram(sessionId: number, payload: Uint8Array): boolean {
    if (this.earlyBytes + payload.length > this.c.limits.maxBufferedUnknownSessionBytes) return false;
    this.entry(sessionId).datagrams.push(payload.slice());
    this.earlyBytes += payload.length;
    return true;
  }

  /** More bytes of a held stream (`early` is its `wt.early`): held too, or the stream is refused over the budget. */
  append(wt: WtStream, early: NonNullable<WtStream['early']>, data: Uint8Array, fin: boolean): void {
    if (this.earlyBytes + data.length > this.c.limits.maxBufferedUnknownSessionBytes) {
      this.c.stats.streamsRejectedBufferFull++;
      this.c.stats.bytesDiscarded += data.length + early.bytes - BUFFERED_STREAM_OVERHEAD;
      this.dropEarlyStream(wt);
      this.c.refuseStream(wt.id, H3ErrorCode.WT_BUFFERED_STREAM_REJECTED, wt.bidi, fin);
      return;
    }
    if (data.length) early.chunks.push(data.slice());
    early.bytes += data.length;
    this.earlyBytes += data.length;
    if (fin) {
      early.fin = true;
      wt.recvOpen = false;
    }
  }

  private entry(sessionId: number): { streams: WtStream[]; datagrams: Uint8Array[] } {
    let entry = this.early.get(sessionId);
    if (!entry) {
      entry = { streams: [], datagrams: [] };
      this.early.set(sessionId, entry);
    }
    return entry;
  }

  dropEarlyStream(wt: WtStream): void {
    const entry = this.early.get(wt.sessionId);
    if (entry) {
      const i = entry.streams.indexOf(wt);
      if (i >= 0) entry.streams.splice(i, 1);
      if (entry.streams.length === 0 && entry.datagrams.length === 0) this.early.delete(wt.sessionId);
    }
    if (wt.early) this.earlyBytes -= wt.early.bytes;
    wt.early = undefined;
    this.c.wtStreams.delete(wt.id);
  }

  flushEarly(session: Session): void {
    const entry = this.early.get(session.id);
    if (!entry) return;
    this.early.delete(session.id);
    for (const wt of entry.streams) {
      const early = wt.early;
      if (!early) continue;
      this.earlyBytes -= early.bytes;
      wt.early = undefined;
      if (session.streams.size >= this.c.limits.maxStreamsPerSession) {
        this.c.stats.streamsRejectedLimit++;
        this.c.wtStreams.delete(wt.id);
        this.c.refuseStream(wt.id, H3ErrorCode.H3_REQUEST_REJECTED, wt.bidi, early.fin);
        continue;
      }
      session.streams.add(wt.id);
      this.c.events.push({
        type: 'stream-opened',
        sessionId: session.id,
        streamId: wt.id,
        bidirectional: wt.bidi,
      });
      if (early.stopCode !== undefined) {
        this.c.events.push({ type: 'stream-stop-sending', streamId: wt.id, code: early.stopCode });
      }
      if (early.chunks.length || early.fin) {
        this.c.events.push({
          type: 'stream-data',
          streamId: wt.id,
          data: concatBytes(early.chunks.length ? early.chunks : [new Uint8Array(0)]),
          fin: early.fin,
        });
      }
      this.c.streams.maybeForget(wt);
    }
    for (const d of entry.datagrams) {
      this.earlyBytes -= d.length;
      this.c.stats.datagramsReceived++;
      this.c.events.push({ type: 'datagram', sessionId: session.id, data: d });
    }
  }

  rejectEarly(sessionId: number, code: bigint): void {
    const entry = this.early.get(sessionId);
    if (!entry) return;
    this.early.delete(sessionId);
    for (const wt of entry.streams) {
      if (wt.early) this.earlyBytes -= wt.early.bytes;
      wt.early = undefined;
      this.c.wtStreams.delete(wt.id);
      this.c.stats.streamsRejectedSessionGone++;
      this.c.commands.push({ type: 'stream-stop-sending', streamId: wt.id, code });
      if (wt.bidi) this.c.commands.push({ type: 'stream-reset', streamId: wt.id, code });
      if (wt.recvOpen) this.c.discarding.add(wt.id);
    }
    for (const d of entry.datagrams) {
      this.earlyBytes -= d.length;
      this.c.stats.datagramsDroppedUnknownSession++;
      this.c.events.push({ type: 'datagram-dropped', reason: 'unknown-session' });
    }
  }
}
