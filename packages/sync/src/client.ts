import { BitReader } from './bits.js';
import * as codec from './codec.js';
import { SyncError } from './errors.js';
import {
  bitsFor,
  type CompiledComponent,
  type CompiledField,
  type ComponentMap,
  defaultField,
  dequantiseField,
  type EntityValues,
  StringTable,
  type SyncSchema,
} from './schema.js';

// Module-local copies of imported bindings used per record (see server.ts: some loaders make each access a getter call).
const {
  ACK_BYTES,
  ACK_HISTORY,
  GAP_K,
  ID_K,
  KIND_FULL,
  KIND_REMOVE,
  KIND_UPDATE,
  predictRow,
  readMultiDelta,
  readSlot,
} = codec;

/** Options of {@link SyncClient}. */
export interface SyncClientOptions {
  /** Decoded snapshots kept as possible baselines, in ticks. Must be >= the server's window. Default 64. */
  window?: number;
}

/** What the client received and did with it, since it was created. */
export interface SyncClientStats {
  /** Packets passed to `receive`. */
  packets: number;
  /** Bytes of those packets. */
  bytes: number;
  /** Packets decoded and applied as the new current snapshot. */
  applied: number;
  /** Packets older than (or equal to) the newest applied one: reordered or duplicated, dropped. */
  stale: number;
  /** Packets refused (the state is unchanged), by {@link SyncError} code. */
  rejected: {
    /** Ended inside a record. */
    truncated: number;
    /** Any other malformed content. */
    corrupt: number;
    /** Schema hash differs from this client's schema. */
    schemaMismatch: number;
    /** Encoded against a baseline tick this client no longer (or never) had. */
    baselineMissing: number;
  };
}

/** What `on()` handlers of `entered`, `left` and `changed` receive. */
export type SyncEvent =
  | {
      /** The entity is now replicated to this client. */
      type: 'entered';
      /** Entity id, as given to `spawn` on the server. */
      id: number;
      /** The snapshot tick it happened in. */
      tick: number;
    }
  | {
      /** The entity is no longer replicated (despawned, or out of this client's interest). */
      type: 'left';
      /** Entity id, as given to `spawn` on the server. */
      id: number;
      /** The snapshot tick it happened in. */
      tick: number;
    }
  | {
      /** Some component values of the entity changed. */
      type: 'changed';
      /** Entity id, as given to `spawn` on the server. */
      id: number;
      /** The snapshot tick it happened in. */
      tick: number;
      /** Names of the components that changed. */
      components: string[];
    };

/** One decoded tick of state. Valid only during the `snapshot` callback; use `toMap()` to keep it. */
export interface ClientSnapshot<M extends ComponentMap> {
  /** The server tick this snapshot is of. */
  readonly tick: number;
  /** Entities in it. */
  readonly size: number;
  /** Ids of the entities in it. */
  ids(): number[];
  /** Values of one entity, or undefined when it is not in the snapshot. */
  get(id: number): EntityValues<M> | undefined;
  /** Every entity's values, copied: safe to keep after the callback. */
  toMap(): Map<number, EntityValues<M>>;
}

interface ClientView {
  tick: number;
  hw: number;
  ids: Uint32Array;
  masks: Uint32Array;
  values: Uint32Array;
}

type Listener = (e: never) => void;

/**
 * Client side of state sync (sans-IO): `receive(bytes)` decodes a packet against the snapshot it names as
 * baseline, `createAck()` returns the ack to put on the next client->server packet.
 */
