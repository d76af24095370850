/**
 * Input capture with sequence numbers, sent redundantly: every packet repeats the newest `redundancy` inputs, so on
 * an unreliable channel (WebTransport datagrams, RFC 9221) a lost packet costs nothing unless `redundancy`
 * consecutive packets are lost. The server applies each input exactly once, in order.
 *
 * Packet layout (little endian): u32 seq of the first input, u8 count, then `count` inputs of `codec.size` bytes.
 */
import { checkOption, PredictError } from './errors.js';

/** A fixed-size binary layout for one input. */
export interface InputCodec<I> {
  /** Bytes per input. */
  readonly size: number;
  /** Writes `input` as `size` bytes at `offset` (little endian). */
  write(view: DataView, offset: number, input: I): void;
  /** Reads one input of `size` bytes at `offset`. */
  read(view: DataView, offset: number): I;
}

/** Wire type of one input field: a boolean byte, 8/16/32-bit integers, or a 32-bit float. */
export type InputFieldType = 'bool' | 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32';
const FIELD_SIZE: Record<InputFieldType, number> = {
  bool: 1,
  u8: 1,
  i8: 1,
  u16: 2,
  i16: 2,
  u32: 4,
  i32: 4,
  f32: 4,
};
const FIELD_RANGE: Record<string, [number, number]> = {
  u8: [0, 0xff],
  i8: [-0x80, 0x7f],
  u16: [0, 0xffff],
  i16: [-0x8000, 0x7fff],
  u32: [0, 0xffffffff],
  i32: [-0x80000000, 0x7fffffff],
};

type FieldValue<T extends InputFieldType> = T extends 'bool' ? boolean : number;
/** The input object type of a {@link defineInputCodec} field map: booleans for `bool`, numbers otherwise. */
export type InputOf<F extends Record<string, InputFieldType>> = { [K in keyof F]: FieldValue<F[K]> };

/**
 * A codec for a flat object of numeric fields, e.g. `{ moveX: 'i8', moveZ: 'i8', yaw: 'f32', buttons: 'u8' }`.
 * Integers are rounded and saturated, floats rounded to f32: apply {@link quantize}d inputs locally so that the
 * client predicts with exactly the values the server will decode.
 */
export function defineInputCodec<F extends Record<string, InputFieldType>>(
  fields: F,
): InputCodec<InputOf<F>> {
  const entries = Object.entries(fields) as [string, InputFieldType][];
  if (entries.length === 0) throw new TypeError('an input codec needs at least one field');
  let size = 0;
  const layout = entries.map(([name, type]) => {
    if (!(type in FIELD_SIZE)) throw new TypeError(`unknown input field type ${type} for ${name}`);
    const at = size;
    size += FIELD_SIZE[type];
    return { name, type, at };
  });
  return {
    size,
    write(view, offset, input) {
      const rec = input as Record<string, number | boolean>;
      for (const { name, type, at } of layout) {
        const raw = rec[name];
        const o = offset + at;
        if (type === 'bool') {
          view.setUint8(o, raw ? 1 : 0);
          continue;
        }
        const v = Number(raw);
        if (type === 'f32') {
          view.setFloat32(o, Number.isFinite(v) ? v : 0, true);
          continue;
        }
        const [lo, hi] = FIELD_RANGE[type];
        const n = Number.isFinite(v) ? Math.min(hi, Math.max(lo, Math.round(v))) : 0;
        if (type === 'u8') view.setUint8(o, n);
        else if (type === 'i8') view.setInt8(o, n);
        else if (type === 'u16') view.setUint16(o, n, true);
        else if (type === 'i16') view.setInt16(o, n, true);
        else if (type === 'u32') view.setUint32(o, n, true);
        else view.setInt32(o, n, true);
      }
    },
    read(view, offset) {
      const out: Record<string, number | boolean> = {};
      for (const { name, type, at } of layout) {
        const o = offset + at;
        if (type === 'bool') out[name] = view.getUint8(o) !== 0;
        else if (type === 'f32') out[name] = view.getFloat32(o, true);
        else if (type === 'u8') out[name] = view.getUint8(o);
        else if (type === 'i8') out[name] = view.getInt8(o);
        else if (type === 'u16') out[name] = view.getUint16(o, true);
        else if (type === 'i16') out[name] = view.getInt16(o, true);
        else if (type === 'u32') out[name] = view.getUint32(o, true);
        else out[name] = view.getInt32(o, true);
      }
      return out as InputOf<F>;
    },
  };
}

/** The input exactly as the server will decode it. */
export function quantize<I>(codec: InputCodec<I>, input: I): I {
  const view = new DataView(new ArrayBuffer(codec.size));
  codec.write(view, 0, input);
  return codec.read(view, 0);
}

/** An input with its sequence number. */
export interface SequencedInput<I> {
  /** Sequence number: one per captured input (per tick), from `firstSeq` up, u32. */
  seq: number;
  /** The (quantized) input. */
  input: I;
}

