/**
 * Drives a sans-IO `H3Connection` from fuzz bytes and checks what it does.
 *
 * The input is a script of operations a peer (and, between them, the local application) could cause: stream
 * data with or without FIN on small stream ids, RESET_STREAM, STOP_SENDING, datagrams, and application calls
 * (accept, reject, open streams, send, close, drain, GOAWAY, connect). Peer input must never throw, and after
 * every operation the commands and events must obey the contract of `src/core/api.ts` and QUIC stream rules,
 * checked by `Checker`. Violations throw `FuzzPropertyError`.
 */
import {
  createH3Connection,
  type H3Connection,
  type H3Event,
  type H3Limits,
  type H3Stats,
  type QuicCommand,
  type Role,
  webTransportCodeToHttp,
} from '../src/core/index.js';
import { encodeCapsule, encodeCloseCapsule } from '../src/core/capsules.js';
import { encodeFrame, encodeSettings } from '../src/core/frames.js';
import { encodeFieldSection } from '../src/core/qpack/index.js';
import { encodeVarint } from '../src/core/varint.js';
import { FuzzPropertyError } from './errors.js';

function check(ok: boolean, message: string): asserts ok {
  if (!ok) throw new FuzzPropertyError(message);
}

// ------------------------------------------------------------------------------------------------ script format

export const OP_DATA = 0; // 0..3: stream data; bit 3 of the op byte is FIN
export const OP_RESET = 4;
export const OP_STOP = 5; // bit 3 of the op byte: the acknowledgement of our FIN instead
export const OP_DATAGRAM = 6;
export const OP_APP = 7;

/** Wire codes a peer might send in RESET_STREAM / STOP_SENDING: H3 codes, WebTransport range edges, GREASE. */
const CODES: ReadonlyArray<bigint> = [
  0n,
  0x100n,
  0x10cn,
  0x10bn,
  0x170d7b68n,
  0x3994bd84n,
  webTransportCodeToHttp(0),
  webTransportCodeToHttp(7),
  webTransportCodeToHttp(0x1d),
  webTransportCodeToHttp(0xffffffff),
  webTransportCodeToHttp(0x1e) - 1n, // a reserved code point inside the WebTransport range
  0x21n,
  (1n << 62n) - 1n,
];

/** One operation of a script, decoded. */
export interface Op {
  op: number;
  sid: number;
  code: number;
  arg: number;
  data: Uint8Array;
}

/** Splits a script into its config byte and operations; a truncated last operation is dropped. */
export function parseScript(input: Uint8Array): { config: number; ops: Op[] } {
  const ops: Op[] = [];
  let pos = 1;
  const byte = (): number => (pos < input.length ? input[pos++] : -1);
  while (pos < input.length) {
    const op = byte();
    const kind = op & 0x07;
    if (kind <= 3 || kind === OP_DATAGRAM) {
      const sid = kind === OP_DATAGRAM ? 0 : byte();
      let len = byte();
      if (sid < 0 || len < 0) break;
      if (kind !== OP_DATAGRAM && len & 0x80) {
        const lo = byte();
        if (lo < 0) break;
        len = ((len & 0x7f) << 8) | lo;
      }
      const data = input.slice(pos, Math.min(input.length, pos + len));
      pos += data.length;
      ops.push({ op, sid, code: 0, arg: 0, data });
    } else if (kind === OP_RESET || kind === OP_STOP) {
      const sid = byte();
      const code = byte();
      if (sid < 0 || code < 0) break;
      ops.push({ op, sid, code, arg: 0, data: new Uint8Array(0) });
    } else {
      const arg = byte();
      if (arg < 0) break;
      ops.push({ op, sid: 0, code: 0, arg, data: new Uint8Array(0) });
    }
  }
  return { config: input[0] ?? 0, ops };
}

export function serializeScript(config: number, ops: ReadonlyArray<Op>): Uint8Array {
  const parts: number[] = [config];
  for (const o of ops) {
    const kind = o.op & 0x07;
    if (kind <= 3) {
      const data = o.data.subarray(0, 0x7fff);
      parts.push(o.op, o.sid);
      if (data.length < 0x80) parts.push(data.length);
      else parts.push(0x80 | (data.length >> 8), data.length & 0xff);
      for (const b of data) parts.push(b);
    } else if (kind === OP_DATAGRAM) {
      const data = o.data.subarray(0, 0xff);
      parts.push(o.op, data.length);
      for (const b of data) parts.push(b);
    } else if (kind === OP_RESET || kind === OP_STOP) parts.push(o.op, o.sid, o.code);
    else parts.push(o.op, o.arg);
  }
  return Uint8Array.from(parts);
}

