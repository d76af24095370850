/**
 * HTTP/3 frames (RFC 9114 §7): encoders, the SETTINGS codec and an incremental per-stream frame parser that
 * accepts arbitrary chunk boundaries, buffers only bounded control frames and streams DATA payloads through.
 */

import { FrameType, H3ErrorCode, HTTP2_ONLY_SETTING_IDS } from './codes.js';
import {
  ByteReader,
  ByteWriter,
  NeedMoreData,
  concatBytes,
  decodeVarint,
  decodeVarintBig,
} from './varint.js';

/** A protocol error found by a parser: the code to close with (connection or stream, the caller decides). */
export interface H3ProtocolError {
  code: bigint;
  reason: string;
}

export function encodeFrame(type: bigint, payload: Uint8Array): Uint8Array {
  return new ByteWriter().varint(type).varint(payload.length).bytes(payload).finish();
}

/** Only the DATA frame header: the payload follows unframed, so large writes are not copied. */
export function encodeDataFrameHeader(length: number): Uint8Array {
  return new ByteWriter().varint(FrameType.DATA).varint(length).finish();
}

export function encodeSettings(settings: ReadonlyArray<readonly [bigint, bigint]>): Uint8Array {
  const w = new ByteWriter();
  for (const [id, value] of settings) w.varint(id).varint(value);
  return encodeFrame(FrameType.SETTINGS, w.finish());
}

export function encodeGoaway(id: number | bigint): Uint8Array {
  return encodeFrame(FrameType.GOAWAY, new ByteWriter().varint(id).finish());
}

/**
 * RFC 9114 §7.2.4: parses a SETTINGS payload. Duplicates and the HTTP/2-only identifiers are H3_SETTINGS_ERROR;
 * a truncated pair is H3_FRAME_ERROR (§7.1); unknown identifiers are kept (the caller ignores them, §7.2.4.1).
 */
export function decodeSettings(payload: Uint8Array): Map<bigint, bigint> | H3ProtocolError {
  const settings = new Map<bigint, bigint>();
  const r = new ByteReader(payload);
  try {
    while (r.remaining > 0) {
      const id = r.readVarintBig();
      const value = r.readVarintBig();
      if (HTTP2_ONLY_SETTING_IDS.has(id)) {
        return {
          code: H3ErrorCode.H3_SETTINGS_ERROR,
          reason: `HTTP/2 setting 0x${id.toString(16)} (RFC 9114 §7.2.4.1)`,
        };
      }
      if (settings.has(id)) {
        return {
          code: H3ErrorCode.H3_SETTINGS_ERROR,
          reason: `duplicate setting 0x${id.toString(16)} (RFC 9114 §7.2.4)`,
        };
      }
      settings.set(id, value);
    }
  } catch (e) {
    if (e instanceof NeedMoreData)
      return { code: H3ErrorCode.H3_FRAME_ERROR, reason: 'truncated SETTINGS (RFC 9114 §7.1)' };
    throw e;
  }
  return settings;
}

/** A payload that is exactly one varint (GOAWAY, MAX_PUSH_ID, CANCEL_PUSH); anything else is H3_FRAME_ERROR (§7.1). */
export function decodeSingleVarint(payload: Uint8Array, what: string): bigint | H3ProtocolError {
  const r = decodeVarintBig(payload, 0);
  if (!r || r.length !== payload.length) {
    return { code: H3ErrorCode.H3_FRAME_ERROR, reason: `malformed ${what} frame (RFC 9114 §7.1)` };
  }
  return r.value;
}

/** What a stream does with a frame once its header is known. */
export type FrameAction =
  /** Buffer the whole payload (bounded by the caller) and deliver it as one frame. */
  | { kind: 'buffer' }
  /** Deliver the payload in chunks as it arrives (DATA). */
  | { kind: 'stream' }
  /** Discard the payload (unknown and reserved types, RFC 9114 §9). */
  | { kind: 'skip' }
  | { kind: 'error'; code: bigint; reason: string };

