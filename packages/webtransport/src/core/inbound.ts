/**
 * Which stream is which: the first bytes of each peer stream tell a request, a WebTransport stream (draft §4.2,
 * §4.3) or a unidirectional stream's type (RFC 9114 §6.2); the bytes are then routed to the part that owns it.
 */

import { H3ErrorCode, StreamType, WT_BIDI_SIGNAL, WT_UNI_STREAM_TYPE } from './codes.js';
import type { H3Context, InStream } from './context.js';
import { concatBytes, decodeVarintBig, encodeVarint } from './varint.js';

/** Routes inbound stream bytes by stream kind; one of each critical stream per peer (RFC 9114 §6.2). */
export class InboundStreams {
  private peerControlSeen = false;
  private peerEncoderSeen = false;
  private peerDecoderSeen = false;
  readonly peerCriticalStreams = new Set<number>();
  maxPeerBidiSeen = -1;

  constructor(private readonly c: H3Context) {}

  dataInput(streamId: number, data: Uint8Array, fin: boolean): void {
    if (this.c.failed) return;
    if (this.c.requests.closedByCapsule.has(streamId)) {
      this.c.requests.afterCloseCapsule(streamId, data.length > 0, fin);
      return;
    }
    if (this.c.discarding.has(streamId)) {
      this.c.stats.bytesDiscarded += data.length;
      if (fin) this.c.discarding.delete(streamId);
      return;
    }
    const wt = this.c.wtStreams.get(streamId);
    if (wt) {
      this.c.streams.wtInput(wt, data, fin);
      return;
    }
    let s = this.c.inStreams.get(streamId);
    if (!s) {
      s = this.openInbound(streamId);
      if (!s) {
        this.c.stats.bytesDiscarded += data.length;
        return;
      }
    }
    this.streamInput(s, data, fin);
    // A handler may have refused the stream while this very chunk carried its FIN: nothing more will come.
    if (fin) {
      this.c.discarding.delete(streamId);
      this.c.requests.closedByCapsule.delete(streamId);
    }
  }

  private openInbound(id: number): InStream | undefined {
    const uni = (id & 2) !== 0;
    const clientInitiated = (id & 1) === 0;
    const local = clientInitiated === (this.c.role === 'client');
    // Data on a stream we opened but no longer track (or a uni stream of ours): nothing to do.
    if (local) return undefined;
    let s: InStream;
    if (uni) s = { kind: 'uni-prefix', id, prefix: new Uint8Array(0) };
    else {
      if (id > this.maxPeerBidiSeen) this.maxPeerBidiSeen = id;
      s = { kind: 'bidi-prefix', id, prefix: new Uint8Array(0) };
    }
    this.c.inStreams.set(id, s);
    return s;
  }

  /** Accumulates a varint across chunks; at most 8 bytes are ever held. */
  private takeVarint(
    s: { prefix: Uint8Array },
    data: Uint8Array,
  ): { value: bigint; rest: Uint8Array } | undefined {
    const all = s.prefix.length ? concatBytes([s.prefix, data]) : data;
    const r = decodeVarintBig(all, 0);
    if (!r) {
      s.prefix = all.slice();
      return undefined;
    }
    s.prefix = new Uint8Array(0);
    return { value: r.value, rest: all.subarray(r.length) };
  }