/** Builds scripts for seeds. */
export class Script {
  private parts: number[] = [];
  /** The first byte configures the run: bit 0 auto-accepts session requests, bit 1 selects tight limits. */
  constructor(config: number) {
    this.parts.push(config);
  }
  data(streamId: number, bytes: Uint8Array, fin = false): this {
    // Long payloads are cut into ops of at most 0x7fff bytes.
    let off = 0;
    do {
      const n = Math.min(bytes.length - off, 0x7fff);
      const last = off + n >= bytes.length;
      this.parts.push(OP_DATA | (fin && last ? 0x08 : 0), streamId);
      if (n < 0x80) this.parts.push(n);
      else this.parts.push(0x80 | (n >> 8), n & 0xff);
      for (let i = 0; i < n; i++) this.parts.push(bytes[off + i]);
      off += n;
    } while (off < bytes.length);
    return this;
  }
  reset(streamId: number, codeIndex = 6): this {
    this.parts.push(OP_RESET, streamId, codeIndex);
    return this;
  }
  stop(streamId: number, codeIndex = 6): this {
    this.parts.push(OP_STOP, streamId, codeIndex);
    return this;
  }
  datagram(bytes: Uint8Array): this {
    this.parts.push(OP_DATAGRAM, Math.min(bytes.length, 0xff), ...bytes.subarray(0, 0xff));
    return this;
  }
  app(action: number): this {
    this.parts.push(OP_APP, action);
    return this;
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

export const APP_ACCEPT = 0;
export const APP_REJECT = 1;
export const APP_OPEN_BIDI = 2;
export const APP_OPEN_UNI = 3;
export const APP_DATAGRAM = 4;
export const APP_CLOSE = 5;
export const APP_DRAIN = 6;
export const APP_GOAWAY = 7;
export const APP_CONNECT = 8; // client only; on a server it means accept
export const APP_WRITE = 9; // write and FIN the oldest local stream
export const APP_RESET_LOCAL = 10;
export const APP_STOP_LOCAL = 11;
const APP_ACTIONS = 12;

// -------------------------------------------------------------------------------------------- wire fragments

const CHROMIUM_SETTINGS: Array<readonly [bigint, bigint]> = [
  [0x01n, 65536n],
  [0x06n, 16384n],
  [0x07n, 100n],
  [0x33n, 1n],
  [0xffd277n, 1n],
  [0x2b603742n, 1n],
  [0x1f4a5b6c7d8e9f21n, 3n],
];
export const CONNECT_FIELDS: Array<[string, string]> = [
  [':scheme', 'https'],
  [':method', 'CONNECT'],
  [':authority', '127.0.0.1:4433'],
  [':path', '/echo'],
  [':protocol', 'webtransport'],
  ['sec-webtransport-http3-draft02', '1'],
  ['origin', 'http://127.0.0.1:8080'],
];
const cat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};
const te = new TextEncoder();

export const wire = {
  controlStream: (settings = CHROMIUM_SETTINGS) =>
    cat(encodeVarint(0), encodeSettings(settings), encodeFrame(0x21n + 0x1fn * 5n, new Uint8Array(2))),
  headers: (fields: Array<[string, string]>) => encodeFrame(0x01n, encodeFieldSection(fields)),
  capsuleData: (capsule: Uint8Array) => encodeFrame(0x00n, capsule),
  close: (code: number, reason: string) => encodeFrame(0x00n, encodeCloseCapsule(code, reason)),
  drain: () => encodeFrame(0x00n, encodeCapsule(0x78aen, new Uint8Array(0))),
  greaseCapsule: () => encodeFrame(0x00n, encodeCapsule(0x29n + 0x1fn * 3n, new Uint8Array(5))),
  wtBidi: (sessionId: number, payload: string) =>
    cat(encodeVarint(0x41), encodeVarint(sessionId), te.encode(payload)),
  wtUni: (sessionId: number, payload: string) =>
    cat(encodeVarint(0x54), encodeVarint(sessionId), te.encode(payload)),
  datagram: (sessionId: number, payload: string) => cat(encodeVarint(sessionId / 4), te.encode(payload)),
};

/** A Chromium-like client up to an accepted session 0 (server role, auto-accept on). */
export function serverSessionPrelude(config = 0x01): Script {
  return new Script(config)
    .data(2, wire.controlStream())
    .data(6, encodeVarint(2))
    .data(10, encodeVarint(3))
    .data(0, wire.headers(CONNECT_FIELDS))
    .data(0, wire.greaseCapsule());
}

/** A server answering the client's first CONNECT (stream 0) with 200 (client role; the driver connects first). */
export function clientSessionPrelude(config = 0x01): Script {
  return new Script(config)
    .data(3, wire.controlStream([...CHROMIUM_SETTINGS, [0x08n, 1n]]))
    .data(7, encodeVarint(2))
    .data(11, encodeVarint(3))
    .data(
      0,
      wire.headers([
        [':status', '200'],
        ['sec-webtransport-http3-draft', 'draft02'],
      ]),
    );
}

// ------------------------------------------------------------------------------------------------- checking

const TIGHT_LIMITS: Partial<H3Limits> = {
  maxFieldSectionSize: 400, // Chromium's CONNECT takes 363
  maxFramePayload: 512,
  maxSessions: 2,
  maxStreamsPerSession: 3,
  maxBufferedUnknownSessionBytes: 300,
  maxCapsuleSize: 64,
};

/** Gauges; every other stat is a counter and never decreases. */
const GAUGES: ReadonlySet<string> = new Set(['sessions', 'bufferedUnknownSessionBytes', 'closesInFlight']);

interface StreamView {
  sessionId: number;
  /** Data may still arrive from the peer. */
  recvOpen: boolean;
  local: boolean;
  bidi: boolean;
}

/** Tracks the connection as the adapter would see it, and checks every drain against the contract. */
export class Checker {
  failed = false;
  closes = 0;
  /** Server: requested, not yet answered by the application. */
  pending: number[] = [];
  /** Sessions the application can use (accepted or established), until session-closed. */
  live = new Set<number>();
  /** Sessions the application has heard of (request or connect), for session-closed checks. */
  known = new Set<number>();
  closed = new Set<number>();
  streams = new Map<number, StreamView>();
  localStreams: number[] = [];
  finWritten = new Set<number>();
  droppedMalformed = 0;
  droppedUnknown = 0;
  lastStats: H3Stats | undefined;
  events: H3Event[] = [];
  commands: QuicCommand[] = [];
  /** Locally initiated streams that exist on the wire (we wrote to them). */
  localOpened = new Set<number>();
  /** Peer streams whose receiving part ended (FIN or RESET_STREAM delivered). */
  recvDone = new Set<number>();
  /** Streams the peer sent STOP_SENDING for (the QUIC stack resets them itself, RFC 9000 §3.5). */
  stopReceived = new Set<number>();

