import * as bits from './bits.js';
import * as codec from './codec.js';
import { SyncError } from './errors.js';
import {
  bitsFor,
  type CompiledComponent,
  type ComponentMap,
  defaultField,
  dequantiseField,
  type EntityInput,
  type EntityValues,
  quantiseField,
  StringTable,
  type SyncSchema,
  type Vec3,
} from './schema.js';

// Module-local copies of imported bindings used per entity: loaders that compile ESM to CommonJS (tsx, which runs the
// bench) turn every access to an imported binding into a getter call, a measurable share of the encode loops.
const { BitWriter, expGolombBits } = bits;
type BitWriter = bits.BitWriter;
const { GAP_K, HEADER_FIXED_BITS, ID_K, KIND_FULL, KIND_REMOVE, KIND_UPDATE, writeFieldAbsolute, writeSlot } =
  codec;

export type ClientKey = string | number;

export interface SyncServerOptions {
  /**
   * Snapshots kept, and the oldest acknowledged packet still usable as a baseline, in ticks. Default 64
   * (~1 s at 60 Hz). Clients must keep at least as many (`SyncClientOptions.window`).
   */
  window?: number;
  /** Default per-client byte budget of one packet (one tick). Default 1200 (one datagram). */
  budgetBytes?: number;
  /** Hard cap of a packet, even for `reliable` fields over budget. Default 1200. */
  maxPacketBytes?: number;
  /** The vec3 field that positions an entity, for radius interest and distance priority. */
  position?: { component: string; field: string };
  /** Spatial grid cell edge for radius interest, in position units. Default 32. */
  cellSize?: number;
}

export interface ClientOptions {
  /** Overrides the server's `budgetBytes` for this client. */
  budgetBytes?: number;
  /** Only entities whose position is within `radius` of the client's focus (`setFocus`) are sent. */
  radius?: number;
  /** Entities without a position component pass the radius test. Default true. */
  includeUnpositioned?: boolean;
  /** Custom interest: return false to keep an entity away from this client. Runs after the radius test. */
  filter?: (entityId: number) => boolean;
}

export interface SpawnOptions {
  /** The client that owns the entity: the only one receiving its `ownerOnly` fields. */
  owner?: ClientKey;
  /** Importance multiplier for the priority accumulator. Default 1. */
  priority?: number;
}

export interface SyncServerStats {
  ticks: number;
  packets: number;
  bytes: number;
  /** Packets without a usable acknowledged baseline (full snapshots). */
  fullPackets: number;
  /** Packets reused byte-for-byte from another client with the same baseline. */
  sharedPackets: number;
  records: number;
  /** Entity records left out of a packet by the budget (they accumulate priority). */
  deferred: number;
  /** Entities whose baseline values had left the snapshot window, re-sent absolute. */
  refreshes: number;
  acks: number;
  acksRejected: { corrupt: number; unknownSnapshot: number; outOfWindow: number; unknownClient: number };
  /** Numbers clamped into their declared range on `spawn`/`set`. */
  clamped: number;
}

interface Snapshot {
  tick: number;
  hw: number;
  ids: Uint32Array;
  masks: Uint32Array;
  changedAt: Uint32Array;
  values: Uint32Array;
}

/** The entity records of one sent packet, kept until acked or overwritten, to learn what the client holds. */
interface SentPacket {
  tick: number;
  slots: Int32Array;
  /** KIND_* per record, or KIND_VIRTUAL: an update that carried nothing (its ack still advances the baseline). */
  kinds: Uint8Array;
  ids: Uint32Array;
  acked: boolean;
}

interface ClientState {
  key: ClientKey;
  index: number;
  opts: ClientOptions;
  budgetBytes: number;
  focus: Vec3 | null;
  ring: (SentPacket | undefined)[];
  acc: Float32Array;
  interest: Uint8Array;
  owned: number;
  newestAcked: number;
  /** First tick of the current run of complete packets (everything that differed was sent); Infinity if none. */
  completeSince: number;
  /** Moving average of bits per written record, to skip a doomed fast path when far over budget. */
  recordBits: number;
  // Per entity slot, what this client is known to hold (Unity Netcode style per-entity baselines):
  /** Entity id the client holds per the newest ack covering the slot (0 = nothing). */
  ackedId: Uint32Array;
  /** The tick whose values the client is known to hold for the slot (its delta baseline). */
  ackedTick: Uint32Array;
  /** Tick of the newest FULL/UPDATE record sent for the slot. */
  lastEntityTick: Uint32Array;
  /** Tick of the newest REMOVE record sent for the slot. */
  lastRemoveTick: Uint32Array;
  /** Tick of the newest acknowledged REMOVE for the slot. */
  removeAcked: Uint32Array;
}

interface SharedPacket {
  bytes: Uint8Array;
  records: SentPacket;
}

const KIND_VIRTUAL = 3;
/** Body cache key of a FULL record (UPDATE bodies are keyed by their baseline tick, < 2^32 - 1). */
const FULL_BODY = 0xffffffff;
const BODY_ANY = 1;
const BODY_RELIABLE = 2;
const KIND_WEIGHT = [1, 2, 4];

/**
 * Server side of state sync (sans-IO). Mutate entities, call `tick()` once per simulation step, then
 * `encodeFor(client)` for each client and send the bytes (typically as a datagram); feed the acks clients
 * send back to `receiveAck`.
 *
 * Each entity record is a delta against what the client is known to hold for that entity: its state in the
 * newest acknowledged packet that covered it (Fiedler's snapshot compression with Unity Netcode-style
 * per-entity baselines). What a client has not acknowledged is repeated until it is, so creations and
 * removals are reliable in effect, a lost packet costs only a somewhat larger delta later, and a budget that
 * defers an entity never takes back what the client already received.
 */
