import type { DatagramDropReason, DatagramStats } from '@quiver/transport';
import { QuiverTransportError } from '@quiver/transport';
import { truncateUtf8, violation, WsErrorCode } from './codes.js';
import {
  ByteReader,
  ByteWriter,
  type Frame,
  MAX_CLOSE_REASON_BYTES,
  detach,
  readFrame,
  SettingId,
  writeFrame,
} from './wire.js';

/**
 * The sans-IO protocol core of one Quiver WebSocket session: WebSocket messages and local calls in, WebSocket
 * messages and events out, the time passed in by the caller. It owns stream state, flow control, stream limits,
 * the round-robin send scheduler and the RTT estimator; it never touches a socket or a timer.
 */

/** What each side announces in its SETTINGS frame (README "Settings"). */
export interface WireSettings {
  /** Largest WebSocket message this side accepts. */
  maxMessageSize: number;
  /** Streams of each kind the peer may open before the first MAX_STREAMS (RFC 9000 §4.6 style). */
  initialMaxStreamsBidi: number;
  /** Unidirectional streams the peer may open before the first MAX_STREAMS_UNI. */
  initialMaxStreamsUni: number;
  /** Per-stream receive window (RFC 9000 §4.1 style): bytes the peer may send before a MAX_STREAM_DATA. */
  initialMaxStreamData: number;
  /** Largest DATAGRAM payload this side accepts. */
  maxDatagramSize: number;
}

/** Smallest max message size a peer may announce: large enough for any control frame and a 1200-byte datagram. */
export const MIN_MESSAGE_SIZE = 1500;

/** Callbacks through which {@link SessionCore} reports what the peer did; called synchronously from `receive`. */
export interface CoreEvents {
  /** The peer's SETTINGS arrived. */
  ready(): void;
  /** The peer opened stream `id` (its first frame arrived). */
  incomingStream(id: number, bidirectional: boolean): void;
  /** Data in order; `fin` marks the end of the stream. */
  streamData(id: number, data: Uint8Array, fin: boolean): void;
  /** The peer reset its sending side (RESET_STREAM). */
  streamReset(id: number, code: number): void;
  /** The peer asked us to stop sending; the core has already answered with RESET_STREAM (RFC 9000 §3.5). */
  stopSending(id: number, code: number): void;
  /** MAX_STREAMS raised the number of streams we may open. */
  streamCredit(): void;
  /** A datagram from the peer; the caller queues it or counts the drop (`countDatagramDrop`). */
  datagram(data: Uint8Array): void;
  /** The peer sent CLOSE_SESSION. */
  closeReceived(code: number, reason: string): void;
}

type Done = (error?: Error) => void;

interface Chunk {
  data: Uint8Array;
  offset: number;
  done: Done;
}

interface SendSide {
  queue: Chunk[];
  queuedBytes: number;
  /** Bytes framed so far (the next frame's offset). */
  sent: number;
  /** Peer-granted limit (MAX_STREAM_DATA). */
  maxData: number;
  fin: 'none' | 'pending' | 'sent';
  finDone: Done | undefined;
  reset: boolean;
  inRotation: boolean;
}

interface RecvSide {
  /** Bytes received so far. */
  received: number;
  /** Bytes handed to the application (or discarded). */
  consumed: number;
  /** Limit we granted. */
  maxData: number;
  state: 'open' | 'fin' | 'reset';
  /** STOP_SENDING sent or the application cancelled: incoming data is dropped. */
  discard: boolean;
  creditPending: boolean;
}

interface CoreStream {
  id: number;
  send: SendSide | undefined;
  recv: RecvSide | undefined;
}

/** The core's running totals and RTT estimate; the source of the session's `getStats()`. */
export interface CoreStats {
  /** Bytes of the WebSocket messages produced (framing payload; WebSocket and TCP headers not included). */
  bytesSent: number;
  /** Bytes of the WebSocket messages received. */
  bytesReceived: number;
  /** Frames encoded into outgoing messages. */
  framesSent: number;
  /** Frames decoded from incoming messages. */
  framesReceived: number;
  /** WebSocket messages produced. */
  messagesSent: number;
  /** WebSocket messages received. */
  messagesReceived: number;
  /** RFC 9002 §5.3 smoothed RTT from PING/PONG samples, in ms; 0 until the first sample. */
  smoothedRtt: number;
  /** RFC 9002 §5.3 rttvar in ms. */
  rttVariation: number;
  /** Smallest RTT sample in ms; 0 until the first sample. */
  minRtt: number;
  /** Bytes that arrived on streams the application had cancelled (dropped, counted). */
  discardedStreamBytes: number;
  /** Datagram counters, drops by reason. */
  datagrams: DatagramStats;
}

