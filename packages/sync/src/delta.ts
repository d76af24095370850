import type { ClientState } from './acks.js';
import * as bits from './bits.js';
import * as codec from './codec.js';
import type * as schema from './schema.js';
import type { EntityStore, Snapshot } from './store.js';

// Module-local copies of imported bindings used per entity: loaders that compile ESM to CommonJS (tsx, which runs the
// bench) turn every access to an imported binding into a getter call, a measurable share of the encode loops.
const { BitWriter } = bits;
type BitWriter = bits.BitWriter;
type CompiledComponent = schema.CompiledComponent;
const {
  GAP_K,
  ID_K,
  KIND_FULL,
  KIND_REMOVE,
  KIND_UPDATE,
  multiDeltaBits,
  predictRow,
  slotCost,
  writeFieldAbsolute,
  writeMultiDelta,
  writeSlot,
} = codec;

/** Body cache key of a FULL record (UPDATE bodies are keyed by their baseline tick, < 2^32 - 1). */
const FULL_BODY = 0xffffffff;
const BODY_ANY = 1;
const BODY_RELIABLE = 2;
/** Encoded against the extrapolation from two baselines. */
const BODY_PREDICTED = 4;
/** Entries of the spare body table (a power of two), and how many of them a tick may fill. */
const SPARE_BITS = 12;
const SPARE = 1 << SPARE_BITS;
const SPARE_MAX = (SPARE * 3) >>> 2;

// Words of a body entry in DeltaEncoder's table (see `table`).
const ENTRY_WORDS = 8;
const E_TICK = 0;
const E_KEY = 1;
const E_KEY2 = 2;
const E_START = 3;
const E_LEN = 4;
const E_FLAGS = 5;
const E_PRIORITY = 6;
const E_HOME = 7;

/** Start of the probe sequence of (home entry, key, key2) in the spare table. */
function spareHash(home: number, key: number, key2: number): number {
  return (
    (Math.imul(home, 0x9e3779b1) ^ Math.imul(key, 0x85ebca77) ^ Math.imul(key2, 0xc2b2ae3d)) >>>
    (32 - SPARE_BITS)
  );
}

/**
 * Encodes entity records: FULL (absolute), UPDATE (a delta against the client's baseline of that entity) and REMOVE.
 *
 * A record's body depends only on the entity slot, its baseline tick (or FULL) and whether the client owns the
 * entity, not on the client otherwise: it is encoded once per tick into `bodies` and copied into every packet (and
 * every budget measurement) that needs it. Under load, clients share baselines and the encode cost is paid once per
 * (slot, baseline) instead of twice per client. A cached body starts with the head most records using it have (FULL:
 * its kind; UPDATE: kind, "the packet's baseline", predicted flag), so such a record is measured by a length and
 * written by one bit copy; records with another head (an older baseline, a named second baseline) skip those bits.
 */
export class DeltaEncoder {
  /** This tick's encoded record bodies, described by the entries of `table`. */
  private readonly bodies = new BitWriter(16384);
  /**
   * The body entries, ENTRY_WORDS words each at the entry's offset (an entry is named by its offset): tick, key (FULL
   * or the baseline tick), second baseline (0 for none), start and length in `bodies`, flags, highest field priority
   * (in `tableF`) and, for a spare entry, its home entry. An entry is 32 bytes together: a lookup and what it reads
   * touch one cache line (seldom two) instead of one per field, which made lookups a tenth of the encode profile.
   */
  private readonly table: Uint32Array;
  /** `table` as float32, for the priority word. */
  private readonly tableF: Float32Array;
  private readonly comps: readonly CompiledComponent[];
  private readonly row: number;
  private readonly predictable: boolean;
  /** Per component index: bit mask of the fields that differ from the base, for the record being encoded. */
  private readonly changedFields: Uint32Array;
  /** The predicted row of the entity being encoded. */
  private readonly pred: Uint32Array;
  /** Bits of the common UPDATE head a cached UPDATE body starts with: kind, "packet's baseline", predicted flag. */
  private readonly updateHead: number;