  constructor(
    readonly conn: H3Connection,
    readonly role: Role,
    readonly limits: H3Limits,
  ) {}

  /**
   * What a QUIC stack lets through to HTTP/3 (RFC 9000 §2.1, §3, §19.4, §19.5, §19.8): frames for locally
   * initiated streams that do not exist yet, for the wrong direction, or after the receiving part ended are
   * connection errors or ignored at the QUIC layer, so the driver does not deliver them.
   */
  quicAllows(kind: 'data' | 'reset' | 'stop', streamId: number): boolean {
    const uni = (streamId & 2) !== 0;
    const local = !this.peerInitiated(streamId);
    if (kind === 'stop') return local ? this.localOpened.has(streamId) : !uni;
    if (local && (uni || !this.localOpened.has(streamId))) return false;
    return !this.recvDone.has(streamId);
  }

  peerInitiated(streamId: number): boolean {
    return ((streamId & 1) === 0) === (this.role === 'server');
  }

  /** Drains and checks; `peerInput` says the step was peer input (nothing may happen after a failure). */
  drain(peerInput: boolean): void {
    const commands = this.conn.drainCommands();
    const events = this.conn.drainEvents();
    this.events.push(...events);
    this.commands.push(...commands);
    if (this.failed && peerInput) {
      check(commands.length === 0 && events.length === 0, 'output after a connection error');
    }
    const touched = new Set<number>();
    for (const c of commands) this.command(c, touched);
    for (const e of events) this.event(e, commands, touched);
    this.stats();
  }

