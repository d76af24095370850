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
  H3Limits,
  H3Stats,
  HeaderField,
  QuicCommand,
  Role,
} from './api.js';
import {
  decodeCloseCapsule,
  createCapsuleParser,
  encodeCloseCapsule,
  encodeDrainCapsule,
} from './capsules.js';
import { CloseDelivery } from './close-delivery.js';
import {
  CapsuleType,
  FrameType,
  H3ErrorCode,
  HTTP2_ONLY_FRAME_TYPES,
  SettingId,
  StreamType,
  WT_BIDI_SIGNAL,
  WT_UNI_STREAM_TYPE,
  httpCodeToWebTransport,
  webTransportCodeToHttp,
} from './codes.js';
import {
  type FrameAction,
  type FrameItem,
  FrameParser,
  decodeSettings,
  decodeSingleVarint,
  encodeDataFrameHeader,
  encodeFrame,
  encodeGoaway,
  encodeSettings,
} from './frames.js';
import { assertValidExtraFields, parseRequestHead, parseResponseStatus } from './headers.js';
import {
  FieldSectionTooLargeError,
  QpackDecompressionError,
  decodeFieldSection,
  encodeFieldSection,
} from './qpack/index.js';
import { createRandom, greaseCodepoint } from './random.js';
import {
  ByteWriter,
  concatBytes,
  decodeVarint,
  decodeVarintBig,
  encodeVarint,
  varintLength,
} from './varint.js';

/** The defaults of {@link H3Limits}, each documented there. */
export const DEFAULT_H3_LIMITS: Readonly<H3Limits> = Object.freeze({
  maxFieldSectionSize: 16 * 1024,
  maxFramePayload: 64 * 1024,
  maxSessions: 16,
  maxStreamsPerSession: 1024,
  maxBufferedUnknownSessionBytes: 64 * 1024,
  maxCapsuleSize: 64 * 1024,
});

/**
 * Each stream buffered for a not-yet-known session also costs this many bytes of
 * `maxBufferedUnknownSessionBytes`, so the budget bounds the number of buffered streams, not only their bytes.
 */
export const BUFFERED_STREAM_OVERHEAD = 64;

/** What we advertise in the current draft's WT_MAX_SESSIONS settings (see `start()`). */
export const WT_MAX_SESSIONS_ADVERTISED = 1n;

type Draft = 'draft02' | 'current' | 'none';

interface WtStream {
  id: number;
  sessionId: number;
  bidi: boolean;
  local: boolean;
  recvOpen: boolean;
  sendOpen: boolean;
  /** Set while the session is not established: what arrived so far (draft §4.6). */
  early?: { chunks: Uint8Array[]; bytes: number; fin: boolean; stopCode?: number };
}

type SessionState =
  /** Server: CONNECT received before the client's SETTINGS; the request waits for them (draft §3.1). */
  | 'awaiting-settings'
  /** Server: `session-request` raised, awaiting acceptSession/rejectSession. */
  | 'requested'
  /** Client: CONNECT sent (or held until the server's SETTINGS), no final response yet. */
  | 'connecting'
  | 'established';

interface Session {
  id: number;
  state: SessionState;
  streams: Set<number>;
  capsules: FrameParser;
  /** Our side of the CONNECT stream can still be written. */
  sendOpen: boolean;
  /** Client: HEADERS held until the server's SETTINGS arrive (draft §3.1). */
  heldRequest?: HeaderField[];
  /** Server: DRAIN_WEBTRANSPORT_SESSION arrived before the request was offered. */
  drainReceived?: boolean;
  requestHeaders?: HeaderField[];
}

/** Per-stream parsing state for inbound streams that are not (yet) WebTransport data streams. */
type InStream =
  /** First bytes of a peer bidi stream: a request (HEADERS) or a WebTransport stream (0x41). */
  | { kind: 'bidi-prefix'; id: number; prefix: Uint8Array }
  /** First bytes of a peer uni stream: its type (RFC 9114 §6.2). */
  | { kind: 'uni-prefix'; id: number; prefix: Uint8Array }
  /** After 0x41 or 0x54: the session id. */
  | { kind: 'wt-header'; id: number; prefix: Uint8Array; bidi: boolean }
  /** Server: a request stream; client: our CONNECT stream. */
  | {
      kind: 'request';
      id: number;
      parser: FrameParser;
      headerFrames: number;
      session?: Session;
      finalResponse: boolean;
    }
  | { kind: 'control'; id: number; parser: FrameParser; settingsSeen: boolean }
  | { kind: 'qpack-encoder'; id: number }
  | { kind: 'qpack-decoder'; id: number; continuation: number };

/** RFC 9297 §2.1: the largest legal Quarter Stream ID is 2^60 - 1. */
const MAX_QUARTER_STREAM_ID_EXCLUSIVE = 1n << 60n;
const MAX_SAFE_BIG = BigInt(Number.MAX_SAFE_INTEGER);

function emptyStats(): H3Stats {
  return {
    sessions: 0,
    datagramsReceived: 0,
    datagramsSent: 0,
    datagramsDroppedMalformed: 0,
    datagramsDroppedUnknownSession: 0,
    datagramsDroppedClosedSession: 0,
    datagramsDroppedNotNegotiated: 0,
    streamsRejectedBufferFull: 0,
    streamsRejectedSessionGone: 0,
    streamsRejectedLimit: 0,
    requestsRejected: 0,
    unknownStreamTypes: 0,
    bytesDiscarded: 0,
    writesAfterClose: 0,
    streamErrors: 0,
    bufferedUnknownSessionBytes: 0,
    closesInFlight: 0,
    closesForgotten: 0,
  };
}

/** Creates the sans-IO HTTP/3 + WebTransport core for one QUIC connection; call `start()` once QUIC is up. */
export function createH3Connection(options: H3ConnectionOptions): H3Connection {
  return new H3ConnectionImpl(options);
}

class H3ConnectionImpl implements H3Connection {
  readonly role: Role;
  private readonly limits: H3Limits;
  private readonly random: () => number;
  private readonly extraSettings: ReadonlyArray<readonly [bigint, bigint]>;
  private commands: QuicCommand[] = [];
  private events: H3Event[] = [];
  private readonly stats = emptyStats();

  private started = false;
  /** Set once a connection error was raised: all further input is ignored. */
  private failed = false;
  private nextBidi: number;
  private nextUni: number;
  private controlStreamId = -1;
  private ownCriticalStreams = new Set<number>();

  private peerSettings: Map<bigint, bigint> | undefined;
  private draft: Draft | undefined;
  private peerControlSeen = false;
  private peerEncoderSeen = false;
  private peerDecoderSeen = false;
  private peerCriticalStreams = new Set<number>();

  private readonly inStreams = new Map<number, InStream>();
  private readonly wtStreams = new Map<number, WtStream>();
  private readonly sessions = new Map<number, Session>();
  /** Sessions that ended; a stream or datagram naming one is refused, not buffered (draft §6). */
  private readonly endedSessions = new Set<number>();
  /** Streams and datagrams for sessions not established yet (draft §4.6). */
  private readonly early = new Map<number, { streams: WtStream[]; datagrams: Uint8Array[] }>();
  private earlyBytes = 0;
  /** Streams whose further input we drop (refused, reset or finished on our side); cleared at their FIN/reset. */
  private readonly discarding = new Set<number>();
  /** CONNECT streams whose CLOSE_WEBTRANSPORT_SESSION arrived: more data is H3_MESSAGE_ERROR (draft §6). */
  private readonly closedByCapsule = new Set<number>();
  /** Whether the closes of ended sessions reached the peer (draft §6); created once `limits` are known. */
  private readonly closes: CloseDelivery;

  private maxPeerBidiSeen = -1;
  private goawaySentId: number | undefined;
  private goawayReceivedId: bigint | undefined;
  private maxPushIdReceived: bigint | undefined;

  constructor(options: H3ConnectionOptions) {
    if (options.role !== 'client' && options.role !== 'server')
      throw new TypeError(`bad role ${String(options.role)}`);
    this.role = options.role;
    this.limits = { ...DEFAULT_H3_LIMITS, ...options.limits };
    for (const [k, v] of Object.entries(this.limits)) {
      if (!Number.isSafeInteger(v) || v < 0)
        throw new RangeError(`limit ${k} must be a non-negative integer`);
    }
    this.closes = new CloseDelivery(this.limits.maxSessions);
    this.random = createRandom(options.seed ?? 0x9e3779b9);
    this.extraSettings = options.extraSettings ?? [];
    // RFC 9000 §2.1: the low two bits of a stream id are initiator and directionality.
    this.nextBidi = this.role === 'client' ? 0 : 1;
    this.nextUni = this.role === 'client' ? 2 : 3;
  }

