/**
 * Request streams (RFC 9114 §4): HEADERS and DATA framing, the server's view of a CONNECT request and the client's
 * of the response, and the capsules (RFC 9297 §3) a CONNECT stream carries once a session exists (draft §5, §6).
 */

import type { HeaderField } from './api.js';
import { createCapsuleParser, decodeCloseCapsule } from './capsules.js';
import { CapsuleType, FrameType, H3ErrorCode } from './codes.js';
import { bufferWithinLimit, type H3Context, type InStream, otherFrame, type Session } from './context.js';
import { encodeFrame, type FrameAction, type FrameItem, FrameParser } from './frames.js';
import { parseRequestHead, parseResponseStatus } from './headers.js';
import {
  decodeFieldSection,
  encodeFieldSection,
  FieldSectionTooLargeError,
  QpackDecompressionError,
} from './qpack/index.js';

/** Frames and capsules of request and CONNECT streams. */
export class RequestStreams {
  /** CONNECT streams whose CLOSE_WEBTRANSPORT_SESSION arrived: more data is H3_MESSAGE_ERROR (draft §6). */
  readonly closedByCapsule = new Set<number>();

  constructor(private readonly c: H3Context) {}

  newRequestStream(id: number, session?: Session): Extract<InStream, { kind: 'request' }> {
    const s: Extract<InStream, { kind: 'request' }> = {
      kind: 'request',
      id,
      headerFrames: 0,
      session,
      finalResponse: false,
      parser: undefined as unknown as FrameParser,
    };
    s.parser = new FrameParser((type, length): FrameAction => {
      switch (type) {
        case FrameType.HEADERS:
          return bufferWithinLimit('HEADERS', length, this.c.limits.maxFramePayload);
        case FrameType.DATA:
          // Ordering against HEADERS (RFC 9114 §4.1) is checked when the item is processed: whether a HEADERS
          // frame was a final response is only known then, and the verdict must not depend on chunking.
          return { kind: 'stream' };
        case FrameType.SETTINGS:
        case FrameType.GOAWAY:
        case FrameType.MAX_PUSH_ID:
        case FrameType.CANCEL_PUSH:
          return {
            kind: 'error',
            code: H3ErrorCode.H3_FRAME_UNEXPECTED,
            reason: `frame 0x${type.toString(16)} on a request stream (RFC 9114 §7.2)`,
          };
        case FrameType.PUSH_PROMISE:
          // §7.2.5: a server never receives it; a client never allowed a push id (no MAX_PUSH_ID sent).
          return this.c.role === 'server'
            ? {
                kind: 'error',
                code: H3ErrorCode.H3_FRAME_UNEXPECTED,
                reason: 'PUSH_PROMISE from a client (RFC 9114 §7.2.5)',
              }
            : {
                kind: 'error',
                code: H3ErrorCode.H3_ID_ERROR,
                reason: 'PUSH_PROMISE without MAX_PUSH_ID (RFC 9114 §7.2.5)',
              };
        case FrameType.WT_STREAM:
          return {
            kind: 'error',
            code: H3ErrorCode.H3_FRAME_ERROR,
            reason: 'WT_STREAM after the start of a stream (draft §4.3)',
          };
        default:
          return otherFrame(type);
      }
    });
    return s;
  }

