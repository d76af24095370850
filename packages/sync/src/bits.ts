import { SyncError } from './errors.js';

/**
 * MSB-first bit writer over a growable byte buffer. Values are unsigned integers of at most 32 bits; the
 * per-byte loop keeps every shift below 32 so JavaScript's 32-bit shift semantics never bite.
 */
export class BitWriter {
  /** The backing buffer, zero beyond `pos`; replaced when it grows. */
  buf: Uint8Array;
  /** Bits written so far. */
  pos = 0;

  /** @param initialBytes Initial capacity; the buffer doubles when full. */
  constructor(initialBytes = 1500) {
    this.buf = new Uint8Array(initialBytes);
  }

  /** Empties the writer, keeping (and zeroing) its buffer for reuse. */
  reset(): void {
    this.buf.fill(0, 0, (this.pos + 7) >>> 3);
    this.pos = 0;
  }

  /** Drops everything written after bit `pos` (used to roll back a record that would overflow a budget). */
  rewind(pos: number): void {
    if (pos >= this.pos) return;
    const firstByte = pos >>> 3;
    const used = pos & 7;
    const end = (this.pos + 7) >>> 3;
    if (used === 0) this.buf.fill(0, firstByte, end);
    else {
      this.buf[firstByte] &= (0xff << (8 - used)) & 0xff;
      this.buf.fill(0, firstByte + 1, end);
    }
    this.pos = pos;
  }

  /** Makes room for `bits` more bits plus 4 spare bytes (the 32-bit window of `put` may touch them, with zeros). */
  private grow(bits: number): void {
    const need = ((this.pos + bits + 7) >>> 3) + 4;
    if (need <= this.buf.length) return;
    const next = new Uint8Array(Math.max(need, this.buf.length * 2));
    next.set(this.buf);
    this.buf = next;
  }

  /**
   * ORs `n` (1 to 24) bits, `v` already masked, at `pos` through one big-endian 32-bit window: four byte stores
   * without a loop (the encoder's hottest code). Needs `grow` first; bytes past the value receive zeros.
   */
  private put(v: number, n: number): void {
    const pos = this.pos;
    const word = v << (32 - (pos & 7) - n);
    const buf = this.buf;
    const i = pos >>> 3;
    buf[i] |= word >>> 24;
    buf[i + 1] |= word >>> 16;
    buf[i + 2] |= word >>> 8;
    buf[i + 3] |= word;
    this.pos = pos + n;
  }

  /** Appends the low `n` bits (0 to 32) of the unsigned integer `value`, most significant first. */
  writeBits(value: number, n: number): void {
    if (n === 0) return;
    this.grow(n);
    if (n <= 24) this.put(value & ((1 << n) - 1), n);
    else {
      // Shifts stay below 32: the high n - 16 bits, then the low 16.
      this.put((value >>> 16) & ((1 << (n - 16)) - 1), n - 16);
      this.put(value & 0xffff, 16);
    }
  }

  /** ORs `value` into `n` bits at `pos`, bits that were written as zeros (a reserved, patched-later field). */
  orBitsAt(pos: number, value: number, n: number): void {
    let left = n;
    while (left > 0) {
      const free = 8 - (pos & 7);
      const take = Math.min(left, free);
      const chunk = (value >>> (left - take)) & ((1 << take) - 1);
      this.buf[pos >>> 3] |= chunk << (free - take);
      pos += take;
      left -= take;
    }
  }

  /** Appends one bit: 1 for a truthy `b`. */
  writeBit(b: boolean | number): void {
    this.grow(1);
    if (b) this.buf[this.pos >>> 3] |= 0x80 >>> (this.pos & 7);
    this.pos++;
  }