  // ------------------------------------------------------------------------------------------------ output

  drainCommands(): QuicCommand[] {
    const out = this.commands;
    this.commands = [];
    return out;
  }

  drainEvents(): H3Event[] {
    const out = this.events;
    this.events = [];
    return out;
  }

  getStats(): H3Stats {
    return {
      ...this.stats,
      sessions: this.sessions.size,
      bufferedUnknownSessionBytes: this.earlyBytes,
      closesInFlight: this.closes.inFlight,
      closesForgotten: this.closes.forgotten,
    };
  }

  get closesInFlight(): number {
    return this.closes.inFlight;
  }

  get webTransportDraft(): Draft | undefined {
    return this.draft;
  }

  private write(streamId: number, data: Uint8Array, fin = false): void {
    this.commands.push({ type: 'stream-write', streamId, data, fin });
  }

  private connectionError(code: bigint, reason: string): void {
    if (this.failed) return;
    this.failed = true;
    this.events.push({ type: 'connection-error', code, reason });
    this.commands.push({ type: 'connection-close', code, reason });
  }

  /** Aborts both directions of a peer stream we will not process, and drops its further input. */
  private refuseStream(streamId: number, code: bigint, bidi: boolean, finReceived = false): void {
    this.commands.push({ type: 'stream-stop-sending', streamId, code });
    if (bidi) this.commands.push({ type: 'stream-reset', streamId, code });
    this.inStreams.delete(streamId);
    if (!finReceived) this.discarding.add(streamId);
  }

  private streamError(streamId: number, code: bigint, reason: string, bidi: boolean): void {
    this.stats.streamErrors++;
    this.events.push({ type: 'stream-error', streamId, code, reason });
    this.refuseStream(streamId, code, bidi);
  }

  // ----------------------------------------------------------------------------------------------- start

  start(): void {
    if (this.started) throw new Error('start() called twice');
    this.started = true;
    const settings: Array<readonly [bigint, bigint]> = [
      // RFC 9204 §5: no dynamic table and no blocked streams, so QPACK needs no state across sections.
      [SettingId.QPACK_MAX_TABLE_CAPACITY, 0n],
      [SettingId.QPACK_BLOCKED_STREAMS, 0n],
      [SettingId.MAX_FIELD_SECTION_SIZE, BigInt(this.limits.maxFieldSectionSize)],
    ];
    // RFC 9220 §3: only a server advertises that it accepts extended CONNECT.
    if (this.role === 'server') settings.push([SettingId.ENABLE_CONNECT_PROTOCOL, 1n]);
    settings.push(
      [SettingId.H3_DATAGRAM, 1n],
      [SettingId.H3_DATAGRAM_DRAFT04, 1n],
      [SettingId.ENABLE_WEBTRANSPORT_DRAFT02, 1n],
      // Current draft §5.1: a value above 1 on both sides turns on its session flow control (WT_MAX_STREAMS,
      // WT_MAX_DATA capsules), which this core does not implement; 1 keeps it off. Browsers speak draft-02, which
      // ignores these settings, so `maxSessions` still applies to them.
      [SettingId.WT_MAX_SESSIONS, WT_MAX_SESSIONS_ADVERTISED],
      [SettingId.WT_MAX_SESSIONS_DRAFT07, WT_MAX_SESSIONS_ADVERTISED],
      [greaseCodepoint(this.random), BigInt(Math.floor(this.random() * 0x100000000))],
    );
    const ids = new Set(settings.map((s) => s[0]));
    for (const [id, value] of this.extraSettings) {
      if (ids.has(id)) throw new RangeError(`extra setting 0x${id.toString(16)} duplicates a built-in one`);
      ids.add(id);
      settings.push([id, value]);
    }
    this.controlStreamId = this.allocUni();
    // RFC 9114 §6.2.1: stream type, then SETTINGS as the first frame; then a reserved frame type (§7.2.8) so
    // peers that choke on unknown frames are found early.
    const grease = encodeFrame(greaseCodepoint(this.random), new Uint8Array(0));
    this.write(
      this.controlStreamId,
      concatBytes([encodeVarint(StreamType.CONTROL), encodeSettings(settings), grease]),
    );
    const encoder = this.allocUni();
    const decoder = this.allocUni();
    // RFC 9204 §4.2: the streams carry nothing while the peer's table capacity is unused by us.
    this.write(encoder, encodeVarint(StreamType.QPACK_ENCODER));
    this.write(decoder, encodeVarint(StreamType.QPACK_DECODER));
    this.ownCriticalStreams = new Set([this.controlStreamId, encoder, decoder]);
  }

  /** Concurrent sessions allowed: `maxSessions`, or what we advertised when the current draft is spoken. */
  private sessionLimit(): number {
    return this.draft === 'current'
      ? Math.min(this.limits.maxSessions, Number(WT_MAX_SESSIONS_ADVERTISED))
      : this.limits.maxSessions;
  }

  private allocUni(): number {
    const id = this.nextUni;
    this.nextUni += 4;
    return id;
  }

  private allocBidi(): number {
    const id = this.nextBidi;
    this.nextBidi += 4;
    return id;
  }

  // ----------------------------------------------------------------------------------------- stream input

  receiveStreamData(streamId: number, data: Uint8Array, fin: boolean): void {
    assertStreamId(streamId);
    this.dataInput(streamId, data, fin);
    // After the input: the FIN it carried may be the one that made us finish our side (draft §6), just now.
    if (fin) this.closes.settled(streamId);
  }

  receiveStreamAcked(streamId: number): void {
    assertStreamId(streamId);
    this.closes.settled(streamId);
  }

  private dataInput(streamId: number, data: Uint8Array, fin: boolean): void {
    if (this.failed) return;
    if (this.closedByCapsule.has(streamId)) {
      this.afterCloseCapsule(streamId, data.length > 0, fin);
      return;
    }
    if (this.discarding.has(streamId)) {
      this.stats.bytesDiscarded += data.length;
      if (fin) this.discarding.delete(streamId);
      return;
    }
    const wt = this.wtStreams.get(streamId);
    if (wt) {
      this.wtInput(wt, data, fin);
      return;
    }
    let s = this.inStreams.get(streamId);
    if (!s) {
      s = this.openInbound(streamId);
      if (!s) {
        this.stats.bytesDiscarded += data.length;
        return;
      }
    }
    this.streamInput(s, data, fin);
    // A handler may have refused the stream while this very chunk carried its FIN: nothing more will come.
    if (fin) {
      this.discarding.delete(streamId);
      this.closedByCapsule.delete(streamId);
    }
  }

