import {
  AckTracker,
  type ClientState,
  copySentPacket,
  createClientState,
  createSentPacket,
  KIND_VIRTUAL,
  type SentPacket,
} from './acks.js';
import * as bits from './bits.js';
import * as codec from './codec.js';
import { DeltaEncoder } from './delta.js';
import { SyncError } from './errors.js';
import { Interest } from './interest.js';
import * as priorityModule from './priority.js';
import {
  bitsFor,
  type ComponentMap,
  type EntityInput,
  type EntityValues,
  type SyncSchema,
  type Vec3,
} from './schema.js';
import { EntityStore, type Snapshot } from './store.js';

// Module-local copies of imported bindings used per entity: loaders that compile ESM to CommonJS (tsx, which runs the
// bench) turn every access to an imported binding into a getter call, a measurable share of the encode loops.
const { BitWriter, expGolombBits } = bits;
const { HEADER_FIXED_BITS, KIND_FULL, KIND_REMOVE, KIND_UPDATE } = codec;
const { accrue, PrioritySelector } = priorityModule;
type Candidates = priorityModule.Candidates;
type PrioritySelector = priorityModule.PrioritySelector;

/** How the application names a client to the sync server (e.g. a session id). */
export type ClientKey = string | number;

/** Options of {@link SyncServer}. */
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
  position?: {
    /** Name of the component holding the position. */
    component: string;
    /** Name of its `t.vec3()` field. */
    field: string;
  };
  /** Spatial grid cell edge for radius interest, in position units. Default 32. */
  cellSize?: number;
}

/** Per-client options of `addClient`: budget and interest. */
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

/** Options of `spawn`. */
export interface SpawnOptions {
  /** The client that owns the entity: the only one receiving its `ownerOnly` fields. */
  owner?: ClientKey;
  /** Importance multiplier for the priority accumulator. Default 1. */
  priority?: number;
}

/** What the server encoded and received, since it was created. */
export interface SyncServerStats {
  /** Calls of `tick()`. */
  ticks: number;
  /** Packets encoded (`encodeFor`). */
  packets: number;
  /** Bytes of those packets. */
  bytes: number;
  /** Packets without a usable acknowledged baseline (full snapshots). */
  fullPackets: number;
  /** Packets reused byte-for-byte from another client with the same baseline. */
  sharedPackets: number;
  /** Entity records (FULL, UPDATE, REMOVE) written into packets. */
  records: number;
  /** Entity records left out of a packet by the budget (they accumulate priority). */
  deferred: number;
  /** Entities whose baseline values had left the snapshot window, re-sent absolute. */
  refreshes: number;
  /** UPDATE records encoded against values extrapolated from two acknowledged baselines (shorter that way). */
  predicted: number;
  /** Acks accepted by `receiveAck`. */
  acks: number;
  /** Acks refused (the client's state unchanged), by {@link SyncError} code. */
  acksRejected: {
    /** Malformed ack bytes. */
    corrupt: number;
    /** Named a tick never sent to this client. */
    unknownSnapshot: number;
    /** Named a tick older than the window. */
    outOfWindow: number;
    /** For a client key not added. */
    unknownClient: number;
  };
  /** Numbers clamped into their declared range on `spawn`/`set`. */
  clamped: number;
}

interface SharedPacket {
  bytes: Uint8Array;
  records: SentPacket;
}

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
 *
 * The parts: `EntityStore` (entities and snapshots), `Interest`, `AckTracker` (per-entity baselines from acks),
 * `DeltaEncoder` (record bodies, cached per tick) and `PrioritySelector` (the budget); this class gathers each
 * packet's candidates and assembles it.
 */
export class SyncServer<M extends ComponentMap = ComponentMap> {
  /** Live counters (not a snapshot). */
  readonly stats: SyncServerStats = {
    ticks: 0,
    packets: 0,
    bytes: 0,
    fullPackets: 0,
    sharedPackets: 0,
    records: 0,
    deferred: 0,
    refreshes: 0,
    predicted: 0,
    acks: 0,
    acksRejected: { corrupt: 0, unknownSnapshot: 0, outOfWindow: 0, unknownClient: 0 },
    clamped: 0,
  };
  /** Snapshots kept, in ticks (option `window`, default 64). */
  readonly window: number;
  private readonly budgetBytes: number;
  private readonly maxPacketBytes: number;
  private readonly max: number;
  private readonly countBits: number;
  private readonly writer = new BitWriter(4096);
  private readonly store: EntityStore<M>;
  private readonly interest: Interest;
  private readonly acks: AckTracker;
  private readonly delta: DeltaEncoder;
  private readonly priority: PrioritySelector;
  private readonly clients = new Map<ClientKey, ClientState<ClientKey>>();
  private readonly clientByIndex: (ClientState<ClientKey> | undefined)[] = [];
  /** This tick's packets of clean clients, by the acked tick they are based on (see `encodeFor`). */
  private readonly shared = new Map<number, SharedPacket>();
  /** Record lists of this tick's shared packets, reused tick after tick (`sharedUsed` of them taken). */
  private readonly sharedPool: SentPacket[] = [];
  private sharedUsed = 0;
  private readonly candidates: Candidates;

