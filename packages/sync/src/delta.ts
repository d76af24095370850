import type { ClientState } from './acks.js';
import * as bits from './bits.js';
import * as codec from './codec.js';
import type { CompiledComponent } from './schema.js';
import type { EntityStore, Snapshot } from './store.js';

// Module-local copies of imported bindings used per entity: loaders that compile ESM to CommonJS (tsx, which runs the
// bench) turn every access to an imported binding into a getter call, a measurable share of the encode loops.
const { BitWriter, expGolombBits } = bits;
type BitWriter = bits.BitWriter;
const { GAP_K, ID_K, KIND_FULL, KIND_REMOVE, KIND_UPDATE, writeFieldAbsolute, writeSlot } = codec;

/** Body cache key of a FULL record (UPDATE bodies are keyed by their baseline tick, < 2^32 - 1). */
const FULL_BODY = 0xffffffff;
const BODY_ANY = 1;
const BODY_RELIABLE = 2;

/**
 * Encodes entity records: FULL (absolute), UPDATE (a delta against the client's baseline of that entity) and REMOVE.
 *
 * A record's body depends only on the entity slot, its baseline tick (or FULL) and whether the client owns the
 * entity, not on the client otherwise: it is encoded once per tick into `bodies` and copied into every packet (and
 * every budget measurement) that needs it. Under load, clients share baselines and the encode cost is paid once per
 * (slot, baseline) instead of twice per client.
 */
export class DeltaEncoder {
  /** This tick's encoded record bodies, indexed per slot and owner flag by the body* arrays. */
  private readonly bodies = new BitWriter(16384);
  private readonly bodyTick: Uint32Array;
  private readonly bodyKey: Uint32Array;
  private readonly bodyStart: Uint32Array;
  private readonly bodyLen: Uint32Array;
  private readonly bodyFlags: Uint8Array;
  private readonly bodyPriority: Float32Array;
  private readonly comps: readonly CompiledComponent[];
  private readonly row: number;

  // Per-record results, kept in fields to avoid allocating per record.
  /** Highest priority of the fields the record changes. */
  recPriority = 1;
  /** The record changes a `reliable` field. */
  recReliable = false;
  /** A skippable update that carries nothing (nothing was written). */
  recEmpty = false;
  /** The record's final kind (an UPDATE whose baseline left the window becomes FULL). */
  recKind = 0;

  constructor(
    private readonly store: EntityStore,
    private readonly stats: { refreshes: number },
  ) {
    const max = store.max;
    this.comps = store.comps;
    this.row = store.row;
    // Tick 0 is never encoded (tick() comes first), so zeroed entries are never taken for this tick's.
    this.bodyTick = new Uint32Array(2 * max);
    this.bodyKey = new Uint32Array(2 * max);
    this.bodyStart = new Uint32Array(2 * max);
    this.bodyLen = new Uint32Array(2 * max);
    this.bodyFlags = new Uint8Array(2 * max);
    this.bodyPriority = new Float32Array(2 * max);
  }

  /** A new tick: last tick's bodies are stale. */
  reset(): void {
    this.bodies.reset();
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
    packetBase: number,
    counting: boolean,
  ): void {
    const e = this.resolve(cs, snap, s, code, baseTick, packetBase, counting);
    if (this.recEmpty) return;
    const kind = this.recKind;
    w.writeBits(kind, 2);
    if (kind === KIND_REMOVE) return;
    // Baseline: one bit when it is the packet's (the client's newest ack), else its distance from it.
    if (kind === KIND_UPDATE) {
      if (baseTick === packetBase) w.writeBit(0);
      else {
        w.writeBit(1);
        w.writeExpGolomb(packetBase - baseTick - 1, GAP_K);
      }
    }
    w.copyBits(this.bodies.buf, this.bodyStart[e], this.bodyLen[e]);
  }

  /** Bits `write` would write (0 when recEmpty), without writing: the budget's measure. */
  cost(
    cs: ClientState,
    snap: Snapshot,
    s: number,
    code: number,
    baseTick: number,
    packetBase: number,
  ): number {
    const e = this.resolve(cs, snap, s, code, baseTick, packetBase, false);
    if (this.recEmpty) return 0;
    const kind = this.recKind;
    if (kind === KIND_REMOVE) return 2;
    let n = 2 + this.bodyLen[e];
    if (kind === KIND_UPDATE)
      n += baseTick === packetBase ? 1 : 1 + expGolombBits(packetBase - baseTick - 1, GAP_K);
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
    packetBase: number,
    counting: boolean,
  ): number {
    let kind = code & 3;
    this.recEmpty = false;
    this.recPriority = 1;
    this.recReliable = false;
    this.recKind = kind;
    if (kind === KIND_REMOVE) return -1;
    const store = this.store;
    const isOwner = store.owner[s] === cs.index ? 1 : 0;
    let baseSnap: Snapshot | null = null;
    if (kind === KIND_UPDATE) {
      // The client decodes against its own state of tick baseTick, which it keeps for `window` ticks only.
      if (baseTick >= store.tickNo - store.window + 1 && baseTick <= packetBase)
        baseSnap = store.baselineSnapshot(s, baseTick, snap.ids[s]);
      if (!baseSnap) {
        if (counting) this.stats.refreshes++;
        kind = KIND_FULL;
        this.recKind = KIND_FULL;
      }
    }
    const e = this.bodyEntry(s, kind === KIND_FULL ? FULL_BODY : baseTick, isOwner, snap, baseSnap);
    if (kind === KIND_UPDATE) {
      const flags = this.bodyFlags[e];
      this.recPriority = this.bodyPriority[e];
      this.recReliable = (flags & BODY_RELIABLE) !== 0;
      this.recEmpty = !(flags & BODY_ANY) && (code & 4) !== 0;
    } else {
      this.recPriority = 1;
      this.recReliable = false;
    }
    return e;
  }