  // Per-record results, kept in fields to avoid allocating per record.
  /** Highest priority of the fields the record changes. */
  recPriority = 1;
  /** The record changes a `reliable` field. */
  recReliable = false;
  /** A skippable update that carries nothing (nothing was written). */
  recEmpty = false;
  /** The record's final kind (an UPDATE whose baseline left the window becomes FULL). */
  recKind = 0;
  /** The body entry `cost` resolved (-1 for REMOVE). */
  recEntry = -1;
  /** Bits of the record's head when it is not its body's common head, else 0 (`measureHead`). */
  recHeadBits = 0;
  /** That head's codes as one number (`measureHead`). */
  recHead = 0;
  /** The body just encoded is a delta against a prediction. */
  private lastPredicted = false;
  /** Offset of the first spare entry in `table` (after the home entries). */
  private readonly spareFrom: number;
  private spareUsed = 0;

  constructor(
    private readonly store: EntityStore,
    private readonly stats: { refreshes: number; predicted: number },
  ) {
    const max = store.max;
    this.comps = store.comps;
    this.row = store.row;
    this.predictable = store.schema.predictable;
    this.updateHead = this.predictable ? 3 : 2;
    this.pred = new Uint32Array(store.row);
    this.changedFields = new Uint32Array(store.comps.length);
    // Tick 0 is never encoded (tick() comes first), so zeroed entries are never taken for this tick's.
    this.spareFrom = 2 * max * ENTRY_WORDS;
    const entries = 2 * max + SPARE;
    this.table = new Uint32Array(entries * ENTRY_WORDS);
    this.tableF = new Float32Array(this.table.buffer);
  }

  /** A new tick: last tick's bodies are stale. */
  reset(): void {
    this.bodies.reset();
    this.spareUsed = 0;
  }

  /**
   * Writes one record (kind and what follows) into `w`. Sets recEmpty when an update turned out to carry nothing
   * (and was skippable, so nothing was written). `counting`: the record goes into a packet (stats count it).
   */
  write(
    w: BitWriter,
    cs: ClientState,
    snap: Snapshot,
    s: number,
    code: number,
    baseTick: number,
    base2: number,
    packetBase: number,
    packetBase2: number,
    counting: boolean,
  ): void {
    const e = this.resolve(cs, snap, s, code, baseTick, base2, packetBase, packetBase2);
    if (this.recEmpty) return;
    if (e >= 0) this.measureHead(e, this.recKind, baseTick, packetBase, packetBase2);
    this.writeResolved(w, code, e, this.recKind, this.recHeadBits, this.recHead, counting);
  }

  /**
   * Bits `write` would write (0 when recEmpty), without writing: the budget's measure. Leaves the record resolved in
   * recEntry, recKind, recHeadBits and recHead, for `writeResolved` (which then computes nothing again).
   */
  cost(
    cs: ClientState,
    snap: Snapshot,
    s: number,
    code: number,
    baseTick: number,
    base2: number,
    packetBase: number,
    packetBase2: number,
  ): number {
    const e = this.resolve(cs, snap, s, code, baseTick, base2, packetBase, packetBase2);
    this.recEntry = e;
    if (this.recEmpty) return 0;
    if (e < 0) return 2;
    // The body starts with the common head (see `bodyEntry`); any other head replaces it.
    const h = this.measureHead(e, this.recKind, baseTick, packetBase, packetBase2);
    return h === 0 ? this.table[e + E_LEN] : h + this.table[e + E_LEN] - this.updateHead;
  }