  constructor(
    /** The schema; clients must use the same one (its hash is in every packet). */
    readonly schema: SyncSchema<M>,
    options: SyncServerOptions = {},
  ) {
    this.window = options.window ?? 64;
    this.budgetBytes = options.budgetBytes ?? 1200;
    this.maxPacketBytes = options.maxPacketBytes ?? 1200;
    if (!Number.isInteger(this.window) || this.window < 2 || this.window > 4096)
      throw new RangeError('window must be 2..4096');
    this.max = schema.maxEntities;
    this.countBits = bitsFor(this.max);
    this.checkBudget(this.budgetBytes);
    if (this.maxPacketBytes < this.budgetBytes) throw new RangeError('maxPacketBytes must be >= budgetBytes');
    this.store = new EntityStore(schema, this.window, this.stats);
    this.interest = new Interest(schema, options.position, options.cellSize ?? 32);
    this.acks = new AckTracker(this.store, this.stats);
    this.delta = new DeltaEncoder(this.store, this.stats);
    this.priority = new PrioritySelector(this.store, this.interest, this.delta, this.maxPacketBytes);
    this.candidates = {
      cand: new Int32Array(this.max),
      candBase: new Uint32Array(this.max),
      candBase2: new Uint32Array(this.max),
      kinds: new Uint8Array(this.max),
      q: new Int32Array(this.max),
    };
  }

  /** Every budget must fit the header and the largest possible entity record, or that entity would starve. */
  private checkBudget(bytes: number): void {
    const need =
      HEADER_FIXED_BITS + 64 + this.countBits + expGolombBits(this.max, 0) + this.schema.maxFullRecordBits;
    if (!(bytes * 8 >= need))
      throw new RangeError(
        `budget of ${bytes} bytes is below one full entity record (${Math.ceil(need / 8)} bytes)`,
      );
  }

  /** The tick of the newest snapshot (0 before the first `tick()`). */
  get currentTick(): number {
    return this.store.tickNo;
  }

  /** Entities whose quantised state changed (or that spawned or despawned) in the newest tick. */
  get changedLastTick(): number {
    return this.store.changedCount;
  }

  /** Live entities. */
  get entityCount(): number {
    return this.store.size;
  }

  // ---------------------------------------------------------------- entities

  /**
   * Creates an entity with the given component values (missing fields take their defaults) and returns its id.
   * Throws RangeError for an unknown owner or beyond `maxEntities`.
   */
  spawn(values: EntityInput<M>, opts: SpawnOptions = {}): number {
    let owner = -1;
    let cs: ClientState<ClientKey> | undefined;
    if (opts.owner !== undefined) {
      cs = this.clients.get(opts.owner);
      if (!cs) throw new RangeError(`unknown owner client ${String(opts.owner)}`);
      owner = cs.index;
    }
    const id = this.store.spawn(
      values as Record<string, Record<string, unknown> | undefined>,
      owner,
      opts.priority ?? 1,
    );
    if (cs) cs.owned++;
    return id;
  }

  /** Removes an entity; clients see it leave with the next packet. False when no such entity exists. */
  despawn(id: number): boolean {
    const o = this.store.despawn(id);
    if (o === undefined) return false;
    if (o >= 0) {
      const cs = this.clientByIndex[o];
      if (cs) cs.owned--;
    }
    return true;
  }

  /** Whether entity `id` is live. */
  has(id: number): boolean {
    return this.store.has(id);
  }

  /** Sets some fields of a component, adding the component to the entity if it lacked it. */
  set<K extends keyof M & string>(id: number, component: K, value: EntityInput<M>[K]): void {
    this.store.set(id, component, value as Record<string, unknown>);
  }

  /** Removes one component from an entity; clients see it disappear with the next packet. */
  removeComponent(id: number, component: keyof M & string): void {
    this.store.removeComponent(id, component);
  }