/** Construction options of {@link SessionCore}; the session resolves them from `WebSocketSessionOptions`. */
export interface CoreOptions {
  /** Which end this is; it decides the parity of the stream ids it opens (RFC 9000 §2.1). */
  role: 'client' | 'server';
  /** What this side announces in its SETTINGS and enforces. */
  local: WireSettings;
  /** Largest STREAM frame payload; smaller frames interleave streams more finely. */
  maxStreamFrameSize: number;
  /** Upper bound on outgoing message size (also bounded by the peer's max message size). */
  maxOutgoingMessageSize: number;
  /**
   * Control frames the peer's input may make us queue (PONG answers) while the socket does not drain; beyond it the
   * session fails with EXCESSIVE_LOAD rather than hold an unbounded answer queue for a peer that never reads.
   */
  maxQueuedControlBytes: number;
}

const STREAM_FRAME_OVERHEAD = 1 + 8 + 8;

/** RFC 9000 §2.1: bit 0 is the initiator (0 client, 1 server), bit 1 the direction (0 bidirectional, 1 uni). */
export function isBidirectional(id: number): boolean {
  return (id & 2) === 0;
}

/** The sans-IO core of one Quiver WebSocket session (see the module comment). */
export class SessionCore {
  /** Which end this is. */
  readonly role: 'client' | 'server';
  /** The settings this side announced. */
  readonly local: WireSettings;
  /** The peer's settings; `undefined` until its SETTINGS frame arrived. */
  peer: WireSettings | undefined;
  /** `closing` once `close()` queued CLOSE_SESSION and until it is sent; `closed` after that or when terminated. */
  state: 'open' | 'closing' | 'closed' = 'open';
  /** Live counters (not a snapshot). */
  readonly stats: CoreStats = {
    bytesSent: 0,
    bytesReceived: 0,
    framesSent: 0,
    framesReceived: 0,
    messagesSent: 0,
    messagesReceived: 0,
    smoothedRtt: 0,
    rttVariation: 0,
    minRtt: 0,
    discardedStreamBytes: 0,
    datagrams: { sent: 0, received: 0, droppedOutgoing: {}, droppedIncoming: {} },
  };

  private readonly events: CoreEvents;
  private readonly maxStreamFrameSize: number;
  private readonly maxOutgoingMessageSize: number;
  private readonly streams = new Map<number, CoreStream>();
  /** Encoded control frames, sent before anything else in FIFO order. */
  private control: Uint8Array[] = [];
  private controlBytes = 0;
  private readonly maxQueuedControlBytes: number;
  private datagrams: Uint8Array[] = [];
  private datagramBytes = 0;
  private rotation: number[] = [];
  private creditPending = new Set<number>();
  private settingsReceived = false;
  private settingsSent = false;
  // Index (id >> 2) of the next stream each side opens, per direction: [bidi, uni].
  private nextLocal = [0, 0];
  private nextPeer = [0, 0];
  private peerMaxStreams = [0, 0];
  private localMaxStreams: number[];
  private peerReleased = [0, 0];
  private maxStreamsPending = [false, false];
  private pingSeq = 0;
  private pings = new Map<number, number>();
  /** The last RTT sample (ms), 0 before any: unlike the smoothed RTT it shows a queue at once. */
  latestRtt = 0;

  constructor(options: CoreOptions, events: CoreEvents) {
    this.role = options.role;
    this.local = options.local;
    this.events = events;
    this.maxStreamFrameSize = options.maxStreamFrameSize;
    this.maxOutgoingMessageSize = options.maxOutgoingMessageSize;
    this.maxQueuedControlBytes = options.maxQueuedControlBytes;
    this.localMaxStreams = [options.local.initialMaxStreamsBidi, options.local.initialMaxStreamsUni];
    const settings = new Map<number, number>([
      [SettingId.MAX_MESSAGE_SIZE, options.local.maxMessageSize],
      [SettingId.INITIAL_MAX_STREAMS_BIDI, options.local.initialMaxStreamsBidi],
      [SettingId.INITIAL_MAX_STREAMS_UNI, options.local.initialMaxStreamsUni],
      [SettingId.INITIAL_MAX_STREAM_DATA, options.local.initialMaxStreamData],
      [SettingId.MAX_DATAGRAM_SIZE, options.local.maxDatagramSize],
    ]);
    this.queueControl({ type: 'settings', settings });
  }