export class SyncServer<M extends ComponentMap = ComponentMap> {
  readonly stats: SyncServerStats = {
    ticks: 0,
    packets: 0,
    bytes: 0,
    fullPackets: 0,
    sharedPackets: 0,
    records: 0,
    deferred: 0,
    refreshes: 0,
    acks: 0,
    acksRejected: { corrupt: 0, unknownSnapshot: 0, outOfWindow: 0, unknownClient: 0 },
    clamped: 0,
  };
  readonly window: number;
  private readonly budgetBytes: number;
  private readonly maxPacketBytes: number;
  private readonly row: number;
  private readonly max: number;
  private readonly comps: readonly CompiledComponent[];
  private readonly countBits: number;
  private readonly strings = new StringTable();
  private readonly writer = new BitWriter(4096);
  /** This tick's encoded record bodies (see `writeRecord`), indexed per slot and owner flag by the body* arrays. */
  private readonly bodies = new BitWriter(16384);
  private readonly bodyTick: Uint32Array;
  private readonly bodyKey: Uint32Array;
  private readonly bodyStart: Uint32Array;
  private readonly bodyLen: Uint32Array;
  private readonly bodyFlags: Uint8Array;
  private readonly bodyPriority: Float32Array;

  // Live state (what the next tick will snapshot).
  private tickNo = 0;
  private changedCount = 0;
  private hw = 0;
  private readonly ids: Uint32Array;
  private readonly masks: Uint32Array;
  private readonly changedAt: Uint32Array;
  private readonly values: Uint32Array;
  private readonly owner: Int32Array;
  private readonly priority: Float32Array;
  private readonly slotOf = new Map<number, number>();
  private readonly freeSlots: number[] = [];
  private nextId = 1;

  private readonly snapshots: (Snapshot | undefined)[];
  private readonly clients = new Map<ClientKey, ClientState>();
  private readonly clientByIndex: (ClientState | undefined)[] = [];
  /** This tick's packets of clean clients, by the acked tick they are based on (see `encodeFor`). */
  private readonly shared = new Map<number, SharedPacket>();
  private readonly posSlot: number;
  private readonly posComp: number;
  private readonly posMin: number;
  private readonly posPrecision: number;
  private readonly cellSize: number;
  private grid: Map<number, number[]> | null = null;

  // Per-record results of `writeRecord`, kept in fields to avoid allocating per record.
  private recPriority = 1;
  private recReliable = false;
  private recEmpty = false;
  private recKind = 0;

  constructor(
    readonly schema: SyncSchema<M>,
    options: SyncServerOptions = {},
  ) {
    this.window = options.window ?? 64;
    this.budgetBytes = options.budgetBytes ?? 1200;
    this.maxPacketBytes = options.maxPacketBytes ?? 1200;
    if (!Number.isInteger(this.window) || this.window < 2 || this.window > 4096)
      throw new RangeError('window must be 2..4096');
    this.row = schema.rowWidth;
    this.max = schema.maxEntities;
    this.comps = schema.compiled;
    this.countBits = bitsFor(this.max);
    this.checkBudget(this.budgetBytes);
    if (this.maxPacketBytes < this.budgetBytes) throw new RangeError('maxPacketBytes must be >= budgetBytes');
    this.ids = new Uint32Array(this.max);
    this.masks = new Uint32Array(this.max);
    this.changedAt = new Uint32Array(this.max);
    this.values = new Uint32Array(this.max * this.row);
    this.owner = new Int32Array(this.max).fill(-1);
    this.priority = new Float32Array(this.max);
    this.snapshots = new Array(this.window).fill(undefined);
    this.cand = new Int32Array(this.max);
    this.candBase = new Uint32Array(this.max);
    this.recKinds = new Uint8Array(this.max);
    this.keys = new Float64Array(this.max);
    this.chosen = new Uint8Array(this.max);
    // Tick 0 is never encoded (tick() comes first), so zeroed entries are never taken for this tick's.
    this.bodyTick = new Uint32Array(2 * this.max);
    this.bodyKey = new Uint32Array(2 * this.max);
    this.bodyStart = new Uint32Array(2 * this.max);
    this.bodyLen = new Uint32Array(2 * this.max);
    this.bodyFlags = new Uint8Array(2 * this.max);
    this.bodyPriority = new Float32Array(2 * this.max);
    this.fieldWeights = schema.compiled.some((c) => c.fields.some((f) => f.priority !== 1 || f.reliable));
    this.cellSize = options.cellSize ?? 32;
    if (options.position) {
      const c = schema.byName.get(options.position.component);
      const f = c?.fields.find((x) => x.name === options.position?.field);
      if (!c || !f || f.kind !== 'vec3') throw new RangeError('position must name a vec3 field');
      this.posComp = c.index;
      this.posSlot = f.slot;
      this.posMin = f.params.min as number;
      this.posPrecision = f.params.precision as number;
    } else {
      this.posComp = -1;
      this.posSlot = -1;
      this.posMin = 0;
      this.posPrecision = 0;
    }
  }

