import { ProtocolViolationError } from '@quiver/transport';
import { ByteReader, ByteWriter } from '@quiver/websocket';

/**
 * The tunnel framing (README "Tunnel framing"): what an upstream POST body and the payload of one downstream
 * server-sent event hold. It carries the messages of `@quiver/websocket`'s framing (streams, credit, datagrams,
 * close) as numbered DATA frames, so that a message lost with a dropped request or a cut event stream is sent again
 * and a message received twice is recognised. Integers are QUIC variable-length integers (RFC 9000 §16).
 */

export const TunnelFrameType = {
  /** seq v, length v, one message of the WebSocket framing. */
  DATA: 0x01,
  /** seq v: every message up to and including seq has arrived (cumulative, like TCP's). */
  ACK: 0x02,
  /** code v (an RFC 6455 §7.4 close code), length v, UTF-8 reason: the carrier is closed. */
  CLOSE: 0x03,
  /** First downstream frame of a new session: session id and its secret token, both ASCII. */
  HELLO: 0x04,
} as const;

/** Error codes of tunnel violations (README "Errors"); numbered after `@quiver/websocket`'s so both can share logs. */
export const HttpErrorCode = {
  /** A POST body or event payload that does not parse, or an event stream that is not base64 `data:` lines. */
  MALFORMED: 0x20,
  /** A POST body or an event over `maxBatchBytes`, or a DATA message over `maxMessageSize`. */
  BATCH_TOO_LARGE: 0x21,
  /** A sequence number beyond the receive window, or an ACK for a message never sent. */
  SEQUENCE_ERROR: 0x22,
  /** Messages buffered out of order, or waiting for an acknowledgement, beyond their byte bounds. */
  BUFFER_LIMIT: 0x23,
  /** The downstream or the upstream stayed disconnected for longer than `reconnectTimeoutMs`. */
  RECONNECT_TIMEOUT: 0x24,
} as const;
export type HttpErrorCode = (typeof HttpErrorCode)[keyof typeof HttpErrorCode];

const names = new Map<number, string>(Object.entries(HttpErrorCode).map(([k, v]) => [v, k]));

/** A tunnel violation by the peer, as the typed error the session's `closed` rejects with. */
export function httpViolation(code: HttpErrorCode, detail: string): ProtocolViolationError {
  const name = names.get(code) ?? `UNKNOWN_${code}`;
  return new ProtocolViolationError(`${name}: ${detail}`, code, name);
}

/** One decoded tunnel frame (see {@link TunnelFrameType}). */
export type TunnelFrame =
  | {
      /** A numbered message. */
      type: 'data';
      /** Its sequence number, from 1 in each direction. */
      seq: number;
      /** One message of the WebSocket framing. */
      data: Uint8Array;
    }
  | {
      /** A cumulative acknowledgement. */
      type: 'ack';
      /** Every message up to and including this one has arrived. */
      seq: number;
    }
  | {
      /** The carrier is closed. */
      type: 'close';
      /** An RFC 6455 §7.4 close code. */
      code: number;
      /** UTF-8, at most 123 bytes. */
      reason: string;
    }
  | {
      /** The first downstream frame of a new session. */
      type: 'hello';
      /** The session id (ASCII, at most 64 bytes). */
      sessionId: string;
      /** The secret that authorises resumes and POSTs of the session (ASCII, at most 64 bytes). */
      token: string;
    };

const utf8 = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

/** Largest close reason carried (RFC 6455 §5.5 allows 123 bytes in a WebSocket close; we keep the same bound). */
const MAX_REASON = 123;
/** Session ids and tokens are 22 base64url characters (128 bits); a little slack for later versions. */
const MAX_ID = 64;

export function writeTunnelFrame(w: ByteWriter, f: TunnelFrame): void {
  switch (f.type) {
    case 'data':
      w.varint(TunnelFrameType.DATA);
      w.varint(f.seq);
      w.varint(f.data.length);
      w.bytes(f.data);
      return;
    case 'ack':
      w.varint(TunnelFrameType.ACK);
      w.varint(f.seq);
      return;
    case 'close': {
      const reason = encoder.encode(f.reason).subarray(0, MAX_REASON);
      w.varint(TunnelFrameType.CLOSE);
      w.varint(f.code);
      w.varint(reason.length);
      w.bytes(reason);
      return;
    }
    case 'hello': {
      const id = encoder.encode(f.sessionId);
      const token = encoder.encode(f.token);
      w.varint(TunnelFrameType.HELLO);
      w.varint(id.length);
      w.bytes(id);
      w.varint(token.length);
      w.bytes(token);
      return;
    }
  }
}

