/**
 * Wire constants and the value codec shared by server and client.
 *
 * Packet (bit-packed, MSB first):
 *   schemaHash u32 | tick u32 | tick - B : expGolomb(0), B = the newest tick the client acked (0 = none)
 *   recordCount : bitsFor(maxEntities) bits | records in ascending entity-slot order
 * Record: slotGap expGolomb(2) (slot - previousSlot - 1) | kind u2 | body
 *   REMOVE: (no body; idempotent, repeated until acked)
 *   FULL:   entityId expGolomb(8) | component mask (C bits) | every field of every present component, absolute
 *   UPDATE: baseline: 0 = B, or 1 and expGolomb(2) of B - baseline - 1 (the entity's own acked tick)
 *           | [predicted u1 [| expGolomb(0) of baseline - baseline2 - 1]]   (schemas with predictable fields)
 *           | maskChanged u1 [| mask] | per component present in both masks: changed u1, then per field a
 *           changed bit (only when the component has several fields), then the changed fields;
 *           components newly in the mask are written absolute as in FULL
 * Field values: a multi-slot field (vec2, vec3, quat) has a changed bit per slot. A slot of width > 4 is prefixed
 * by a mode bit: 0 = absolute (width bits), 1 = delta: class u2 and zigzag(value - baseline) in
 * DELTA_WIDTHS[class] bits, whichever is shorter; an angle's delta wraps around the turn. Fields marked ownerOnly carry a visible bit in absolute form.
 */
import * as bits from './bits.js';
import { SyncError } from './errors.js';
import type * as schema from './schema.js';

type BitReader = bits.BitReader;
type BitWriter = bits.BitWriter;
type CompiledComponent = schema.CompiledComponent;
type CompiledField = schema.CompiledField;
// Module-local copies of imported bindings used per field: loaders that compile ESM to CommonJS (tsx, which runs the
// bench) turn every access to an imported binding into a getter call.
const { expGolombBits } = bits;

/**
 * Ack wire format, 4 bytes: the newest applied tick modulo 2^16 (u16), then a u16 whose top bit says that a packet
 * was applied at all and whose low 15 bits say which of the 15 ticks before the newest were applied too. The server
 * takes the tick at or before its own with those low bits: exact for every tick in the window (at most 4096), and
 * an ack would have to be delayed by 2^16 ticks (18 minutes at 60 Hz) to alias. 15 ticks of history cover a lost ack
 * at any round trip below 250 ms at 60 Hz; the next ack repeats them.
 */
export const ACK_BYTES = 4;
export const ACK_HISTORY = 15;
export const ACK_VALID = 0x8000;
export const ACK_MASK = 0x7fff;

export const KIND_UPDATE = 0;
export const KIND_FULL = 1;
export const KIND_REMOVE = 2;
export const GAP_K = 2;
export const ID_K = 8;
/** Upper bound of the header's fixed fields: the full form's flag, hash and tick, and the gap order. */
export const HEADER_FIXED_BITS = 67;
export const DELTA_WIDTHS = [2, 4, 7, 11] as const;
/** Slots this narrow are always absolute: a mode bit would cost more than it saves. */
export const ABSOLUTE_ONLY_WIDTH = 4;

/** `value - base`, taken into [-wrap/2, wrap/2) for a wrapping slot (angles), so a turn past ±π is a small delta. */
export function slotDelta(value: number, base: number, wrap: number): number {
  let d = value - base;
  if (wrap > 0) {
    const half = wrap >>> 1;
    if (d >= wrap - half) d -= wrap;
    else if (d < -half) d += wrap;
  }
  return d;
}

/** Writes one slot, delta-coded against `base` when that is shorter (modulo `wrap` when it is not 0). */
export function writeSlot(w: BitWriter, width: number, value: number, base: number, wrap: number): void {
  if (width <= ABSOLUTE_ONLY_WIDTH) {
    w.writeBits(value, width);
    return;
  }
  const d = slotDelta(value, base, wrap);
  const z = d >= 0 ? 2 * d : -2 * d - 1;
  for (let c = 0; c < 4; c++) {
    const dw = DELTA_WIDTHS[c];
    if (z < 1 << dw) {
      if (3 + dw < 1 + width) {
        w.writeBits(0b100 | c, 3);
        w.writeBits(z, dw);
        return;
      }
      break;
    }
  }
  w.writeBit(0);
  w.writeBits(value, width);
}