  /** True once the peer's SETTINGS arrived. */
  get ready(): boolean {
    return this.peer !== undefined;
  }

  /** The largest datagram payload we may send: our own limit and the peer's, whichever is smaller. */
  get maxDatagramSize(): number {
    if (!this.peer) return this.local.maxDatagramSize;
    return Math.min(this.local.maxDatagramSize, this.peer.maxDatagramSize, this.outgoingBudget() - 1 - 8);
  }

  /** Encoded bytes of the outgoing datagrams waiting to be put in a message. */
  get queuedDatagramBytes(): number {
    return this.datagramBytes;
  }

  /** Streams the core tracks now, both directions and both openers. */
  get streamCount(): number {
    return this.streams.size;
  }

  /** True when nextMessage() would return a message. */
  get hasPendingOutput(): boolean {
    return (
      this.control.length > 0 ||
      this.datagrams.length > 0 ||
      this.creditPending.size > 0 ||
      this.maxStreamsPending[0] ||
      this.maxStreamsPending[1] ||
      this.rotation.length > 0
    );
  }

  private isLocal(id: number): boolean {
    return (id & 1) === (this.role === 'client' ? 0 : 1);
  }

  private outgoingBudget(): number {
    return Math.min(this.maxOutgoingMessageSize, this.peer?.maxMessageSize ?? MIN_MESSAGE_SIZE);
  }

  private queueControl(f: Frame): void {
    const w = new ByteWriter(32);
    writeFrame(w, f);
    this.control.push(w.finish());
    this.controlBytes += w.length;
  }

  // ---- input ----

  /**
   * Feeds one incoming WebSocket message. Throws ProtocolViolationError on any violation; the caller closes the
   * session with it. Frames after CLOSE_SESSION are ignored.
   */
  receive(message: Uint8Array, now: number): void {
    if (this.state === 'closed') return;
    this.stats.bytesReceived += message.length;
    this.stats.messagesReceived++;
    if (message.length > this.local.maxMessageSize) {
      throw violation(
        WsErrorCode.FRAME_SIZE_ERROR,
        `message of ${message.length} bytes > max ${this.local.maxMessageSize}`,
      );
    }
    if (message.length === 0) throw violation(WsErrorCode.FRAME_ENCODING_ERROR, 'empty message');
    const r = new ByteReader(message);
    // CLOSE_SESSION ends the session: whatever follows it in the message is ignored.
    while (r.remaining > 0 && (this.state as string) !== 'closed') {
      const frame = readFrame(r);
      this.stats.framesReceived++;
      this.onFrame(frame, now);
    }
  }

