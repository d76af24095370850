import { ACK_BYTES, ACK_HISTORY, ACK_MASK, ACK_VALID, KIND_REMOVE } from './codec.js';
import { SyncError } from './errors.js';
import type { InterestClient } from './interest.js';
import type { EntityStore } from './store.js';

/** An UPDATE that carried nothing and was left out: its ack still moves the entity's baseline forward. */
export const KIND_VIRTUAL = 3;

/**
 * The entity records of one sent packet, kept until acked or overwritten, to learn what the client holds. The arrays
 * are capacity-sized (the first `count` entries are the packet's) and reused when the ring comes round: typed arrays
 * allocated per packet and client were a tenth of the encode time.
 */
export interface SentPacket {
  tick: number;
  count: number;
  slots: Int32Array;
  /** KIND_* per record, or KIND_VIRTUAL. */
  kinds: Uint8Array;
  ids: Uint32Array;
  acked: boolean;
}

/** An empty SentPacket with room for `capacity` records. */
export function createSentPacket(capacity: number): SentPacket {
  return {
    tick: 0,
    count: 0,
    slots: new Int32Array(capacity),
    kinds: new Uint8Array(capacity),
    ids: new Uint32Array(capacity),
    acked: false,
  };
}

/** Copies `src`'s records into `dst` (which must have room for them). */
export function copySentPacket(dst: SentPacket, src: SentPacket): void {
  const n = src.count;
  dst.tick = src.tick;
  dst.count = n;
  dst.acked = src.acked;
  for (let i = 0; i < n; i++) {
    dst.slots[i] = src.slots[i];
    dst.kinds[i] = src.kinds[i];
    dst.ids[i] = src.ids[i];
  }
}

/** Everything the server keeps per client. */
export interface ClientState<K = unknown> extends InterestClient {
  key: K;
  index: number;
  budgetBytes: number;
  ring: (SentPacket | undefined)[];
  /** Priority accumulator per slot. */
  acc: Float32Array;
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
  /**
   * An older acked tick whose values the client also holds, in its state of that tick, for the same entity (0 =
   * none): the second baseline that value prediction extrapolates from.
   */
  prevTick: Uint32Array;
  /** Tick of the newest FULL/UPDATE record sent for the slot. */
  lastEntityTick: Uint32Array;
  /** Tick of the newest REMOVE record sent for the slot. */
  lastRemoveTick: Uint32Array;
  /** Tick of the newest acknowledged REMOVE for the slot. */
  removeAcked: Uint32Array;
}

export function createClientState<K>(
  key: K,
  index: number,
  opts: InterestClient['opts'],
  budgetBytes: number,
  window: number,
  max: number,
): ClientState<K> {
  return {
    key,
    index,
    opts,
    budgetBytes,
    focus: null,
    ring: new Array(window).fill(undefined),
    acc: new Float32Array(max),
    interest: new Uint8Array(max),
    owned: 0,
    newestAcked: 0,
    completeSince: Number.POSITIVE_INFINITY,
    recordBits: 0,
    ackedId: new Uint32Array(max),
    ackedTick: new Uint32Array(max),
    prevTick: new Uint32Array(max),
    lastEntityTick: new Uint32Array(max),
    lastRemoveTick: new Uint32Array(max),
    removeAcked: new Uint32Array(max),
  };
}

export interface AckStats {
  acks: number;
  acksRejected: { corrupt: number; unknownSnapshot: number; outOfWindow: number; unknownClient: number };
}

/**
 * Acknowledgement tracking: remembers what each packet carried and turns a client's acks into per-entity
 * baselines (which entity the client holds per slot, and the tick whose values it holds).
 */
export class AckTracker {
  constructor(
    private readonly store: EntityStore,
    private readonly stats: AckStats,
  ) {}

  /**
   * The ack-ring entry for the client's packet of tick `t`, with room for `count` records: the entry of the packet
   * `window` ticks older, reused when it is large enough. Fill it, then call `recordSent`.
   */
  entryFor(cs: ClientState, t: number, count: number): SentPacket {
    const at = t % this.store.window;
    let entry = cs.ring[at];
    if (!entry || entry.slots.length < count) {
      // Room for more records than now, so that the entry rarely grows again.
      entry = createSentPacket(Math.min(this.store.max, count + (count >>> 1) + 16));
      cs.ring[at] = entry;
    }
    entry.tick = t;
    entry.count = count;
    entry.acked = false;
    return entry;
  }

  /** Bookkeeping for a packet handed to the client (its `entryFor`, filled): what may be in flight, priorities. */
  recordSent(cs: ClientState, records: SentPacket, complete: boolean): void {
    const t = records.tick;
    for (let i = 0; i < records.count; i++) {
      const s = records.slots[i];
      const kind = records.kinds[i];
      cs.acc[s] = 0;
      if (kind === KIND_REMOVE) cs.lastRemoveTick[s] = t;
      else if (kind !== KIND_VIRTUAL) cs.lastEntityTick[s] = t;
    }
    if (!complete) cs.completeSince = Number.POSITIVE_INFINITY;
    else if (cs.completeSince === Number.POSITIVE_INFINITY) cs.completeSince = t;
  }