export function readSlot(r: BitReader, width: number, maxQ: number, base: number, wrap: number): number {
  let v: number;
  if (width <= ABSOLUTE_ONLY_WIDTH) v = r.readBits(width);
  else if (r.readBit()) {
    const z = r.readBits(DELTA_WIDTHS[r.readBits(2)]);
    v = base + (z % 2 === 0 ? z / 2 : -(z + 1) / 2);
    if (wrap > 0) v = ((v % wrap) + wrap) % wrap;
  } else v = r.readBits(width);
  if (v < 0 || v > maxQ) throw new SyncError('corrupt', `value ${v} out of range 0..${maxQ}`);
  return v;
}

/** Order of the exp-Golomb code of a multi-slot field's shared delta width. */
export const WIDTH_K = 2;

/** zigzag(value - base) of a non-wrapping slot: 0, -1, 1, -2, ... to 0, 1, 2, 3, ... (exact above 2^31). */
function zigzag(value: number, base: number): number {
  const d = value - base;
  return d >= 0 ? 2 * d : -2 * d - 1;
}

/** Bits of a non-negative integer below 2^33. */
function bitLength(z: number): number {
  if (z < 0x80000000) return 32 - Math.clz32(z);
  return z < 0x100000000 ? 32 : 33;
}

/**
 * Shared width of a multi-slot field's delta: the bits of the largest zigzagged slot delta, and the widest slot (the
 * escape code, meaning "absolute"). Returns the delta width, or 0 when the absolute form is not longer.
 */
function jointWidth(f: CompiledField, vals: Uint32Array, a: number, base: Uint32Array, ba: number): number {
  let maxz = 0;
  for (let k = f.jointFrom; k < f.slotCount; k++) {
    if (f.widths[k] === 0) continue;
    const z = zigzag(vals[a + k], base[ba + k]);
    if (z > maxz) maxz = z;
  }
  const w = bitLength(maxz);
  const wmax = f.jointMax;
  if (w === 0 || w > wmax) return 0;
  return expGolombBits(w - 1, WIDTH_K) + f.jointSlots * w <= expGolombBits(wmax, WIDTH_K) + f.jointAbs
    ? w
    : 0;
}

/**
 * A multi-slot field (vec2, vec3, quat) that differs from its base, in one of two forms that share one width code:
 * exp-Golomb(WIDTH_K) of m, then for m < wmax (the widest slot) every slot's zigzag(value - base) in m + 1 bits, for
 * m = wmax every slot absolute in its own width. Slots of width 0 (a constant axis) are left out. A quaternion first
 * says whether its largest component is the base's (1 bit); if not, its index (2 bits) and the three smallest follow
 * absolute, since deltas between different components mean nothing. One width for all slots costs less than a
 * prefix per slot: moving things move on every axis at once (see the sync README, "Packet format").
 */
export function writeMultiDelta(
  w: BitWriter,
  f: CompiledField,
  vals: Uint32Array,
  a: number,
  base: Uint32Array,
  ba: number,
): void {
  if (f.quat) {
    const same = vals[a] === base[ba];
    w.writeBit(same);
    if (!same) {
      for (let k = 0; k < 4; k++) w.writeBits(vals[a + k], f.widths[k]);
      return;
    }
  }
  const jw = jointWidth(f, vals, a, base, ba);
  if (jw === 0) {
    w.writeExpGolomb(f.jointMax, WIDTH_K);
    for (let k = f.jointFrom; k < f.slotCount; k++) w.writeBits(vals[a + k], f.widths[k]);
    return;
  }
  w.writeExpGolomb(jw - 1, WIDTH_K);
  for (let k = f.jointFrom; k < f.slotCount; k++)
    if (f.widths[k] > 0) w.writeBits(zigzag(vals[a + k], base[ba + k]), jw);
}

/** Bits `writeMultiDelta` writes for a field that differs from its base (the caller adds its changed bit). */
export function multiDeltaBits(
  f: CompiledField,
  vals: Uint32Array,
  a: number,
  base: Uint32Array,
  ba: number,
): number {
  const abs = f.jointAbs;
  if (f.quat && vals[a] !== base[ba]) return 1 + f.widths[0] + abs;
  const jw = jointWidth(f, vals, a, base, ba);
  return (
    (f.quat ? 1 : 0) +
    (jw === 0 ? expGolombBits(f.jointMax, WIDTH_K) + abs : expGolombBits(jw - 1, WIDTH_K) + f.jointSlots * jw)
  );
}