  private onFrame(f: Frame, now: number): void {
    if (!this.settingsReceived) {
      if (f.type !== 'settings')
        throw violation(WsErrorCode.SETTINGS_ERROR, `first frame is ${f.type}, not settings`);
      this.onSettings(f.settings);
      return;
    }
    switch (f.type) {
      case 'settings':
        throw violation(WsErrorCode.SETTINGS_ERROR, 'second SETTINGS frame');
      case 'ping':
        if (this.controlBytes > this.maxQueuedControlBytes) {
          throw violation(
            WsErrorCode.EXCESSIVE_LOAD,
            `${this.controlBytes} bytes of control frames queued > ${this.maxQueuedControlBytes}`,
          );
        }
        this.queueControl({ type: 'pong', id: f.id });
        return;
      case 'pong': {
        const sentAt = this.pings.get(f.id);
        if (sentAt === undefined) return;
        this.pings.delete(f.id);
        // Pongs come back in order on a reliable carrier: older pings still listed were answered too.
        for (const [id, at] of this.pings) if (at <= sentAt) this.pings.delete(id);
        this.latestRtt = now - sentAt;
        this.rttSample(now - sentAt);
        return;
      }
      case 'max-streams': {
        const i = f.bidi ? 0 : 1;
        if (f.max > this.peerMaxStreams[i]) {
          this.peerMaxStreams[i] = f.max;
          this.events.streamCredit();
        }
        return;
      }
      case 'max-stream-data': {
        const s = this.lookupSendSide(f.streamId, 'MAX_STREAM_DATA');
        if (!s?.send) return;
        if (f.max > s.send.maxData) {
          s.send.maxData = f.max;
          this.schedule(s);
        }
        return;
      }
      case 'stop-sending': {
        const s = this.lookupSendSide(f.streamId, 'STOP_SENDING');
        if (!s?.send || s.send.reset || s.send.fin === 'sent') return;
        this.resetSend(
          s,
          f.code,
          new QuiverTransportError('stop sending requested by peer', {
            source: 'stream',
            streamErrorCode: f.code,
          }),
        );
        this.events.stopSending(s.id, f.code);
        this.maybeRelease(s);
        return;
      }
      case 'reset-stream': {
        const s = this.lookupRecvSide(f.streamId, 'RESET_STREAM', false);
        if (s?.recv?.state !== 'open') return;
        s.recv.state = 'reset';
        s.recv.discard = true;
        s.recv.consumed = s.recv.received;
        this.creditPending.delete(s.id);
        this.events.streamReset(s.id, f.code);
        this.maybeRelease(s);
        return;
      }
      case 'stream':
        this.onStreamFrame(f.streamId, f.data, f.fin);
        return;
      case 'datagram':
        if (f.data.length > this.local.maxDatagramSize) {
          throw violation(
            WsErrorCode.FRAME_SIZE_ERROR,
            `datagram of ${f.data.length} bytes > max ${this.local.maxDatagramSize}`,
          );
        }
        if (this.state !== 'open') return;
        this.events.datagram(detach(f.data));
        return;
      case 'close':
        this.state = 'closed';
        this.dropAll();
        this.events.closeReceived(f.code, f.reason);
        return;
    }
  }

  private onSettings(settings: Map<number, number>): void {
    const get = (id: number, name: string, min: number): number => {
      const v = settings.get(id);
      if (v === undefined) throw violation(WsErrorCode.SETTINGS_ERROR, `${name} missing`);
      if (v < min) throw violation(WsErrorCode.SETTINGS_ERROR, `${name} = ${v} < ${min}`);
      return v;
    };
    // Unknown setting ids are ignored so that later versions can add settings (as HTTP/3 does, RFC 9114 §7.2.4.1).
    const peer: WireSettings = {
      maxMessageSize: get(SettingId.MAX_MESSAGE_SIZE, 'max_message_size', MIN_MESSAGE_SIZE),
      initialMaxStreamsBidi: get(SettingId.INITIAL_MAX_STREAMS_BIDI, 'initial_max_streams_bidi', 0),
      initialMaxStreamsUni: get(SettingId.INITIAL_MAX_STREAMS_UNI, 'initial_max_streams_uni', 0),
      initialMaxStreamData: get(SettingId.INITIAL_MAX_STREAM_DATA, 'initial_max_stream_data', 1),
      maxDatagramSize: get(SettingId.MAX_DATAGRAM_SIZE, 'max_datagram_size', 0),
    };
    this.settingsReceived = true;
    this.peer = peer;
    this.peerMaxStreams = [peer.initialMaxStreamsBidi, peer.initialMaxStreamsUni];
    this.events.ready();
  }

  /**
   * Resolves a stream id named by a frame that acts on our sending side. Returns undefined for a stream that was
   * opened and has since been released (late frames are harmless on an ordered carrier and are ignored).
   */
  private lookupSendSide(id: number, what: string): CoreStream | undefined {
    if (!this.isLocal(id) && !isBidirectional(id)) {
      throw violation(WsErrorCode.STREAM_STATE_ERROR, `${what} on receive-only stream ${id}`);
    }
    return this.lookupExisting(id, what);
  }

  private lookupRecvSide(id: number, what: string, opening: boolean): CoreStream | undefined {
    if (this.isLocal(id) && !isBidirectional(id)) {
      throw violation(WsErrorCode.STREAM_STATE_ERROR, `${what} on send-only stream ${id}`);
    }
    if (opening && !this.isLocal(id)) {
      const dir = isBidirectional(id) ? 0 : 1;
      const index = Math.floor(id / 4);
      if (index >= this.nextPeer[dir]) return this.openPeer(id, dir, index);
    }
    return this.lookupExisting(id, what);
  }