/** Encodes `frames` back to back: one POST body or one event payload. */
export function encodeTunnelFrames(frames: TunnelFrame[]): Uint8Array {
  const w = new ByteWriter(64);
  for (const f of frames) writeTunnelFrame(w, f);
  return w.finish();
}

/**
 * Decodes a whole batch. Every length is checked against what is left of the batch before anything is allocated
 * (DATA payloads are views into `batch`), so the work is linear in the input. Throws ProtocolViolationError.
 */
export function decodeTunnelFrames(batch: Uint8Array, maxMessageSize: number): TunnelFrame[] {
  const r = new ByteReader(batch);
  const out: TunnelFrame[] = [];
  try {
    while (r.remaining > 0) {
      const type = r.varint('tunnel frame type');
      switch (type) {
        case TunnelFrameType.DATA: {
          const seq = r.varint('DATA seq');
          const len = r.varint('DATA length');
          if (len > maxMessageSize) {
            throw httpViolation(
              HttpErrorCode.BATCH_TOO_LARGE,
              `DATA of ${len} bytes > max message size ${maxMessageSize}`,
            );
          }
          if (len === 0) throw httpViolation(HttpErrorCode.MALFORMED, 'empty DATA');
          out.push({ type: 'data', seq, data: r.bytes(len, 'DATA payload') });
          break;
        }
        case TunnelFrameType.ACK:
          out.push({ type: 'ack', seq: r.varint('ACK seq') });
          break;
        case TunnelFrameType.CLOSE: {
          const code = r.varint('CLOSE code');
          const len = r.varint('CLOSE reason length');
          if (len > MAX_REASON) throw httpViolation(HttpErrorCode.MALFORMED, `close reason of ${len} bytes`);
          out.push({ type: 'close', code, reason: utf8.decode(r.bytes(len, 'CLOSE reason')) });
          break;
        }
        case TunnelFrameType.HELLO: {
          const ascii = (what: string) => {
            const len = r.varint(`${what} length`);
            if (len > MAX_ID) throw httpViolation(HttpErrorCode.MALFORMED, `${what} of ${len} bytes`);
            return utf8.decode(r.bytes(len, what));
          };
          const sessionId = ascii('session id');
          out.push({ type: 'hello', sessionId, token: ascii('token') });
          break;
        }
        default:
          throw httpViolation(HttpErrorCode.MALFORMED, `unknown tunnel frame type ${type}`);
      }
    }
  } catch (e) {
    if (e instanceof ProtocolViolationError && e.code === HttpErrorCode.BATCH_TOO_LARGE) throw e;
    if (e instanceof ProtocolViolationError && e.code >= 0x20) throw e;
    // Truncation and invalid UTF-8 from the shared reader: one code for every unparseable body.
    throw httpViolation(HttpErrorCode.MALFORMED, e instanceof Error ? e.message : String(e));
  }
  return out;
}

// ---- base64 (the payload of a `data:` line) ----

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_INDEX = new Int16Array(128).fill(-1);
for (let i = 0; i < 64; i++) B64_INDEX[B64.charCodeAt(i)] = i;

type NodeBuffer = {
  from(s: string, enc: 'base64'): Uint8Array;
  from(b: ArrayBufferLike, off: number, len: number): { toString(enc: 'base64'): string };
};
const NodeBuf = (globalThis as { Buffer?: NodeBuffer }).Buffer;