  /**
   * Writes the record that `cost` (or `write`) resolved and measured: its entry `e`, final `kind` and head
   * (`headBits`, 0 for the body's common head, and `head`, from recHeadBits and recHead; `code` the candidate's),
   * without resolving or measuring it again. Valid until the next tick: an entry is only replaced by another body of
   * its own slot, and a packet holds one record per slot.
   */
  writeResolved(
    w: BitWriter,
    code: number,
    e: number,
    kind: number,
    headBits: number,
    head: number,
    counting: boolean,
  ): void {
    if (kind === KIND_REMOVE) {
      w.writeBits(0b11, 2);
      return;
    }
    if (counting) {
      if ((code & 3) === KIND_UPDATE && kind === KIND_FULL) this.stats.refreshes++;
      if (kind === KIND_UPDATE && this.table[e + E_FLAGS] & BODY_PREDICTED) this.stats.predicted++;
    }
    // One copy of head and body when the cached body's head is this record's (the common case).
    if (headBits === 0) {
      w.copyBits(this.bodies.buf, this.table[e + E_START], this.table[e + E_LEN]);
      return;
    }
    if (headBits <= 31) w.writeBits(head, headBits);
    else {
      // Only for baselines thousands of ticks apart (see `measureHead`): the head as two writes.
      w.writeBits(Math.floor(head / 0x1000000), headBits - 24);
      w.writeBits(head % 0x1000000, 24);
    }
    const h = this.updateHead;
    w.copyBits(this.bodies.buf, this.table[e + E_START] + h, this.table[e + E_LEN] - h);
  }

  /**
   * A record's head, the part before its body: kind and baseline references. Sets recHeadBits and recHead and returns
   * the bits: 0 when it is the head its cached body starts with (always for FULL, and for an UPDATE against the
   * packet's baseline that names no second baseline of its own), else the bits of the head that replaces it, whose
   * codes are composed into one number (exp-Golomb codes are their value plus 2^k, in 2 log2 of that minus k plus 1
   * bits): kept from the measurement to the write, as records against older baselines (most of them under loss) each
   * have their own.
   */
  private measureHead(
    e: number,
    kind: number,
    baseTick: number,
    packetBase: number,
    packetBase2: number,
  ): number {
    const predicted = this.predictable && (this.table[e + E_FLAGS] & BODY_PREDICTED) !== 0;
    if (kind !== KIND_UPDATE || (baseTick === packetBase && (packetBase2 !== 0 || !predicted))) {
      this.recHeadBits = 0;
      return 0;
    }
    // Kind 0 (UPDATE), then the baseline: one bit when it is the packet's (the client's newest ack), else its
    // distance from it.
    const far = baseTick !== packetBase;
    const g = far ? packetBase - baseTick - 1 + (1 << GAP_K) : 0;
    const wg = far ? 2 * (31 - Math.clz32(g)) - GAP_K + 1 : 0;
    let n = 2 + wg;
    // The second baseline: one bit when it is the packet's (header), else its distance from the first. Against the
    // packet's baseline the second baseline is the header's whenever it names one (`resolve` sees to it).
    const named = predicted && (far || packetBase2 === 0);
    const d = named ? baseTick - this.table[e + E_KEY2] : 0;
    const wd = named ? 2 * (31 - Math.clz32(d)) + 1 : 0;
    if (this.predictable) n += 1 + wd;
    // Baselines within the window (at most 4096 ticks) keep every code below 24 bits, so `far`'s part fits an int.
    let v = far ? (1 << wg) | g : 0;
    if (this.predictable) {
      if (n <= 31) v = (((v << 1) | (predicted ? 1 : 0)) << wd) | d;
      // Only for baselines thousands of ticks apart: composed in doubles (exact below 2^53; n is at most 49).
      else v = (v * 2 + (predicted ? 1 : 0)) * 2 ** wd + d;
    }
    this.recHeadBits = n;
    this.recHead = v;
    return n;
  }