  private lookupExisting(id: number, what: string): CoreStream | undefined {
    const dir = isBidirectional(id) ? 0 : 1;
    const index = Math.floor(id / 4);
    const next = this.isLocal(id) ? this.nextLocal[dir] : this.nextPeer[dir];
    if (index >= next) {
      throw violation(
        WsErrorCode.STREAM_STATE_ERROR,
        `${what} on ${this.isLocal(id) ? 'locally' : 'peer'}-initiated stream ${id}, which was never opened`,
      );
    }
    return this.streams.get(id);
  }

  private openPeer(id: number, dir: number, index: number): CoreStream {
    if (index >= this.localMaxStreams[dir]) {
      throw violation(
        WsErrorCode.STREAM_LIMIT_ERROR,
        `stream ${id} exceeds the ${dir === 0 ? 'bidirectional' : 'unidirectional'} stream limit ${this.localMaxStreams[dir]}`,
      );
    }
    if (index !== this.nextPeer[dir]) {
      throw violation(
        WsErrorCode.STREAM_STATE_ERROR,
        `stream ${id} opened out of order (expected ${this.nextPeer[dir] * 4 + (id & 3)})`,
      );
    }
    this.nextPeer[dir]++;
    const s: CoreStream = { id, send: dir === 0 ? this.newSendSide() : undefined, recv: this.newRecvSide() };
    this.streams.set(id, s);
    this.events.incomingStream(id, dir === 0);
    return s;
  }

  private newSendSide(): SendSide {
    return {
      queue: [],
      queuedBytes: 0,
      sent: 0,
      maxData: this.peer?.initialMaxStreamData ?? 0,
      fin: 'none',
      finDone: undefined,
      reset: false,
      inRotation: false,
    };
  }

  private newRecvSide(): RecvSide {
    return {
      received: 0,
      consumed: 0,
      maxData: this.local.initialMaxStreamData,
      state: 'open',
      discard: false,
      creditPending: false,
    };
  }

  private onStreamFrame(id: number, data: Uint8Array, fin: boolean): void {
    const known = this.lookupRecvSide(id, 'STREAM', true);
    // Every stream's receive side stays in the map until the peer's FIN or RESET_STREAM, and the carrier is
    // ordered: a STREAM frame for a released stream can only be data after FIN or reset.
    if (known?.recv?.state !== 'open') {
      throw violation(WsErrorCode.STREAM_STATE_ERROR, `data on stream ${id} after its FIN or reset`);
    }
    const recv = known.recv;
    const end = recv.received + data.length;
    if (end > recv.maxData) {
      throw violation(
        WsErrorCode.FLOW_CONTROL_ERROR,
        `stream ${id} sent up to byte ${end}, beyond the ${recv.maxData} granted`,
      );
    }
    recv.received = end;
    if (fin) recv.state = 'fin';
    if (recv.discard) {
      this.stats.discardedStreamBytes += data.length;
      recv.consumed = recv.received;
      this.maybeRelease(known);
      return;
    }
    this.events.streamData(id, detach(data), fin);
    // The application may already have read everything before this (possibly empty) FIN.
    if (fin) this.maybeRelease(known);
  }

  private rttSample(sample: number): void {
    const s = this.stats;
    // RFC 9002 §5.3, without ack delay: the peer answers PING as soon as it reads it.
    if (s.smoothedRtt === 0 && s.minRtt === 0) {
      s.smoothedRtt = sample;
      s.rttVariation = sample / 2;
      s.minRtt = sample;
      return;
    }
    s.minRtt = Math.min(s.minRtt, sample);
    s.rttVariation = 0.75 * s.rttVariation + 0.25 * Math.abs(s.smoothedRtt - sample);
    s.smoothedRtt = 0.875 * s.smoothedRtt + 0.125 * sample;
  }

  // ---- local operations ----

  /** Opens a stream; undefined when the peer's MAX_STREAMS does not allow one more (wait for `streamCredit`). */
  openStream(bidirectional: boolean): number | undefined {
    if (this.state !== 'open' || !this.peer) return undefined;
    const dir = bidirectional ? 0 : 1;
    if (this.nextLocal[dir] >= this.peerMaxStreams[dir]) return undefined;
    const id = this.nextLocal[dir]++ * 4 + (dir << 1) + (this.role === 'client' ? 0 : 1);
    const s: CoreStream = {
      id,
      send: this.newSendSide(),
      recv: bidirectional ? this.newRecvSide() : undefined,
    };
    this.streams.set(id, s);
    // An empty STREAM frame opens the stream right away, so the peer sees streams in creation order even before
    // any data is written.
    this.queueControl({ type: 'stream', streamId: id, data: new Uint8Array(0), fin: false });
    return id;
  }