/** RFC 4648 §4 base64 with padding. */
export function toBase64(data: Uint8Array): string {
  if (NodeBuf) return NodeBuf.from(data.buffer, data.byteOffset, data.byteLength).toString('base64');
  let s = '';
  for (let i = 0; i < data.length; i += 0x8000) {
    s += String.fromCharCode(...data.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/** Strict RFC 4648 §4 decoding (Node's decoder skips bad characters, so validity is checked first). */
export function fromBase64(text: string): Uint8Array {
  const n = text.length;
  if (n % 4 !== 0) throw httpViolation(HttpErrorCode.MALFORMED, `base64 of length ${n}`);
  const pad = n > 0 && text.charCodeAt(n - 1) === 61 ? (text.charCodeAt(n - 2) === 61 ? 2 : 1) : 0;
  for (let i = 0; i < n - pad; i++) {
    const c = text.charCodeAt(i);
    if (c >= 128 || B64_INDEX[c] < 0) throw httpViolation(HttpErrorCode.MALFORMED, `invalid base64 at ${i}`);
  }
  if (NodeBuf) return NodeBuf.from(text, 'base64');
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** One server-sent event carrying a batch (WHATWG HTML §9.2.5: a `data:` line and a blank line). */
export function encodeEvent(batch: Uint8Array): string {
  return `data:${toBase64(batch)}\n\n`;
}

/** A comment line: keeps proxies and the client's idle timer from closing a quiet stream. */
export const KEEPALIVE_EVENT = ':\n\n';

/** Base64 length of a batch of `bytes` bytes, plus the `data:` prefix and line ends. */
export function eventLength(bytes: number): number {
  return 4 * Math.ceil(bytes / 3) + 8;
}

/**
 * Incremental `text/event-stream` parser (WHATWG HTML §9.2.6 "Interpreting an event stream") reduced to what the
 * server sends: `data` fields, comments, blank lines dispatching. Other fields are ignored as the spec says. A line
 * longer than `maxLineBytes` is a violation, so a peer that never sends a newline costs bounded memory.
 */
export class EventStreamParser {
  private partial = '';
  private data: string[] = [];
  private dataLength = 0;
  private readonly decoder = new TextDecoder('utf-8');
  private skipLf = false;

  constructor(private readonly maxLineBytes: number) {}

  /** Feeds bytes; returns the `data` of every event completed by them. */
  push(chunk: Uint8Array): string[] {
    return this.pushText(this.decoder.decode(chunk, { stream: true }));
  }

  /** As `push`, for text already decoded from UTF-8. */
  pushText(text: string): string[] {
    const events: string[] = [];
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      if (c === 10 && this.skipLf && i === start) {
        // The LF of a CRLF whose CR ended the previous chunk or line.
        this.skipLf = false;
        start = i + 1;
        continue;
      }
      this.skipLf = c === 13;
      const line = this.partial + text.slice(start, i);
      this.partial = '';
      start = i + 1;
      if (c === 13 && text.charCodeAt(i + 1) === 10) {
        i++;
        start = i + 1;
        this.skipLf = false;
      }
      const event = this.line(line);
      if (event !== undefined) events.push(event);
    }
    if (start < text.length) {
      this.skipLf = false;
      this.partial += text.slice(start);
    }
    if (this.partial.length > this.maxLineBytes) {
      throw httpViolation(
        HttpErrorCode.BATCH_TOO_LARGE,
        `event stream line over ${this.maxLineBytes} bytes without an end`,
      );
    }
    return events;
  }

  private line(line: string): string | undefined {
    if (line === '') {
      if (this.data.length === 0) return undefined;
      const data = this.data.join('\n');
      this.data = [];
      this.dataLength = 0;
      return data;
    }
    if (line.charCodeAt(0) === 58) return undefined; // ':' comment
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field !== 'data') return undefined;
    this.dataLength += value.length;
    if (this.dataLength > this.maxLineBytes) {
      throw httpViolation(HttpErrorCode.BATCH_TOO_LARGE, `event over ${this.maxLineBytes} bytes`);
    }
    this.data.push(value);
    return undefined;
  }
}

/** Reads the QUIC varint (RFC 9000 §16) at `p`: [value, end], or undefined when `b` ends inside it. */
function peekVarint(b: Uint8Array, p: number): [number, number] | undefined {
  if (p >= b.length) return undefined;
  const len = 1 << (b[p] >>> 6);
  if (p + len > b.length) return undefined;
  let v = b[p] & 0x3f;
  for (let i = 1; i < len; i++) v = v * 256 + b[p + i];
  return [v, p + len];
}

/**
 * The end (exclusive) of the tunnel frame starting at `p`, or undefined when its header is not complete yet. Only
 * the header is looked at: a frame's length is known, and checked against its bound, before its payload arrives.
 */
function frameEnd(b: Uint8Array, p: number, maxMessageSize: number): number | undefined {
  const type = peekVarint(b, p);
  if (!type) return undefined;
  if (type[0] < TunnelFrameType.DATA || type[0] > TunnelFrameType.HELLO) {
    throw httpViolation(HttpErrorCode.MALFORMED, `unknown tunnel frame type ${type[0]}`);
  }
  const first = peekVarint(b, type[1]);
  if (!first) return undefined;
  switch (type[0]) {
    case TunnelFrameType.ACK:
      return first[1];
    case TunnelFrameType.DATA: {
      const len = peekVarint(b, first[1]);
      if (!len) return undefined;
      if (len[0] > maxMessageSize) {
        throw httpViolation(
          HttpErrorCode.BATCH_TOO_LARGE,
          `DATA of ${len[0]} bytes > max message size ${maxMessageSize}`,
        );
      }
      return len[1] + len[0];
    }
    case TunnelFrameType.CLOSE: {
      const len = peekVarint(b, first[1]);
      if (!len) return undefined;
      if (len[0] > MAX_REASON)
        throw httpViolation(HttpErrorCode.MALFORMED, `close reason of ${len[0]} bytes`);
      return len[1] + len[0];
    }
    case TunnelFrameType.HELLO: {
      if (first[0] > MAX_ID) throw httpViolation(HttpErrorCode.MALFORMED, `session id of ${first[0]} bytes`);
      const token = peekVarint(b, first[1] + first[0]);
      if (!token) return undefined;
      if (token[0] > MAX_ID) throw httpViolation(HttpErrorCode.MALFORMED, `token of ${token[0]} bytes`);
      return token[1] + token[0];
    }
    default:
      throw httpViolation(HttpErrorCode.MALFORMED, `unknown tunnel frame type ${type[0]}`);
  }
}

/**
 * Incremental decoder of tunnel frames arriving as a byte stream (the upload stream's request body, README
 * "Upload stream"): chunks go in as they come, whole frames come out. It holds at most the bytes of one unfinished
 * frame, whose length is checked against `maxMessageSize` from its header before the payload is waited for, and
 * joins them once when the frame is complete, so the work is linear in the input however it is chunked.
 */
export class TunnelFrameReader {
  private parts: Uint8Array[] = [];
  private partBytes = 0;
  /** End of the unfinished frame, relative to its first byte, once its header is known. */
  private need: number | undefined;

  constructor(private readonly maxMessageSize: number) {}

  /** Bytes of an unfinished frame held. */
  get buffered(): number {
    return this.partBytes;
  }

  /** Feeds one chunk; returns the frames it completed. Throws ProtocolViolationError (MALFORMED, BATCH_TOO_LARGE). */
  push(chunk: Uint8Array): TunnelFrame[] {
    if (chunk.length === 0) return [];
    if (this.need !== undefined && this.partBytes + chunk.length < this.need) {
      this.parts.push(chunk);
      this.partBytes += chunk.length;
      return [];
    }
    let buf = chunk;
    if (this.parts.length > 0) {
      this.parts.push(chunk);
      buf = new Uint8Array(this.partBytes + chunk.length);
      let o = 0;
      for (const p of this.parts) {
        buf.set(p, o);
        o += p.length;
      }
    }
    this.parts = [];
    this.partBytes = 0;
    this.need = undefined;
    let pos = 0;
    let end = 0;
    for (;;) {
      const e = frameEnd(buf, pos, this.maxMessageSize);
      if (e === undefined || e > buf.length) {
        this.need = e === undefined ? undefined : e - pos;
        break;
      }
      pos = e;
      end = e;
      if (pos === buf.length) break;
    }
    const frames = end > 0 ? decodeTunnelFrames(buf.subarray(0, end), this.maxMessageSize) : [];
    if (end < buf.length) {
      // The unfinished frame is kept by itself (a copy), not as a view pinning the whole chunk.
      const rest = buf.slice(end);
      this.parts.push(rest);
      this.partBytes = rest.length;
    }
    return frames;
  }
}