  /**
   * Decides a record's final kind and finds or encodes its body; sets the rec* fields. Returns the body entry (-1
   * for REMOVE).
   */
  private resolve(
    cs: ClientState,
    snap: Snapshot,
    s: number,
    code: number,
    baseTick: number,
    base2: number,
    packetBase: number,
    packetBase2: number,
  ): number {
    let kind = code & 3;
    // A record against the packet's baseline predicts only from the header's second baseline, if it names one.
    if (baseTick === packetBase && packetBase2 > 0 && base2 !== packetBase2) base2 = 0;
    this.recEmpty = false;
    this.recPriority = 1;
    this.recReliable = false;
    this.recKind = kind;
    if (kind === KIND_REMOVE) return -1;
    const store = this.store;
    const isOwner = store.owner[s] === cs.index ? 1 : 0;
    let baseSnap: Snapshot | null = null;
    let baseSnap2: Snapshot | null = null;
    const oldest = store.tickNo - store.window + 1;
    if (kind === KIND_UPDATE) {
      // The client decodes against its own state of tick baseTick, which it keeps for `window` ticks only.
      if (baseTick >= oldest && baseTick <= packetBase) {
        // Cached this tick with both baselines: they were valid for the slot then (the lookups below depend only on
        // the slot, the ticks and the entity), so they are now.
        const e = base2 > 0 ? this.find((2 * s + isOwner) * ENTRY_WORDS, baseTick, base2) : -1;
        if (e >= 0) return this.resolved(e, code);
        baseSnap = store.baselineSnapshot(s, baseTick, snap.ids[s]);
      }
      if (!baseSnap) {
        kind = KIND_FULL;
        this.recKind = KIND_FULL;
      } else if (this.predictable && base2 > 0 && base2 >= oldest && base2 < baseTick) {
        baseSnap2 = store.baselineSnapshot(s, base2, snap.ids[s]);
        if (baseSnap2 && baseSnap2.masks[s] !== baseSnap.masks[s]) baseSnap2 = null;
      }
    }
    const e = this.bodyEntry(
      s,
      kind === KIND_FULL ? FULL_BODY : baseTick,
      baseSnap2 ? base2 : 0,
      isOwner,
      snap,
      baseSnap,
      baseSnap2,
    );
    if (kind === KIND_UPDATE) return this.resolved(e, code);
    this.recPriority = 1;
    this.recReliable = false;
    return e;
  }

  /** Sets the rec* fields of an UPDATE from its body entry `e`. */
  private resolved(e: number, code: number): number {
    const flags = this.table[e + E_FLAGS];
    this.recPriority = this.tableF[e + E_PRIORITY];
    this.recReliable = (flags & BODY_RELIABLE) !== 0;
    this.recEmpty = !(flags & BODY_ANY) && (code & 4) !== 0;
    return e;
  }

  /**
   * Index of the cached body of (slot, baseline key, second baseline, owner), encoding it on a miss. Each slot has
   * a home entry per owner flag; when it already holds another baseline of this tick (clients that acked different
   * ticks, as loss makes them), the body goes into a spare table (open addressing, cleared per tick) rather than
   * evicting it, so that clients taking turns with two baselines do not encode both again and again.
   */
  private bodyEntry(
    s: number,
    key: number,
    key2: number,
    isOwner: number,
    snap: Snapshot,
    baseSnap: Snapshot | null,
    baseSnap2: Snapshot | null,
  ): number {
    // Two home entries per slot (owner and others): the common case of one owner among many clients stays cached.
    const home = (2 * s + isOwner) * ENTRY_WORDS;
    const found = this.find(home, key, key2);
    if (found >= 0) return found;
    const e = this.place(home, key, key2);
    const b = this.bodies;
    const start = b.pos;
    let flags = 0;
    this.recPriority = 1;
    this.recReliable = false;
    this.lastPredicted = false;
    if (key === FULL_BODY) {
      b.writeBits(0b10, 2);
      this.writeFullBody(b, snap, s, isOwner === 1);
      flags = BODY_ANY;
    } else if (this.writeUpdateBody(b, snap, baseSnap!, baseSnap2, key, key2, s, isOwner === 1))
      flags = BODY_ANY;
    if (this.recReliable) flags |= BODY_RELIABLE;
    if (this.lastPredicted) flags |= BODY_PREDICTED;
    const table = this.table;
    table[e + E_TICK] = this.store.tickNo;
    table[e + E_KEY] = key;
    table[e + E_KEY2] = key2;
    table[e + E_START] = start;
    table[e + E_LEN] = b.pos - start;
    table[e + E_FLAGS] = flags;
    this.tableF[e + E_PRIORITY] = this.recPriority;
    return e;
  }