  /** The entity's current values as every client decodes them (quantised, then dequantised). */
  getQuantised(id: number, forClient?: ClientKey): EntityValues<M> | undefined {
    const store = this.store;
    const slot = store.slot(id);
    if (slot === undefined) return undefined;
    const owner = forClient === undefined ? true : this.clients.get(forClient)?.index === store.owner[slot];
    return store.materialise(store.values, slot, store.masks[slot], owner);
  }

  /**
   * Every entity the client should see this tick (interest applied, owner-only fields hidden from non-owners), as
   * the client decodes them: the state it converges to, and the reference for "client state equals server state".
   * It is what the client holds after this tick's packet only if that packet carried every difference: while the
   * byte budget defers records (`stats.deferred`) or packets are lost, the client holds older values for some
   * entities until later packets catch up.
   */
  quantisedStateFor(client: ClientKey): Map<number, EntityValues<M>> {
    const cs = this.requireClient(client);
    const store = this.store;
    const snap = store.current();
    this.interest.compute(cs, snap);
    const out = new Map<number, EntityValues<M>>();
    for (let s = 0; s < snap.hw; s++) {
      if (!snap.ids[s] || !Interest.has(cs, s)) continue;
      out.set(snap.ids[s], store.materialise(snap.values, s, snap.masks[s], store.owner[s] === cs.index));
    }
    return out;
  }

  // ---------------------------------------------------------------- clients

  /**
   * Starts replicating to a client; its first packet is a full snapshot. Throws RangeError for a key already added,
   * or a `radius` without the server's `position` option.
   */
  addClient(key: ClientKey, opts: ClientOptions = {}): void {
    if (this.clients.has(key)) throw new RangeError(`client ${String(key)} already added`);
    if (opts.budgetBytes !== undefined) this.checkBudget(opts.budgetBytes);
    if (opts.radius !== undefined && !this.interest.hasPosition)
      throw new RangeError('radius interest needs options.position');
    let index = this.clientByIndex.indexOf(undefined);
    if (index < 0) index = this.clientByIndex.length;
    const budget = Math.min(opts.budgetBytes ?? this.budgetBytes, this.maxPacketBytes);
    const cs = createClientState(key, index, opts, budget, this.window, this.max);
    this.clients.set(key, cs);
    this.clientByIndex[index] = cs;
  }

  /** Stops replicating to a client; entities it owned stay, without an owner. No-op for an unknown key. */
  removeClient(key: ClientKey): void {
    const cs = this.clients.get(key);
    if (!cs) return;
    this.store.disown(cs.index);
    this.clients.delete(key);
    this.clientByIndex[cs.index] = undefined;
  }

  /** The client's point of interest (its avatar or camera), for radius interest and distance priority. */
  setFocus(key: ClientKey, focus: Vec3 | null): void {
    this.requireClient(key).focus = focus ? { x: focus.x, y: focus.y, z: focus.z } : null;
  }

  private requireClient(key: ClientKey): ClientState<ClientKey> {
    const cs = this.clients.get(key);
    if (!cs) throw new SyncError('unknown-client', `unknown client ${String(key)}`);
    return cs;
  }

  // ---------------------------------------------------------------- ticks

  /** Freezes the live state as the snapshot of the next tick. Returns the new tick number. */
  tick(): number {
    const t = this.store.tick();
    this.stats.ticks++;
    this.shared.clear();
    this.sharedUsed = 0;
    this.delta.reset();
    this.interest.reset();
    return t;
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
    this.acks.receive(cs, bytes);
  }

  // ---------------------------------------------------------------- encoding