  private command(c: QuicCommand, touched: Set<number>): void {
    switch (c.type) {
      case 'stream-write': {
        touched.add(c.streamId);
        check(Number.isSafeInteger(c.streamId) && c.streamId >= 0, 'bad stream id in a command');
        // RFC 9000 §2.1: we cannot write on a peer's unidirectional stream.
        check(
          !(this.peerInitiated(c.streamId) && (c.streamId & 2) !== 0),
          `write on peer uni stream ${c.streamId}`,
        );
        check(!this.finWritten.has(c.streamId), `write on stream ${c.streamId} after its FIN`);
        if (!this.peerInitiated(c.streamId)) this.localOpened.add(c.streamId);
        if (c.fin) this.finWritten.add(c.streamId);
        return;
      }
      case 'stream-reset':
        touched.add(c.streamId);
        // RFC 9000 §3: RESET_STREAM is for a sending part; a peer's uni stream has none.
        check(
          !(this.peerInitiated(c.streamId) && (c.streamId & 2) !== 0),
          `reset of peer uni stream ${c.streamId}`,
        );
        check(typeof c.code === 'bigint' && c.code >= 0n && c.code < 1n << 62n, 'reset code not a varint');
        return;
      case 'stream-stop-sending':
        touched.add(c.streamId);
        // STOP_SENDING is for a receiving part; our own uni stream has none.
        check(
          !(!this.peerInitiated(c.streamId) && (c.streamId & 2) !== 0),
          `STOP_SENDING on our uni stream ${c.streamId}`,
        );
        check(typeof c.code === 'bigint' && c.code >= 0n && c.code < 1n << 62n, 'stop code not a varint');
        return;
      case 'datagram':
        check(c.data.length > 0, 'empty datagram');
        return;
      case 'connection-close':
        this.closes++;
        check(this.closes === 1, 'more than one connection-close');
        return;
    }
  }

