import {
  type CompiledComponent,
  type ComponentMap,
  defaultField,
  dequantiseField,
  type EntityValues,
  quantiseField,
  StringTable,
  type SyncSchema,
} from './schema.js';

/** The frozen state of one tick: what every delta of that tick is encoded from, and what later ones refer to. */
export interface Snapshot {
  tick: number;
  /** High-water mark: slots at and above it are empty. */
  hw: number;
  ids: Uint32Array;
  masks: Uint32Array;
  changedAt: Uint32Array;
  values: Uint32Array;
}

/**
 * The server's entities: live quantised state (what the next tick will snapshot) and the ring of `window`
 * snapshots that deltas are encoded from and against. Knows nothing of clients beyond an owner index per entity.
 */
export class EntityStore<M extends ComponentMap = ComponentMap> {
  readonly row: number;
  readonly max: number;
  readonly comps: readonly CompiledComponent[];
  readonly strings = new StringTable();

  tickNo = 0;
  /** Entities whose quantised state changed in the newest tick. */
  changedCount = 0;
  hw = 0;
  readonly ids: Uint32Array;
  readonly masks: Uint32Array;
  /** The tick at which each slot's quantised state (or occupant) last changed. */
  readonly changedAt: Uint32Array;
  readonly values: Uint32Array;
  /** Index of the owning client per slot, -1 for none. */
  readonly owner: Int32Array;
  /** Importance multiplier per slot (`SpawnOptions.priority`). */
  readonly priority: Float32Array;
  private readonly slotOf = new Map<number, number>();
  private readonly freeSlots: number[] = [];
  private nextId = 1;
  private readonly snapshots: (Snapshot | undefined)[];
  private readonly scratch = new Uint32Array(8);
  constructor(
    readonly schema: SyncSchema<M>,
    readonly window: number,
    /** `clamped` counts numbers clamped into their declared range on spawn/set. */
    private readonly stats: { clamped: number },
  ) {
    this.row = schema.rowWidth;
    this.max = schema.maxEntities;
    this.comps = schema.compiled;
    this.ids = new Uint32Array(this.max);
    this.masks = new Uint32Array(this.max);
    this.changedAt = new Uint32Array(this.max);
    this.values = new Uint32Array(this.max * this.row);
    this.owner = new Int32Array(this.max).fill(-1);
    this.priority = new Float32Array(this.max);
    this.snapshots = new Array(window).fill(undefined);
  }

  get size(): number {
    return this.slotOf.size;
  }

  has(id: number): boolean {
    return this.slotOf.has(id);
  }

  slot(id: number): number | undefined {
    return this.slotOf.get(id);
  }

  /** A new entity in a free slot; returns its id. `owner` is a client index (-1 for none). */
  spawn(
    values: Record<string, Record<string, unknown> | undefined>,
    owner: number,
    priority: number,
  ): number {
    const slot = this.freeSlots.length > 0 ? this.freeSlots.pop()! : this.hw;
    if (slot >= this.max) throw new RangeError(`more than maxEntities (${this.max}) entities`);
    if (this.nextId >= 2 ** 31) throw new RangeError('entity ids exhausted');
    if (slot === this.hw) this.hw++;
    const id = this.nextId++;
    this.slotOf.set(id, slot);
    this.ids[slot] = id;
    this.masks[slot] = 0;
    const base = slot * this.row;
    for (const c of this.comps) for (const f of c.fields) defaultField(f, this.values, base);
    this.priority[slot] = priority;
    this.owner[slot] = owner;
    for (const name of Object.keys(values)) {
      const v = values[name];
      if (v) this.writeComponent(slot, name, v, true);
    }
    this.changedAt[slot] = this.tickNo + 1;
    return id;
  }

  /** Frees the entity's slot; returns its owner index (-1 for none), or undefined for an unknown id. */
  despawn(id: number): number | undefined {
    const slot = this.slotOf.get(id);
    if (slot === undefined) return undefined;
    this.slotOf.delete(id);
    this.ids[slot] = 0;
    this.masks[slot] = 0;
    const o = this.owner[slot];
    this.owner[slot] = -1;
    this.changedAt[slot] = this.tickNo + 1;
    this.freeSlots.push(slot);
    return o;
  }

  set(id: number, component: string, value: Record<string, unknown>): void {
    const slot = this.slotOf.get(id);
    if (slot === undefined) throw new RangeError(`unknown entity ${id}`);
    this.writeComponent(slot, component, value, false);
  }