  /**
   * The packet for this client at the current tick. Call once per client per tick, after `tick()`.
   *
   * Records are deltas against per-entity baselines: the newest acked state of that entity. A "clean" client
   * (every packet since its newest ack p was complete) holds exactly the world of tick p, so its packet is a
   * pure function of p: clients that acked the same tick share one encoding byte for byte.
   */
  encodeFor(key: ClientKey): Uint8Array {
    const cs = this.requireClient(key);
    const store = this.store;
    const snap = store.current();
    const t = store.tickNo;
    const oldest = store.oldest;
    const p = cs.newestAcked >= oldest ? cs.newestAcked : 0;
    const all = Interest.all(cs);
    const clean = all && p > 0 && p >= cs.completeSince && store.snapshotAt(p) !== null;
    const shareable = clean && (cs.owned === 0 || !this.schema.hasOwnerOnly);
    // A clean client also holds the world of its previous acked tick p2: the second baseline of value prediction.
    const p2 = clean ? this.previousAcked(cs, p) : 0;
    const shareKey = p * 4096 + (p2 === 0 ? 0 : p - p2);
    if (shareable) {
      const hit = this.shared.get(shareKey);
      if (hit && hit.bytes.length <= cs.budgetBytes) {
        this.acks.recordShared(cs, hit.records, true);
        this.account(hit.bytes, p, hit.records.count, 0);
        this.stats.sharedPackets++;
        return hit.bytes;
      }
    }
    this.interest.compute(cs, snap);
    const plain = this.priority.plain(cs);
    const n = clean ? this.cleanCandidates(cs, snap, p, p2, plain) : this.candidatesFor(cs, snap, all, plain);
    const { cand, candBase, candBase2, kinds } = this.candidates;
    const w = this.writer;
    w.reset();
    if (p === 0) {
      // Full header: the schema hash and the whole tick, until the client has acknowledged a packet (which it
      // applied only after checking a hash: see codec.ts).
      w.writeBit(1);
      w.writeBits(this.schema.hash, 32);
      w.writeBits(t, 32);
    } else {
      w.writeBit(0);
      w.writeBits(t & 0xffff, 16);
    }
    w.writeExpGolomb(p === 0 ? 0 : t - p, 0);
    // The packet's second baseline (the prediction's, for records against p): 0 for none.
    if (p > 0 && this.schema.predictable) w.writeExpGolomb(p2 === 0 ? 0 : p - p2, 0);
    // Order of the slot gaps' exp-Golomb code, from the candidates' density: dense packets (every entity moving)
    // spend 1 bit per record on its slot.
    const density = n === 0 ? 1 : snap.hw / n;
    const gapK = Math.min(3, Math.max(0, 31 - Math.clz32(Math.floor(density)) - 1));
    w.writeBits(gapK, 2);
    const countPos = w.pos;
    w.writeBits(0, this.countBits);
    const headerBits = w.pos;

    // Fast path: everything in one pass; fall back to prioritised selection when over budget.
    const delta = this.delta;
    let prev = -1;
    let count = 0;
    const budgetBits = cs.budgetBytes * 8;
    const refreshes0 = this.stats.refreshes;
    const predicted0 = this.stats.predicted;
    // Far over budget by recent record sizes: go straight to prioritised selection.
    let over = n * cs.recordBits > 2 * (budgetBits - headerBits);
    for (let i = 0; i < n && !over; i++) {
      const s = cand[i] >>> 3;
      const mark = w.pos;
      w.writeExpGolomb(s - prev - 1, gapK);
      delta.write(w, cs, snap, s, cand[i], candBase[i], candBase2[i], p, p2, true);
      if (delta.recEmpty) {
        w.rewind(mark);
        kinds[i] = KIND_VIRTUAL;
        continue;
      }
      kinds[i] = delta.recKind;
      prev = s;
      count++;
      if (w.pos > budgetBits) {
        over = true;
        break;
      }
    }
    let deferred = 0;
    let order: Int32Array | null = null;
    if (over) {
      // The records of the abandoned fast pass were not sent: their counts go back.
      this.stats.refreshes = refreshes0;
      this.stats.predicted = predicted0;
      w.rewind(headerBits);
      ({ count, deferred } = this.priority.select(w, cs, snap, this.candidates, n, headerBits, p, p2, gapK));
      order = this.priority.order;
    }
    // The count was reserved as zero bits; OR it in now that it is known.
    w.orBitsAt(countPos, count, this.countBits);
    if (count > 0) cs.recordBits = 0.8 * cs.recordBits + (0.2 * (w.pos - headerBits)) / count;
    const bytes = w.bytes();
    // Every candidate went in (written or empty) unless the budget chose: then only those in `order`.
    const m = order ? this.priority.orderCount : n;
    const records = this.acks.entryFor(cs, t, m);
    for (let j = 0; j < m; j++) {
      const i = order ? order[j] : j;
      const s = cand[i] >>> 3;
      records.slots[j] = s;
      records.kinds[j] = kinds[i];
      records.ids[j] = snap.ids[s];
    }
    const complete = deferred === 0 && all;
    this.acks.recordSent(cs, records, complete);
    this.account(bytes, p, count, deferred);
    if (shareable && complete) this.shared.set(shareKey, { bytes, records: this.sharedRecords(records) });
    return bytes;
  }