  /** Queues data; `done` runs once it is copied into an outgoing message (or with an error if never sent). */
  write(id: number, data: Uint8Array, done: Done): void {
    const send = this.streams.get(id)?.send;
    if (!send || send.reset || send.fin !== 'none' || this.state !== 'open') {
      done(new QuiverTransportError('stream is not writable', { source: 'stream' }));
      return;
    }
    send.queue.push({ data, offset: 0, done });
    send.queuedBytes += data.length;
    this.schedule(this.streams.get(id)!);
  }

  /** Queues FIN after the data already queued. */
  finish(id: number, done: Done): void {
    const s = this.streams.get(id);
    if (!s?.send || s.send.reset || s.send.fin !== 'none' || this.state !== 'open') {
      done(new QuiverTransportError('stream is not writable', { source: 'stream' }));
      return;
    }
    s.send.fin = 'pending';
    s.send.finDone = done;
    this.schedule(s);
  }

  /** RESET_STREAM: abandons queued data (RFC 9000 §3.1 "Reset Sent"). */
  resetStream(id: number, code: number): void {
    const s = this.streams.get(id);
    if (!s?.send || s.send.reset || s.send.fin === 'sent' || this.state !== 'open') return;
    this.resetSend(
      s,
      code,
      new QuiverTransportError('stream reset', { source: 'stream', streamErrorCode: code }),
    );
    this.maybeRelease(s);
  }

  private resetSend(s: CoreStream, code: number, error: Error): void {
    const send = s.send!;
    send.reset = true;
    this.failQueue(send, error);
    this.queueControl({ type: 'reset-stream', streamId: s.id, code });
  }

  private failQueue(send: SendSide, error: Error): void {
    const queue = send.queue;
    send.queue = [];
    send.queuedBytes = 0;
    for (const c of queue) c.done(error);
    const finDone = send.finDone;
    send.finDone = undefined;
    finDone?.(error);
  }

  /** STOP_SENDING (RFC 9000 §3.5): incoming data is dropped from now on; the peer answers with RESET_STREAM. */
  stopSending(id: number, code: number): void {
    const s = this.streams.get(id);
    if (!s?.recv || s.recv.discard) return;
    s.recv.discard = true;
    s.recv.consumed = s.recv.received;
    this.creditPending.delete(id);
    if (s.recv.state === 'open' && this.state === 'open') {
      this.queueControl({ type: 'stop-sending', streamId: id, code });
    }
    this.maybeRelease(s);
  }

  /**
   * The application consumed `n` bytes: once less than half the window is left, the window slides forward with
   * MAX_STREAM_DATA (RFC 9000 §4.2), so a fast reader is never stalled by a round trip.
   */
  consumed(id: number, n: number): void {
    const s = this.streams.get(id);
    if (!s?.recv) return;
    const recv = s.recv;
    recv.consumed += n;
    if (recv.state === 'open' && !recv.discard) {
      const window = this.local.initialMaxStreamData;
      if (recv.maxData - recv.consumed < window / 2) {
        recv.maxData = recv.consumed + window;
        this.creditPending.add(id);
      }
    }
    this.maybeRelease(s);
  }

  private maybeRelease(s: CoreStream): void {
    const sendDone = !s.send || s.send.reset || s.send.fin === 'sent';
    const recvDone = !s.recv || (s.recv.state !== 'open' && s.recv.consumed >= s.recv.received);
    if (!sendDone || !recvDone) return;
    this.streams.delete(s.id);
    this.creditPending.delete(s.id);
    if (!this.isLocal(s.id)) {
      // RFC 9000 §4.6: the limit is cumulative, so each released peer stream lets the peer open one more.
      const dir = isBidirectional(s.id) ? 0 : 1;
      this.peerReleased[dir]++;
      this.localMaxStreams[dir] =
        this.peerReleased[dir] +
        (dir === 0 ? this.local.initialMaxStreamsBidi : this.local.initialMaxStreamsUni);
      this.maxStreamsPending[dir] = true;
    }
  }