  /**
   * Exp-Golomb code of order `k` for a non-negative integer below 2^31: small values (entity index gaps,
   * counts, tick distances) cost a few bits while any value stays representable.
   */
  writeExpGolomb(value: number, k: number): void {
    const v = value + (1 << k);
    const len = 31 - Math.clz32(v);
    // The zeros of the prefix are already in the buffer (it is zero beyond `pos`).
    this.grow(2 * len - k + 1);
    this.pos += len - k;
    this.writeBits(v, len + 1);
  }

  /**
   * Appends `n` bits of another writer's buffer starting at bit `start`: a record body encoded once per tick is
   * copied into every packet (and measurement) that needs it instead of being encoded again.
   */
  copyBits(src: Uint8Array, start: number, n: number): void {
    this.grow(n);
    let pos = start;
    let left = n;
    while (left > 0) {
      const take = Math.min(left, 24);
      const i = pos >>> 3;
      // Bytes past the end of `src` read as undefined, which `|` turns into 0 (never used: take stops before).
      const word = (src[i] << 24) | (src[i + 1] << 16) | (src[i + 2] << 8) | src[i + 3];
      this.put((word << (pos & 7)) >>> (32 - take), take);
      pos += take;
      left -= take;
    }
  }

  /** A copy of the bytes written, the last one zero-padded. */
  bytes(): Uint8Array {
    return this.buf.slice(0, (this.pos + 7) >>> 3);
  }

  /** Bytes `bytes()` would return: `pos` rounded up to whole bytes. */
  byteLength(): number {
    return (this.pos + 7) >>> 3;
  }
}

/** Bits an exp-Golomb code of order `k` takes for `value`. */
export function expGolombBits(value: number, k: number): number {
  const len = 31 - Math.clz32(value + (1 << k));
  return 2 * len - k + 1;
}

/** MSB-first bit reader. Reading past the end throws a `truncated` SyncError. */
export class BitReader {
  /** Bits read so far. */
  pos = 0;
  /** Bits in `buf`. */
  readonly totalBits: number;

  constructor(
    /** The packet read from. */
    readonly buf: Uint8Array,
  ) {
    this.totalBits = buf.length * 8;
  }

  /** Reads an `n`-bit unsigned integer (n up to 32), most significant bit first. */
  readBits(n: number): number {
    if (n === 0) return 0;
    if (this.pos + n > this.totalBits)
      throw new SyncError('truncated', `packet truncated at bit ${this.pos}`);
    const buf = this.buf;
    let pos = this.pos;
    let left = n;
    let out = 0;
    while (left > 0) {
      const avail = 8 - (pos & 7);
      const take = Math.min(left, avail);
      const chunk = (buf[pos >>> 3] >>> (avail - take)) & ((1 << take) - 1);
      // Multiplication instead of << keeps 32-bit values unsigned.
      out = out * (1 << take) + chunk;
      pos += take;
      left -= take;
    }
    this.pos = pos;
    return out;
  }

  /** Reads one bit. */
  readBit(): boolean {
    if (this.pos >= this.totalBits) throw new SyncError('truncated', `packet truncated at bit ${this.pos}`);
    const b = (this.buf[this.pos >>> 3] >>> (7 - (this.pos & 7))) & 1;
    this.pos++;
    return b === 1;
  }

  /** Reads an exp-Golomb code of order `k`; a `corrupt` SyncError for a prefix our writer cannot produce. */
  readExpGolomb(k: number): number {
    let zeros = 0;
    while (!this.readBit()) {
      zeros++;
      // A code longer than 31 bits cannot come from our writer; reject before values lose precision.
      if (zeros > 31 - k) throw new SyncError('corrupt', 'exp-Golomb prefix too long');
    }
    const len = zeros + k;
    const rest = this.readBits(len);
    return 2 ** len + rest - (1 << k);
  }

  /** True when only zero padding (< 8 bits) is left. */
  atPaddedEnd(): boolean {
    const left = this.totalBits - this.pos;
    if (left >= 8) return false;
    if (left === 0) return true;
    return (this.buf[this.buf.length - 1] & ((1 << left) - 1)) === 0;
  }
}