  /** This tick's entry of (home entry, key, key2), or -1. */
  private find(home: number, key: number, key2: number): number {
    const tickNo = this.store.tickNo;
    const table = this.table;
    if (table[home + E_TICK] !== tickNo) return -1;
    if (table[home + E_KEY] === key && table[home + E_KEY2] === key2) return home;
    for (let h = spareHash(home, key, key2); ; h = (h + 1) & (SPARE - 1)) {
      const q = this.spareFrom + h * ENTRY_WORDS;
      if (table[q + E_TICK] !== tickNo) return -1;
      if (table[q + E_HOME] === home && table[q + E_KEY] === key && table[q + E_KEY2] === key2) return q;
    }
  }

  /**
   * Where a new body goes: its home entry if that is free this tick, else a free spare entry (the table is kept at
   * most three quarters full, so probes stay short), else the home entry, replaced.
   */
  private place(home: number, key: number, key2: number): number {
    const tickNo = this.store.tickNo;
    const table = this.table;
    if (table[home + E_TICK] !== tickNo || this.spareUsed >= SPARE_MAX) return home;
    for (let h = spareHash(home, key, key2); ; h = (h + 1) & (SPARE - 1)) {
      const q = this.spareFrom + h * ENTRY_WORDS;
      if (table[q + E_TICK] !== tickNo) {
        table[q + E_HOME] = home;
        this.spareUsed++;
        return q;
      }
    }
  }

  private writeFullBody(w: BitWriter, snap: Snapshot, s: number, isOwner: boolean): void {
    const mask = snap.masks[s];
    const o = s * this.row;
    w.writeExpGolomb(snap.ids[s], ID_K);
    w.writeBits(mask, this.comps.length);
    for (const c of this.comps)
      if (mask & (1 << c.index)) this.writeComponentAbsolute(w, c, snap.values, o, isOwner);
  }

  /**
   * The part of an UPDATE after its baseline reference. Returns whether it carries anything. With a second baseline
   * (`baseSnap2` of tick `b1`), the values are extrapolated from the two (`predictRow`) and the record is a delta
   * against that prediction when this is shorter, flagged by one bit.
   */
  private writeUpdateBody(
    w: BitWriter,
    snap: Snapshot,
    baseSnap: Snapshot,
    baseSnap2: Snapshot | null,
    b0: number,
    b1: number,
    s: number,
    isOwner: boolean,
  ): boolean {
    const vals = snap.values;
    const o = s * this.row;
    const mask = snap.masks[s];
    let bvals = baseSnap.values;
    let bo = o;
    const bmask = baseSnap.masks[s];
    let predicted = false;
    if (this.predictable) {
      // The flag goes into the common head below; a record that names its second baseline gets its head from `head`.
      if (baseSnap2 && this.predictionPays(snap, baseSnap, baseSnap2, b0, b1, s, isOwner)) {
        predicted = true;
        this.lastPredicted = true;
        bvals = this.pred;
        bo = 0;
      }
    }
    // Which fields differ, per component present in both masks (owner-only fields never "differ" for others: they
    // never see them).
    const changed = this.changedFields;
    let allChanged = mask === bmask && mask !== 0;
    for (const c of this.comps) {
      const bit = 1 << c.index;
      if (!(mask & bit) || !(bmask & bit)) continue;
      let cf = 0;
      const fields = c.fields;
      for (let fi = 0; fi < fields.length; fi++) {
        const f = fields[fi];
        if (f.ownerOnly && !isOwner) continue;
        const a = o + f.slot;
        const ba = bo + f.slot;
        for (let k = 0; k < f.slotCount; k++) {
          if (vals[a + k] !== bvals[ba + k]) {
            cf |= 1 << fi;
            if (f.priority > this.recPriority) this.recPriority = f.priority;
            if (f.reliable) this.recReliable = true;
            break;
          }
        }
      }
      changed[c.index] = cf;
      if (c.hasOwnerOnly || cf !== (1 << fields.length) - 1) allChanged = false;
    }
    // The common head (`head` for an UPDATE against the packet's baseline), so that such a record is one copy.
    w.writeBits(0, 2);
    if (this.predictable) w.writeBit(predicted);
    // Form bit: 1 = the mask is the baseline's and every field of every component differs (moving things), so no
    // changed bits follow; 0 = the general form.
    w.writeBit(allChanged);
    const maskChanged = mask !== bmask;
    if (!allChanged) {
      w.writeBit(maskChanged);
      if (maskChanged) w.writeBits(mask, this.comps.length);
    }
    let any = allChanged || maskChanged || predicted;
    for (const c of this.comps) {
      const bit = 1 << c.index;
      if (!(mask & bit)) continue;
      if (!(bmask & bit)) {
        this.writeComponentAbsolute(w, c, vals, o, isOwner);
        continue;
      }
      const changedFields = changed[c.index];
      const fields = c.fields;
      if (!allChanged) {
        w.writeBit(changedFields !== 0);
        if (!changedFields) continue;
      }
      any = true;
      const multi = fields.length > 1 && !allChanged;
      for (let fi = 0; fi < fields.length; fi++) {
        const isChanged = (changedFields & (1 << fi)) !== 0;
        if (multi) w.writeBit(isChanged);
        if (!isChanged) continue;
        const f = fields[fi];
        const a = o + f.slot;
        const ba = bo + f.slot;
        if (f.kind === 'string') writeFieldAbsolute(w, f, vals, o, this.store.strings.utf8);
        else if (f.slotCount === 1) writeSlot(w, f.widths[0], vals[a], bvals[ba], f.wrap[0]);
        else writeMultiDelta(w, f, vals, a, bvals, ba);
      }
    }
    return any;
  }