  /** `recordSent` for a packet encoded for another client: the client gets its own copy (acks are per client). */
  recordShared(cs: ClientState, records: SentPacket, complete: boolean): void {
    const entry = this.entryFor(cs, records.tick, records.count);
    copySentPacket(entry, records);
    entry.acked = false;
    this.recordSent(cs, entry, complete);
  }

  /**
   * A 4-byte ack (see {@link ACK_BYTES}). Validates everything before changing anything; throws a SyncError for a
   * malformed ack, or one naming a tick never sent to this client or older than the window.
   */
  receive(cs: ClientState, bytes: Uint8Array): void {
    const window = this.store.window;
    const tickNo = this.store.tickNo;
    if (bytes.length !== ACK_BYTES) {
      this.stats.acksRejected.corrupt++;
      throw new SyncError('corrupt', `ack of ${bytes.length} bytes (expected ${ACK_BYTES})`);
    }
    const low = (bytes[0] << 8) | bytes[1];
    const word = (bytes[2] << 8) | bytes[3];
    if (!(word & ACK_VALID)) {
      if (word !== 0 || low !== 0) {
        this.stats.acksRejected.corrupt++;
        throw new SyncError('corrupt', 'ack bits without a newest tick');
      }
      this.stats.acks++;
      return;
    }
    const mask = word & ACK_MASK;
    // The newest tick is sent modulo 2^16: the one at or before the server's tick with those low bits.
    const newest = tickNo - ((tickNo - low) & 0xffff);
    const oldest = tickNo - window + 1;
    if (newest < 1) {
      this.stats.acksRejected.unknownSnapshot++;
      throw new SyncError('unknown-snapshot', `ack of tick ${newest}, never sent`);
    }
    if (newest < oldest) {
      this.stats.acksRejected.outOfWindow++;
      throw new SyncError('out-of-window', `ack of tick ${newest}, older than the window (${oldest})`);
    }
    for (let i = -1; i < ACK_HISTORY; i++) {
      if (i >= 0 && !(mask & (1 << i))) continue;
      const t = newest - 1 - i;
      if (t < oldest || t < 1) continue;
      const p = cs.ring[t % window];
      if (!p || p.tick !== t) {
        this.stats.acksRejected.unknownSnapshot++;
        throw new SyncError('unknown-snapshot', `ack of tick ${t}, never sent to this client`);
      }
    }
    // Oldest first, so that per slot the newest acked record wins.
    for (let i = ACK_HISTORY - 1; i >= -1; i--) {
      if (i >= 0 && !(mask & (1 << i))) continue;
      const t = newest - 1 - i;
      if (t < oldest || t < 1) continue;
      const p = cs.ring[t % window]!;
      if (!p.acked) this.apply(cs, p);
    }
    if (newest > cs.newestAcked) {
      this.advanceBaselines(cs, newest);
      cs.newestAcked = newest;
    }
    this.stats.acks++;
  }

  private apply(cs: ClientState, p: SentPacket): void {
    p.acked = true;
    const t = p.tick;
    const { ackedId, ackedTick, prevTick, removeAcked } = cs;
    for (let i = 0; i < p.count; i++) {
      const s = p.slots[i];
      const kind = p.kinds[i];
      if (kind === KIND_REMOVE) {
        if (t > removeAcked[s]) removeAcked[s] = t;
        if (t > ackedTick[s]) {
          ackedId[s] = 0;
          ackedTick[s] = t;
          prevTick[s] = 0;
        }
      } else if (t > ackedTick[s]) {
        const same = ackedId[s] === p.ids[i];
        if (kind !== KIND_VIRTUAL) {
          prevTick[s] = same ? ackedTick[s] : 0;
          ackedId[s] = p.ids[i];
          ackedTick[s] = t;
        } else if (same) {
          prevTick[s] = ackedTick[s];
          ackedTick[s] = t;
        }
      }
    }
  }

  /**
   * The client holds tick `t`'s state: an entity unchanged since its baseline (and not removed since) has, in
   * that state, the values of tick `t` too. Moving its baseline up keeps resting entities delta-codable within
   * the window, and lets a later change reference the packet-wide baseline (one bit).
   */
  private advanceBaselines(cs: ClientState, t: number): void {
    const snap = this.store.snapshotAt(t);
    if (!snap) return;
    const { ackedId, ackedTick, prevTick, lastRemoveTick } = cs;
    const ids = snap.ids;
    const at = snap.changedAt;
    for (let s = 0; s < snap.hw; s++) {
      const id = ackedId[s];
      const bt = ackedTick[s];
      if (id !== 0 && bt < t && ids[s] === id && at[s] <= bt && lastRemoveTick[s] <= bt) {
        prevTick[s] = bt;
        ackedTick[s] = t;
      }
    }
  }
}