const HEADER = 5;
/** The most inputs one packet may carry (the count is a u8). */
export const MAX_INPUTS_PER_PACKET = 255;

/** Encodes 1 to 255 consecutive inputs as one packet (layout in the module comment); throws RangeError otherwise. */
export function encodeInputPacket<I>(codec: InputCodec<I>, inputs: readonly SequencedInput<I>[]): Uint8Array {
  if (inputs.length === 0 || inputs.length > MAX_INPUTS_PER_PACKET)
    throw new RangeError(`an input packet carries 1..${MAX_INPUTS_PER_PACKET} inputs, got ${inputs.length}`);
  const bytes = new Uint8Array(HEADER + inputs.length * codec.size);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, inputs[0].seq >>> 0, true);
  view.setUint8(4, inputs.length);
  for (let i = 0; i < inputs.length; i++) {
    if (inputs[i].seq !== inputs[0].seq + i)
      throw new RangeError('inputs of a packet must have consecutive seqs');
    codec.write(view, HEADER + i * codec.size, inputs[i].input);
  }
  return bytes;
}

/** A codec of at least one byte per input: the decoder's output is then bounded by the bytes it was given. */
function checkCodec(codec: InputCodec<unknown>): void {
  if (!Number.isSafeInteger(codec.size) || codec.size < 1)
    throw new RangeError(`codec.size must be an integer >= 1, got ${codec.size}`);
}

/**
 * Throws {@link PredictError} on a malformed packet. Every length is checked against the bytes given before
 * anything is decoded, and each input takes `codec.size` >= 1 bytes: at most one input object per input byte.
 */