  removeComponent(id: number, component: string): void {
    const slot = this.slotOf.get(id);
    const c = this.schema.byName.get(component);
    if (slot === undefined || !c) throw new RangeError(`unknown entity ${id} or component ${component}`);
    const bit = 1 << c.index;
    if (!(this.masks[slot] & bit)) return;
    this.masks[slot] &= ~bit;
    for (const f of c.fields) defaultField(f, this.values, slot * this.row);
    this.changedAt[slot] = this.tickNo + 1;
  }

  /** Entities owned by client `index` lose their owner (the client left). */
  disown(index: number): void {
    for (let s = 0; s < this.hw; s++) if (this.owner[s] === index) this.owner[s] = -1;
  }

  private writeComponent(
    slot: number,
    name: string,
    value: Record<string, unknown>,
    spawning: boolean,
  ): void {
    const c = this.schema.byName.get(name);
    if (!c) throw new RangeError(`unknown component ${name}`);
    const base = slot * this.row;
    const bit = 1 << c.index;
    let changed = !(this.masks[slot] & bit);
    this.masks[slot] |= bit;
    const scratch = this.scratch;
    for (const f of c.fields) {
      const v = value[f.name];
      if (v === undefined) continue;
      this.stats.clamped += quantiseField(f, v, scratch, -f.slot, this.strings);
      for (let i = 0; i < f.slotCount; i++) {
        const q = scratch[i];
        if (this.values[base + f.slot + i] !== q) {
          this.values[base + f.slot + i] = q;
          changed = true;
        }
      }
    }
    if (changed && !spawning) this.changedAt[slot] = this.tickNo + 1;
  }

  /** The entity's values as a client decodes them; owner-only fields at their defaults unless `owner`. */
  materialise(values: Uint32Array, slot: number, mask: number, owner: boolean): EntityValues<M> {
    const out: Record<string, Record<string, unknown>> = {};
    const base = slot * this.row;
    const tmp = new Uint32Array(this.row);
    for (const c of this.comps) {
      if (!(mask & (1 << c.index))) continue;
      const cv: Record<string, unknown> = {};
      for (const f of c.fields) {
        if (f.ownerOnly && !owner) {
          defaultField(f, tmp, 0);
          cv[f.name] = dequantiseField(f, tmp, 0, this.strings);
        } else cv[f.name] = dequantiseField(f, values, base, this.strings);
      }
      out[c.name] = cv;
    }
    return out as EntityValues<M>;
  }

  /** Freezes the live state as the snapshot of the next tick. Returns the new tick number. */
  tick(): number {
    const t = ++this.tickNo;
    const i = t % this.window;
    let snap = this.snapshots[i];
    const hw = this.hw;
    if (!snap || snap.ids.length < hw) {
      const cap = Math.min(this.max, Math.max(64, 1 << (32 - Math.clz32(Math.max(hw, 1) - 1))));
      snap = {
        tick: t,
        hw,
        ids: new Uint32Array(cap),
        masks: new Uint32Array(cap),
        changedAt: new Uint32Array(cap),
        values: new Uint32Array(cap * this.row),
      };
      this.snapshots[i] = snap;
    }
    snap.tick = t;
    snap.hw = hw;
    snap.ids.set(this.ids.subarray(0, hw));
    snap.masks.set(this.masks.subarray(0, hw));
    snap.changedAt.set(this.changedAt.subarray(0, hw));
    snap.values.set(this.values.subarray(0, hw * this.row));
    let changed = 0;
    const at = this.changedAt;
    for (let s = 0; s < hw; s++) if (at[s] === t) changed++;
    this.changedCount = changed;
    return t;
  }

  current(): Snapshot {
    if (this.tickNo === 0) throw new RangeError('call tick() before encoding');
    return this.snapshots[this.tickNo % this.window]!;
  }

  snapshotAt(t: number): Snapshot | null {
    const snap = this.snapshots[t % this.window];
    return snap && snap.tick === t ? snap : null;
  }

  /** Oldest tick still in the window (at least 1). */
  get oldest(): number {
    return Math.max(1, this.tickNo - this.window + 1);
  }

  /**
   * The snapshot holding the values `slot` had at tick `t` (when the client got them), or null when they have
   * left the window. An unchanged entity's values equal those of any later snapshot whose `changedAt` is still
   * <= t, so resting entities stay delta-codable long after the window.
   */
  baselineSnapshot(slot: number, t: number, id: number): Snapshot | null {
    const oldest = this.oldest;
    const at = Math.max(t, oldest);
    const snap = this.snapshots[at % this.window];
    if (!snap || snap.tick !== at || slot >= snap.hw || snap.ids[slot] !== id) return null;
    if (t < oldest && snap.changedAt[slot] > t) return null;
    return snap;
  }
}