  requestInput(s: Extract<InStream, { kind: 'request' }>, data: Uint8Array, fin: boolean): void {
    const items: FrameItem[] = [];
    s.parser.push(data, items);
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      if (this.c.failed) return;
      if (this.c.inStreams.get(s.id) !== s) return;
      if (item.kind === 'error') {
        this.c.connectionError(item.code, item.reason);
        return;
      }
      if (item.kind === 'frame') {
        // Only HEADERS are buffered on request streams.
        s.headerFrames++;
        if (this.c.role === 'server') this.serverHeaders(s, item.payload);
        else this.clientHeaders(s, item.payload);
        continue;
      }
      if (s.headerFrames === 0 || (this.c.role === 'client' && !s.finalResponse)) {
        // RFC 9114 §4.1: DATA before the (final) HEADERS is an invalid frame sequence.
        this.c.connectionError(H3ErrorCode.H3_FRAME_UNEXPECTED, 'DATA before HEADERS (RFC 9114 §4.1)');
        return;
      }
      if (s.session) this.capsuleInput(s, s.session, item.chunk);
      // draft §6: bytes after the DATA piece that carried CLOSE_WEBTRANSPORT_SESSION, in this same chunk.
      if (this.closedByCapsule.has(s.id) && this.c.inStreams.get(s.id) !== s) {
        if (item.offset < data.length) this.afterCloseCapsule(s.id, true, fin);
        return;
      }
    }
    if (!fin || this.c.failed || this.c.inStreams.get(s.id) !== s) return;
    this.c.inStreams.delete(s.id);
    if (!s.parser.atFrameBoundary) {
      // RFC 9114 §7.1: a stream ending inside a frame.
      this.c.connectionError(
        H3ErrorCode.H3_FRAME_ERROR,
        'request stream ended inside a frame (RFC 9114 §7.1)',
      );
      return;
    }
    const session = s.session;
    if (!session) return;
    if (!session.capsules.atFrameBoundary) {
      // RFC 9297 §3.3: a truncated capsule makes the message malformed.
      this.c.reportStreamError(
        s.id,
        H3ErrorCode.H3_MESSAGE_ERROR,
        'CONNECT stream ended inside a capsule (RFC 9297 §3.3)',
      );
      if (session.sendOpen)
        this.c.commands.push({ type: 'stream-reset', streamId: s.id, code: H3ErrorCode.H3_MESSAGE_ERROR });
      session.sendOpen = false;
      this.c.lifecycle.endSession(session, 0, 'CONNECT stream ended inside a capsule', true);
      return;
    }
    // draft §6: a clean FIN without a close capsule means code 0 and an empty reason.
    if (session.state === 'connecting') {
      this.c.lifecycle.failConnecting(session, 0, 'CONNECT stream ended before a response', undefined);
      return;
    }
    this.c.lifecycle.finishConnectStream(session);
    this.c.lifecycle.endSession(session, 0, '', false);
  }

  private decodeHeaders(
    s: Extract<InStream, { kind: 'request' }>,
    block: Uint8Array,
  ): HeaderField[] | 'too-large' | undefined {
    try {
      return decodeFieldSection(block, { maxFieldSectionSize: this.c.limits.maxFieldSectionSize });
    } catch (e) {
      if (e instanceof FieldSectionTooLargeError) return 'too-large';
      if (e instanceof QpackDecompressionError) {
        this.c.connectionError(H3ErrorCode.QPACK_DECOMPRESSION_FAILED, `${e.message} (stream ${s.id})`);
        return undefined;
      }
      throw e;
    }
  }

  private serverHeaders(s: Extract<InStream, { kind: 'request' }>, block: Uint8Array): void {
    if (s.headerFrames > 1) {
      // Trailers on a CONNECT stream carry nothing we use; a third HEADERS is an invalid sequence (§4.1).
      if (s.headerFrames > 2)
        this.c.connectionError(H3ErrorCode.H3_FRAME_UNEXPECTED, 'HEADERS after trailers (RFC 9114 §4.1)');
      return;
    }
    const fields = this.decodeHeaders(s, block);
    if (fields === undefined) return;
    if (fields === 'too-large') {
      // RFC 9114 §4.2.2 / RFC 6585 §5: the request is refused, the connection unaffected.
      this.respondAndStop(s.id, 431);
      return;
    }
    const head = parseRequestHead(fields);
    if (typeof head === 'string') {
      this.c.streamError(s.id, H3ErrorCode.H3_MESSAGE_ERROR, head, true);
      return;
    }
    if (head.method !== 'CONNECT') {
      // This server has no HTTP resources: 405 for every other method (RFC 9110 §15.5.6).
      this.respondAndStop(s.id, 405);
      return;
    }
    if (head.protocol !== 'webtransport') {
      // Plain CONNECT (RFC 9114 §4.4) and other upgrade tokens are not implemented here (RFC 9110 §15.6.2).
      this.respondAndStop(s.id, 501);
      return;
    }
    if (this.c.control.goawaySentId !== undefined && s.id >= this.c.control.goawaySentId) {
      // §5.2: requests at or above our GOAWAY id are not processed.
      this.c.stats.requestsRejected++;
      this.c.refuseStream(s.id, H3ErrorCode.H3_REQUEST_REJECTED, true);
      return;
    }
    if (this.c.sessions.size >= this.c.control.sessionLimit()) {
      // draft §5.2: over SETTINGS_WT_MAX_SESSIONS the CONNECT stream is reset with H3_REQUEST_REJECTED.
      this.c.stats.requestsRejected++;
      this.c.refuseStream(s.id, H3ErrorCode.H3_REQUEST_REJECTED, true);
      return;
    }
    const session: Session = {
      id: s.id,
      state: 'awaiting-settings',
      streams: new Set(),
      capsules: createCapsuleParser(this.c.limits.maxCapsuleSize),
      sendOpen: true,
      requestHeaders: fields,
    };
    s.session = session;
    this.c.sessions.set(s.id, session);
    if (this.c.control.peerSettings) this.c.lifecycle.offerSession(session);
  }

  private clientHeaders(s: Extract<InStream, { kind: 'request' }>, block: Uint8Array): void {
    const session = s.session;
    if (!session) return;
    if (s.finalResponse) return; // trailers carry nothing we use
    const fields = this.decodeHeaders(s, block);
    if (fields === undefined) return;
    if (fields === 'too-large') {
      this.c.reportStreamError(s.id, H3ErrorCode.H3_EXCESSIVE_LOAD, 'response header section too large');
      this.c.lifecycle.failConnecting(
        session,
        0,
        'response header section too large (RFC 9114 §4.2.2)',
        H3ErrorCode.H3_EXCESSIVE_LOAD,
      );
      return;
    }
    const status = parseResponseStatus(fields);
    if (typeof status === 'string') {
      this.c.reportStreamError(s.id, H3ErrorCode.H3_MESSAGE_ERROR, status);
      this.c.lifecycle.failConnecting(session, 0, status, H3ErrorCode.H3_MESSAGE_ERROR);
      return;
    }
    // RFC 9110 §15.2: interim responses precede the final one and are not answers.
    if (status < 200) return;
    s.finalResponse = true;
    if (status >= 300) {
      this.c.lifecycle.failConnecting(session, status, `HTTP ${status}`, undefined);
      return;
    }
    session.state = 'established';
    this.c.events.push({ type: 'session-established', sessionId: session.id, status, headers: fields });
    this.c.buffer.flushEarly(session);
  }

  /** A complete response, then STOP_SENDING H3_NO_ERROR: we need nothing more of the request (RFC 9114 §4.1). */
  respondAndStop(streamId: number, status: number, extra: HeaderField[] = []): void {
    const block = encodeFieldSection([[':status', String(status)], ...extra]);
    this.c.write(streamId, encodeFrame(FrameType.HEADERS, block), true);
    this.c.commands.push({ type: 'stream-stop-sending', streamId, code: H3ErrorCode.H3_NO_ERROR });
    if (this.c.inStreams.delete(streamId)) this.c.discarding.add(streamId);
  }

  private capsuleInput(s: Extract<InStream, { kind: 'request' }>, session: Session, chunk: Uint8Array): void {
    const items: FrameItem[] = [];
    session.capsules.push(chunk, items);
    for (const item of items) {
      if (this.c.failed || this.c.sessions.get(session.id) !== session) return;
      if (item.kind === 'error') {
        this.capsuleError(s, session, item.reason);
        return;
      }
      if (item.kind !== 'frame') continue;
      switch (item.type) {
        case CapsuleType.CLOSE_WEBTRANSPORT_SESSION: {
          const close = decodeCloseCapsule(item.payload);
          if (typeof close === 'string') {
            this.capsuleError(s, session, close);
            return;
          }
          // draft §6: we answer with our FIN; anything after the capsule but the FIN is H3_MESSAGE_ERROR.
          this.c.inStreams.delete(s.id);
          this.closedByCapsule.add(s.id);
          this.c.lifecycle.finishConnectStream(session);
          this.c.lifecycle.endSession(session, close.code, close.reason, false);
          // Later bytes in this piece: a capsule (the parser turns any capsule after CLOSE into an error item)
          // or the start of one's header.
          const trailing = items.indexOf(item) < items.length - 1 || !session.capsules.atFrameBoundary;
          if (trailing) this.afterCloseCapsule(s.id, true, false);
          return;
        }
        case CapsuleType.DRAIN_WEBTRANSPORT_SESSION:
          // Before the request is shown to the application, remember it for after the session-request.
          if (session.state === 'awaiting-settings') session.drainReceived = true;
          else this.c.events.push({ type: 'session-draining', sessionId: session.id });
          break;
        case CapsuleType.DATAGRAM:
          // RFC 9297 §3.5: a datagram carried reliably; same meaning as a QUIC DATAGRAM for this session.
          if (session.state === 'established') {
            this.c.stats.datagramsReceived++;
            this.c.events.push({ type: 'datagram', sessionId: session.id, data: item.payload });
          } else {
            this.c.stats.datagramsDroppedUnknownSession++;
            this.c.events.push({ type: 'datagram-dropped', reason: 'unknown-session' });
          }
          break;
      }
    }
  }

  afterCloseCapsule(streamId: number, moreData: boolean, fin: boolean): void {
    if (moreData) {
      this.closedByCapsule.delete(streamId);
      this.c.reportStreamError(
        streamId,
        H3ErrorCode.H3_MESSAGE_ERROR,
        'data after CLOSE_WEBTRANSPORT_SESSION (draft §6)',
      );
      this.c.commands.push({ type: 'stream-stop-sending', streamId, code: H3ErrorCode.H3_MESSAGE_ERROR });
      if (!fin) this.c.discarding.add(streamId);
      return;
    }
    if (fin) this.closedByCapsule.delete(streamId);
  }

  /** RFC 9297 §3.3: a malformed capsule makes the message malformed: reset the CONNECT stream, end the session. */
  private capsuleError(s: Extract<InStream, { kind: 'request' }>, session: Session, reason: string): void {
    this.c.reportStreamError(s.id, H3ErrorCode.H3_MESSAGE_ERROR, reason);
    this.c.commands.push({ type: 'stream-stop-sending', streamId: s.id, code: H3ErrorCode.H3_MESSAGE_ERROR });
    if (session.sendOpen)
      this.c.commands.push({ type: 'stream-reset', streamId: s.id, code: H3ErrorCode.H3_MESSAGE_ERROR });
    session.sendOpen = false;
    this.c.inStreams.delete(s.id);
    this.c.discarding.add(s.id);
    if (session.state === 'connecting') this.c.lifecycle.failConnecting(session, 0, reason, undefined);
    else this.c.lifecycle.endSession(session, 0, reason, true);
  }
}