  private event(e: H3Event, commands: QuicCommand[], touched: Set<number>): void {
    switch (e.type) {
      case 'connection-error':
        check(!this.failed, 'second connection-error');
        this.failed = true;
        check(
          commands.some((c) => c.type === 'connection-close' && c.code === e.code),
          'connection-error without its connection-close',
        );
        return;
      case 'stream-error': {
        // Nothing is left to abort once the peer ended its side and ours is finished or stopped by the peer.
        const over =
          this.recvDone.has(e.streamId) &&
          (this.finWritten.has(e.streamId) || this.stopReceived.has(e.streamId));
        check(
          touched.has(e.streamId) || over,
          `stream-error on ${e.streamId} without a reset or stop-sending of it`,
        );
        return;
      }
      case 'session-request':
        check(this.role === 'server', 'session-request on a client');
        check(
          e.sessionId % 4 === 0 && !this.known.has(e.sessionId),
          `bad or repeated session-request ${e.sessionId}`,
        );
        this.known.add(e.sessionId);
        this.pending.push(e.sessionId);
        return;
      case 'session-established':
        check(
          this.role === 'client' && this.known.has(e.sessionId),
          `session-established for unknown ${e.sessionId}`,
        );
        check(!this.live.has(e.sessionId) && !this.closed.has(e.sessionId), 'session established twice');
        check(e.status >= 200 && e.status < 300, 'established with a non-2xx status');
        this.live.add(e.sessionId);
        return;
      case 'session-rejected':
        check(
          this.role === 'client' && this.known.has(e.sessionId),
          `session-rejected for unknown ${e.sessionId}`,
        );
        check(
          !this.live.has(e.sessionId) && !this.closed.has(e.sessionId),
          'rejected after established or closed',
        );
        this.closed.add(e.sessionId);
        this.endStreams(e.sessionId);
        return;
      case 'session-closed':
        check(this.known.has(e.sessionId), `session-closed for unknown ${e.sessionId}`);
        check(!this.closed.has(e.sessionId), `session ${e.sessionId} closed twice`);
        this.closed.add(e.sessionId);
        this.live.delete(e.sessionId);
        this.pending = this.pending.filter((id) => id !== e.sessionId);
        this.endStreams(e.sessionId);
        return;
      case 'session-draining':
        check(
          this.known.has(e.sessionId) && !this.closed.has(e.sessionId),
          'draining an unknown or closed session',
        );
        return;
      case 'stream-opened': {
        check(this.live.has(e.sessionId), `stream-opened in session ${e.sessionId}, which is not live`);
        check(this.peerInitiated(e.streamId), `stream-opened for our own stream ${e.streamId}`);
        check(((e.streamId & 2) === 0) === e.bidirectional, 'stream-opened direction does not match the id');
        check(!this.streams.has(e.streamId), `stream ${e.streamId} opened twice`);
        this.streams.set(e.streamId, {
          sessionId: e.sessionId,
          recvOpen: true,
          local: false,
          bidi: e.bidirectional,
        });
        return;
      }
      case 'stream-data': {
        const s = this.streams.get(e.streamId);
        check(s !== undefined, `stream-data on ${e.streamId}, never opened`);
        check(s.recvOpen, `stream-data on ${e.streamId} after its end`);
        check(this.live.has(s.sessionId), `stream-data on ${e.streamId} of a session not live`);
        if (e.fin) s.recvOpen = false;
        return;
      }
      case 'stream-reset': {
        const s = this.streams.get(e.streamId);
        check(s?.recvOpen === true, `stream-reset event on ${e.streamId}, not open for reading`);
        check(Number.isInteger(e.code) && e.code >= 0 && e.code <= 0xffffffff, 'stream-reset code not a u32');
        s.recvOpen = false;
        return;
      }
      case 'stream-stop-sending': {
        const s = this.streams.get(e.streamId);
        check(s !== undefined, `stream-stop-sending event on unknown ${e.streamId}`);
        check(s.bidi || s.local, `stream-stop-sending on receive-only stream ${e.streamId}`);
        check(Number.isInteger(e.code) && e.code >= 0 && e.code <= 0xffffffff, 'stop-sending code not a u32');
        return;
      }
      case 'datagram':
        check(this.live.has(e.sessionId), `datagram for session ${e.sessionId}, not live`);
        return;
      case 'datagram-dropped':
        if (e.reason === 'malformed') this.droppedMalformed++;
        else this.droppedUnknown++;
        return;
      case 'settings':
      case 'goaway':
        return;
    }
  }

  private endStreams(sessionId: number): void {
    for (const [id, s] of this.streams) if (s.sessionId === sessionId) this.streams.delete(id);
    this.localStreams = this.localStreams.filter((id) => this.streams.has(id));
  }