  /** A copy of `records` that lives until the next tick, for the clients that share the packet. */
  private sharedRecords(records: SentPacket): SentPacket {
    let copy = this.sharedPool[this.sharedUsed];
    if (!copy || copy.slots.length < records.count) {
      copy = createSentPacket(Math.min(this.max, records.count + (records.count >>> 2) + 16));
      this.sharedPool[this.sharedUsed] = copy;
    }
    this.sharedUsed++;
    copySentPacket(copy, records);
    return copy;
  }

  /**
   * The newest acked tick before p from which the client's packets were complete (so it holds that tick's world),
   * still in the window; 0 for none.
   */
  private previousAcked(cs: ClientState, p: number): number {
    if (!this.schema.predictable) return 0;
    const from = Math.max(cs.completeSince, this.store.oldest, p - 4095);
    // The newest such tick at least half the ticks ahead (t - p) before p, else the oldest one after that.
    const span = Math.max(1, (this.store.tickNo - p) >>> 1);
    let found = 0;
    for (let t = p - 1; t >= from; t--) {
      const sent = cs.ring[t % this.window];
      if (sent && sent.tick === t && sent.acked && this.store.snapshotAt(t)) {
        found = t;
        if (p - t >= span) break;
      }
    }
    return found;
  }

  /**
   * Candidates of a clean client: everything that differs between the world of tick p and now. `plain`: their
   * accumulators grow here (`accrue`).
   */
  private cleanCandidates(cs: ClientState, snap: Snapshot, p: number, p2: number, plain: boolean): number {
    const { cand, candBase, candBase2, q } = this.candidates;
    const acc = cs.acc;
    const priority = this.store.priority;
    const sp = this.store.snapshotAt(p)!;
    const sp2 = p2 > 0 ? this.store.snapshotAt(p2) : null;
    const hw = Math.max(snap.hw, sp.hw);
    let n = 0;
    for (let s = 0; s < hw; s++) {
      const cur = s < snap.hw ? snap.ids[s] : 0;
      const had = s < sp.hw ? sp.ids[s] : 0;
      let kind: number;
      if (cur === 0) {
        // Anything that lived in the slot after p may have reached the client: remove (idempotent).
        if (had === 0 && !(s < snap.hw && snap.changedAt[s] > p)) continue;
        kind = KIND_REMOVE;
      } else if (had !== cur) kind = KIND_FULL;
      else if (snap.changedAt[s] > p) {
        candBase[n] = p;
        candBase2[n] = sp2 && s < sp2.hw && sp2.ids[s] === cur ? p2 : 0;
        kind = KIND_UPDATE;
      } else continue;
      if (plain) q[n] = accrue(acc, priority, s, kind);
      cand[n++] = (s << 3) | kind;
    }
    return n;
  }

  /** Candidates from the client's per-entity baselines (interest applied). `plain`: as in `cleanCandidates`. */
  private candidatesFor(cs: ClientState, snap: Snapshot, all: boolean, plain: boolean): number {
    const { cand, candBase, candBase2, q } = this.candidates;
    const { ackedId, ackedTick, prevTick, lastEntityTick, lastRemoveTick, removeAcked, interest, acc } = cs;
    const priority = this.store.priority;
    const { ids, changedAt, hw } = snap;
    let n = 0;
    for (let s = 0; s < hw; s++) {
      const cur = ids[s];
      let code: number;
      if (cur === 0 || !(all || interest[s] === 1)) {
        if (ackedId[s] === 0 && lastEntityTick[s] <= removeAcked[s]) continue;
        code = (s << 3) | KIND_REMOVE;
      } else if (ackedId[s] !== cur) code = (s << 3) | KIND_FULL;
      else {
        const bt = ackedTick[s];
        const removed = lastRemoveTick[s] > bt;
        if (!removed && changedAt[s] <= bt) continue;
        candBase[n] = bt;
        candBase2[n] = prevTick[s];
        // An update that turns out empty may be skipped only if nothing newer is in flight to the client.
        const skippable = !removed && lastEntityTick[s] <= bt;
        code = (s << 3) | (skippable ? 4 : 0) | KIND_UPDATE;
      }
      if (plain) q[n] = accrue(acc, priority, s, code & 3);
      cand[n++] = code;
    }
    return n;
  }

  private account(bytes: Uint8Array, baseline: number, records: number, deferred: number): void {
    this.stats.packets++;
    this.stats.bytes += bytes.length;
    this.stats.records += records;
    this.stats.deferred += deferred;
    if (baseline === 0) this.stats.fullPackets++;
  }
}