/** Reads what `writeMultiDelta` wrote into `vals` (which holds the base); every slot checked against its range. */
export function readMultiDelta(r: BitReader, f: CompiledField, vals: Uint32Array, a: number): void {
  if (f.quat && !r.readBit()) {
    for (let k = 0; k < 4; k++) vals[a + k] = readChecked(r, f, k);
    return;
  }
  const m = r.readExpGolomb(WIDTH_K);
  if (m > f.jointMax) throw new SyncError('corrupt', `field ${f.name}: delta width ${m + 1}`);
  for (let k = f.jointFrom; k < f.slotCount; k++) {
    if (f.widths[k] === 0) continue;
    if (m === f.jointMax) {
      vals[a + k] = readChecked(r, f, k);
      continue;
    }
    const z = r.readBits(m + 1);
    const v = vals[a + k] + (z % 2 === 0 ? z / 2 : -(z + 1) / 2);
    if (v < 0 || v > f.maxQ[k]) throw new SyncError('corrupt', `field ${f.name}: value ${v} out of range`);
    vals[a + k] = v;
  }
}

function readChecked(r: BitReader, f: CompiledField, k: number): number {
  const q = r.readBits(f.widths[k]);
  if (q > f.maxQ[k]) throw new SyncError('corrupt', `field ${f.name}: value ${q} > ${f.maxQ[k]}`);
  return q;
}

/** Writes a field absolutely (full records and newly added components). */
export function writeFieldAbsolute(
  w: BitWriter,
  f: CompiledField,
  row: Uint32Array,
  o: number,
  utf8: Uint8Array[],
): void {
  if (f.kind === 'string') {
    const b = utf8[row[o + f.slot]];
    w.writeBits(b.length, f.widths[0]);
    for (let i = 0; i < b.length; i++) w.writeBits(b[i], 8);
    return;
  }
  for (let i = 0; i < f.slotCount; i++) w.writeBits(row[o + f.slot + i], f.widths[i]);
}

/**
 * Linear extrapolation from two baselines the client holds (Unity Netcode for Entities predicts from its acked
 * baselines the same way): the entity's values at tick `b0` (row `v0` at `o0`) and at an older tick `b1` (`v1` at
 * `o1`), carried `ahead` = t - b0 ticks past b0 at the rate seen over `span` = b0 - b1 ticks. Only moving numbers
 * (floats, vectors, angles modulo their turn, quaternion components while the largest stays the same) are
 * extrapolated; everything else is b0's value. Integer arithmetic and one division, so both ends agree exactly.
 * Writes the prediction of every component in `mask` to `out` at `oo`.
 */
export function predictRow(
  comps: readonly CompiledComponent[],
  mask: number,
  v0: Uint32Array,
  o0: number,
  v1: Uint32Array,
  o1: number,
  out: Uint32Array,
  oo: number,
  ahead: number,
  span: number,
): void {
  for (const c of comps) {
    if (!(mask & (1 << c.index))) continue;
    for (const f of c.fields) {
      const a = f.slot;
      if (!f.predictable) {
        for (let k = 0; k < f.slotCount; k++) out[oo + a + k] = v0[o0 + a + k];
        continue;
      }
      let k = 0;
      if (f.quat) {
        out[oo + a] = v0[o0 + a];
        if (v0[o0 + a] !== v1[o1 + a]) {
          for (k = 1; k < 4; k++) out[oo + a + k] = v0[o0 + a + k];
          continue;
        }
        k = 1;
      }
      for (; k < f.slotCount; k++) {
        const x0 = v0[o0 + a + k];
        const wrap = f.wrap[k];
        const d = slotDelta(x0, v1[o1 + a + k], wrap);
        let x = x0 + Math.round((d * ahead) / span);
        if (wrap > 0) x = ((x % wrap) + wrap) % wrap;
        else if (x < 0) x = 0;
        else if (x > f.maxQ[k]) x = f.maxQ[k];
        out[oo + a + k] = x;
      }
    }
  }
}

/** Bits `writeSlot` spends on a slot that differs from `base`, plus its changed bit (1 when equal). */
export function slotCost(width: number, value: number, base: number, wrap: number): number {
  if (value === base) return 1;
  if (width <= ABSOLUTE_ONLY_WIDTH) return 1 + width;
  const d = slotDelta(value, base, wrap);
  const z = d >= 0 ? 2 * d : -2 * d - 1;
  for (let c = 0; c < 4; c++) {
    const dw = DELTA_WIDTHS[c];
    if (z < 1 << dw) return 1 + Math.min(3 + dw, 1 + width);
  }
  return 2 + width;
}