  /** Every budget must fit the header and the largest possible entity record, or that entity would starve. */
  private checkBudget(bytes: number): void {
    const need =
      HEADER_FIXED_BITS +
      64 +
      this.countBits +
      expGolombBits(this.max, GAP_K) +
      this.schema.maxFullRecordBits;
    if (!(bytes * 8 >= need))
      throw new RangeError(
        `budget of ${bytes} bytes is below one full entity record (${Math.ceil(need / 8)} bytes)`,
      );
  }

  /** The tick of the newest snapshot (0 before the first `tick()`). */
  get currentTick(): number {
    return this.tickNo;
  }

  /** Entities whose quantised state changed (or that spawned or despawned) in the newest tick. */
  get changedLastTick(): number {
    return this.changedCount;
  }

  get entityCount(): number {
    return this.slotOf.size;
  }

  // ---------------------------------------------------------------- entities

  spawn(values: EntityInput<M>, opts: SpawnOptions = {}): number {
    const slot = this.freeSlots.length > 0 ? this.freeSlots.pop()! : this.hw;
    if (slot >= this.max) throw new RangeError(`more than maxEntities (${this.max}) entities`);
    if (slot === this.hw) this.hw++;
    if (this.nextId >= 2 ** 31) throw new RangeError('entity ids exhausted');
    const id = this.nextId++;
    this.slotOf.set(id, slot);
    this.ids[slot] = id;
    this.masks[slot] = 0;
    const base = slot * this.row;
    for (const c of this.comps) for (const f of c.fields) defaultField(f, this.values, base);
    this.priority[slot] = opts.priority ?? 1;
    this.owner[slot] = -1;
    if (opts.owner !== undefined) {
      const cs = this.clients.get(opts.owner);
      if (!cs) throw new RangeError(`unknown owner client ${String(opts.owner)}`);
      this.owner[slot] = cs.index;
      cs.owned++;
    }
    for (const name of Object.keys(values)) {
      const v = (values as Record<string, Record<string, unknown> | undefined>)[name];
      if (v) this.writeComponent(slot, name, v, true);
    }
    this.changedAt[slot] = this.tickNo + 1;
    return id;
  }

  despawn(id: number): boolean {
    const slot = this.slotOf.get(id);
    if (slot === undefined) return false;
    this.slotOf.delete(id);
    this.ids[slot] = 0;
    this.masks[slot] = 0;
    const o = this.owner[slot];
    if (o >= 0) {
      const cs = this.clientByIndex[o];
      if (cs) cs.owned--;
    }
    this.owner[slot] = -1;
    this.changedAt[slot] = this.tickNo + 1;
    this.freeSlots.push(slot);
    return true;
  }

  has(id: number): boolean {
    return this.slotOf.has(id);
  }

  /** Sets some fields of a component, adding the component to the entity if it lacked it. */
  set<K extends keyof M & string>(id: number, component: K, value: EntityInput<M>[K]): void {
    const slot = this.slotOf.get(id);
    if (slot === undefined) throw new RangeError(`unknown entity ${id}`);
    this.writeComponent(slot, component, value as Record<string, unknown>, false);
  }