  /** Queues a datagram, or returns why it was dropped (the caller counts congestion drops before calling). */
  sendDatagram(data: Uint8Array): DatagramDropReason | undefined {
    if (this.state !== 'open') return 'closed';
    if (data.length > this.maxDatagramSize) return 'too-large';
    const w = new ByteWriter(data.length + 9);
    writeFrame(w, { type: 'datagram', data });
    const frame = w.finish();
    this.datagrams.push(frame);
    this.datagramBytes += frame.length;
    return undefined;
  }

  /** Counts a datagram the caller dropped (e.g. its receive queue was full) in `stats.datagrams`. */
  countDatagramDrop(direction: 'outgoing' | 'incoming', reason: DatagramDropReason): void {
    const m =
      direction === 'outgoing' ? this.stats.datagrams.droppedOutgoing : this.stats.datagrams.droppedIncoming;
    m[reason] = (m[reason] ?? 0) + 1;
  }

  /** When the oldest PING still unanswered was sent, `undefined` when none is. */
  get oldestPingSentAt(): number | undefined {
    for (const at of this.pings.values()) return at;
    return undefined;
  }

  /** Sends a PING whose PONG yields an RTT sample. */
  ping(now: number): void {
    if (this.state !== 'open') return;
    const id = this.pingSeq++;
    this.pings.set(id, now);
    // Unanswered pings (a peer that never answers) must not pile up.
    if (this.pings.size > 16) this.pings.delete(this.pings.keys().next().value!);
    this.queueControl({ type: 'ping', id });
  }

  /**
   * CLOSE_SESSION (the analogue of CLOSE_WEBTRANSPORT_SESSION, draft-ietf-webtrans-http3 §5): queued data is
   * abandoned and nothing follows the close frame.
   */
  close(code: number, reason: string): void {
    if (this.state !== 'open') return;
    this.dropAll();
    // SETTINGS must still go first if nothing was sent yet (a server closing right after accept).
    this.control = this.settingsSent ? [] : this.control.slice(0, 1);
    this.controlBytes = this.control.reduce((n, c) => n + c.length, 0);
    this.queueControl({
      type: 'close',
      code: code >>> 0,
      reason: truncateUtf8(reason, MAX_CLOSE_REASON_BYTES),
    });
    this.state = 'closing';
  }

  /** Abandons all streams (session ended): pending writes fail with a session error. */
  dropAll(error = new QuiverTransportError('session closed', { source: 'session' })): void {
    if (this.datagrams.length > 0) {
      const m = this.stats.datagrams.droppedOutgoing;
      m.closed = (m.closed ?? 0) + this.datagrams.length;
    }
    this.datagrams = [];
    this.datagramBytes = 0;
    for (const s of this.streams.values()) if (s.send) this.failQueue(s.send, error);
    this.rotation = [];
    this.creditPending.clear();
    this.maxStreamsPending = [false, false];
  }

  /** Marks the session finished (socket gone): nothing more is produced or accepted. */
  terminate(): void {
    if (this.state !== 'closed') this.dropAll();
    this.state = 'closed';
    this.control = [];
    this.controlBytes = 0;
  }

  private schedule(s: CoreStream): void {
    const send = s.send!;
    if (send.inRotation) return;
    const hasData = send.queuedBytes > 0 && send.sent < send.maxData;
    const finOnly = send.queuedBytes === 0 && send.fin === 'pending';
    if (hasData || finOnly) {
      send.inRotation = true;
      this.rotation.push(s.id);
    }
  }

  // ---- output ----