export class SyncClient<M extends ComponentMap = ComponentMap> {
  /** Live counters (not a snapshot). */
  readonly stats: SyncClientStats = {
    packets: 0,
    bytes: 0,
    applied: 0,
    stale: 0,
    rejected: { truncated: 0, corrupt: 0, schemaMismatch: 0, baselineMissing: 0 },
  };
  /** Snapshots kept as baselines, in ticks (option `window`, default 64). */
  readonly window: number;
  private readonly row: number;
  private readonly comps: readonly CompiledComponent[];
  private readonly countBits: number;
  private readonly strings = new StringTable();
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });
  private readonly ring: (ClientView | undefined)[];
  private readonly pool: ClientView[] = [];
  private cur: ClientView | null = null;
  private readonly slotOf = new Map<number, number>();
  /** Ticks of successfully decoded packets, for the ack bitfield. */
  private readonly received = new Float64Array(64);
  private readonly listeners = new Map<string, Listener[]>();

  constructor(
    /** The schema; its hash must equal the server's or every packet is rejected. */
    readonly schema: SyncSchema<M>,
    options: SyncClientOptions = {},
  ) {
    this.window = options.window ?? 64;
    if (!Number.isInteger(this.window) || this.window < 2 || this.window > 4096)
      throw new RangeError('window must be 2..4096');
    this.row = schema.rowWidth;
    this.comps = schema.compiled;
    this.countBits = bitsFor(schema.maxEntities);
    this.ring = new Array(this.window).fill(undefined);
  }

  /** Tick of the newest applied snapshot (0 before the first). */
  get tick(): number {
    return this.cur?.tick ?? 0;
  }

  /** Entities in the current snapshot. */
  get size(): number {
    return this.slotOf.size;
  }

  /**
   * Subscribes to `entered`, `left` and `changed` entity events, or to every applied `snapshot`; returns a function
   * that unsubscribes.
   */
  on(type: 'entered' | 'left', fn: (e: { id: number; tick: number }) => void): () => void;
  on(type: 'changed', fn: (e: { id: number; tick: number; components: string[] }) => void): () => void;
  on(type: 'snapshot', fn: (s: ClientSnapshot<M>) => void): () => void;
  on(type: string, fn: (e: never) => void): () => void {
    const list = this.listeners.get(type) ?? [];
    this.listeners.set(type, list);
    list.push(fn);
    return () => {
      const l = this.listeners.get(type);
      if (l) l.splice(l.indexOf(fn), 1);
    };
  }

  /** Current values of an entity, or undefined when it is not (or no longer) replicated to this client. */
  get(id: number): EntityValues<M> | undefined {
    const s = this.slotOf.get(id);
    return s === undefined || !this.cur ? undefined : this.materialise(this.cur, s);
  }

  /** Ids of the entities in the current snapshot. */
  ids(): number[] {
    return [...this.slotOf.keys()];
  }

  /** The current state as a map (a copy). */
  state(): Map<number, EntityValues<M>> {
    const out = new Map<number, EntityValues<M>>();
    if (this.cur) for (const [id, s] of this.slotOf) out.set(id, this.materialise(this.cur, s));
    return out;
  }

  /** 4 bytes: the newest decoded tick modulo 2^16 and which of the 15 ticks before it were decoded (codec.ts). */
  createAck(): Uint8Array {
    const out = new Uint8Array(ACK_BYTES);
    if (!this.cur) return out;
    const newest = this.cur.tick;
    let mask = 0;
    for (let i = 0; i < ACK_HISTORY; i++) {
      const t = newest - 1 - i;
      if (t > 0 && this.received[t % 64] === t) mask |= 1 << i;
    }
    out[0] = (newest >>> 8) & 0xff;
    out[1] = newest & 0xff;
    out[2] = 0x80 | (mask >>> 8);
    out[3] = mask & 0xff;
    return out;
  }

  /**
   * Decodes and applies a packet. Returns false for a stale (reordered or duplicate) packet. Throws a
   * SyncError for bad input; the client's state is then exactly what it was before.
   */
  receive(bytes: Uint8Array): boolean {
    this.stats.packets++;
    this.stats.bytes += bytes.length;
    let view: ClientView | null = null;
    try {
      const r = new BitReader(bytes);
      let tick: number;
      if (r.readBit()) {
        const hash = r.readBits(32);
        if (hash !== this.schema.hash)
          throw new SyncError(
            'schema-mismatch',
            `schema hash ${hash.toString(16)} != ${this.schema.hash.toString(16)}`,
          );
        tick = r.readBits(32);
      } else {
        // Compact header: sent only once this client acknowledged a packet, so after it checked the hash.
        if (!this.cur)
          throw new SyncError('corrupt', 'compact header before any packet with the schema hash');
        // The tick modulo 2^16: the one nearest to the newest applied tick.
        const c = this.cur.tick;
        let d = (r.readBits(16) - (c & 0xffff)) & 0xffff;
        if (d >= 0x8000) d -= 0x10000;
        tick = c + d;
      }
      if (this.cur && tick <= this.cur.tick) {
        this.stats.stale++;
        return false;
      }
      const back = r.readExpGolomb(0);
      if (tick === 0 || back >= tick)
        throw new SyncError('corrupt', `bad tick ${tick} / baseline distance ${back}`);
      // Records apply on top of the newest state (so nothing received ever goes back in time); each update
      // is a delta against the state of the tick the server knows this client holds for that entity.
      const packetBase = back === 0 ? 0 : tick - back;
      const back2 = packetBase > 0 && this.schema.predictable ? r.readExpGolomb(0) : 0;
      if (back2 >= packetBase && back2 > 0)
        throw new SyncError('corrupt', `bad second baseline distance ${back2}`);
      const gapK = r.readBits(2);
      view = this.acquire(tick, this.cur);
      this.decodeRecords(r, view, tick, packetBase, back2 === 0 ? 0 : packetBase - back2, gapK);
      if (!r.atPaddedEnd()) throw new SyncError('corrupt', 'trailing bytes after the last record');
    } catch (err) {
      if (view) this.pool.push(view);
      if (err instanceof SyncError) this.countRejected(err);
      else if (err instanceof RangeError) {
        const e = new SyncError('corrupt', err.message);
        this.countRejected(e);
        throw e;
      }
      throw err;
    }
    this.commit(view);
    return true;
  }

  private countRejected(e: SyncError): void {
    const r = this.stats.rejected;
    if (e.code === 'truncated') r.truncated++;
    else if (e.code === 'schema-mismatch') r.schemaMismatch++;
    else if (e.code === 'baseline-missing') r.baselineMissing++;
    else r.corrupt++;
  }

  private acquire(tick: number, base: ClientView | null): ClientView {
    const cap = base ? base.ids.length : 64;
    let v = this.pool.pop();
    if (!v || v.ids.length < cap)
      v = {
        tick,
        hw: 0,
        ids: new Uint32Array(cap),
        masks: new Uint32Array(cap),
        values: new Uint32Array(cap * this.row),
      };
    v.tick = tick;
    if (base) {
      v.hw = base.hw;
      v.ids.set(base.ids.subarray(0, base.hw));
      v.masks.set(base.masks.subarray(0, base.hw));
      v.values.set(base.values.subarray(0, base.hw * this.row));
      v.ids.fill(0, base.hw);
      v.masks.fill(0, base.hw);
    } else {
      v.hw = 0;
      v.ids.fill(0);
      v.masks.fill(0);
    }
    return v;
  }

  private grow(v: ClientView, slots: number): void {
    if (slots <= v.ids.length) return;
    const cap = Math.min(this.schema.maxEntities, 1 << (32 - Math.clz32(slots - 1)));
    const ids = new Uint32Array(cap);
    const masks = new Uint32Array(cap);
    const values = new Uint32Array(cap * this.row);
    ids.set(v.ids);
    masks.set(v.masks);
    values.set(v.values);
    v.ids = ids;
    v.masks = masks;
    v.values = values;
  }

  private baselineView(t: number): ClientView {
    const base = t > 0 ? this.ring[t % this.window] : undefined;
    if (!base || base.tick !== t) throw new SyncError('baseline-missing', `baseline tick ${t} not held`);
    return base;
  }

  private decodeRecords(
    r: BitReader,
    v: ClientView,
    tick: number,
    packetBase: number,
    packetBase2: number,
    gapK: number,
  ): void {
    const count = r.readBits(this.countBits);
    const max = this.schema.maxEntities;
    if (count > max) throw new SyncError('corrupt', `record count ${count} > maxEntities`);
    // Every record takes at least gapK + 2 bits (gap and kind): a count the packet cannot hold is rejected up front.
    if (count * (gapK + 2) > r.totalBits - r.pos)
      throw new SyncError('truncated', `${count} records in ${r.totalBits} bits`);
    const nComps = this.comps.length;
    const row = this.row;
    let slot = -1;
    for (let i = 0; i < count; i++) {
      slot += r.readExpGolomb(gapK) + 1;
      if (slot >= max) throw new SyncError('corrupt', `entity slot ${slot} >= maxEntities`);
      const kind = !r.readBit() ? KIND_UPDATE : r.readBit() ? KIND_REMOVE : KIND_FULL;
      // A removal past the known slots changes nothing: it must not make the view grow (memory on a peer's word).
      if (kind === KIND_REMOVE && slot >= v.hw) continue;
      this.grow(v, slot + 1);
      if (slot >= v.hw) {
        // Slots between the old high-water mark and this one hold no entity.
        v.ids.fill(0, v.hw, slot + 1);
        v.masks.fill(0, v.hw, slot + 1);
        v.hw = slot + 1;
      }
      const o = slot * row;
      if (kind === KIND_REMOVE) {
        // Idempotent: the server repeats removals until acked, also for entities this client never got.
        v.ids[slot] = 0;
        v.masks[slot] = 0;
      } else if (kind === KIND_FULL) {
        const id = r.readExpGolomb(ID_K);
        if (id === 0) throw new SyncError('corrupt', 'entity id 0');
        const mask = r.readBits(nComps);
        v.ids[slot] = id;
        v.masks[slot] = mask;
        for (const c of this.comps) {
          if (mask & (1 << c.index)) this.readComponentAbsolute(r, c, v.values, o);
          else for (const f of c.fields) defaultField(f, v.values, o);
        }
      } else if (kind === KIND_UPDATE) {
        if (packetBase === 0) throw new SyncError('corrupt', 'update record in a packet without baseline');
        const bt = r.readBit() ? packetBase - 1 - r.readExpGolomb(GAP_K) : packetBase;
        if (bt < 1) throw new SyncError('corrupt', `update baseline tick ${bt}`);
        const base = this.baselineView(bt);
        if (slot >= base.hw || !base.ids[slot])
          throw new SyncError('corrupt', `update of slot ${slot}, empty at ${bt}`);
        // Start from the entity as of its baseline (or the extrapolation from it), then apply the changed fields.
        v.ids[slot] = base.ids[slot];
        v.values.set(base.values.subarray(o, o + row), o);
        const bmask = base.masks[slot];
        if (this.schema.predictable && r.readBit()) {
          const b1 = bt === packetBase && packetBase2 > 0 ? packetBase2 : bt - 1 - r.readExpGolomb(0);
          if (b1 < 1) throw new SyncError('corrupt', `prediction baseline tick ${b1}`);
          const base2 = this.baselineView(b1);
          if (slot >= base2.hw || base2.ids[slot] !== base.ids[slot] || base2.masks[slot] !== bmask)
            throw new SyncError('corrupt', `prediction of slot ${slot} from a different entity at ${b1}`);
          predictRow(this.comps, bmask, base.values, o, base2.values, o, v.values, o, tick - bt, bt - b1);
        }
        // Form bit: 1 = same mask, every field of every component changed (no changed bits follow).
        const allChanged = r.readBit();
        const mask = !allChanged && r.readBit() ? r.readBits(nComps) : bmask;
        v.masks[slot] = mask;
        for (const c of this.comps) {
          const bit = 1 << c.index;
          if (!(mask & bit)) {
            if (bmask & bit) for (const f of c.fields) defaultField(f, v.values, o);
            continue;
          }
          if (!(bmask & bit)) {
            this.readComponentAbsolute(r, c, v.values, o);
            continue;
          }
          if (allChanged) {
            if (c.hasOwnerOnly) throw new SyncError('corrupt', `all-changed form for ${c.name}`);
            for (const f of c.fields) this.readFieldDelta(r, f, v.values, o);
            continue;
          }
          if (!r.readBit()) continue;
          const multi = c.fields.length > 1;
          for (const f of c.fields) {
            if (multi && !r.readBit()) continue;
            this.readFieldDelta(r, f, v.values, o);
          }
        }
      } else throw new SyncError('corrupt', `record kind ${kind}`);
    }
    // The high-water mark shrinks past trailing removals, so views compare cheaply.
    while (v.hw > 0 && !v.ids[v.hw - 1]) v.hw--;
  }

  private readComponentAbsolute(r: BitReader, c: CompiledComponent, vals: Uint32Array, o: number): void {
    for (const f of c.fields) {
      if (f.ownerOnly && !r.readBit()) {
        defaultField(f, vals, o);
        continue;
      }
      if (f.kind === 'string') this.readString(r, f, vals, o);
      else
        for (let k = 0; k < f.slotCount; k++) {
          const q = r.readBits(f.widths[k]);
          if (q > f.maxQ[k]) throw new SyncError('corrupt', `field ${f.name}: value ${q} > ${f.maxQ[k]}`);
          vals[o + f.slot + k] = q;
        }
    }
  }

  private readFieldDelta(r: BitReader, f: CompiledField, vals: Uint32Array, o: number): void {
    const a = o + f.slot;
    if (f.kind === 'string') this.readString(r, f, vals, o);
    else if (f.slotCount === 1) vals[a] = readSlot(r, f.widths[0], f.maxQ[0], vals[a], f.wrap[0]);
    else readMultiDelta(r, f, vals, a);
  }

  private readString(r: BitReader, f: CompiledField, vals: Uint32Array, o: number): void {
    const len = r.readBits(f.widths[0]);
    if (len > (f.params.maxBytes as number))
      throw new SyncError('corrupt', `string of ${len} bytes in ${f.name}`);
    // Allocate only what the packet really carries.
    if (len * 8 > r.totalBits - r.pos)
      throw new SyncError('truncated', `string of ${len} bytes past the end`);
    const b = new Uint8Array(len);
    for (let i = 0; i < len; i++) b[i] = r.readBits(8);
    let s: string;
    try {
      s = this.decoder.decode(b);
    } catch {
      throw new SyncError('corrupt', `invalid UTF-8 in ${f.name}`);
    }
    vals[o + f.slot] = this.strings.intern(s);
  }

  private commit(v: ClientView): void {
    const prev = this.cur;
    const i = v.tick % this.window;
    const old = this.ring[i];
    if (old && old !== prev) this.pool.push(old);
    this.ring[i] = v;
    this.cur = v;
    this.received[v.tick % 64] = v.tick;
    this.stats.applied++;
    this.emitDiff(prev, v);
  }

  private emitDiff(prev: ClientView | null, v: ClientView): void {
    const entered = this.listeners.get('entered');
    const left = this.listeners.get('left');
    const changed = this.listeners.get('changed');
    const hw = Math.max(prev?.hw ?? 0, v.hw);
    const row = this.row;
    const tick = v.tick;
    for (let s = 0; s < hw; s++) {
      const a = prev && s < prev.hw ? prev.ids[s] : 0;
      const b = s < v.hw ? v.ids[s] : 0;
      if (a === b) {
        if (!a || !changed?.length) continue;
        const comps: string[] = [];
        const pm = prev!.masks[s];
        const nm = v.masks[s];
        for (const c of this.comps) {
          const bit = 1 << c.index;
          let diff = (pm & bit) !== (nm & bit);
          if (!diff && nm & bit) {
            const o = s * row + c.slot;
            for (let k = 0; k < c.slotCount; k++)
              if (prev!.values[o + k] !== v.values[o + k]) {
                diff = true;
                break;
              }
          }
          if (diff) comps.push(c.name);
        }
        if (comps.length)
          for (const fn of changed)
            (fn as (e: SyncEvent) => void)({ type: 'changed', id: a, tick, components: comps });
        continue;
      }
      if (a) {
        this.slotOf.delete(a);
        if (left) for (const fn of left) (fn as (e: SyncEvent) => void)({ type: 'left', id: a, tick });
      }
      if (b) {
        this.slotOf.set(b, s);
        if (entered)
          for (const fn of entered) (fn as (e: SyncEvent) => void)({ type: 'entered', id: b, tick });
      }
    }
    const snaps = this.listeners.get('snapshot');
    if (snaps?.length) {
      const snap = this.snapshotOf(v);
      for (const fn of snaps) (fn as (s: ClientSnapshot<M>) => void)(snap);
    }
  }

  private snapshotOf(v: ClientView): ClientSnapshot<M> {
    const slotOf = this.slotOf;
    return {
      tick: v.tick,
      size: slotOf.size,
      ids: () => [...slotOf.keys()],
      get: (id) => {
        const s = slotOf.get(id);
        return s === undefined ? undefined : this.materialise(v, s);
      },
      toMap: () => {
        const m = new Map<number, EntityValues<M>>();
        for (const [id, s] of slotOf) m.set(id, this.materialise(v, s));
        return m;
      },
    };
  }

  private materialise(v: ClientView, s: number): EntityValues<M> {
    const out: Record<string, Record<string, unknown>> = {};
    const o = s * this.row;
    for (const c of this.comps) {
      if (!(v.masks[s] & (1 << c.index))) continue;
      const cv: Record<string, unknown> = {};
      for (const f of c.fields) cv[f.name] = dequantiseField(f, v.values, o, this.strings);
      out[c.name] = cv;
    }
    return out as EntityValues<M>;
  }
}