  removeComponent(id: number, component: keyof M & string): void {
    const slot = this.slotOf.get(id);
    const c = this.schema.byName.get(component);
    if (slot === undefined || !c) throw new RangeError(`unknown entity ${id} or component ${component}`);
    const bit = 1 << c.index;
    if (!(this.masks[slot] & bit)) return;
    this.masks[slot] &= ~bit;
    for (const f of c.fields) defaultField(f, this.values, slot * this.row);
    this.changedAt[slot] = this.tickNo + 1;
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
      quantiseField(f, v, scratch, -f.slot, this.strings);
      if (f.kind === 'int' || f.kind === 'float') this.countClamp(f.params, v as number);
      else if (f.kind === 'vec3') {
        const p = v as Vec3;
        this.countClamp(f.params, p.x);
        this.countClamp(f.params, p.y);
        this.countClamp(f.params, p.z);
      }
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

  private readonly scratch = new Uint32Array(8);

  private countClamp(p: Readonly<Record<string, unknown>>, v: number): void {
    const min = p.min as number;
    const max = p.max as number;
    if (!(v >= min && v <= max)) this.stats.clamped++;
  }

  /** The entity's current values as every client decodes them (quantised, then dequantised). */
  getQuantised(id: number, forClient?: ClientKey): EntityValues<M> | undefined {
    const slot = this.slotOf.get(id);
    if (slot === undefined) return undefined;
    const owner = forClient === undefined ? true : this.clients.get(forClient)?.index === this.owner[slot];
    return this.materialise(this.values, slot, this.masks[slot], owner);
  }

  /**
   * Every entity the client should see this tick (interest applied, owner-only fields hidden from
   * non-owners), as the client will decode them: the reference for "client state equals server state".
   */
  quantisedStateFor(client: ClientKey): Map<number, EntityValues<M>> {
    const cs = this.requireClient(client);
    const snap = this.current();
    this.computeInterest(cs, snap);
    const out = new Map<number, EntityValues<M>>();
    for (let s = 0; s < snap.hw; s++) {
      if (!snap.ids[s] || !this.inInterest(cs, s)) continue;
      out.set(snap.ids[s], this.materialise(snap.values, s, snap.masks[s], this.owner[s] === cs.index));
    }
    return out;
  }

  private materialise(values: Uint32Array, slot: number, mask: number, owner: boolean): EntityValues<M> {
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

  // ---------------------------------------------------------------- clients

  addClient(key: ClientKey, opts: ClientOptions = {}): void {
    if (this.clients.has(key)) throw new RangeError(`client ${String(key)} already added`);
    if (opts.budgetBytes !== undefined) this.checkBudget(opts.budgetBytes);
    if (opts.radius !== undefined && this.posSlot < 0)
      throw new RangeError('radius interest needs options.position');
    let index = this.clientByIndex.indexOf(undefined);
    if (index < 0) index = this.clientByIndex.length;
    const cs: ClientState = {
      key,
      index,
      opts,
      budgetBytes: Math.min(opts.budgetBytes ?? this.budgetBytes, this.maxPacketBytes),
      focus: null,
      ring: new Array(this.window).fill(undefined),
      acc: new Float32Array(this.max),
      interest: new Uint8Array(this.max),
      owned: 0,
      newestAcked: 0,
      completeSince: Number.POSITIVE_INFINITY,
      recordBits: 0,
      ackedId: new Uint32Array(this.max),
      ackedTick: new Uint32Array(this.max),
      lastEntityTick: new Uint32Array(this.max),
      lastRemoveTick: new Uint32Array(this.max),
      removeAcked: new Uint32Array(this.max),
    };
    this.clients.set(key, cs);
    this.clientByIndex[index] = cs;
  }

  removeClient(key: ClientKey): void {
    const cs = this.clients.get(key);
    if (!cs) return;
    for (let s = 0; s < this.hw; s++) if (this.owner[s] === cs.index) this.owner[s] = -1;
    this.clients.delete(key);
    this.clientByIndex[cs.index] = undefined;
  }

  /** The client's point of interest (its avatar or camera), for radius interest and distance priority. */
  setFocus(key: ClientKey, focus: Vec3 | null): void {
    this.requireClient(key).focus = focus ? { x: focus.x, y: focus.y, z: focus.z } : null;
  }

  private requireClient(key: ClientKey): ClientState {
    const cs = this.clients.get(key);
    if (!cs) throw new SyncError('unknown-client', `unknown client ${String(key)}`);
    return cs;
  }

  // ---------------------------------------------------------------- ticks and snapshots

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
    this.stats.ticks++;
    this.shared.clear();
    this.bodies.reset();
    this.grid = null;
    return t;
  }

  private current(): Snapshot {
    if (this.tickNo === 0) throw new RangeError('call tick() before encoding');
    return this.snapshots[this.tickNo % this.window]!;
  }

  /**
   * The snapshot holding the values `slot` had at tick `t` (when the view says the client got them), or null
   * when they have left the window. An unchanged entity's values equal those of any later snapshot whose
   * `changedAt` is still <= t, so resting entities stay delta-codable long after the window.
   */
  private baselineSnapshot(slot: number, t: number, id: number): Snapshot | null {
    const oldest = Math.max(1, this.tickNo - this.window + 1);
    const at = Math.max(t, oldest);
    const snap = this.snapshots[at % this.window];
    if (!snap || snap.tick !== at || slot >= snap.hw || snap.ids[slot] !== id) return null;
    if (t < oldest && snap.changedAt[slot] > t) return null;
    return snap;
  }

  // ---------------------------------------------------------------- interest

  private allInterest(cs: ClientState): boolean {
    return cs.opts.radius === undefined && cs.opts.filter === undefined;
  }

  private inInterest(cs: ClientState, slot: number): boolean {
    return this.allInterest(cs) || cs.interest[slot] === 1;
  }

  private buildGrid(snap: Snapshot): Map<number, number[]> {
    const grid = new Map<number, number[]>();
    for (let s = 0; s < snap.hw; s++) {
      if (!snap.ids[s] || !(snap.masks[s] & (1 << this.posComp))) continue;
      const key = this.cellKey(snap, s);
      const cell = grid.get(key);
      if (cell) cell.push(s);
      else grid.set(key, [s]);
    }
    return grid;
  }

  private pos(snap: Snapshot, s: number, axis: number): number {
    return this.posMin + snap.values[s * this.row + this.posSlot + axis] * this.posPrecision;
  }

  private cellKey(snap: Snapshot, s: number): number {
    return this.keyOf(this.pos(snap, s, 0), this.pos(snap, s, 1), this.pos(snap, s, 2));
  }

  /** Cells wrap every 1024 per axis; a collision only adds candidates that the distance test removes. */
  private keyOf(x: number, y: number, z: number): number {
    const c = this.cellSize;
    return (
      (((Math.floor(x / c) & 1023) << 20) |
        ((Math.floor(y / c) & 1023) << 10) |
        (Math.floor(z / c) & 1023)) >>>
      0
    );
  }

  private computeInterest(cs: ClientState, snap: Snapshot): void {
    if (this.allInterest(cs)) return;
    const interest = cs.interest;
    const { radius, filter } = cs.opts;
    const unpositioned = cs.opts.includeUnpositioned ?? true;
    interest.fill(0, 0, Math.max(snap.hw, 1));
    if (radius === undefined) interest.fill(1, 0, snap.hw);
    else {
      const posBit = 1 << this.posComp;
      if (unpositioned) for (let s = 0; s < snap.hw; s++) if (!(snap.masks[s] & posBit)) interest[s] = 1;
      const f = cs.focus;
      if (f) {
        this.grid ??= this.buildGrid(snap);
        const c = this.cellSize;
        const r2 = radius * radius;
        const span = Math.min(Math.ceil(radius / c), 511);
        const cx = Math.floor(f.x / c);
        const cy = Math.floor(f.y / c);
        const cz = Math.floor(f.z / c);
        for (let dx = -span; dx <= span; dx++)
          for (let dy = -span; dy <= span; dy++)
            for (let dz = -span; dz <= span; dz++) {
              const key =
                ((((cx + dx) & 1023) << 20) | (((cy + dy) & 1023) << 10) | ((cz + dz) & 1023)) >>> 0;
              const cell = this.grid.get(key);
              if (!cell) continue;
              for (const s of cell) {
                const ex = this.pos(snap, s, 0) - f.x;
                const ey = this.pos(snap, s, 1) - f.y;
                const ez = this.pos(snap, s, 2) - f.z;
                if (ex * ex + ey * ey + ez * ez <= r2) interest[s] = 1;
              }
            }
      }
    }
    for (let s = 0; s < snap.hw; s++) {
      if (!snap.ids[s]) interest[s] = 0;
      else if (filter && interest[s] && !filter(snap.ids[s])) interest[s] = 0;
    }
  }

  private distanceFactor(cs: ClientState, snap: Snapshot, s: number): number {
    const f = cs.focus;
    if (!f || this.posComp < 0 || !(snap.masks[s] & (1 << this.posComp))) return 1;
    const d = Math.hypot(this.pos(snap, s, 0) - f.x, this.pos(snap, s, 1) - f.y, this.pos(snap, s, 2) - f.z);
    const r = cs.opts.radius ?? this.cellSize * 4;
    return 1 / (1 + d / r);
  }

  // ---------------------------------------------------------------- acks

  /**
   * An ack from the client (bytes from `SyncClient.createAck`). Throws a SyncError (and changes nothing)
   * for a malformed ack, an ack of a snapshot never sent to this client or older than the window.
   */
  receiveAck(key: ClientKey, bytes: Uint8Array): void {
    const cs = this.clients.get(key);
    if (!cs) {
      this.stats.acksRejected.unknownClient++;
      throw new SyncError('unknown-client', `ack from unknown client ${String(key)}`);
    }
    if (bytes.length !== 8) {
      this.stats.acksRejected.corrupt++;
      throw new SyncError('corrupt', `ack of ${bytes.length} bytes (expected 8)`);
    }
    const dv = new DataView(bytes.buffer, bytes.byteOffset, 8);
    const newest = dv.getUint32(0);
    const mask = dv.getUint32(4);
    if (newest === 0) {
      if (mask !== 0) {
        this.stats.acksRejected.corrupt++;
        throw new SyncError('corrupt', 'ack bits without a newest tick');
      }
      this.stats.acks++;
      return;
    }
    const oldest = this.tickNo - this.window + 1;
    if (newest > this.tickNo) {
      this.stats.acksRejected.unknownSnapshot++;
      throw new SyncError(
        'unknown-snapshot',
        `ack of tick ${newest}, newer than the server's ${this.tickNo}`,
      );
    }
    if (newest < oldest) {
      this.stats.acksRejected.outOfWindow++;
      throw new SyncError('out-of-window', `ack of tick ${newest}, older than the window (${oldest})`);
    }
    // Validate everything before changing anything.
    for (let i = -1; i < 32; i++) {
      if (i >= 0 && !(mask & (1 << i))) continue;
      const t = newest - 1 - i;
      if (t < oldest || t < 1) continue;
      const p = cs.ring[t % this.window];
      if (!p || p.tick !== t) {
        this.stats.acksRejected.unknownSnapshot++;
        throw new SyncError('unknown-snapshot', `ack of tick ${t}, never sent to this client`);
      }
    }
    // Oldest first, so that per slot the newest acked record wins.
    for (let i = 31; i >= -1; i--) {
      if (i >= 0 && !(mask & (1 << i))) continue;
      const t = newest - 1 - i;
      if (t < oldest || t < 1) continue;
      const p = cs.ring[t % this.window]!;
      if (!p.acked) this.applyAck(cs, p);
    }
    if (newest > cs.newestAcked) {
      this.advanceBaselines(cs, newest);
      cs.newestAcked = newest;
    }
    this.stats.acks++;
  }

  private applyAck(cs: ClientState, p: SentPacket): void {
    p.acked = true;
    const t = p.tick;
    const { ackedId, ackedTick, removeAcked } = cs;
    for (let i = 0; i < p.slots.length; i++) {
      const s = p.slots[i];
      const kind = p.kinds[i];
      if (kind === KIND_REMOVE) {
        if (t > removeAcked[s]) removeAcked[s] = t;
        if (t > ackedTick[s]) {
          ackedId[s] = 0;
          ackedTick[s] = t;
        }
      } else if (t > ackedTick[s]) {
        if (kind !== KIND_VIRTUAL) {
          ackedId[s] = p.ids[i];
          ackedTick[s] = t;
        } else if (ackedId[s] === p.ids[i]) ackedTick[s] = t;
      }
    }
  }

  /**
   * The client holds tick `t`'s state: an entity unchanged since its baseline (and not removed since) has, in
   * that state, the values of tick `t` too. Moving its baseline up keeps resting entities delta-codable within
   * the window, and lets a later change reference the packet-wide baseline (one bit).
   */
  private advanceBaselines(cs: ClientState, t: number): void {
    const snap = this.snapshots[t % this.window];
    if (!snap || snap.tick !== t) return;
    const { ackedId, ackedTick, lastRemoveTick } = cs;
    const ids = snap.ids;
    const at = snap.changedAt;
    for (let s = 0; s < snap.hw; s++) {
      const id = ackedId[s];
      const bt = ackedTick[s];
      if (id !== 0 && bt < t && ids[s] === id && at[s] <= bt && lastRemoveTick[s] <= bt) ackedTick[s] = t;
    }
  }

  // ---------------------------------------------------------------- encoding

  private snapshotAt(t: number): Snapshot | null {
    const snap = this.snapshots[t % this.window];
    return snap && snap.tick === t ? snap : null;
  }

  /**
   * The packet for this client at the current tick. Call once per client per tick, after `tick()`.
   *
   * Records are deltas against per-entity baselines: the newest acked state of that entity. A "clean" client
   * (every packet since its newest ack p was complete) holds exactly the world of tick p, so its packet is a
   * pure function of p: clients that acked the same tick share one encoding byte for byte.
   */
  encodeFor(key: ClientKey): Uint8Array {
    const cs = this.requireClient(key);
    const snap = this.current();
    const t = this.tickNo;
    const oldest = Math.max(1, t - this.window + 1);
    const p = cs.newestAcked >= oldest ? cs.newestAcked : 0;
    const all = this.allInterest(cs);
    const clean = all && p > 0 && p >= cs.completeSince && this.snapshotAt(p) !== null;
    const shareable = clean && (cs.owned === 0 || !this.schema.hasOwnerOnly);
    if (shareable) {
      const hit = this.shared.get(p);
      if (hit && hit.bytes.length <= cs.budgetBytes) {
        this.recordSent(cs, hit.records, true);
        this.account(hit.bytes, p, hit.records.slots.length, 0);
        this.stats.sharedPackets++;
        return hit.bytes;
      }
    }
    this.computeInterest(cs, snap);
    const w = this.writer;
    w.reset();
    w.writeBits(this.schema.hash, 32);
    w.writeBits(t, 32);
    w.writeExpGolomb(p === 0 ? 0 : t - p, 0);
    const countPos = w.pos;
    w.writeBits(0, this.countBits);
    const headerBits = w.pos;

    // Candidates: cand = slot << 3 | skippable << 2 | kind, with their baseline ticks in candBase.
    const cand = this.cand;
    const candBase = this.candBase;
    let n = 0;
    if (clean) {
      const sp = this.snapshotAt(p)!;
      const hw = Math.max(snap.hw, sp.hw);
      for (let s = 0; s < hw; s++) {
        const cur = s < snap.hw ? snap.ids[s] : 0;
        const had = s < sp.hw ? sp.ids[s] : 0;
        if (cur === 0) {
          // Anything that lived in the slot after p may have reached the client: remove (idempotent).
          if (had !== 0 || (s < snap.hw && snap.changedAt[s] > p)) cand[n++] = (s << 3) | KIND_REMOVE;
        } else if (had !== cur) cand[n++] = (s << 3) | KIND_FULL;
        else if (snap.changedAt[s] > p) {
          candBase[n] = p;
          cand[n++] = (s << 3) | KIND_UPDATE;
        }
      }
    } else {
      const { ackedId, ackedTick, lastEntityTick, lastRemoveTick, removeAcked, interest } = cs;
      for (let s = 0; s < snap.hw; s++) {
        const cur = snap.ids[s];
        if (cur === 0 || !(all || interest[s] === 1)) {
          if (ackedId[s] !== 0 || lastEntityTick[s] > removeAcked[s]) cand[n++] = (s << 3) | KIND_REMOVE;
        } else if (ackedId[s] !== cur) cand[n++] = (s << 3) | KIND_FULL;
        else {
          const bt = ackedTick[s];
          const removed = lastRemoveTick[s] > bt;
          if (removed || snap.changedAt[s] > bt) {
            candBase[n] = bt;
            // An update that turns out empty may be skipped only if nothing newer is in flight to the client.
            const skippable = !removed && lastEntityTick[s] <= bt;
            cand[n++] = (s << 3) | (skippable ? 4 : 0) | KIND_UPDATE;
          }
        }
      }
    }

    // Fast path: everything in one pass; fall back to prioritised selection when over budget.
    const kinds = this.recKinds;
    let prev = -1;
    let count = 0;
    const budgetBits = cs.budgetBytes * 8;
    // Far over budget by recent record sizes: go straight to prioritised selection.
    let over = n * cs.recordBits > 2 * (budgetBits - headerBits);
    for (let i = 0; i < n && !over; i++) {
      const s = cand[i] >>> 3;
      const mark = w.pos;
      w.writeExpGolomb(s - prev - 1, GAP_K);
      this.writeRecord(w, cs, snap, s, cand[i], candBase[i], p);
      if (this.recEmpty) {
        w.rewind(mark);
        kinds[i] = KIND_VIRTUAL;
        continue;
      }
      kinds[i] = this.recKind;
      prev = s;
      count++;
      if (w.pos > budgetBits) {
        over = true;
        break;
      }
    }
    let deferred = 0;
    let chosen: Uint8Array | null = null;
    if (over) {
      w.rewind(headerBits);
      ({ count, deferred } = this.prioritised(w, cs, snap, n, headerBits, p));
      chosen = this.chosen;
    }
    // The count was reserved as zero bits; OR it in now that it is known.
    w.orBitsAt(countPos, count, this.countBits);
    if (count > 0) cs.recordBits = 0.8 * cs.recordBits + (0.2 * (w.pos - headerBits)) / count;
    const bytes = w.bytes();
    let m = 0;
    for (let i = 0; i < n; i++) if (chosen?.[i] !== 0) m++;
    const records: SentPacket = {
      tick: t,
      slots: new Int32Array(m),
      kinds: new Uint8Array(m),
      ids: new Uint32Array(m),
      acked: false,
    };
    m = 0;
    for (let i = 0; i < n; i++) {
      if (chosen && chosen[i] === 0) continue;
      const s = cand[i] >>> 3;
      records.slots[m] = s;
      records.kinds[m] = kinds[i];
      records.ids[m++] = snap.ids[s];
    }
    const complete = deferred === 0 && all;
    this.recordSent(cs, records, complete);
    this.account(bytes, p, count, deferred);
    if (shareable && complete) this.shared.set(p, { bytes, records });
    return bytes;
  }

  private readonly cand: Int32Array;
  private readonly candBase: Uint32Array;
  private readonly recKinds: Uint8Array;
  private readonly keys: Float64Array;
  private readonly chosen: Uint8Array;
  /** Some field has a priority other than 1 or is reliable: ranking must look at which fields changed. */
  private readonly fieldWeights: boolean;

  /** Bookkeeping for a packet handed to the client: what may be in flight, priorities, the ack ring. */
  private recordSent(cs: ClientState, records: SentPacket, complete: boolean): void {
    const t = records.tick;
    for (let i = 0; i < records.slots.length; i++) {
      const s = records.slots[i];
      const kind = records.kinds[i];
      cs.acc[s] = 0;
      if (kind === KIND_REMOVE) cs.lastRemoveTick[s] = t;
      else if (kind !== KIND_VIRTUAL) cs.lastEntityTick[s] = t;
    }
    if (!complete) cs.completeSince = Number.POSITIVE_INFINITY;
    else if (cs.completeSince === Number.POSITIVE_INFINITY) cs.completeSince = t;
    // Each client gets its own record of the packet (the arrays are shared, immutable): acks are per client.
    cs.ring[t % this.window] = {
      tick: t,
      slots: records.slots,
      kinds: records.kinds,
      ids: records.ids,
      acked: false,
    };
  }

  private account(bytes: Uint8Array, baseline: number, records: number, deferred: number): void {
    this.stats.packets++;
    this.stats.bytes += bytes.length;
    this.stats.records += records;
    this.stats.deferred += deferred;
    if (baseline === 0) this.stats.fullPackets++;
  }

  /**
   * Over budget: every candidate gains priority (importance x staleness, Fiedler's priority accumulator),
   * then records are packed in accumulator order until the budget is spent; the rest keep what they gained.
   * Ranking needs no encoding (a native sort of packed keys); only records in rank order are measured.
   */
  private prioritised(
    w: BitWriter,
    cs: ClientState,
    snap: Snapshot,
    n: number,
    headerBits: number,
    p: number,
  ): { count: number; deferred: number } {
    const cand = this.cand;
    const candBase = this.candBase;
    const keys = this.keys.subarray(0, n);
    const fieldWeights = this.fieldWeights;
    const acc = cs.acc;
    const priority = this.priority;
    const byDistance = cs.focus !== null && this.posComp >= 0;
    for (let i = 0; i < n; i++) {
      const c = cand[i];
      const s = c >>> 3;
      const kind = c & 3;
      let fp = 1;
      let reliable = false;
      if (kind === KIND_UPDATE && fieldWeights) {
        this.changedWeight(cs, snap, s, candBase[i]);
        fp = this.recPriority;
        reliable = this.recReliable;
      }
      const df = byDistance ? this.distanceFactor(cs, snap, s) : 1;
      // Rounded as the Float32Array stores it, so the key is the stored accumulator's.
      const a = Math.fround(acc[s] + KIND_WEIGHT[kind] * priority[s] * fp * df);
      acc[s] = a;
      // Packed sort key: reliable first, then the accumulator (quantised), then the candidate index.
      const q = Math.min(Math.floor(a * 64), 0x7fffffff) + (reliable ? 0x80000000 : 0);
      keys[i] = q * 2097152 + i;
    }
    const gapBound = expGolombBits(this.max, GAP_K);
    const budget = cs.budgetBytes * 8;
    // Only the top of the ranking is ever reached (about budget / record size, plus the misses allowed below):
    // select that many in O(n) and sort just them; sort the rest only if the loop runs past them.
    const expected = Math.ceil(budget / Math.max(8, cs.recordBits));
    let sortedFrom = Math.max(0, n - (2 * expected + 32));
    if (sortedFrom > 0) selectTop(keys, sortedFrom, n);
    keys.subarray(sortedFrom, n).sort();
    const hard = this.maxPacketBytes * 8;
    // chosen: 0 = deferred, 1 = written, 2 = empty update (not written, acked as virtual).
    const chosen = this.chosen;
    chosen.fill(0, 0, n);
    let total = headerBits;
    let picked = 0;
    let empty = 0;
    let misses = 0;
    for (let j = n - 1; j >= 0; j--) {
      if (j < sortedFrom) {
        keys.subarray(0, sortedFrom).sort();
        sortedFrom = 0;
      }
      const key = keys[j];
      const i = key % 2097152;
      const reliable = key >= 0x80000000 * 2097152;
      const bits = this.recordCost(cs, snap, cand[i] >>> 3, cand[i], candBase[i], p);
      if (this.recEmpty) {
        chosen[i] = 2;
        empty++;
        continue;
      }
      const cost = bits + gapBound;
      if (total + cost <= budget || picked === 0 || (reliable && total + cost <= hard)) {
        chosen[i] = 1;
        total += cost;
        picked++;
      } else if (!reliable && ++misses > 8) break;
    }
    const kinds = this.recKinds;
    let prev = -1;
    let count = 0;
    for (let i = 0; i < n; i++) {
      if (chosen[i] === 2) kinds[i] = KIND_VIRTUAL;
      if (chosen[i] !== 1) continue;
      const s = cand[i] >>> 3;
      w.writeExpGolomb(s - prev - 1, GAP_K);
      this.writeRecord(w, cs, snap, s, cand[i], candBase[i], p);
      kinds[i] = this.recKind;
      prev = s;
      count++;
    }
    return { count, deferred: n - picked - empty };
  }

  /** Sets recPriority / recReliable from the fields of `s` that differ from the client's baseline. */
  private changedWeight(cs: ClientState, snap: Snapshot, s: number, baseTick: number): void {
    this.recPriority = 1;
    this.recReliable = false;
    const base = this.baselineSnapshot(s, baseTick, snap.ids[s]);
    if (!base) return;
    const isOwner = this.owner[s] === cs.index;
    const mask = snap.masks[s] & base.masks[s];
    const o = s * this.row;
    const a = snap.values;
    const b = base.values;
    for (const c of this.comps) {
      if (!(mask & (1 << c.index))) continue;
      for (const f of c.fields) {
        if ((f.priority === 1 && !f.reliable) || (f.ownerOnly && !isOwner)) continue;
        for (let k = 0; k < f.slotCount; k++)
          if (a[o + f.slot + k] !== b[o + f.slot + k]) {
            if (f.priority > this.recPriority) this.recPriority = f.priority;
            if (f.reliable) this.recReliable = true;
            break;
          }
      }
    }
  }

  /**
   * Writes one record (kind and what follows). Sets recEmpty when an update turned out to carry nothing (and was
   * skippable, so nothing was written).
   *
   * A record's body depends only on the entity slot, its baseline tick (or FULL) and whether the client owns the
   * entity, not on the client otherwise: it is encoded once per tick into `bodies` and copied into every packet
   * (and every budget measurement) that needs it. Under load, clients share baselines and the encode cost is paid
   * once per (slot, baseline) instead of twice per client.
   */
  private writeRecord(
    w: BitWriter,
    cs: ClientState,
    snap: Snapshot,
    s: number,
    code: number,
    baseTick: number,
    packetBase: number,
  ): void {
    const e = this.resolveRecord(cs, snap, s, code, baseTick, packetBase, w === this.writer);
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

  /** Bits `writeRecord` would write (0 when recEmpty), without writing: the budget's measure. */
  private recordCost(
    cs: ClientState,
    snap: Snapshot,
    s: number,
    code: number,
    baseTick: number,
    packetBase: number,
  ): number {
    const e = this.resolveRecord(cs, snap, s, code, baseTick, packetBase, false);
    if (this.recEmpty) return 0;
    const kind = this.recKind;
    if (kind === KIND_REMOVE) return 2;
    let bits = 2 + this.bodyLen[e];
    if (kind === KIND_UPDATE)
      bits += baseTick === packetBase ? 1 : 1 + expGolombBits(packetBase - baseTick - 1, GAP_K);
    return bits;
  }

  /**
   * Decides a record's final kind (an UPDATE whose baseline left the window becomes FULL) and finds or encodes its
   * body; sets recKind, recEmpty (a skippable update that carries nothing), recPriority and recReliable. Returns
   * the body entry (-1 for REMOVE).
   */
  private resolveRecord(
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
    const isOwner = this.owner[s] === cs.index ? 1 : 0;
    let baseSnap: Snapshot | null = null;
    if (kind === KIND_UPDATE) {
      // The client decodes against its own state of tick baseTick, which it keeps for `window` ticks only.
      if (baseTick >= this.tickNo - this.window + 1 && baseTick <= packetBase)
        baseSnap = this.baselineSnapshot(s, baseTick, snap.ids[s]);
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
    if (this.bodyTick[e] === this.tickNo && this.bodyKey[e] === key) return e;
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
    this.bodyTick[e] = this.tickNo;
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
        if (f.kind === 'string') writeFieldAbsolute(w, f, vals, o, this.strings.utf8);
        else if (f.slotCount === 1) writeSlot(w, f.widths[0], vals[a], bvals[a]);
        else
          for (let k = 0; k < f.slotCount; k++) {
            const d = vals[a + k] !== bvals[a + k];
            w.writeBit(d);
            if (d) writeSlot(w, f.widths[k], vals[a + k], bvals[a + k]);
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
      writeFieldAbsolute(w, f, vals, o, this.strings.utf8);
    }
  }
}

/**
 * Quickselect (Hoare partition, median-of-three pivot): rearranges `a[0..n)` so that `a[k..n)` holds its largest
 * `n - k` values (in any order) and `a[0..k)` the rest. Keys are distinct (they embed the candidate index).
 */
function selectTop(a: Float64Array, k: number, n: number): void {
  let lo = 0;
  let hi = n - 1;
  while (hi > lo) {
    const x = a[lo];
    const y = a[(lo + hi) >>> 1];
    const z = a[hi];
    const pivot = Math.max(Math.min(x, y), Math.min(Math.max(x, y), z)); // median of three
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    // Now a[lo..j] <= pivot <= a[i..hi] (and anything between equals the pivot).
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return;
  }
}
