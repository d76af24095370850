/**
 * What the parts of one HTTP/3 + WebTransport connection share: its role and limits, the queues of commands and
 * events drained by the adapter, the counters, the stream and session registries, and the few primitives every
 * part uses (writing, refusing a stream, failing the connection). The parts reach each other through it; the
 * adapter talks only to the connection (`connection.ts`).
 */

import type {
  H3ConnectionOptions,
  H3Event,
  H3Limits,
  H3Stats,
  HeaderField,
  QuicCommand,
  Role,
} from './api.js';
import { CloseDelivery } from './close-delivery.js';
import { H3ErrorCode, HTTP2_ONLY_FRAME_TYPES } from './codes.js';
import type { ControlStreams } from './control.js';
import type { Datagrams } from './datagrams.js';
import type { EarlyBuffer } from './early-buffer.js';
import type { FrameAction, FrameParser } from './frames.js';
import type { InboundStreams } from './inbound.js';
import type { RequestStreams } from './request-streams.js';
import type { SessionLifecycle } from './sessions.js';
import type { WtStreams } from './wt-streams.js';

/** The defaults of {@link H3Limits}, each documented there. */
export const DEFAULT_H3_LIMITS: Readonly<H3Limits> = Object.freeze({
  maxFieldSectionSize: 16 * 1024,
  maxFramePayload: 64 * 1024,
  maxSessions: 16,
  maxStreamsPerSession: 1024,
  maxBufferedUnknownSessionBytes: 64 * 1024,
  maxCapsuleSize: 64 * 1024,
});

export type Draft = 'draft02' | 'current' | 'none';

export interface WtStream {
  id: number;
  sessionId: number;
  bidi: boolean;
  local: boolean;
  recvOpen: boolean;
  sendOpen: boolean;
  /** Set while the session is not established: what arrived so far (draft §4.6). */
  early?: { chunks: Uint8Array[]; bytes: number; fin: boolean; stopCode?: number };
}

export type SessionState =
  /** Server: CONNECT received before the client's SETTINGS; the request waits for them (draft §3.1). */
  | 'awaiting-settings'
  /** Server: `session-request` raised, awaiting acceptSession/rejectSession. */
  | 'requested'
  /** Client: CONNECT sent (or held until the server's SETTINGS), no final response yet. */
  | 'connecting'
  | 'established';

export interface Session {
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
export type InStream =
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

/** The state of one connection shared by its parts. */
export class H3Context {
  readonly role: Role;
  readonly limits: H3Limits;
  commands: QuicCommand[] = [];
  events: H3Event[] = [];
  readonly stats = emptyStats();
  /** Set once a connection error was raised: all further input is ignored. */
  failed = false;
  nextBidi: number;
  nextUni: number;

  readonly inStreams = new Map<number, InStream>();
  readonly wtStreams = new Map<number, WtStream>();
  readonly sessions = new Map<number, Session>();
  /** Sessions that ended; a stream or datagram naming one is refused, not buffered (draft §6). */
  readonly endedSessions = new Set<number>();
  /** Streams whose further input we drop (refused, reset or finished on our side); cleared at their FIN/reset. */
  readonly discarding = new Set<number>();
  /** Whether the closes of ended sessions reached the peer (draft §6). */
  readonly closes: CloseDelivery;

  // The parts, set once by the connection that owns them.
  control!: ControlStreams;
  inbound!: InboundStreams;
  requests!: RequestStreams;
  lifecycle!: SessionLifecycle;
  streams!: WtStreams;
  buffer!: EarlyBuffer;
  datagrams!: Datagrams;

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
    // RFC 9000 §2.1: the low two bits of a stream id are initiator and directionality.
    this.nextBidi = this.role === 'client' ? 0 : 1;
    this.nextUni = this.role === 'client' ? 2 : 3;
  }

  write(streamId: number, data: Uint8Array, fin = false): void {
    this.commands.push({ type: 'stream-write', streamId, data, fin });
  }

  connectionError(code: bigint, reason: string): void {
    if (this.failed) return;
    this.failed = true;
    this.events.push({ type: 'connection-error', code, reason });
    this.commands.push({ type: 'connection-close', code, reason });
  }

  /** Aborts both directions of a peer stream we will not process, and drops its further input. */
  refuseStream(streamId: number, code: bigint, bidi: boolean, finReceived = false): void {
    this.commands.push({ type: 'stream-stop-sending', streamId, code });
    if (bidi) this.commands.push({ type: 'stream-reset', streamId, code });
    this.inStreams.delete(streamId);
    if (!finReceived) this.discarding.add(streamId);
  }

  /** Counts a stream error and tells the application; what happens to the stream is the caller's. */
  reportStreamError(streamId: number, code: bigint, reason: string): void {
    this.stats.streamErrors++;
    this.events.push({ type: 'stream-error', streamId, code, reason });
  }

  streamError(streamId: number, code: bigint, reason: string, bidi: boolean): void {
    this.reportStreamError(streamId, code, reason);
    this.refuseStream(streamId, code, bidi);
  }

  allocUni(): number {
    const id = this.nextUni;
    this.nextUni += 4;
    return id;
  }

  allocBidi(): number {
    const id = this.nextBidi;
    this.nextBidi += 4;
    return id;
  }
}

/** A frame parsed whole before it is acted on, up to `maxFramePayload` bytes (a bound on what one buffers). */
export function bufferWithinLimit(name: string, length: number, maxFramePayload: number): FrameAction {
  if (length > maxFramePayload) {
    return { kind: 'error', code: H3ErrorCode.H3_EXCESSIVE_LOAD, reason: `${name} of ${length} bytes` };
  }

  return { kind: 'buffer' };
}

/** A frame type no stream of this connection gives a meaning to. */
export function otherFrame(type: bigint): FrameAction {
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

export function assertStreamId(id: number): void {
  if (!Number.isSafeInteger(id) || id < 0) throw new RangeError(`bad stream id ${id}`);
}

export function assertSessionId(id: number): void {
  if (!Number.isSafeInteger(id) || id < 0 || id % 4 !== 0) throw new RangeError(`bad session id ${id}`);
}
