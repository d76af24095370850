/**
 * The bench's probe message, identical on every transport so that only the transport differs:
 *   [0] tag (which series it belongs to), [1] flags (bit 0: sink, count without echoing),
 *   [2..4) total length (u16 BE, header included), [4..8) sequence (u32 BE),
 *   [8..16) send time (f64 BE, ms of CLOCK_MONOTONIC, shared by every process on the machine, so one-way delay
 *   between a client and a server agent is measurable without clock synchronisation).
 * On byte streams messages follow each other, delimited by their length.
 */
export const HEADER = 16;
export const FLAG_SINK = 1;

/** CLOCK_MONOTONIC in milliseconds (process.hrtime is CLOCK_MONOTONIC on Linux, the same clock in every process). */
export function monoMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export function encodeProbe(tag: number, seq: number, size: number, flags = 0, t = monoMs()): Uint8Array {
  const b = new Uint8Array(Math.max(HEADER, size));
  const v = new DataView(b.buffer);
  b[0] = tag;
  b[1] = flags;
  v.setUint16(2, b.length);
  v.setUint32(4, seq >>> 0);
  v.setFloat64(8, t);
  return b;
}

export interface ProbeHeader {
  tag: number;
  flags: number;
  length: number;
  seq: number;
  sentAt: number;
}

export function readProbe(b: Uint8Array, offset = 0): ProbeHeader {
  const v = new DataView(b.buffer, b.byteOffset + offset, HEADER);
  return {
    tag: b[offset],
    flags: b[offset + 1],
    length: v.getUint16(2),
    seq: v.getUint32(4),
    sentAt: v.getFloat64(8),
  };
}

/** Splits a byte stream back into messages. */
export class Deframer {
  private buf = new Uint8Array(0);
  push(chunk: Uint8Array, onMessage: (m: Uint8Array) => void): void {
    let b: Uint8Array;
    if (this.buf.length === 0) b = chunk;
    else {
      b = new Uint8Array(this.buf.length + chunk.length);
      b.set(this.buf);
      b.set(chunk, this.buf.length);
    }
    let off = 0;
    while (b.length - off >= HEADER) {
      const len = (b[off + 2] << 8) | b[off + 3];
      if (len < HEADER) throw new Error(`bad probe length ${len}`);
      if (b.length - off < len) break;
      onMessage(b.subarray(off, off + len));
      off += len;
    }
    this.buf = off === b.length ? new Uint8Array(0) : b.slice(off);
  }
}