  /** Index of the cached body of (slot, baseline key, owner), encoding it on a miss. */
  private bodyEntry(
    s: number,
    key: number,
    isOwner: number,
    snap: Snapshot,
    baseSnap: Snapshot | null,
  ): number {
    // Two entries per slot (owner and others): the common case of one owner among many clients stays cached.
    const e = 2 * s + isOwner;
    const tickNo = this.store.tickNo;
    if (this.bodyTick[e] === tickNo && this.bodyKey[e] === key) return e;
    const b = this.bodies;
    const start = b.pos;
    let flags = 0;
    this.recPriority = 1;
    this.recReliable = false;
    if (key === FULL_BODY) {
      this.writeFullBody(b, snap, s, isOwner === 1);
      flags = BODY_ANY;
    } else if (this.writeUpdateBody(b, snap, baseSnap!, s, isOwner === 1)) flags = BODY_ANY;
    if (this.recReliable) flags |= BODY_RELIABLE;
    this.bodyTick[e] = tickNo;
    this.bodyKey[e] = key;
    this.bodyStart[e] = start;
    this.bodyLen[e] = b.pos - start;
    this.bodyFlags[e] = flags;
    this.bodyPriority[e] = this.recPriority;
    return e;
  }

  private writeFullBody(w: BitWriter, snap: Snapshot, s: number, isOwner: boolean): void {
    const mask = snap.masks[s];
    const o = s * this.row;
    w.writeExpGolomb(snap.ids[s], ID_K);
    w.writeBits(mask, this.comps.length);
    for (const c of this.comps)
      if (mask & (1 << c.index)) this.writeComponentAbsolute(w, c, snap.values, o, isOwner);
  }

  /** The part of an UPDATE after its baseline reference. Returns whether it carries anything. */
  private writeUpdateBody(
    w: BitWriter,
    snap: Snapshot,
    baseSnap: Snapshot,
    s: number,
    isOwner: boolean,
  ): boolean {
    const vals = snap.values;
    const o = s * this.row;
    const mask = snap.masks[s];
    const bvals = baseSnap.values;
    const bmask = baseSnap.masks[s];
    const maskChanged = mask !== bmask;
    w.writeBit(maskChanged);
    if (maskChanged) w.writeBits(mask, this.comps.length);
    let any = maskChanged;
    for (const c of this.comps) {
      const bit = 1 << c.index;
      if (!(mask & bit)) continue;
      if (!(bmask & bit)) {
        this.writeComponentAbsolute(w, c, vals, o, isOwner);
        continue;
      }
      // Which fields differ (owner-only fields never "differ" for others: they never see them).
      let changedFields = 0;
      const fields = c.fields;
      for (let fi = 0; fi < fields.length; fi++) {
        const f = fields[fi];
        if (f.ownerOnly && !isOwner) continue;
        const a = o + f.slot;
        for (let k = 0; k < f.slotCount; k++) {
          if (vals[a + k] !== bvals[a + k]) {
            changedFields |= 1 << fi;
            if (f.priority > this.recPriority) this.recPriority = f.priority;
            if (f.reliable) this.recReliable = true;
            break;
          }
        }
      }
      w.writeBit(changedFields !== 0);
      if (!changedFields) continue;
      any = true;
      const multi = fields.length > 1;
      for (let fi = 0; fi < fields.length; fi++) {
        const changed = (changedFields & (1 << fi)) !== 0;
        if (multi) w.writeBit(changed);
        if (!changed) continue;
        const f = fields[fi];
        const a = o + f.slot;
        if (f.kind === 'string') writeFieldAbsolute(w, f, vals, o, this.store.strings.utf8);
        else if (f.slotCount === 1) writeSlot(w, f.widths[0], vals[a], bvals[a], f.wrap[0]);
        else
          for (let k = 0; k < f.slotCount; k++) {
            const d = vals[a + k] !== bvals[a + k];
            w.writeBit(d);
            if (d) writeSlot(w, f.widths[k], vals[a + k], bvals[a + k], f.wrap[k]);
          }
      }
    }
    return any;
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