export function decodeInputPacket<I>(
  codec: InputCodec<I>,
  bytes: Uint8Array,
  maxInputs = MAX_INPUTS_PER_PACKET,
): SequencedInput<I>[] {
  checkCodec(codec);
  if (bytes.byteLength < HEADER)
    throw new PredictError('truncated', `input packet of ${bytes.byteLength} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const first = view.getUint32(0, true);
  const count = view.getUint8(4);
  if (count === 0 || count > maxInputs)
    throw new PredictError('corrupt', `input packet announces ${count} inputs (1..${maxInputs} allowed)`);
  const expected = HEADER + count * codec.size;
  if (bytes.byteLength < expected)
    throw new PredictError('truncated', `input packet of ${bytes.byteLength} bytes, ${expected} announced`);
  if (bytes.byteLength > expected)
    throw new PredictError('corrupt', `${bytes.byteLength - expected} trailing bytes in input packet`);
  if (first + count - 1 > 0xffffffff) throw new PredictError('corrupt', 'input seq overflows u32');
  const out: SequencedInput<I>[] = [];
  for (let i = 0; i < count; i++)
    out.push({ seq: first + i, input: codec.read(view, HEADER + i * codec.size) });
  return out;
}

/** Options of {@link InputSender}. */
export interface InputSenderOptions {
  /** Inputs repeated in every packet (default 8: survives 7 consecutive lost packets). */
  redundancy?: number;
}

/** Client side: numbers inputs, keeps the unacknowledged ones and writes redundant packets. */
export class InputSender<I> {
  /** Inputs repeated in every packet (option `redundancy`, default 8). */
  readonly redundancy: number;
  #next: number;
  #recent: SequencedInput<I>[] = [];
  #acked = -1;
  /** Live counters. */
  readonly stats = {
    /** Inputs numbered by `capture`. */
    captured: 0,
    /** Packets built by `packet`. */
    packets: 0,
  };

  constructor(
    /** The input layout; the same on the receiver. */
    readonly codec: InputCodec<I>,
    options: InputSenderOptions & { firstSeq?: number } = {},
  ) {
    this.redundancy = checkOption('redundancy', options.redundancy ?? 8, 1, MAX_INPUTS_PER_PACKET);
    this.#next = checkOption('firstSeq', options.firstSeq ?? 0, 0, 0xffffffff);
  }

  /** Numbers `input` and returns it quantized: apply exactly this locally. */
  capture(input: I): SequencedInput<I> {
    if (this.#next > 0xffffffff) throw new RangeError('input seq space exhausted (2^32 inputs)');
    const entry = { seq: this.#next++, input: quantize(this.codec, input) };
    this.#recent.push(entry);
    // Only the newest `redundancy` are ever sent again; older unacked inputs are the server's problem (it fills).
    if (this.#recent.length > this.redundancy) this.#recent.shift();
    this.stats.captured++;
    return entry;
  }

  /** The server processed everything up to `seq`: it need not be repeated. */
  ack(seq: number): void {
    if (seq <= this.#acked) return;
    this.#acked = seq;
    while (this.#recent.length > 0 && this.#recent[0].seq <= seq) this.#recent.shift();
  }

  /** The packet to send now (the newest unacknowledged inputs), or undefined when all are acknowledged. */
  packet(): Uint8Array | undefined {
    if (this.#recent.length === 0) return undefined;
    this.stats.packets++;
    return encodeInputPacket(this.codec, this.#recent);
  }

  /** The seq the next captured input gets. */
  get nextSeq(): number {
    return this.#next;
  }
}

/** Options of {@link InputReceiver}. */
export interface InputReceiverOptions<I> {
  /**
   * The input the server applies in place of one that never arrived (every packet that carried it was lost):
   * by default the last input applied (players keep doing what they did), or `neutral` before any.
   */
  fill?: (previous: I | undefined, seq: number) => I;
  /** Most inputs accepted per packet (default 32); more is a corrupt packet. */
  maxInputsPerPacket?: number;
  /**
   * Most inputs filled at once (default 64). After a longer outage the receiver resynchronizes on the packet's first
   * seq instead of simulating a long stretch of invented inputs; the inputs jumped over are counted in
   * `stats.skipped`.
   */
  maxGap?: number;
  /** The first expected seq (default 0). */
  firstSeq?: number;
}

export interface ReceivedInput<I> extends SequencedInput<I> {
  /** True when this input never arrived and was filled in. */
  filled: boolean;
}

/**
 * Server side: deduplicates the redundant copies and hands out each seq once, in order. A seq that is still missing
 * when a packet starting after it arrives was in every packet that was lost (the sender repeats the newest inputs
 * only), so it is filled at once instead of stalling the player; a copy arriving later is counted as late.
 */
export class InputReceiver<I> {
  #expected: number;
  #filledSeqs = new Set<number>();
  #last: I | undefined;
  readonly #fill: (previous: I | undefined, seq: number) => I;
  readonly #maxInputs: number;
  readonly #maxGap: number;
  /** Live counters. */
  readonly stats = {
    /** Packets decoded. */
    packets: 0,
    /** Inputs handed out as they arrived. */
    applied: 0,
    /** Redundant copies of inputs already applied. */
    duplicates: 0,
    /** Inputs invented by `fill` because every packet carrying them was lost. */
    filled: 0,
    /** Copies that arrived after their seq had been filled. */
    late: 0,
    /** Seqs jumped over by a resynchronisation after a gap over `maxGap`. */
    skipped: 0,
    /** Malformed packets refused. */
    rejected: 0,
  };

  constructor(
    /** The input layout; the same on the sender. */
    readonly codec: InputCodec<I>,
    /** The do-nothing input, filled in before any input arrived. */
    readonly neutral: I,
    options: InputReceiverOptions<I> = {},
  ) {
    checkCodec(codec);
    this.#fill = options.fill ?? ((previous) => previous ?? neutral);
    this.#maxInputs = checkOption(
      'maxInputsPerPacket',
      options.maxInputsPerPacket ?? 32,
      1,
      MAX_INPUTS_PER_PACKET,
    );
    this.#maxGap = checkOption('maxGap', options.maxGap ?? 64, 0);
    this.#expected = checkOption('firstSeq', options.firstSeq ?? 0, 0, 0xffffffff);
  }

  /** The last seq handed out (what the server acknowledges in its state updates); -1 before any. */
  get lastSeq(): number {
    return this.#expected - 1;
  }

  /**
   * Decodes a packet and returns the inputs to apply now, in seq order. Throws {@link PredictError} (and counts it
   * in `stats.rejected`) on a malformed packet, leaving the receiver as it was.
   */
  receive(bytes: Uint8Array): ReceivedInput<I>[] {
    let inputs: SequencedInput<I>[];
    try {
      inputs = decodeInputPacket(this.codec, bytes, this.#maxInputs);
    } catch (err) {
      this.stats.rejected++;
      throw err;
    }
    this.stats.packets++;
    if (inputs[0].seq - this.#expected > this.#maxGap) {
      this.stats.skipped += inputs[0].seq - this.#expected;
      this.#expected = inputs[0].seq;
    }
    const out: ReceivedInput<I>[] = [];
    for (const { seq, input } of inputs) {
      if (seq < this.#expected) {
        // A redundant copy of an applied input, or a late copy of a filled one.
        if (this.#filledSeqs.delete(seq)) this.stats.late++;
        else this.stats.duplicates++;
        continue;
      }
      while (this.#expected < seq) {
        const filled = this.#fill(this.#last, this.#expected);
        out.push({ seq: this.#expected, input: filled, filled: true });
        this.#filledSeqs.add(this.#expected);
        this.stats.filled++;
        this.#last = filled;
        this.#expected++;
      }
      out.push({ seq, input, filled: false });
      this.#last = input;
      this.#expected++;
      this.stats.applied++;
    }
    this.#trimFilled();
    return out;
  }

  #trimFilled(): void {
    // Remember filled seqs only as long as a copy could still show up (a few packets' worth).
    if (this.#filledSeqs.size > 4 * this.#maxInputs)
      for (const s of this.#filledSeqs)
        if (s < this.#expected - 2 * this.#maxInputs) this.#filledSeqs.delete(s);
  }
}
