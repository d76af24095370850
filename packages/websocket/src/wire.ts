import { decodeVarint, VarintRangeError, varintLength, writeVarintAt } from '@quiver/transport';
import { violation, WsErrorCode } from './codes.js';

/**
 * Byte-level encoding of the Quiver WebSocket framing (see README "Framing"). Integers are QUIC variable-length
 * integers (RFC 9000 §16) except error and close codes, which are fixed 32-bit big-endian like the
 * CLOSE_WEBTRANSPORT_SESSION capsule (draft-ietf-webtrans-http3 §5). JavaScript numbers hold 53 bits, so
 * varints above 2^53 - 1 are refused as FRAME_ENCODING_ERROR rather than silently rounded.
 */

/** Frame type code points of the Quiver WebSocket framing (README "Framing"). */
export const FrameType = {
  /** Length-prefixed (id, value) pairs; the first frame each side sends, exactly once. */
  SETTINGS: 0x00,
  /** Asks for a PONG with the same id (RTT sample, keep-alive). */
  PING: 0x01,
  /** Answers the PING with the same id. */
  PONG: 0x02,
  /** Cumulative count of bidirectional streams the peer may open (as RFC 9000 §19.11). */
  MAX_STREAMS_BIDI: 0x03,
  /** Cumulative count of unidirectional streams the peer may open (as RFC 9000 §19.11). */
  MAX_STREAMS_UNI: 0x04,
  /** Credit: the peer may send a stream's bytes up to this offset (as RFC 9000 §19.10). */
  MAX_STREAM_DATA: 0x05,
  /** The sender abandons its side of a stream, with a 32-bit code. */
  RESET_STREAM: 0x06,
  /** The receiver asks the sender to stop, with a 32-bit code; it answers with RESET_STREAM. */
  STOP_SENDING: 0x07,
  /** Stream data, in order. */
  STREAM: 0x08,
  /** Stream data, then the end of the stream (FIN). */
  STREAM_FIN: 0x09,
  /** One datagram. */
  DATAGRAM: 0x0a,
  /** Ends the session with a 32-bit code and a UTF-8 reason of at most 1024 bytes. */
  CLOSE_SESSION: 0x0b,
} as const;
/** One of the {@link FrameType} code points. */
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** SETTINGS identifiers; all five are required, unknown ones are ignored (README "Framing"). */
export const SettingId = {
  /** Largest WebSocket message the sender accepts, in bytes (at least 1500). */
  MAX_MESSAGE_SIZE: 0x01,
  /** Bidirectional streams the peer may open before any MAX_STREAMS_BIDI. */
  INITIAL_MAX_STREAMS_BIDI: 0x02,
  /** Unidirectional streams the peer may open before any MAX_STREAMS_UNI. */
  INITIAL_MAX_STREAMS_UNI: 0x03,
  /** Receive window of each new stream, in bytes (at least 1). */
  INITIAL_MAX_STREAM_DATA: 0x04,
  /** Largest datagram payload the sender accepts, in bytes; 0 disables datagrams toward it. */
  MAX_DATAGRAM_SIZE: 0x05,
} as const;

/** W3C WebTransport §6.3: a close reason is at most 1024 UTF-8 bytes. */
export const MAX_CLOSE_REASON_BYTES = 1024;

/**
 * Largest SETTINGS body accepted. The five settings take at most 80 bytes; the rest leaves room for later ids while
 * keeping the map of ids a decoder builds small whatever the message size.
 */
export const MAX_SETTINGS_LENGTH = 1024;

/**
 * Returns `data` itself, or a copy when it is a small view of a larger buffer. Stream data and datagrams are views
 * of the WebSocket message they arrived in; kept as they are, one byte left unread would pin the whole message (up
 * to `maxMessageSize`), so the memory a peer can make us hold would no longer be bounded by the windows and queues
 * that account for it. With this, what is held is at most twice what is accounted.
 */
export function detach(data: Uint8Array): Uint8Array {
  return data.byteLength * 2 < data.buffer.byteLength ? data.slice() : data;
}

/** A growable byte buffer for encoding frames; it doubles its capacity when full. */
export class ByteWriter {
  /** The backing buffer; only its first `length` bytes are written. Replaced when it grows. */
  buf: Uint8Array;
  /** Bytes written so far. */
  length = 0;

  /** @param initial Initial capacity in bytes. */
  constructor(initial = 256) {
    this.buf = new Uint8Array(initial);
  }