  private openInbound(id: number): InStream | undefined {
    const uni = (id & 2) !== 0;
    const clientInitiated = (id & 1) === 0;
    const local = clientInitiated === (this.role === 'client');
    // Data on a stream we opened but no longer track (or a uni stream of ours): nothing to do.
    if (local) return undefined;
    let s: InStream;
    if (uni) s = { kind: 'uni-prefix', id, prefix: new Uint8Array(0) };
    else {
      if (id > this.maxPeerBidiSeen) this.maxPeerBidiSeen = id;
      s = { kind: 'bidi-prefix', id, prefix: new Uint8Array(0) };
    }
    this.inStreams.set(id, s);
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
          if (fin) this.inStreams.delete(s.id); // an empty or truncated stream: nothing was asked of us
          return;
        }
        if (v.value === BigInt(WT_BIDI_SIGNAL)) {
          const next: InStream = { kind: 'wt-header', id: s.id, prefix: new Uint8Array(0), bidi: true };
          this.inStreams.set(s.id, next);
          this.streamInput(next, v.rest, fin);
          return;
        }
        if (this.role === 'client') {
          // RFC 9114 §6.1: HTTP/3 defines no server-initiated bidirectional streams; only WebTransport does.
          this.connectionError(
            H3ErrorCode.H3_STREAM_CREATION_ERROR,
            'server-initiated bidi stream without 0x41',
          );
          return;
        }
        const req = this.newRequestStream(s.id);
        this.inStreams.set(s.id, req);
        // Re-feed the bytes that held the first frame type.
        const whole = concatBytes([encodeVarint(v.value), v.rest]);
        this.streamInput(req, whole, fin);
        return;
      }
      case 'uni-prefix': {
        const v = this.takeVarint(s, data);
        if (!v) {
          if (fin) this.inStreams.delete(s.id);
          return;
        }
        this.dispatchUni(s.id, v.value, v.rest, fin);
        return;
      }
      case 'wt-header': {
        const v = this.takeVarint(s, data);
        if (!v) {
          if (fin) this.inStreams.delete(s.id);
          return;
        }
        this.inStreams.delete(s.id);
        const sessionId = v.value;
        // draft §4: a session id that is not a client-initiated bidi stream id is H3_ID_ERROR.
        if (sessionId % 4n !== 0n || sessionId > BigInt(Number.MAX_SAFE_INTEGER)) {
          this.connectionError(H3ErrorCode.H3_ID_ERROR, `invalid session id ${sessionId} (draft §4)`);
          return;
        }
        this.attachWtStream(s.id, Number(sessionId), s.bidi, v.rest, fin);
        return;
      }
      case 'request':
        this.requestInput(s, data, fin);
        return;
      case 'control':
        this.controlInput(s, data, fin);
        return;
      case 'qpack-encoder':
        this.encoderInput(data, fin);
        return;
      case 'qpack-decoder':
        this.decoderInput(s, data, fin);
        return;
    }
  }

  private dispatchUni(id: number, type: bigint, rest: Uint8Array, fin: boolean): void {
    const next = (s: InStream) => {
      this.inStreams.set(id, s);
      if (rest.length || fin) this.streamInput(s, rest, fin);
    };
    switch (type) {
      case StreamType.CONTROL:
        // RFC 9114 §6.2.1: one control stream per peer.
        if (this.peerControlSeen) {
          this.connectionError(
            H3ErrorCode.H3_STREAM_CREATION_ERROR,
            'second control stream (RFC 9114 §6.2.1)',
          );
          return;
        }
        this.peerControlSeen = true;
        this.peerCriticalStreams.add(id);
        next({ kind: 'control', id, parser: this.newControlParser(), settingsSeen: false });
        return;
      case StreamType.PUSH:
        // RFC 9114 §6.2.2: only servers push; we never sent MAX_PUSH_ID, so any push id exceeds the limit.
        if (this.role === 'server') {
          this.connectionError(
            H3ErrorCode.H3_STREAM_CREATION_ERROR,
            'push stream from a client (RFC 9114 §6.2.2)',
          );
        } else {
          this.connectionError(H3ErrorCode.H3_ID_ERROR, 'push stream without MAX_PUSH_ID (RFC 9114 §4.6)');
        }
        return;
      case StreamType.QPACK_ENCODER:
        if (this.peerEncoderSeen) {
          this.connectionError(
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
          this.connectionError(
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
        this.stats.unknownStreamTypes++;
        this.stats.bytesDiscarded += rest.length;
        this.refuseStream(id, H3ErrorCode.H3_STREAM_CREATION_ERROR, false, fin);
    }
  }

  // ----------------------------------------------------------------------------------------- control stream

  private newControlParser(): FrameParser {
    let first = true;
    return new FrameParser((type, length): FrameAction => {
      // RFC 9114 §6.2.1: the first frame must be SETTINGS, even before an unknown or reserved frame; checked at
      // its header so a skipped frame cannot slip in first.
      if (first && type !== FrameType.SETTINGS) {
        return {
          kind: 'error',
          code: H3ErrorCode.H3_MISSING_SETTINGS,
          reason: `first control frame is 0x${type.toString(16)} (RFC 9114 §6.2.1)`,
        };
      }
      first = false;
      switch (type) {
        case FrameType.SETTINGS:
          return this.bufferWithinLimit('SETTINGS', length);
        case FrameType.GOAWAY:
        case FrameType.MAX_PUSH_ID:
        case FrameType.CANCEL_PUSH:
          // §7.2.3, §7.2.6, §7.2.7: exactly one varint, at most 8 bytes.
          if (length > 8)
            return { kind: 'error', code: H3ErrorCode.H3_FRAME_ERROR, reason: 'oversized control frame' };
          return { kind: 'buffer' };
        case FrameType.DATA:
        case FrameType.HEADERS:
        case FrameType.PUSH_PROMISE:
          return {
            kind: 'error',
            code: H3ErrorCode.H3_FRAME_UNEXPECTED,
            reason: `frame 0x${type.toString(16)} on the control stream (RFC 9114 §7.2)`,
          };
        case FrameType.WT_STREAM:
          return {
            kind: 'error',
            code: H3ErrorCode.H3_FRAME_ERROR,
            reason: 'WT_STREAM on the control stream (draft §4.3)',
          };
        default:
          return this.otherFrame(type);
      }
    });
  }

  /** A frame parsed whole before it is acted on, up to `maxFramePayload` bytes (a bound on what one buffers). */
  private bufferWithinLimit(name: string, length: number): FrameAction {
    if (length > this.limits.maxFramePayload) {
      return { kind: 'error', code: H3ErrorCode.H3_EXCESSIVE_LOAD, reason: `${name} of ${length} bytes` };
    }
    return { kind: 'buffer' };
  }

  /** A frame type no stream of this connection gives a meaning to. */
  private otherFrame(type: bigint): FrameAction {
    if (HTTP2_ONLY_FRAME_TYPES.has(type)) {
      return {
        kind: 'error',
        code: H3ErrorCode.H3_FRAME_UNEXPECTED,
        reason: `HTTP/2 frame type 0x${type.toString(16)} (RFC 9114 §7.2.8)`,
      };
    }
    // Unknown and reserved frame types are ignored (RFC 9114 §7.2.8, §9), buffered never.
    return { kind: 'skip' };
  }

  private controlInput(s: Extract<InStream, { kind: 'control' }>, data: Uint8Array, fin: boolean): void {
    const items: FrameItem[] = [];
    s.parser.push(data, items);
    for (const item of items) {
      if (this.failed) return;
      if (item.kind === 'error') {
        this.connectionError(item.code, item.reason);
        return;
      }
      if (item.kind !== 'frame') continue;
      if (!s.settingsSeen) {
        if (item.type !== FrameType.SETTINGS) {
          this.connectionError(
            H3ErrorCode.H3_MISSING_SETTINGS,
            'first control frame is not SETTINGS (RFC 9114 §6.2.1)',
          );
          return;
        }
        s.settingsSeen = true;
        this.onSettings(item.payload);
        continue;
      }
      this.onControlFrame(item.type, item.payload);
    }
    if (fin && !this.failed) {
      this.connectionError(H3ErrorCode.H3_CLOSED_CRITICAL_STREAM, 'control stream closed (RFC 9114 §6.2.1)');
    }
  }

  private onControlFrame(type: bigint, payload: Uint8Array): void {
    switch (type) {
      case FrameType.SETTINGS:
        this.connectionError(H3ErrorCode.H3_FRAME_UNEXPECTED, 'second SETTINGS frame (RFC 9114 §7.2.4)');
        return;
      case FrameType.GOAWAY: {
        const id = decodeSingleVarint(payload, 'GOAWAY');
        if (typeof id !== 'bigint') {
          this.connectionError(id.code, id.reason);
          return;
        }
        this.onGoaway(id);
        return;
      }
      case FrameType.MAX_PUSH_ID: {
        const id = decodeSingleVarint(payload, 'MAX_PUSH_ID');
        if (typeof id !== 'bigint') {
          this.connectionError(id.code, id.reason);
          return;
        }
        // §7.2.7: only clients send it, and it never decreases.
        if (this.role === 'client') {
          this.connectionError(
            H3ErrorCode.H3_FRAME_UNEXPECTED,
            'MAX_PUSH_ID from a server (RFC 9114 §7.2.7)',
          );
          return;
        }
        if (this.maxPushIdReceived !== undefined && id < this.maxPushIdReceived) {
          this.connectionError(H3ErrorCode.H3_ID_ERROR, 'MAX_PUSH_ID decreased (RFC 9114 §7.2.7)');
          return;
        }
        this.maxPushIdReceived = id;
        return;
      }
      case FrameType.CANCEL_PUSH: {
        const id = decodeSingleVarint(payload, 'CANCEL_PUSH');
        if (typeof id !== 'bigint') {
          this.connectionError(id.code, id.reason);
          return;
        }
        // §7.2.3: we never promise pushes and never allow them (no MAX_PUSH_ID), so every push id is unknown.
        this.connectionError(
          H3ErrorCode.H3_ID_ERROR,
          `CANCEL_PUSH for push ${id} never allowed (RFC 9114 §7.2.3)`,
        );
        return;
      }
    }
  }

  private onSettings(payload: Uint8Array): void {
    const settings = decodeSettings(payload);
    if (!(settings instanceof Map)) {
      this.connectionError(settings.code, settings.reason);
      return;
    }
    for (const id of [SettingId.ENABLE_CONNECT_PROTOCOL, SettingId.H3_DATAGRAM]) {
      const v = settings.get(id);
      // RFC 9220 §3, RFC 9297 §2.1.1: these are booleans; other values are H3_SETTINGS_ERROR.
      if (v !== undefined && v > 1n) {
        this.connectionError(H3ErrorCode.H3_SETTINGS_ERROR, `setting 0x${id.toString(16)} = ${v}`);
        return;
      }
    }
    this.peerSettings = settings;
    // Negotiation (draft "Negotiating the Draft Version"): browsers speak draft-02, identified by its own setting;
    // otherwise a WT_MAX_SESSIONS setting (either code point) > 0 selects the current draft.
    let draft: Draft = 'none';
    if (settings.get(SettingId.ENABLE_WEBTRANSPORT_DRAFT02) === 1n) draft = 'draft02';
    else if (
      (settings.get(SettingId.WT_MAX_SESSIONS) ?? 0n) > 0n ||
      (settings.get(SettingId.WT_MAX_SESSIONS_DRAFT07) ?? 0n) > 0n
    ) {
      draft = 'current';
    }
    this.draft = draft;
    this.events.push({ type: 'settings', settings, webTransportDraft: draft });
    if (this.role === 'server') {
      for (const session of [...this.sessions.values()]) {
        if (session.state === 'awaiting-settings') this.offerSession(session);
      }
    } else {
      for (const session of [...this.sessions.values()]) {
        if (session.heldRequest) this.sendHeldRequest(session);
      }
    }
  }

  private onGoaway(id: bigint): void {
    // §5.2: a server's GOAWAY carries a client-initiated bidi stream id; a client's a push id. Never increasing.
    if (this.role === 'client' && id % 4n !== 0n) {
      this.connectionError(
        H3ErrorCode.H3_ID_ERROR,
        `GOAWAY id ${id} is not a request stream (RFC 9114 §5.2)`,
      );
      return;
    }
    if (this.goawayReceivedId !== undefined && id > this.goawayReceivedId) {
      this.connectionError(H3ErrorCode.H3_ID_ERROR, 'GOAWAY id increased (RFC 9114 §5.2)');
      return;
    }
    this.goawayReceivedId = id;
    this.events.push({ type: 'goaway', id });
    if (this.role === 'client') {
      // Requests at or above the id were not and will not be processed: they may be retried elsewhere.
      for (const session of [...this.sessions.values()]) {
        if (session.state === 'connecting' && BigInt(session.id) >= id) {
          this.failConnecting(
            session,
            0,
            'GOAWAY: request not processed (RFC 9114 §5.2)',
            H3ErrorCode.H3_REQUEST_CANCELLED,
          );
        }
      }
    }
  }

  // ------------------------------------------------------------------------------------------ QPACK streams

  private encoderInput(data: Uint8Array, fin: boolean): void {
    // RFC 9204 §4.3 with our capacity 0: only "Set Dynamic Table Capacity" to 0 (0b001 + 5-bit 0 = 0x20) is
    // valid; every insert or duplicate would exceed the table (§4.3.1: QPACK_ENCODER_STREAM_ERROR).
    for (const b of data) {
      if (b !== 0x20) {
        this.connectionError(
          H3ErrorCode.QPACK_ENCODER_STREAM_ERROR,
          `encoder instruction 0x${b.toString(16)} with table capacity 0 (RFC 9204 §4.3)`,
        );
        return;
      }
    }
    if (fin)
      this.connectionError(
        H3ErrorCode.H3_CLOSED_CRITICAL_STREAM,
        'QPACK encoder stream closed (RFC 9204 §4.2)',
      );
  }

  private decoderInput(
    s: Extract<InStream, { kind: 'qpack-decoder' }>,
    data: Uint8Array,
    fin: boolean,
  ): void {
    // RFC 9204 §4.4: we never reference the dynamic table, so Section Acknowledgment and Insert Count Increment
    // are errors (§4.4.1, §4.4.3); Stream Cancellation ('01' + 6-bit prefix stream id) is fine and skipped.
    for (const b of data) {
      if (s.continuation >= 0) {
        if (b & 0x80) {
          if (++s.continuation > 8) {
            this.connectionError(
              H3ErrorCode.QPACK_DECODER_STREAM_ERROR,
              'overlong integer (RFC 9204 §4.1.1)',
            );
            return;
          }
        } else s.continuation = -1;
        continue;
      }
      if ((b & 0xc0) === 0x40) {
        if ((b & 0x3f) === 0x3f) s.continuation = 0;
        continue;
      }
      this.connectionError(
        H3ErrorCode.QPACK_DECODER_STREAM_ERROR,
        `decoder instruction 0x${b.toString(16)} without dynamic table use (RFC 9204 §4.4)`,
      );
      return;
    }
    if (fin)
      this.connectionError(
        H3ErrorCode.H3_CLOSED_CRITICAL_STREAM,
        'QPACK decoder stream closed (RFC 9204 §4.2)',
      );
  }

  // --------------------------------------------------------------------------------------- request streams

  private newRequestStream(id: number, session?: Session): Extract<InStream, { kind: 'request' }> {
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
          return this.bufferWithinLimit('HEADERS', length);
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
          return this.role === 'server'
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
          return this.otherFrame(type);
      }
    });
    return s;
  }

  private requestInput(s: Extract<InStream, { kind: 'request' }>, data: Uint8Array, fin: boolean): void {
    const items: FrameItem[] = [];
    s.parser.push(data, items);
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      if (this.failed) return;
      if (this.inStreams.get(s.id) !== s) return;
      if (item.kind === 'error') {
        this.connectionError(item.code, item.reason);
        return;
      }
      if (item.kind === 'frame') {
        // Only HEADERS are buffered on request streams.
        s.headerFrames++;
        if (this.role === 'server') this.serverHeaders(s, item.payload);
        else this.clientHeaders(s, item.payload);
        continue;
      }
      if (s.headerFrames === 0 || (this.role === 'client' && !s.finalResponse)) {
        // RFC 9114 §4.1: DATA before the (final) HEADERS is an invalid frame sequence.
        this.connectionError(H3ErrorCode.H3_FRAME_UNEXPECTED, 'DATA before HEADERS (RFC 9114 §4.1)');
        return;
      }
      if (s.session) this.capsuleInput(s, s.session, item.chunk);
      // draft §6: bytes after the DATA piece that carried CLOSE_WEBTRANSPORT_SESSION, in this same chunk.
      if (this.closedByCapsule.has(s.id) && this.inStreams.get(s.id) !== s) {
        if (item.offset < data.length) this.afterCloseCapsule(s.id, true, fin);
        return;
      }
    }
    if (!fin || this.failed || this.inStreams.get(s.id) !== s) return;
    this.inStreams.delete(s.id);
    if (!s.parser.atFrameBoundary) {
      // RFC 9114 §7.1: a stream ending inside a frame.
      this.connectionError(H3ErrorCode.H3_FRAME_ERROR, 'request stream ended inside a frame (RFC 9114 §7.1)');
      return;
    }
    const session = s.session;
    if (!session) return;
    if (!session.capsules.atFrameBoundary) {
      // RFC 9297 §3.3: a truncated capsule makes the message malformed.
      this.stats.streamErrors++;
      this.events.push({
        type: 'stream-error',
        streamId: s.id,
        code: H3ErrorCode.H3_MESSAGE_ERROR,
        reason: 'CONNECT stream ended inside a capsule (RFC 9297 §3.3)',
      });
      if (session.sendOpen)
        this.commands.push({ type: 'stream-reset', streamId: s.id, code: H3ErrorCode.H3_MESSAGE_ERROR });
      session.sendOpen = false;
      this.endSession(session, 0, 'CONNECT stream ended inside a capsule', true);
      return;
    }
    // draft §6: a clean FIN without a close capsule means code 0 and an empty reason.
    if (session.state === 'connecting') {
      this.failConnecting(session, 0, 'CONNECT stream ended before a response', undefined);
      return;
    }
    this.finishConnectStream(session);
    this.endSession(session, 0, '', false);
  }

  /** The peer finished or reset its side of a CONNECT stream: close ours too (draft §6). */
  private finishConnectStream(session: Session): void {
    if (!session.sendOpen) return;
    session.sendOpen = false;
    if (this.role === 'server' && session.state !== 'established') {
      // No response was sent, and a bare FIN would be a response without HEADERS (RFC 9114 §4.1): cancel it.
      this.commands.push({
        type: 'stream-reset',
        streamId: session.id,
        code: H3ErrorCode.H3_REQUEST_CANCELLED,
      });
      return;
    }
    this.write(session.id, new Uint8Array(0), true);
    this.closes.sent(session.id);
  }

  private decodeHeaders(
    s: Extract<InStream, { kind: 'request' }>,
    block: Uint8Array,
  ): HeaderField[] | 'too-large' | undefined {
    try {
      return decodeFieldSection(block, { maxFieldSectionSize: this.limits.maxFieldSectionSize });
    } catch (e) {
      if (e instanceof FieldSectionTooLargeError) return 'too-large';
      if (e instanceof QpackDecompressionError) {
        this.connectionError(H3ErrorCode.QPACK_DECOMPRESSION_FAILED, `${e.message} (stream ${s.id})`);
        return undefined;
      }
      throw e;
    }
  }

  private serverHeaders(s: Extract<InStream, { kind: 'request' }>, block: Uint8Array): void {
    if (s.headerFrames > 1) {
      // Trailers on a CONNECT stream carry nothing we use; a third HEADERS is an invalid sequence (§4.1).
      if (s.headerFrames > 2)
        this.connectionError(H3ErrorCode.H3_FRAME_UNEXPECTED, 'HEADERS after trailers (RFC 9114 §4.1)');
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
      this.streamError(s.id, H3ErrorCode.H3_MESSAGE_ERROR, head, true);
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
    if (this.goawaySentId !== undefined && s.id >= this.goawaySentId) {
      // §5.2: requests at or above our GOAWAY id are not processed.
      this.stats.requestsRejected++;
      this.refuseStream(s.id, H3ErrorCode.H3_REQUEST_REJECTED, true);
      return;
    }
    if (this.sessions.size >= this.sessionLimit()) {
      // draft §5.2: over SETTINGS_WT_MAX_SESSIONS the CONNECT stream is reset with H3_REQUEST_REJECTED.
      this.stats.requestsRejected++;
      this.refuseStream(s.id, H3ErrorCode.H3_REQUEST_REJECTED, true);
      return;
    }
    const session: Session = {
      id: s.id,
      state: 'awaiting-settings',
      streams: new Set(),
      capsules: createCapsuleParser(this.limits.maxCapsuleSize),
      sendOpen: true,
      requestHeaders: fields,
    };
    s.session = session;
    this.sessions.set(s.id, session);
    if (this.peerSettings) this.offerSession(session);
  }

  /** Raises the request once the client's SETTINGS tell which WebTransport it speaks (draft §3.1). */
  private offerSession(session: Session): void {
    if (this.draft === 'none') {
      // The client never enabled WebTransport, so a `webtransport` upgrade cannot be honoured.
      this.sessions.delete(session.id);
      const s = this.inStreams.get(session.id);
      if (s?.kind === 'request') s.session = undefined;
      this.endedSessions.add(session.id);
      this.rejectEarly(session.id, H3ErrorCode.WT_SESSION_GONE);
      this.respondAndStop(session.id, 400);
      return;
    }
    const live = [...this.sessions.values()].filter((x) => x.state !== 'awaiting-settings').length;
    if (live >= this.sessionLimit()) {
      // The limit may have shrunk once the SETTINGS told the draft (current draft §5.2: H3_REQUEST_REJECTED).
      this.stats.requestsRejected++;
      this.sessions.delete(session.id);
      this.endedSessions.add(session.id);
      this.rejectEarly(session.id, H3ErrorCode.WT_SESSION_GONE);
      this.refuseStream(session.id, H3ErrorCode.H3_REQUEST_REJECTED, true);
      return;
    }
    session.state = 'requested';
    this.events.push({
      type: 'session-request',
      sessionId: session.id,
      headers: session.requestHeaders ?? [],
    });
    if (session.drainReceived) this.events.push({ type: 'session-draining', sessionId: session.id });
  }

  /** A complete response, then STOP_SENDING H3_NO_ERROR: we need nothing more of the request (RFC 9114 §4.1). */
  private respondAndStop(streamId: number, status: number, extra: HeaderField[] = []): void {
    const block = encodeFieldSection([[':status', String(status)], ...extra]);
    this.write(streamId, encodeFrame(FrameType.HEADERS, block), true);
    this.commands.push({ type: 'stream-stop-sending', streamId, code: H3ErrorCode.H3_NO_ERROR });
    if (this.inStreams.delete(streamId)) this.discarding.add(streamId);
  }

  private clientHeaders(s: Extract<InStream, { kind: 'request' }>, block: Uint8Array): void {
    const session = s.session;
    if (!session) return;
    if (s.finalResponse) return; // trailers carry nothing we use
    const fields = this.decodeHeaders(s, block);
    if (fields === undefined) return;
    if (fields === 'too-large') {
      this.stats.streamErrors++;
      this.events.push({
        type: 'stream-error',
        streamId: s.id,
        code: H3ErrorCode.H3_EXCESSIVE_LOAD,
        reason: 'response header section too large',
      });
      this.failConnecting(
        session,
        0,
        'response header section too large (RFC 9114 §4.2.2)',
        H3ErrorCode.H3_EXCESSIVE_LOAD,
      );
      return;
    }
    const status = parseResponseStatus(fields);
    if (typeof status === 'string') {
      this.stats.streamErrors++;
      this.events.push({
        type: 'stream-error',
        streamId: s.id,
        code: H3ErrorCode.H3_MESSAGE_ERROR,
        reason: status,
      });
      this.failConnecting(session, 0, status, H3ErrorCode.H3_MESSAGE_ERROR);
      return;
    }
    // RFC 9110 §15.2: interim responses precede the final one and are not answers.
    if (status < 200) return;
    s.finalResponse = true;
    if (status >= 300) {
      this.failConnecting(session, status, `HTTP ${status}`, undefined);
      return;
    }
    session.state = 'established';
    this.events.push({ type: 'session-established', sessionId: session.id, status, headers: fields });
    this.flushEarly(session);
  }

  /** Client: the CONNECT did not lead to a session. */
  private failConnecting(
    session: Session,
    status: number,
    reason: string,
    resetCode: bigint | undefined,
  ): void {
    this.sessions.delete(session.id);
    this.endedSessions.add(session.id);
    if (session.heldRequest) {
      // Never sent: the stream does not exist on the wire, so there is nothing to close or to wait for.
      session.heldRequest = undefined;
      session.sendOpen = false;
      this.inStreams.delete(session.id);
    }
    if (session.sendOpen) {
      session.sendOpen = false;
      if (resetCode !== undefined)
        this.commands.push({ type: 'stream-reset', streamId: session.id, code: resetCode });
      else this.write(session.id, new Uint8Array(0), true);
    }
    const s = this.inStreams.get(session.id);
    if (s) {
      this.inStreams.delete(session.id);
      if (resetCode !== undefined)
        this.commands.push({ type: 'stream-stop-sending', streamId: session.id, code: resetCode });
      this.discarding.add(session.id);
    }
    this.closeSessionStreams(session);
    this.events.push({ type: 'session-rejected', sessionId: session.id, status, reason });
  }

  // ------------------------------------------------------------------------------------------------ capsules

  private capsuleInput(s: Extract<InStream, { kind: 'request' }>, session: Session, chunk: Uint8Array): void {
    const items: FrameItem[] = [];
    session.capsules.push(chunk, items);
    for (const item of items) {
      if (this.failed || this.sessions.get(session.id) !== session) return;
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
          this.inStreams.delete(s.id);
          this.closedByCapsule.add(s.id);
          this.finishConnectStream(session);
          this.endSession(session, close.code, close.reason, false);
          // Later bytes in this piece: a capsule (the parser turns any capsule after CLOSE into an error item)
          // or the start of one's header.
          const trailing = items.indexOf(item) < items.length - 1 || !session.capsules.atFrameBoundary;
          if (trailing) this.afterCloseCapsule(s.id, true, false);
          return;
        }
        case CapsuleType.DRAIN_WEBTRANSPORT_SESSION:
          // Before the request is shown to the application, remember it for after the session-request.
          if (session.state === 'awaiting-settings') session.drainReceived = true;
          else this.events.push({ type: 'session-draining', sessionId: session.id });
          break;
        case CapsuleType.DATAGRAM:
          // RFC 9297 §3.5: a datagram carried reliably; same meaning as a QUIC DATAGRAM for this session.
          if (session.state === 'established') {
            this.stats.datagramsReceived++;
            this.events.push({ type: 'datagram', sessionId: session.id, data: item.payload });
          } else {
            this.stats.datagramsDroppedUnknownSession++;
            this.events.push({ type: 'datagram-dropped', reason: 'unknown-session' });
          }
          break;
      }
    }
  }

  private afterCloseCapsule(streamId: number, moreData: boolean, fin: boolean): void {
    if (moreData) {
      this.closedByCapsule.delete(streamId);
      this.stats.streamErrors++;
      const reason = 'data after CLOSE_WEBTRANSPORT_SESSION (draft §6)';
      this.events.push({ type: 'stream-error', streamId, code: H3ErrorCode.H3_MESSAGE_ERROR, reason });
      this.commands.push({ type: 'stream-stop-sending', streamId, code: H3ErrorCode.H3_MESSAGE_ERROR });
      if (!fin) this.discarding.add(streamId);
      return;
    }
    if (fin) this.closedByCapsule.delete(streamId);
  }

  /** RFC 9297 §3.3: a malformed capsule makes the message malformed: reset the CONNECT stream, end the session. */
  private capsuleError(s: Extract<InStream, { kind: 'request' }>, session: Session, reason: string): void {
    this.stats.streamErrors++;
    this.events.push({ type: 'stream-error', streamId: s.id, code: H3ErrorCode.H3_MESSAGE_ERROR, reason });
    this.commands.push({ type: 'stream-stop-sending', streamId: s.id, code: H3ErrorCode.H3_MESSAGE_ERROR });
    if (session.sendOpen)
      this.commands.push({ type: 'stream-reset', streamId: s.id, code: H3ErrorCode.H3_MESSAGE_ERROR });
    session.sendOpen = false;
    this.inStreams.delete(s.id);
    this.discarding.add(s.id);
    if (session.state === 'connecting') this.failConnecting(session, 0, reason, undefined);
    else this.endSession(session, 0, reason, true);
  }

  /** Ends a session that was offered or established (draft §6): its streams are reset, then one event. */
  private endSession(session: Session, code: number, reason: string, abrupt: boolean, local = false): void {
    if (this.sessions.get(session.id) !== session) return;
    this.sessions.delete(session.id);
    this.endedSessions.add(session.id);
    this.closeSessionStreams(session);
    if (session.state === 'awaiting-settings') return; // never shown to the adapter
    this.events.push({ type: 'session-closed', sessionId: session.id, code, reason, abrupt, local });
  }

  /** draft §6: every stream of an ended session is reset and stopped with WT_SESSION_GONE. */
  private closeSessionStreams(session: Session): void {
    const code = H3ErrorCode.WT_SESSION_GONE;
    for (const id of session.streams) {
      const wt = this.wtStreams.get(id);
      if (!wt) continue;
      this.wtStreams.delete(id);
      if (wt.sendOpen) this.commands.push({ type: 'stream-reset', streamId: id, code });
      if (wt.recvOpen) {
        this.commands.push({ type: 'stream-stop-sending', streamId: id, code });
        this.discarding.add(id);
      }
    }
    session.streams.clear();
    this.rejectEarly(session.id, code);
  }

  // ---------------------------------------------------------------------------------- WebTransport streams

  private attachWtStream(id: number, sessionId: number, bidi: boolean, rest: Uint8Array, fin: boolean): void {
    const wt: WtStream = { id, sessionId, bidi, local: false, recvOpen: true, sendOpen: bidi };
    if (this.endedSessions.has(sessionId)) {
      this.stats.streamsRejectedSessionGone++;
      this.stats.bytesDiscarded += rest.length;
      this.refuseStream(id, H3ErrorCode.WT_SESSION_GONE, bidi, fin);
      return;
    }
    const session = this.sessions.get(sessionId);
    if (this.role === 'client' && !session && sessionId >= this.nextBidi) {
      // We open every client bidi stream, so the server names a stream that does not exist.
      this.connectionError(
        H3ErrorCode.H3_ID_ERROR,
        `stream for session ${sessionId} we never opened (draft §4)`,
      );
      return;
    }
    if (session?.state === 'established') {
      if (session.streams.size >= this.limits.maxStreamsPerSession) {
        this.stats.streamsRejectedLimit++;
        this.refuseStream(id, H3ErrorCode.H3_REQUEST_REJECTED, bidi, fin);
        return;
      }
      session.streams.add(id);
      this.wtStreams.set(id, wt);
      this.events.push({ type: 'stream-opened', sessionId, streamId: id, bidirectional: bidi });
      if (rest.length || fin) this.wtInput(wt, rest, fin);
      return;
    }
    // draft §4.6: a session not established yet (or not known yet): buffer within the budget.
    const cost = BUFFERED_STREAM_OVERHEAD + rest.length;
    if (this.earlyBytes + cost > this.limits.maxBufferedUnknownSessionBytes) {
      this.stats.streamsRejectedBufferFull++;
      this.stats.bytesDiscarded += rest.length;
      this.refuseStream(id, H3ErrorCode.WT_BUFFERED_STREAM_REJECTED, bidi, fin);
      return;
    }
    this.earlyBytes += cost;
    wt.early = { chunks: rest.length ? [rest.slice()] : [], bytes: cost, fin };
    if (fin) wt.recvOpen = false;
    this.wtStreams.set(id, wt);
    let entry = this.early.get(sessionId);
    if (!entry) {
      entry = { streams: [], datagrams: [] };
      this.early.set(sessionId, entry);
    }
    entry.streams.push(wt);
  }

  private wtInput(wt: WtStream, data: Uint8Array, fin: boolean): void {
    if (!wt.recvOpen) {
      this.stats.bytesDiscarded += data.length;
      return;
    }
    if (wt.early) {
      if (this.earlyBytes + data.length > this.limits.maxBufferedUnknownSessionBytes) {
        this.stats.streamsRejectedBufferFull++;
        this.stats.bytesDiscarded += data.length + wt.early.bytes - BUFFERED_STREAM_OVERHEAD;
        this.dropEarlyStream(wt);
        this.refuseStream(wt.id, H3ErrorCode.WT_BUFFERED_STREAM_REJECTED, wt.bidi, fin);
        return;
      }
      if (data.length) wt.early.chunks.push(data.slice());
      wt.early.bytes += data.length;
      this.earlyBytes += data.length;
      if (fin) {
        wt.early.fin = true;
        wt.recvOpen = false;
      }
      return;
    }
    if (data.length === 0 && !fin) return; // nothing to tell
    if (fin) wt.recvOpen = false;
    this.events.push({ type: 'stream-data', streamId: wt.id, data, fin });
    this.maybeForget(wt);
  }

  private dropEarlyStream(wt: WtStream): void {
    const entry = this.early.get(wt.sessionId);
    if (entry) {
      const i = entry.streams.indexOf(wt);
      if (i >= 0) entry.streams.splice(i, 1);
      if (entry.streams.length === 0 && entry.datagrams.length === 0) this.early.delete(wt.sessionId);
    }
    if (wt.early) this.earlyBytes -= wt.early.bytes;
    wt.early = undefined;
    this.wtStreams.delete(wt.id);
  }

  private flushEarly(session: Session): void {
    const entry = this.early.get(session.id);
    if (!entry) return;
    this.early.delete(session.id);
    for (const wt of entry.streams) {
      const early = wt.early;
      if (!early) continue;
      this.earlyBytes -= early.bytes;
      wt.early = undefined;
      if (session.streams.size >= this.limits.maxStreamsPerSession) {
        this.stats.streamsRejectedLimit++;
        this.wtStreams.delete(wt.id);
        this.refuseStream(wt.id, H3ErrorCode.H3_REQUEST_REJECTED, wt.bidi, early.fin);
        continue;
      }
      session.streams.add(wt.id);
      this.events.push({
        type: 'stream-opened',
        sessionId: session.id,
        streamId: wt.id,
        bidirectional: wt.bidi,
      });
      if (early.stopCode !== undefined) {
        this.events.push({ type: 'stream-stop-sending', streamId: wt.id, code: early.stopCode });
      }
      if (early.chunks.length || early.fin) {
        this.events.push({
          type: 'stream-data',
          streamId: wt.id,
          data: concatBytes(early.chunks.length ? early.chunks : [new Uint8Array(0)]),
          fin: early.fin,
        });
      }
      this.maybeForget(wt);
    }
    for (const d of entry.datagrams) {
      this.earlyBytes -= d.length;
      this.stats.datagramsReceived++;
      this.events.push({ type: 'datagram', sessionId: session.id, data: d });
    }
  }

  private rejectEarly(sessionId: number, code: bigint): void {
    const entry = this.early.get(sessionId);
    if (!entry) return;
    this.early.delete(sessionId);
    for (const wt of entry.streams) {
      if (wt.early) this.earlyBytes -= wt.early.bytes;
      wt.early = undefined;
      this.wtStreams.delete(wt.id);
      this.stats.streamsRejectedSessionGone++;
      this.commands.push({ type: 'stream-stop-sending', streamId: wt.id, code });
      if (wt.bidi) this.commands.push({ type: 'stream-reset', streamId: wt.id, code });
      if (wt.recvOpen) this.discarding.add(wt.id);
    }
    for (const d of entry.datagrams) {
      this.earlyBytes -= d.length;
      this.stats.datagramsDroppedUnknownSession++;
      this.events.push({ type: 'datagram-dropped', reason: 'unknown-session' });
    }
  }

  private maybeForget(wt: WtStream): void {
    if (wt.recvOpen || wt.sendOpen) return;
    this.wtStreams.delete(wt.id);
    this.sessions.get(wt.sessionId)?.streams.delete(wt.id);
  }

  // ----------------------------------------------------------------------------------- resets, stop-sending

  receiveStreamReset(streamId: number, code: bigint): void {
    assertStreamId(streamId);
    this.closes.settled(streamId);
    if (this.failed) return;
    if (this.discarding.delete(streamId) || this.closedByCapsule.delete(streamId)) return;
    const wt = this.wtStreams.get(streamId);
    if (wt) {
      if (wt.early) {
        // Never shown to the application: forget it quietly.
        this.dropEarlyStream(wt);
        return;
      }
      if (!wt.recvOpen) return;
      wt.recvOpen = false;
      this.events.push({ type: 'stream-reset', streamId, code: httpCodeToWebTransport(code) ?? 0 });
      this.maybeForget(wt);
      return;
    }
    if (this.peerCriticalStreams.has(streamId)) {
      this.connectionError(
        H3ErrorCode.H3_CLOSED_CRITICAL_STREAM,
        `critical stream ${streamId} reset (RFC 9114 §6.2.1)`,
      );
      return;
    }
    const s = this.inStreams.get(streamId);
    if (!s) return;
    this.inStreams.delete(streamId);
    if (s.kind !== 'request' || !s.session) return;
    const session = s.session;
    if (session.state === 'connecting') {
      this.failConnecting(session, 0, `CONNECT stream reset with 0x${code.toString(16)}`, undefined);
      return;
    }
    // draft §6: a reset CONNECT stream ends the session; we reset our side in turn.
    if (session.sendOpen) {
      session.sendOpen = false;
      this.commands.push({ type: 'stream-reset', streamId, code: H3ErrorCode.WT_SESSION_GONE });
    }
    this.endSession(session, 0, `CONNECT stream reset with 0x${code.toString(16)}`, true);
  }

  receiveStopSending(streamId: number, code: bigint): void {
    assertStreamId(streamId);
    this.closes.settled(streamId);
    if (this.failed) return;
    if (this.ownCriticalStreams.has(streamId)) {
      // RFC 9114 §6.2.1 / RFC 9204 §4.2: the peer must not ask us to close a critical stream.
      this.connectionError(
        H3ErrorCode.H3_CLOSED_CRITICAL_STREAM,
        `STOP_SENDING on our critical stream ${streamId}`,
      );
      return;
    }
    const wt = this.wtStreams.get(streamId);
    if (wt) {
      if (!wt.sendOpen) return;
      wt.sendOpen = false;
      if (wt.early) {
        // Replayed when the stream is shown to the application.
        wt.early.stopCode = httpCodeToWebTransport(code) ?? 0;
        return;
      }
      this.events.push({ type: 'stream-stop-sending', streamId, code: httpCodeToWebTransport(code) ?? 0 });
      this.maybeForget(wt);
      return;
    }
    const session = this.sessions.get(streamId);
    // draft §6: the peer no longer reads the CONNECT stream (it closed the session or is about to).
    if (session) session.sendOpen = false;
  }

  // ------------------------------------------------------------------------------------------------ datagrams

  receiveDatagram(data: Uint8Array): void {
    if (this.failed) return;
    // RFC 9297 §2.1: the Quarter Stream ID names a client-initiated bidi stream (id / 4). Stream ids are below
    // 2^62, so a value of 2^60 or more is a connection error of type H3_DATAGRAM_ERROR, not a datagram to drop.
    // Values of one to four bytes (below 2^30) decode as numbers: only 8-byte ones need the bigint path.
    const q = data.length > 0 && data[0] < 0xc0 ? decodeVarint(data, 0) : decodeVarintBig(data, 0);
    if (!q) {
      this.stats.datagramsDroppedMalformed++;
      this.events.push({ type: 'datagram-dropped', reason: 'malformed' });
      return;
    }
    if (typeof q.value === 'bigint') {
      if (q.value >= MAX_QUARTER_STREAM_ID_EXCLUSIVE) {
        this.connectionError(
          H3ErrorCode.H3_DATAGRAM_ERROR,
          `quarter stream id ${q.value} >= 2^60 (RFC 9297 §2.1)`,
        );
        return;
      }
      // Legal, but no stream this high can have been opened (it would take 2^51 requests): a counted drop.
      if (q.value * 4n > MAX_SAFE_BIG) {
        this.stats.datagramsDroppedUnknownSession++;
        this.events.push({ type: 'datagram-dropped', reason: 'unknown-session' });
        return;
      }
    }
    const sessionId = Number(q.value) * 4;
    const payload = data.subarray(q.length);
    const session = this.sessions.get(sessionId);
    if (session?.state === 'established') {
      this.stats.datagramsReceived++;
      this.events.push({ type: 'datagram', sessionId, data: payload });
      return;
    }
    const unknownToClient = this.role === 'client' && !session && sessionId >= this.nextBidi;
    if (this.endedSessions.has(sessionId) || unknownToClient) {
      this.stats.datagramsDroppedUnknownSession++;
      this.events.push({ type: 'datagram-dropped', reason: 'unknown-session' });
      return;
    }
    // draft §4.6: held until the session is established, within the shared budget.
    if (this.earlyBytes + payload.length > this.limits.maxBufferedUnknownSessionBytes) {
      this.stats.datagramsDroppedUnknownSession++;
      this.events.push({ type: 'datagram-dropped', reason: 'unknown-session' });
      return;
    }
    let entry = this.early.get(sessionId);
    if (!entry) {
      entry = { streams: [], datagrams: [] };
      this.early.set(sessionId, entry);
    }
    entry.datagrams.push(payload.slice());
    this.earlyBytes += payload.length;
  }

  sendDatagram(sessionId: number, data: Uint8Array): void {
    const session = this.liveSession(sessionId, 'sendDatagram');
    if (!session || this.failed) {
      this.stats.datagramsDroppedClosedSession++;
      return;
    }
    // RFC 9297 §2.1.1: never to a peer whose SETTINGS say it takes no HTTP Datagrams. Before its SETTINGS
    // arrive we send optimistically (draft §4.6: the first flight may carry datagrams).
    const ps = this.peerSettings;
    if (ps && ps.get(SettingId.H3_DATAGRAM) !== 1n && ps.get(SettingId.H3_DATAGRAM_DRAFT04) !== 1n) {
      this.stats.datagramsDroppedNotNegotiated++;
      return;
    }
    // draft §4.6: a client may send before the response; the server as soon as it has the request.
    const prefix = encodeVarint(sessionId / 4);
    const out = new Uint8Array(prefix.length + data.length);
    out.set(prefix, 0);
    out.set(data, prefix.length);
    this.stats.datagramsSent++;
    this.commands.push({ type: 'datagram', data: out });
  }

  datagramOverhead(sessionId: number): number {
    assertSessionId(sessionId);
    return varintLength(sessionId / 4);
  }

  // ---------------------------------------------------------------------------------------------- sessions

  /**
   * The session if it is live; `undefined` if it existed and ended (callers treat that as a no-op, since the
   * application may act on a session before it drained the event saying it closed); throws if it never existed.
   */
  private liveSession(sessionId: number, what: string): Session | undefined {
    assertSessionId(sessionId);
    const session = this.sessions.get(sessionId);
    if (session && session.state !== 'awaiting-settings') return session;
    if (this.endedSessions.has(sessionId)) return undefined;
    throw new Error(`${what}: no session ${sessionId}`);
  }

  connect(request: { authority: string; path: string; origin?: string; headers?: HeaderField[] }): number {
    if (this.role !== 'client') throw new Error('connect() is for clients');
    if (!this.started) throw new Error('connect() before start()');
    if (this.failed) throw new Error('connection failed');
    if (this.goawayReceivedId !== undefined)
      throw new Error('the server sent GOAWAY: open a new connection (draft §4.7)');
    if (!request.authority || !request.path?.startsWith('/'))
      throw new TypeError('authority and an absolute path are required');
    const peerMax =
      this.peerSettings && this.draft === 'current'
        ? Number(
            this.peerSettings.get(SettingId.WT_MAX_SESSIONS) ??
              this.peerSettings.get(SettingId.WT_MAX_SESSIONS_DRAFT07) ??
              0n,
          )
        : Number.POSITIVE_INFINITY;
    if (this.sessions.size >= Math.min(this.sessionLimit(), peerMax)) {
      throw new Error(`session limit reached (${this.sessions.size})`);
    }
    const extra = request.headers ?? [];
    assertValidExtraFields(extra);
    // RFC 9220 §3 extended CONNECT, draft §3.2: :scheme https, :authority, :path, :protocol, Origin.
    const fields: HeaderField[] = [
      [':method', 'CONNECT'],
      [':scheme', 'https'],
      [':authority', request.authority],
      [':path', request.path],
      [':protocol', 'webtransport'],
      // draft-02 §3.2 as sent by browsers; harmless to current-draft servers.
      ['sec-webtransport-http3-draft02', '1'],
    ];
    if (request.origin !== undefined) fields.push(['origin', request.origin]);
    fields.push(...extra);
    // Encode now so that bad input throws here, not when the SETTINGS arrive.
    encodeFieldSection(fields);
    const id = this.allocBidi();
    const session: Session = {
      id,
      state: 'connecting',
      streams: new Set(),
      capsules: createCapsuleParser(this.limits.maxCapsuleSize),
      sendOpen: true,
      heldRequest: fields,
    };
    this.sessions.set(id, session);
    const s = this.newRequestStream(id, session);
    this.inStreams.set(id, s);
    // draft §3.1: no CONNECT before the server's SETTINGS say which WebTransport it speaks.
    if (this.peerSettings) this.sendHeldRequest(session);
    return id;
  }

  private sendHeldRequest(session: Session): void {
    const fields = session.heldRequest;
    if (!fields) return;
    session.heldRequest = undefined;
    if (this.draft === 'none') {
      session.sendOpen = false;
      this.failConnecting(
        session,
        0,
        'the server does not support WebTransport (no WebTransport SETTINGS)',
        undefined,
      );
      return;
    }
    this.write(session.id, encodeFrame(FrameType.HEADERS, encodeFieldSection(fields)));
  }

  acceptSession(sessionId: number, headers: HeaderField[] = []): void {
    if (this.role !== 'server') throw new Error('acceptSession() is for servers');
    const session = this.liveSession(sessionId, 'acceptSession');
    if (!session || this.failed) return;
    if (session.state !== 'requested')
      throw new Error(`acceptSession: session ${sessionId} is ${session.state}`);
    assertValidExtraFields(headers);
    const fields: HeaderField[] = [[':status', '200']];
    // draft-02 §3.3 response header; Chromium does not require it, older servers sent it.
    if (this.draft === 'draft02') fields.push(['sec-webtransport-http3-draft', 'draft02']);
    fields.push(...headers);
    if (!session.sendOpen) {
      // The client stopped reading the CONNECT stream before our answer: the session cannot work.
      this.endSession(session, 0, 'CONNECT stream stopped by the client', true, true);
      return;
    }
    this.write(sessionId, encodeFrame(FrameType.HEADERS, encodeFieldSection(fields)));
    session.state = 'established';
    this.flushEarly(session);
  }

  rejectSession(sessionId: number, status: number): void {
    if (this.role !== 'server') throw new Error('rejectSession() is for servers');
    if (!Number.isInteger(status) || status < 300 || status > 599)
      throw new RangeError(`rejectSession needs a 3xx-5xx status, got ${status}`);
    const session = this.liveSession(sessionId, 'rejectSession');
    if (!session || this.failed) return;
    if (session.state !== 'requested')
      throw new Error(`rejectSession: session ${sessionId} is ${session.state}`);
    this.sessions.delete(sessionId);
    this.endedSessions.add(sessionId);
    this.closeSessionStreams(session);
    if (session.sendOpen) this.respondAndStop(sessionId, status);
    else if (this.inStreams.delete(sessionId)) this.discarding.add(sessionId);
  }

  openStream(sessionId: number, bidirectional: boolean): number {
    const session = this.liveSession(sessionId, 'openStream');
    if (!session) throw new Error(`openStream: session ${sessionId} is closed`);
    if (this.failed) throw new Error('connection failed');
    if (session.streams.size >= this.limits.maxStreamsPerSession) {
      throw new Error(
        `openStream: session ${sessionId} has ${session.streams.size} streams (maxStreamsPerSession)`,
      );
    }
    const id = bidirectional ? this.allocBidi() : this.allocUni();
    const wt: WtStream = {
      id,
      sessionId,
      bidi: bidirectional,
      local: true,
      recvOpen: bidirectional,
      sendOpen: true,
    };
    this.wtStreams.set(id, wt);
    session.streams.add(id);
    // draft §4.2 / §4.3: the stream header links the stream to its session.
    const header = new ByteWriter()
      .varint(bidirectional ? WT_BIDI_SIGNAL : WT_UNI_STREAM_TYPE)
      .varint(sessionId)
      .finish();
    this.write(id, header);
    return id;
  }

  private localWtStream(streamId: number, what: string): WtStream | undefined {
    assertStreamId(streamId);
    const wt = this.wtStreams.get(streamId);
    if (wt && !wt.early) return wt;
    // Ids we allocated or saw are known; a stream that ended since is a no-op (counted), any other id throws.
    const local = ((streamId & 1) === 0) === (this.role === 'client');
    const known = local ? streamId < ((streamId & 2) !== 0 ? this.nextUni : this.nextBidi) : true;
    if (!known) throw new Error(`${what}: no stream ${streamId}`);
    this.stats.writesAfterClose++;
    return undefined;
  }

  sendStreamData(streamId: number, data: Uint8Array, fin: boolean): void {
    const wt = this.localWtStream(streamId, 'sendStreamData');
    if (!wt || this.failed) return;
    if (!wt.sendOpen) {
      this.stats.writesAfterClose++;
      return;
    }
    if (fin) wt.sendOpen = false;
    this.write(streamId, data, fin);
    this.maybeForget(wt);
  }

  resetStream(streamId: number, code: number): void {
    const wire = webTransportCodeToHttp(code);
    const wt = this.localWtStream(streamId, 'resetStream');
    if (!wt || this.failed || !wt.sendOpen) return;
    wt.sendOpen = false;
    this.commands.push({ type: 'stream-reset', streamId, code: wire });
    this.maybeForget(wt);
  }

  stopSending(streamId: number, code: number): void {
    const wire = webTransportCodeToHttp(code);
    const wt = this.localWtStream(streamId, 'stopSending');
    if (!wt || this.failed || !wt.recvOpen) return;
    wt.recvOpen = false;
    this.discarding.add(streamId);
    this.commands.push({ type: 'stream-stop-sending', streamId, code: wire });
    this.maybeForget(wt);
  }

  closeSession(sessionId: number, code: number, reason: string): void {
    if (!Number.isInteger(code) || code < 0 || code > 0xffffffff)
      throw new RangeError(`close code must be a u32, got ${code}`);
    const session = this.liveSession(sessionId, 'closeSession');
    if (!session || this.failed) return;
    if (session.state === 'requested')
      throw new Error('closeSession: session not accepted yet; use rejectSession');
    if (session.state === 'connecting') {
      // No response yet: the capsule protocol is not in use, so cancel the request (RFC 9114 §4.1.1).
      this.failConnecting(
        session,
        0,
        reason || 'closed before the response',
        session.heldRequest ? undefined : H3ErrorCode.H3_REQUEST_CANCELLED,
      );
      return;
    }
    if (session.sendOpen) {
      // draft §6: CLOSE_WEBTRANSPORT_SESSION, then FIN at once.
      session.sendOpen = false;
      const capsule = encodeCloseCapsule(code, reason);
      this.write(sessionId, concatBytes([encodeDataFrameHeader(capsule.length), capsule]), true);
      this.closes.sent(sessionId);
    }
    // We keep reading the CONNECT stream only to see its end; its capsules no longer matter.
    if (this.inStreams.delete(sessionId)) this.discarding.add(sessionId);
    this.endSession(session, code, reason, false, true);
  }

  drainSession(sessionId: number): void {
    const session = this.liveSession(sessionId, 'drainSession');
    if (!session || this.failed || session.state !== 'established' || !session.sendOpen) return;
    const capsule = encodeDrainCapsule();
    this.write(sessionId, concatBytes([encodeDataFrameHeader(capsule.length), capsule]));
  }

  goaway(): void {
    if (!this.started) throw new Error('goaway() before start()');
    if (this.failed) return;
    let id: number;
    if (this.role === 'server') {
      // §5.2: the first client bidi stream id we will not process; requests below it still complete.
      id = this.maxPeerBidiSeen < 0 ? 0 : this.maxPeerBidiSeen + 4;
      if (this.goawaySentId !== undefined) id = Math.min(id, this.goawaySentId);
      this.goawaySentId = id;
    } else {
      // §5.2: a client's GOAWAY carries a push id; we allow no pushes.
      id = 0;
    }
    this.write(this.controlStreamId, encodeGoaway(id));
  }
}

function assertStreamId(id: number): void {
  if (!Number.isSafeInteger(id) || id < 0) throw new RangeError(`bad stream id ${id}`);
}

function assertSessionId(id: number): void {
  if (!Number.isSafeInteger(id) || id < 0 || id % 4 !== 0) throw new RangeError(`bad session id ${id}`);
}