  private stats(): void {
    const st = this.conn.getStats();
    for (const [k, v] of Object.entries(st)) check(Number.isSafeInteger(v) && v >= 0, `stat ${k} = ${v}`);
    check(
      st.bufferedUnknownSessionBytes <= this.limits.maxBufferedUnknownSessionBytes,
      'early buffer over its limit',
    );
    // A peer that never answers a close cannot grow the core's record of closes in flight.
    check(st.closesInFlight <= this.limits.maxSessions, 'closes in flight over maxSessions');
    // Every drop is counted: one datagram-dropped event per counted drop.
    check(
      st.datagramsDroppedMalformed === this.droppedMalformed,
      'malformed datagram drops: events and stats differ',
    );
    check(
      st.datagramsDroppedUnknownSession === this.droppedUnknown,
      'unknown-session drops: events and stats differ',
    );
    if (this.lastStats) {
      for (const k of Object.keys(st) as Array<keyof H3Stats>) {
        if (!GAUGES.has(k)) check(st[k] >= this.lastStats[k], `stat ${k} decreased`);
      }
    }
    this.lastStats = st;
  }
}

// -------------------------------------------------------------------------------------------------- driving

export interface DriveResult {
  checker: Checker;
  conn: H3Connection;
}

/** Events and commands with chunk boundaries erased: what must not depend on how QUIC split stream data. */
export function normalizeOutput(c: Checker): unknown {
  const streams = new Map<number, { data: number[]; fin: boolean }>();
  const writes = new Map<number, { data: number[]; fin: boolean }>();
  const events: unknown[] = [];
  for (const e of c.events) {
    switch (e.type) {
      case 'stream-data': {
        const s = streams.get(e.streamId) ?? { data: [], fin: false };
        for (const b of e.data) s.data.push(b);
        s.fin ||= e.fin;
        streams.set(e.streamId, s);
        break;
      }
      case 'settings':
        events.push([e.type, e.webTransportDraft]);
        break;
      case 'connection-error':
      case 'stream-error':
        // Reasons may name what was seen first; codes may not differ.
        events.push([e.type, 'streamId' in e ? e.streamId : -1, e.code]);
        break;
      case 'datagram':
        events.push([e.type, e.sessionId, Array.from(e.data)]);
        break;
      case 'session-request':
      case 'session-established':
        events.push([e.type, e.sessionId, e.headers]);
        break;
      default:
        events.push(e);
    }
  }
  const other: unknown[] = [];
  for (const cmd of c.commands) {
    if (cmd.type === 'stream-write') {
      const w = writes.get(cmd.streamId) ?? { data: [], fin: false };
      for (const b of cmd.data) w.data.push(b);
      w.fin ||= cmd.fin;
      writes.set(cmd.streamId, w);
    } else if (cmd.type === 'datagram') other.push([cmd.type, Array.from(cmd.data)]);
    else other.push([cmd.type, 'streamId' in cmd ? cmd.streamId : -1, cmd.code]);
  }
  const sorted = <T>(m: Map<number, T>) => [...m].sort((a, b) => a[0] - b[0]);
  return { events, streams: sorted(streams), commands: other, writes: sorted(writes) };
}

/** Errors local calls document for states the driver cannot fully predict (limits reached, GOAWAY). */
function expectedLocal(err: unknown): boolean {
  return err instanceof Error && /session limit reached|maxStreamsPerSession|sent GOAWAY/.test(err.message);
}

/**
 * Runs a script on a fresh connection. `onStep` may inspect the checker after each operation.
 */
export function drive(
  role: Role,
  input: Uint8Array,
  options: { split?: (data: Uint8Array) => Uint8Array[]; onStep?: (c: Checker, op: number) => void } = {},
): DriveResult {
  const config = input[0] ?? 0;
  const limits: H3Limits = {
    maxFieldSectionSize: 16 * 1024,
    maxFramePayload: 64 * 1024,
    maxSessions: 16,
    maxStreamsPerSession: 1024,
    maxBufferedUnknownSessionBytes: 64 * 1024,
    maxCapsuleSize: 64 * 1024,
    ...(config & 0x02 ? TIGHT_LIMITS : {}),
  };
  const conn = createH3Connection({ role, limits, seed: 42 });
  const c = new Checker(conn, role, limits);
  conn.start();
  c.drain(false);
  if (role === 'client') {
    const id = conn.connect({ authority: '127.0.0.1:4433', path: '/echo', origin: 'http://127.0.0.1:8080' });
    c.known.add(id);
    c.drain(false);
  }
  const autoAccept = (config & 0x01) !== 0;
  let pos = 1;
  const byte = (): number => (pos < input.length ? input[pos++] : -1);
  while (pos < input.length) {
    const op = byte();
    const kind = op & 0x07;
    if (kind <= 3) {
      const sid = byte();
      let len = byte();
      if (sid < 0 || len < 0) break;
      if (len & 0x80) {
        const lo = byte();
        if (lo < 0) break;
        len = ((len & 0x7f) << 8) | lo;
      }
      const data = input.slice(pos, Math.min(input.length, pos + len));
      pos += data.length;
      const fin = (op & 0x08) !== 0;
      if (c.quicAllows('data', sid)) {
        const parts = options.split && data.length > 1 ? options.split(data) : [data];
        for (let i = 0; i < parts.length; i++) {
          const last = i === parts.length - 1;
          conn.receiveStreamData(sid, parts[i], fin && last);
          if (fin && last) c.recvDone.add(sid);
          c.drain(true);
        }
      }
    } else if (kind === OP_RESET || kind === OP_STOP) {
      const sid = byte();
      const code = byte();
      if (sid < 0 || code < 0) break;
      if (kind === OP_RESET && c.quicAllows('reset', sid)) {
        conn.receiveStreamReset(sid, CODES[code % CODES.length]);
        c.recvDone.add(sid);
        c.drain(true);
      } else if (kind === OP_STOP && op & 0x08) {
        // QUIC's acknowledgement of what we sent on the stream (an engine that tracks it reports any stream).
        conn.receiveStreamAcked(sid);
        c.drain(true);
      } else if (kind === OP_STOP && c.quicAllows('stop', sid)) {
        c.stopReceived.add(sid);
        conn.receiveStopSending(sid, CODES[code % CODES.length]);
        c.drain(true);
      }
    } else if (kind === OP_DATAGRAM) {
      const len = byte();
      if (len < 0) break;
      const data = input.slice(pos, Math.min(input.length, pos + len));
      pos += data.length;
      conn.receiveDatagram(data);
      c.drain(true);
    } else {
      const arg = byte();
      if (arg < 0) break;
      if (!c.failed) {
        try {
          appAction(c, arg);
        } catch (err) {
          if (!expectedLocal(err)) throw err;
        }
        c.drain(false);
      }
    }
    if (autoAccept && !c.failed) {
      while (c.pending.length > 0) {
        const id = c.pending.shift()!;
        conn.acceptSession(id);
        c.live.add(id);
        c.drain(false);
      }
    }
    options.onStep?.(c, op);
  }
  return { checker: c, conn };
}

function appAction(c: Checker, arg: number): void {
  const conn = c.conn;
  const live = [...c.live];
  const session = live.length > 0 ? live[(arg >> 4) % live.length] : undefined;
  switch (arg % APP_ACTIONS) {
    case APP_ACCEPT:
    case APP_CONNECT:
      if (c.role === 'client') {
        const id = conn.connect({ authority: 'example.test', path: `/p${arg}` });
        c.known.add(id);
        return;
      }
      if (c.pending.length > 0) {
        const id = c.pending.shift()!;
        conn.acceptSession(id, arg & 0x80 ? [['x-fuzz', String(arg)]] : []);
        c.live.add(id);
      }
      return;
    case APP_REJECT:
      if (c.role === 'server' && c.pending.length > 0) {
        const id = c.pending.shift()!;
        conn.rejectSession(id, [404, 429, 503][arg % 3]);
        // Rejected sessions raise no session-closed; the application knows it ended them.
        c.closed.add(id);
      }
      return;
    case APP_OPEN_BIDI:
    case APP_OPEN_UNI: {
      if (session === undefined) return;
      const bidi = arg % APP_ACTIONS === APP_OPEN_BIDI;
      const id = conn.openStream(session, bidi);
      c.streams.set(id, { sessionId: session, recvOpen: bidi, local: true, bidi });
      c.localStreams.push(id);
      conn.sendStreamData(id, new Uint8Array([arg]), (arg & 0x80) !== 0);
      return;
    }
    case APP_DATAGRAM:
      if (session !== undefined) conn.sendDatagram(session, new Uint8Array([arg, 1, 2]));
      return;
    case APP_CLOSE:
      if (session !== undefined) conn.closeSession(session, arg * 0x01010101, arg & 1 ? 'fuzz close' : '');
      return;
    case APP_DRAIN:
      if (session !== undefined) conn.drainSession(session);
      return;
    case APP_GOAWAY:
      conn.goaway();
      return;
    case APP_WRITE:
    case APP_RESET_LOCAL:
    case APP_STOP_LOCAL: {
      const ids = [...c.streams.keys()];
      if (ids.length === 0) return;
      const id = ids[(arg >> 4) % ids.length];
      const s = c.streams.get(id)!;
      const a = arg % APP_ACTIONS;
      if (a === APP_WRITE) {
        if (s.local || s.bidi) conn.sendStreamData(id, new Uint8Array([1, 2, 3]), (arg & 0x80) !== 0);
      } else if (a === APP_RESET_LOCAL) {
        if (s.local || s.bidi) conn.resetStream(id, arg);
      } else if (!s.local || s.bidi) {
        conn.stopSending(id, arg);
        s.recvOpen = false;
      }
      return;
    }
  }
}