  /**
   * Fills `pred` with the extrapolation from b1 to b0 carried to this tick and says whether encoding against it is
   * shorter than against b0 (counting the slots of the predictable fields and the flag's tick distance).
   */
  private predictionPays(
    snap: Snapshot,
    baseSnap: Snapshot,
    baseSnap2: Snapshot,
    b0: number,
    b1: number,
    s: number,
    isOwner: boolean,
  ): boolean {
    const o = s * this.row;
    const mask = snap.masks[s] & baseSnap.masks[s];
    const pred = this.pred;
    const t = this.store.tickNo;
    predictRow(
      this.comps,
      baseSnap.masks[s],
      baseSnap.values,
      o,
      baseSnap2.values,
      o,
      pred,
      0,
      t - b0,
      b0 - b1,
    );
    const vals = snap.values;
    const bvals = baseSnap.values;
    let withPred = 0;
    let without = 0;
    let differs = false;
    for (const c of this.comps) {
      if (!(mask & (1 << c.index))) continue;
      for (const f of c.fields) {
        if (!f.predictable || (f.ownerOnly && !isOwner)) continue;
        const a = o + f.slot;
        if (f.slotCount === 1) {
          const v = vals[a];
          if (v !== bvals[a]) differs = true;
          without += slotCost(f.widths[0], v, bvals[a], f.wrap[0]);
          withPred += slotCost(f.widths[0], v, pred[f.slot], f.wrap[0]);
          continue;
        }
        let d0 = false;
        let d1 = false;
        for (let k = 0; k < f.slotCount; k++) {
          if (vals[a + k] !== bvals[a + k]) d0 = true;
          if (vals[a + k] !== pred[f.slot + k]) d1 = true;
        }
        if (d0) differs = true;
        without += d0 ? 1 + multiDeltaBits(f, vals, a, bvals, a) : 1;
        withPred += d1 ? 1 + multiDeltaBits(f, vals, a, pred, f.slot) : 1;
      }
    }
    return differs && withPred < without;
  }

  private writeComponentAbsolute(
    w: BitWriter,
    c: CompiledComponent,
    vals: Uint32Array,
    o: number,
    isOwner: boolean,
  ): void {
    for (const f of c.fields) {
      if (f.ownerOnly) {
        w.writeBit(isOwner);
        if (!isOwner) continue;
      }
      writeFieldAbsolute(w, f, vals, o, this.store.strings.utf8);
    }
  }
}