  /** Grows `buf` so that `n` more bytes fit. */
  ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }

  /** Appends one byte. */
  u8(v: number): void {
    this.ensure(1);
    this.buf[this.length++] = v;
  }

  /** Appends a 32-bit big-endian unsigned integer. */
  u32(v: number): void {
    this.ensure(4);
    const b = this.buf;
    let i = this.length;
    b[i++] = (v >>> 24) & 0xff;
    b[i++] = (v >>> 16) & 0xff;
    b[i++] = (v >>> 8) & 0xff;
    b[i++] = v & 0xff;
    this.length = i;
  }

  /** Appends `v` as a shortest-form QUIC varint; throws RangeError unless it is a safe non-negative integer. */
  varint(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`varint out of range: ${v}`);
    this.ensure(varintLength(v));
    this.length = writeVarintAt(this.buf, this.length, v);
  }

  /** Appends (copies) `data`. */
  bytes(data: Uint8Array): void {
    this.ensure(data.length);
    this.buf.set(data, this.length);
    this.length += data.length;
  }

  /** The written bytes, as a view of `buf` (no copy): further writes may overwrite or detach it. */
  finish(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

/** A cursor over one WebSocket message; running short throws FRAME_ENCODING_ERROR. */
export class ByteReader {
  /** Index in `buf` of the next byte to read. */
  pos = 0;
  constructor(
    /** The message read from; returned slices are views of it. */
    readonly buf: Uint8Array,
  ) {}

  /** Bytes left after `pos`. */
  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private need(n: number, what: string): void {
    if (this.buf.length - this.pos < n) {
      throw violation(WsErrorCode.FRAME_ENCODING_ERROR, `truncated ${what} at byte ${this.pos}`);
    }
  }

  /** Reads a 32-bit big-endian unsigned integer; `what` names the field in the error. */
  u32(what: string): number {
    this.need(4, what);
    const b = this.buf;
    const p = this.pos;
    this.pos += 4;
    return ((b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]) >>> 0;
  }

  /** Reads a QUIC varint; FRAME_ENCODING_ERROR above 2^53 - 1. `what` names the field in the error. */
  varint(what: string): number {
    let r: ReturnType<typeof decodeVarint>;
    try {
      r = decodeVarint(this.buf, this.pos);
    } catch (e) {
      if (e instanceof VarintRangeError) {
        throw violation(WsErrorCode.FRAME_ENCODING_ERROR, `${what} above 2^53 - 1`);
      }
      throw e;
    }
    if (!r) throw violation(WsErrorCode.FRAME_ENCODING_ERROR, `truncated ${what} at byte ${this.pos}`);
    this.pos += r.length;
    return r.value;
  }

  /** Returns the next `n` bytes as a view (no copy); `what` names the field in the error. */
  bytes(n: number, what: string): Uint8Array {
    this.need(n, what);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}

/** One decoded frame of the Quiver WebSocket framing. */
export type Frame =
  | {
      /** Discriminant. */
      type: 'settings';
      /** Values by {@link SettingId}, unknown ids included. */
      settings: Map<number, number>;
    }
  | {
      /** Discriminant. */
      type: 'ping';
      /** Echoed by the PONG. */
      id: number;
    }
  | {
      /** Discriminant. */
      type: 'pong';
      /** The id of the PING answered. */
      id: number;
    }
  | {
      /** Discriminant. */
      type: 'max-streams';
      /** MAX_STREAMS_BIDI when true, MAX_STREAMS_UNI when false. */
      bidi: boolean;
      /** Cumulative count of streams of that type the receiver may open. */
      max: number;
    }
  | {
      /** Discriminant. */
      type: 'max-stream-data';
      /** The stream id. */
      streamId: number;
      /** Offset up to which the receiver may send on the stream. */
      max: number;
    }
  | {
      /** Discriminant. */
      type: 'reset-stream';
      /** The stream id. */
      streamId: number;
      /** Application error code, 0 to 2^32 - 1. */
      code: number;
    }
  | {
      /** Discriminant. */
      type: 'stop-sending';
      /** The stream id. */
      streamId: number;
      /** Application error code, 0 to 2^32 - 1. */
      code: number;
    }
  | {
      /** Discriminant. */
      type: 'stream';
      /** The stream id. */
      streamId: number;
      /** The next bytes of the stream (a view of the message when decoded). */
      data: Uint8Array;
      /** The stream ends after `data` (STREAM_FIN). */
      fin: boolean;
    }
  | {
      /** Discriminant. */
      type: 'datagram';
      /** The payload (a view of the message when decoded). */
      data: Uint8Array;
    }
  | {
      /** Discriminant. */
      type: 'close';
      /** Application close code, 0 to 2^32 - 1. */
      code: number;
      /** UTF-8 reason, at most 1024 bytes encoded. */
      reason: string;
    };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Decodes the next frame of a message. Throws ProtocolViolationError on any malformed input. */
export function readFrame(r: ByteReader): Frame {
  const type = r.varint('frame type');
  switch (type) {
    case FrameType.SETTINGS: {
      const len = r.varint('SETTINGS length');
      if (len > MAX_SETTINGS_LENGTH) {
        throw violation(WsErrorCode.FRAME_SIZE_ERROR, `SETTINGS of ${len} bytes > ${MAX_SETTINGS_LENGTH}`);
      }
      const body = new ByteReader(r.bytes(len, 'SETTINGS'));
      const settings = new Map<number, number>();
      while (body.remaining > 0) {
        const id = body.varint('setting id');
        const value = body.varint('setting value');
        if (settings.has(id)) throw violation(WsErrorCode.SETTINGS_ERROR, `setting ${id} repeated`);
        settings.set(id, value);
      }
      return { type: 'settings', settings };
    }
    case FrameType.PING:
      return { type: 'ping', id: r.varint('PING id') };
    case FrameType.PONG:
      return { type: 'pong', id: r.varint('PONG id') };
    case FrameType.MAX_STREAMS_BIDI:
    case FrameType.MAX_STREAMS_UNI:
      return { type: 'max-streams', bidi: type === FrameType.MAX_STREAMS_BIDI, max: r.varint('MAX_STREAMS') };
    case FrameType.MAX_STREAM_DATA:
      return {
        type: 'max-stream-data',
        streamId: r.varint('stream id'),
        max: r.varint('MAX_STREAM_DATA'),
      };
    case FrameType.RESET_STREAM:
      return { type: 'reset-stream', streamId: r.varint('stream id'), code: r.u32('RESET_STREAM code') };
    case FrameType.STOP_SENDING:
      return { type: 'stop-sending', streamId: r.varint('stream id'), code: r.u32('STOP_SENDING code') };
    case FrameType.STREAM:
    case FrameType.STREAM_FIN: {
      const streamId = r.varint('stream id');
      const len = r.varint('STREAM length');
      return {
        type: 'stream',
        streamId,
        data: r.bytes(len, 'STREAM data'),
        fin: type === FrameType.STREAM_FIN,
      };
    }
    case FrameType.DATAGRAM: {
      const len = r.varint('DATAGRAM length');
      return { type: 'datagram', data: r.bytes(len, 'DATAGRAM payload') };
    }
    case FrameType.CLOSE_SESSION: {
      const code = r.u32('CLOSE_SESSION code');
      const len = r.varint('CLOSE_SESSION reason length');
      if (len > MAX_CLOSE_REASON_BYTES) {
        throw violation(
          WsErrorCode.FRAME_SIZE_ERROR,
          `close reason of ${len} bytes > ${MAX_CLOSE_REASON_BYTES}`,
        );
      }
      const bytes = r.bytes(len, 'CLOSE_SESSION reason');
      let reason: string;
      try {
        reason = utf8.decode(bytes);
      } catch {
        throw violation(WsErrorCode.FRAME_ENCODING_ERROR, 'close reason is not UTF-8');
      }
      return { type: 'close', code, reason };
    }
    default:
      throw violation(WsErrorCode.FRAME_TYPE_ERROR, `unknown frame type 0x${type.toString(16)}`);
  }
}

/** Decodes every frame of one WebSocket message. */
export function decodeFrames(message: Uint8Array): Frame[] {
  const r = new ByteReader(message);
  const frames: Frame[] = [];
  while (r.remaining > 0) frames.push(readFrame(r));
  return frames;
}

/** Appends one encoded frame to `w`. */
export function writeFrame(w: ByteWriter, f: Frame): void {
  switch (f.type) {
    case 'settings': {
      const body = new ByteWriter(32);
      for (const [id, value] of f.settings) {
        body.varint(id);
        body.varint(value);
      }
      w.varint(FrameType.SETTINGS);
      w.varint(body.length);
      w.bytes(body.finish());
      return;
    }
    case 'ping':
    case 'pong':
      w.varint(f.type === 'ping' ? FrameType.PING : FrameType.PONG);
      w.varint(f.id);
      return;
    case 'max-streams':
      w.varint(f.bidi ? FrameType.MAX_STREAMS_BIDI : FrameType.MAX_STREAMS_UNI);
      w.varint(f.max);
      return;
    case 'max-stream-data':
      w.varint(FrameType.MAX_STREAM_DATA);
      w.varint(f.streamId);
      w.varint(f.max);
      return;
    case 'reset-stream':
    case 'stop-sending':
      w.varint(f.type === 'reset-stream' ? FrameType.RESET_STREAM : FrameType.STOP_SENDING);
      w.varint(f.streamId);
      w.u32(f.code);
      return;
    case 'stream':
      w.varint(f.fin ? FrameType.STREAM_FIN : FrameType.STREAM);
      w.varint(f.streamId);
      w.varint(f.data.length);
      w.bytes(f.data);
      return;
    case 'datagram':
      w.varint(FrameType.DATAGRAM);
      w.varint(f.data.length);
      w.bytes(f.data);
      return;
    case 'close': {
      const reason = new TextEncoder().encode(f.reason);
      w.varint(FrameType.CLOSE_SESSION);
      w.u32(f.code);
      w.varint(reason.length);
      w.bytes(reason);
      return;
    }
  }
}

/** Encodes frames into one message (for tests and tools; the session core builds messages itself). */
export function encodeFrames(frames: Frame[]): Uint8Array {
  const w = new ByteWriter();
  for (const f of frames) writeFrame(w, f);
  return w.finish();
}