export type FrameItem =
  /** `offset`: where in the pushed chunk this item's bytes end. */
  | { kind: 'frame'; type: bigint; payload: Uint8Array; offset: number }
  /** A piece of a streamed payload; `end` marks the frame's last piece. */
  | { kind: 'data'; type: bigint; chunk: Uint8Array; end: boolean; offset: number }
  | { kind: 'error'; code: bigint; reason: string };

/**
 * Incremental HTTP/3 frame parser for one stream (RFC 9114 §7.1). The `classify` callback decides per frame type
 * and length whether to buffer, stream, skip or reject, which is where per-stream rules and size limits live.
 * After an error the parser ignores further input.
 */
export class FrameParser {
  private header: Uint8Array = new Uint8Array(0);
  private state: 'header' | 'payload' | 'failed' = 'header';
  private type = 0n;
  private remaining = 0;
  private action: FrameAction = { kind: 'skip' };
  private parts: Uint8Array[] = [];

  constructor(private readonly classify: (type: bigint, length: number) => FrameAction) {}

  /** True between frames: a FIN here is clean (§7.1: a truncated last frame is H3_FRAME_ERROR). */
  get atFrameBoundary(): boolean {
    return this.state === 'header' && this.header.length === 0;
  }

  push(chunk: Uint8Array, out: FrameItem[]): void {
    let off = 0;
    while (off < chunk.length && this.state !== 'failed') {
      if (this.state === 'header') {
        // Frame headers are at most 16 bytes; keep only the unconsumed prefix across chunks.
        const avail =
          this.header.length > 0
            ? concatBytes([this.header, chunk.subarray(off, off + 16)])
            : chunk.subarray(off);
        const t = decodeVarintBig(avail, 0);
        if (!t) {
          this.stash(avail);
          return;
        }
        let l: { value: number; length: number } | undefined;
        try {
          l = decodeVarint(avail, t.length);
        } catch {
          this.fail(out, H3ErrorCode.H3_EXCESSIVE_LOAD, 'frame length beyond 2^53');
          return;
        }
        if (!l) {
          this.stash(avail);
          return;
        }
        const used = t.length + l.length - this.header.length;
        off += used;
        this.header = new Uint8Array(0);
        this.type = t.value;
        this.remaining = l.value;
        this.action = this.classify(t.value, l.value);
        if (this.action.kind === 'error') {
          this.fail(out, this.action.code, this.action.reason);
          return;
        }
        this.parts = [];
        this.state = 'payload';
        if (this.remaining === 0) this.finishFrame(out, new Uint8Array(0), off);
        continue;
      }
      // payload
      const n = Math.min(this.remaining, chunk.length - off);
      const piece = chunk.subarray(off, off + n);
      off += n;
      this.remaining -= n;
      if (this.action.kind === 'stream') {
        out.push({ kind: 'data', type: this.type, chunk: piece, end: this.remaining === 0, offset: off });
        if (this.remaining === 0) this.state = 'header';
      } else if (this.action.kind === 'buffer') {
        // A piece held across chunks is copied: a view would pin the caller's whole chunk for a few bytes, so the
        // memory a partial frame holds would no longer be bounded by its announced (and limited) length.
        this.parts.push(this.remaining > 0 ? piece.slice() : piece);
        if (this.remaining === 0) this.finishFrame(out, concatBytes(this.parts), off);
      } else if (this.remaining === 0) {
        this.state = 'header';
      }
    }
  }

  private stash(avail: Uint8Array): void {
    // Copy: the caller may reuse its chunk. `avail` is never cut short here (16 bytes hold any varint pair).
    this.header = avail.slice();
  }

  private finishFrame(out: FrameItem[], payload: Uint8Array, offset: number): void {
    this.state = 'header';
    if (this.action.kind === 'buffer') out.push({ kind: 'frame', type: this.type, payload, offset });
    else if (this.action.kind === 'stream')
      out.push({ kind: 'data', type: this.type, chunk: payload, end: true, offset });
    this.parts = [];
  }

  private fail(out: FrameItem[], code: bigint, reason: string): void {
    this.state = 'failed';
    this.parts = [];
    out.push({ kind: 'error', code, reason });
  }
}