  /**
   * Builds the next outgoing message: control frames first, then datagrams, then stream data round-robin, one
   * frame of at most maxStreamFrameSize per stream per turn so that a bulk stream cannot starve the others.
   */
  nextMessage(): Uint8Array | undefined {
    // A flush asks until there is nothing left: that last call must not allocate a message buffer (off the V8 heap
    // at this size, so it costs more than the check), once per flush of every session.
    if (this.state === 'closed' || !this.hasPendingOutput) return undefined;
    const budget = this.outgoingBudget();
    const single = this.soleFrame(budget);
    if (single) return single;
    const w = new ByteWriter(256);
    let frames = 0;
    while (this.control.length > 0 && (frames === 0 || w.length + this.control[0].length <= budget)) {
      const c = this.control.shift()!;
      this.controlBytes -= c.length;
      w.bytes(c);
      frames++;
    }
    if (this.state === 'closing') {
      if (frames === 0) return undefined;
      this.state = 'closed';
      return this.emit(w, frames);
    }
    if (!this.peer) return frames > 0 ? this.emit(w, frames) : undefined;
    for (let dir = 0; dir < 2; dir++) {
      if (this.maxStreamsPending[dir] && w.length + 9 <= budget) {
        this.maxStreamsPending[dir] = false;
        writeFrame(w, { type: 'max-streams', bidi: dir === 0, max: this.localMaxStreams[dir] });
        frames++;
      }
    }
    for (const id of this.creditPending) {
      if (w.length + 17 > budget) break;
      this.creditPending.delete(id);
      const recv = this.streams.get(id)?.recv;
      if (recv?.state !== 'open') continue;
      writeFrame(w, { type: 'max-stream-data', streamId: id, max: recv.maxData });
      frames++;
    }
    while (this.datagrams.length > 0 && w.length + this.datagrams[0].length <= budget) {
      const d = this.datagrams.shift()!;
      this.datagramBytes -= d.length;
      w.bytes(d);
      frames++;
      this.stats.datagrams.sent++;
    }
    const completed: Done[] = [];
    let turns = this.rotation.length;
    while (this.rotation.length > 0 && w.length + STREAM_FRAME_OVERHEAD < budget) {
      const id = this.rotation.shift()!;
      const s = this.streams.get(id);
      if (!s?.send) continue;
      const send = s.send;
      send.inRotation = false;
      if (send.reset) continue;
      const credit = send.maxData - send.sent;
      const n = Math.min(
        send.queuedBytes,
        credit,
        this.maxStreamFrameSize,
        budget - w.length - STREAM_FRAME_OVERHEAD,
      );
      const fin = send.fin === 'pending' && n === send.queuedBytes;
      if (n <= 0 && !fin) {
        this.schedule(s);
        if (--turns <= 0) break;
        continue;
      }
      w.varint(fin ? 0x09 : 0x08);
      w.varint(id);
      w.varint(n);
      w.ensure(n);
      let left = n;
      while (left > 0) {
        const c = send.queue[0];
        const take = Math.min(left, c.data.length - c.offset);
        w.buf.set(c.data.subarray(c.offset, c.offset + take), w.length);
        w.length += take;
        c.offset += take;
        left -= take;
        if (c.offset === c.data.length) {
          send.queue.shift();
          completed.push(c.done);
        }
      }
      send.queuedBytes -= n;
      send.sent += n;
      frames++;
      if (fin) {
        send.fin = 'sent';
        if (send.finDone) completed.push(send.finDone);
        send.finDone = undefined;
        this.maybeRelease(s);
      } else {
        this.schedule(s);
      }
      turns--;
    }
    if (frames === 0) return undefined;
    const message = this.emit(w, frames);
    for (const done of completed) done();
    return message;
  }

  /**
   * The message when exactly one control frame or one datagram is pending and nothing else: that frame, already
   * encoded, is the whole message. A game's tick sends one datagram per session; building it a second buffer and
   * copying it there cost an allocation off the V8 heap per message for nothing.
   */
  private soleFrame(budget: number): Uint8Array | undefined {
    if (this.state !== 'open' || !this.peer || this.control.length + this.datagrams.length !== 1)
      return undefined;
    if (this.rotation.length > 0 || this.creditPending.size > 0) return undefined;
    if (this.maxStreamsPending[0] || this.maxStreamsPending[1]) return undefined;
    const frame = this.control.length > 0 ? this.control[0] : this.datagrams[0];
    if (frame.length > budget) return undefined;
    if (this.control.length > 0) {
      this.control.pop();
      this.controlBytes -= frame.length;
    } else {
      this.datagrams.pop();
      this.datagramBytes -= frame.length;
      this.stats.datagrams.sent++;
    }
    return this.emitFrames(frame, 1);
  }

  private emit(w: ByteWriter, frames: number): Uint8Array {
    return this.emitFrames(w.finish(), frames);
  }

  private emitFrames(message: Uint8Array, frames: number): Uint8Array {
    this.settingsSent = true;
    this.stats.framesSent += frames;
    this.stats.messagesSent++;
    this.stats.bytesSent += message.length;
    return message;
  }
}