  private streamInput(s: InStream, data: Uint8Array, fin: boolean): void {
    switch (s.kind) {
      case 'bidi-prefix': {
        const v = this.takeVarint(s, data);
        if (!v) {
          if (fin) this.c.inStreams.delete(s.id); // an empty or truncated stream: nothing was asked of us
          return;
        }
        if (v.value === BigInt(WT_BIDI_SIGNAL)) {
          const next: InStream = { kind: 'wt-header', id: s.id, prefix: new Uint8Array(0), bidi: true };
          this.c.inStreams.set(s.id, next);
          this.streamInput(next, v.rest, fin);
          return;
        }
        if (this.c.role === 'client') {
          // RFC 9114 §6.1: HTTP/3 defines no server-initiated bidirectional streams; only WebTransport does.
          this.c.connectionError(
            H3ErrorCode.H3_STREAM_CREATION_ERROR,
            'server-initiated bidi stream without 0x41',
          );
          return;
        }
        const req = this.c.requests.newRequestStream(s.id);
        this.c.inStreams.set(s.id, req);
        // Re-feed the bytes that held the first frame type.
        const whole = concatBytes([encodeVarint(v.value), v.rest]);
        this.streamInput(req, whole, fin);
        return;
      }
      case 'uni-prefix': {
        const v = this.takeVarint(s, data);
        if (!v) {
          if (fin) this.c.inStreams.delete(s.id);
          return;
        }
        this.dispatchUni(s.id, v.value, v.rest, fin);
        return;
      }
      case 'wt-header': {
        const v = this.takeVarint(s, data);
        if (!v) {
          if (fin) this.c.inStreams.delete(s.id);
          return;
        }
        this.c.inStreams.delete(s.id);
        const sessionId = v.value;
        // draft §4: a session id that is not a client-initiated bidi stream id is H3_ID_ERROR.
        if (sessionId % 4n !== 0n || sessionId > BigInt(Number.MAX_SAFE_INTEGER)) {
          this.c.connectionError(H3ErrorCode.H3_ID_ERROR, `invalid session id ${sessionId} (draft §4)`);
          return;
        }
        this.c.streams.attachWtStream(s.id, Number(sessionId), s.bidi, v.rest, fin);
        return;
      }
      case 'request':
        this.c.requests.requestInput(s, data, fin);
        return;
      case 'control':
        this.c.control.controlInput(s, data, fin);
        return;
      case 'qpack-encoder':
        this.c.control.encoderInput(data, fin);
        return;
      case 'qpack-decoder':
        this.c.control.decoderInput(s, data, fin);
        return;
    }
  }

  private dispatchUni(id: number, type: bigint, rest: Uint8Array, fin: boolean): void {
    const next = (s: InStream) => {
      this.c.inStreams.set(id, s);
      if (rest.length || fin) this.streamInput(s, rest, fin);
    };
    switch (type) {
      case StreamType.CONTROL:
        // RFC 9114 §6.2.1: one control stream per peer.
        if (this.peerControlSeen) {
          this.c.connectionError(
            H3ErrorCode.H3_STREAM_CREATION_ERROR,
            'second control stream (RFC 9114 §6.2.1)',
          );
          return;
        }
        this.peerControlSeen = true;
        this.peerCriticalStreams.add(id);
        next({ kind: 'control', id, parser: this.c.control.newControlParser(), settingsSeen: false });
        return;
      case StreamType.PUSH:
        // RFC 9114 §6.2.2: only servers push; we never sent MAX_PUSH_ID, so any push id exceeds the limit.
        if (this.c.role === 'server') {
          this.c.connectionError(
            H3ErrorCode.H3_STREAM_CREATION_ERROR,
            'push stream from a client (RFC 9114 §6.2.2)',
          );
        } else {
          this.c.connectionError(H3ErrorCode.H3_ID_ERROR, 'push stream without MAX_PUSH_ID (RFC 9114 §4.6)');
        }
        return;
      case StreamType.QPACK_ENCODER:
        if (this.peerEncoderSeen) {
          this.c.connectionError(
            H3ErrorCode.H3_STREAM_CREATION_ERROR,
            'second QPACK encoder stream (RFC 9204 §4.2)',
          );
          return;
        }
        this.peerEncoderSeen = true;
        this.peerCriticalStreams.add(id);
        next({ kind: 'qpack-encoder', id });
        return;
      case StreamType.QPACK_DECODER:
        if (this.peerDecoderSeen) {
          this.c.connectionError(
            H3ErrorCode.H3_STREAM_CREATION_ERROR,
            'second QPACK decoder stream (RFC 9204 §4.2)',
          );
          return;
        }
        this.peerDecoderSeen = true;
        this.peerCriticalStreams.add(id);
        next({ kind: 'qpack-decoder', id, continuation: -1 });
        return;
      case BigInt(WT_UNI_STREAM_TYPE):
        next({ kind: 'wt-header', id, prefix: new Uint8Array(0), bidi: false });
        return;
      default:
        // RFC 9114 §6.2.3: unknown and reserved stream types are aborted with H3_STREAM_CREATION_ERROR, not fatal.
        this.c.stats.unknownStreamTypes++;
        this.c.stats.bytesDiscarded += rest.length;
        this.c.refuseStream(id, H3ErrorCode.H3_STREAM_CREATION_ERROR, false, fin);
    }
  }
}
