import type { ClientState } from './acks.js';
import { KIND_VIRTUAL } from './acks.js';
import type * as bits from './bits.js';
import * as codec from './codec.js';
import type { DeltaEncoder } from './delta.js';
import type { Interest } from './interest.js';
import type { EntityStore, Snapshot } from './store.js';

type BitWriter = bits.BitWriter;
const { KIND_UPDATE } = codec;

/** Accumulator gain per record kind (update, full, remove): removals and creations first. */
const KIND_WEIGHT = [1, 2, 4];
/** Quantised accumulators from 0 to QUANT_LIMIT - 1 can be ranked by counting (`accrue`). */
const QUANT_LIMIT = 1 << 14;
const CHOSEN_WRITTEN = 1;
const CHOSEN_EMPTY = 2;

/**
 * The plain ranking's step for one candidate, taken while candidates are gathered (one pass over them instead of
 * two): slot `s`'s accumulator grows by its record kind's weight times the entity's priority. Returns the quantised
 * accumulator, floor(a * 64) of `a` as the Float32Array stores it (the packed sort key's), or -1 outside the counting
 * range (NaN included). Early is safe: a packet that does not go over budget carries every candidate, and sending a
 * record resets its accumulator.
 */
export function accrue(acc: Float32Array, priority: Float32Array, s: number, kind: number): number {
  // The weight is 1 << kind: KIND_WEIGHT without a lookup.
  const a = Math.fround(acc[s] + (1 << kind) * priority[s]);
  acc[s] = a;
  const x = a * 64;
  return x >= 0 && x < QUANT_LIMIT ? Math.trunc(x) : -1;
}

/** The candidate records of one packet: `cand` = slot << 3 | skippable << 2 | kind, baseline ticks in `candBase`. */
export interface Candidates {
  cand: Int32Array;
  candBase: Uint32Array;
  /** Second baseline tick per candidate (value prediction), 0 for none. */
  candBase2: Uint32Array;
  /** Out: the final kind of each candidate (KIND_VIRTUAL for an empty update left out). */
  kinds: Uint8Array;
  /** Per candidate, when the client's ranking is plain (`PrioritySelector.plain`): what `accrue` returned. */
  q: Int32Array;
}

/**
 * Over budget: every candidate gains priority (importance x staleness, Fiedler's priority accumulator), then records
 * are packed in accumulator order until the budget is spent; the rest keep what they gained, so nothing starves.
 */
export class PrioritySelector {
  private readonly keys: Float64Array;
  /** Candidates per quantised accumulator value, zero between uses (counting sort). */
  private readonly hist: Int32Array;
  /** Candidate indices in rank order, placed by `placeRanks`. */
  private readonly rank: Int32Array;
  /** The counting sort's value range, and the lowest value placed so far. */
  private qmin = 0;
  private qmax = -1;
  private floor = 0;
  /** Per candidate in `taken`: CHOSEN_WRITTEN or CHOSEN_EMPTY (not written, acked as virtual). */
  private readonly chosen: Uint8Array;
  /** Bit per candidate in the packet (written or empty), zero between uses: the packet's slot order by a scan. */
  private readonly taken: Int32Array;
  /** Per candidate measured: its body entry in the DeltaEncoder (its final kind goes to `kinds`). */
  private readonly entry: Int32Array;
  /** Per candidate measured: its head as `DeltaEncoder.cost` left it (recHeadBits, recHead), for the write. */
  private readonly headBits: Uint8Array;
  private readonly head: Float64Array;
  /** The candidates not deferred (written or empty), in ascending order after `select`: `orderCount` of them. */
  readonly order: Int32Array;
  orderCount = 0;
  // The packet being selected (`begin`): context and running totals of `take`.
  private cs!: ClientState;
  private snap!: Snapshot;
  private c!: Candidates;
  private p = 0;
  private p2 = 0;
  private gapK = 0;
  private span = 1;
  private headerBits = 0;
  private budget = 0;
  private readonly hard: number;
  private bodies = 0;
  private picked = 0;
  private empty = 0;
  /** Some field has a priority other than 1 or is reliable: ranking must look at which fields changed. */
  private readonly fieldWeights: boolean;
  /**
   * gapBitsBound(m, memoSpan, memoK) by m, valid where gapGen[m] === gapGeneration: clients of one tick mostly share
   * the span and order, so the logarithms are taken once per record count instead of once per record and client.
   */
  private readonly gapMemo: Int32Array;
  private readonly gapGen: Uint32Array;
  private gapGeneration = 0;
  private memoSpan = -1;
  private memoK = -1;

  constructor(
    private readonly store: EntityStore,
    private readonly interest: Interest,
    private readonly delta: DeltaEncoder,
    maxPacketBytes: number,
  ) {
    this.keys = new Float64Array(store.max);
    this.hist = new Int32Array(QUANT_LIMIT);
    this.rank = new Int32Array(store.max);
    this.chosen = new Uint8Array(store.max);
    this.taken = new Int32Array((store.max + 31) >>> 5);
    this.entry = new Int32Array(store.max);
    this.headBits = new Uint8Array(store.max);
    this.head = new Float64Array(store.max);
    this.hard = maxPacketBytes * 8;
    this.order = new Int32Array(store.max);
    this.gapMemo = new Int32Array(store.max + 2);
    this.gapGen = new Uint32Array(store.max + 2);
    this.fieldWeights = store.comps.some((c) => c.fields.some((f) => f.priority !== 1 || f.reliable));
  }

  /**
   * Ranks the `n` candidates and writes the chosen records into `w` (after `headerBits` of header). Ranking needs
   * no encoding (counting sort, or a sort of packed keys); only records in rank order are measured.
   */
  select(
    w: BitWriter,
    cs: ClientState,
    snap: Snapshot,
    c: Candidates,
    n: number,
    headerBits: number,
    p: number,
    p2: number,
    gapK: number,
  ): { count: number; deferred: number } {
    const { cand, kinds } = c;
    const delta = this.delta;
    // Slot gaps are written after selection, in slot order: bound their total for m records instead of charging each
    // the longest gap (which left over-budget packets a third empty).
    const span = n === 0 ? 1 : (cand[n - 1] >>> 3) + 1;
    this.begin(cs, snap, c, headerBits, p, p2, gapK, span);
    const weighted = !this.plain(cs);
    if (!weighted && this.countRank(c.q, n)) {
      // The whole ranking by counting sort; records are taken in rank order until the budget is spent (every record
      // measured once). No field weights here, so nothing is reliable.
      // Ranks are placed a chunk at a time (`placeRanks`): about what the budget takes, by recent record sizes.
      const chunk = Math.ceil((1.25 * this.budget) / Math.max(8, cs.recordBits)) + 32;
      this.takeInRankOrder(0, 0, n, chunk, false);
      this.hist.fill(0, this.qmin, this.qmax + 1);
    } else {
      if (weighted) this.rankWeighted(cs, snap, c, n);
      else for (let i = 0; i < n; i++) this.keys[i] = packKey(cs.acc[cand[i] >>> 3], false, i);
      this.pickByKeys(cs, n);
    }
    // The chosen ones in slot order (the packet's order): candidates are in slot order, so a scan of the chosen bits
    // (32 candidates a word) beats sorting their indices.
    const all = this.picked + this.empty;
    const order = this.order;
    const taken = this.taken;
    const words = (n + 31) >>> 5;
    for (let k = 0, m = 0; k < words; k++) {
      let word = taken[k];
      if (word === 0) continue;
      taken[k] = 0;
      while (word !== 0) {
        const low = word & -word;
        order[m++] = (k << 5) | (31 - Math.clz32(low));
        word ^= low;
      }
    }
    const chosen = this.chosen;
    const entry = this.entry;
    const headBits = this.headBits;
    const head = this.head;
    let prev = -1;
    let count = 0;
    for (let j = 0; j < all; j++) {
      const i = order[j];
      if (chosen[i] === CHOSEN_EMPTY) {
        kinds[i] = KIND_VIRTUAL;
        continue;
      }
      const s = cand[i] >>> 3;
      w.writeExpGolomb(s - prev - 1, gapK);
      delta.writeResolved(w, cand[i], entry[i], kinds[i], headBits[i], head[i], true);
      prev = s;
      count++;
    }
    this.orderCount = all;
    return { count, deferred: n - all };
  }

  /** A packet's selection starts: its context for `take`, nothing taken. */
  private begin(
    cs: ClientState,
    snap: Snapshot,
    c: Candidates,
    headerBits: number,
    p: number,
    p2: number,
    gapK: number,
    span: number,
  ): void {
    this.cs = cs;
    this.snap = snap;
    this.c = c;
    this.p = p;
    this.p2 = p2;
    this.gapK = gapK;
    this.span = span;
    this.headerBits = headerBits;
    this.budget = cs.budgetBytes * 8;
    this.bodies = 0;
    this.picked = 0;
    this.empty = 0;
  }

  /**
   * Measures candidate `i` (once: what `write` needs is kept per candidate) and marks it empty when it is an empty
   * update left out. Returns its bits, or -1 for empty.
   */
  private measure(i: number): number {
    const c = this.c;
    const code = c.cand[i];
    const delta = this.delta;
    const cost = delta.cost(
      this.cs,
      this.snap,
      code >>> 3,
      code,
      c.candBase[i],
      c.candBase2[i],
      this.p,
      this.p2,
    );
    if (delta.recEmpty) {
      this.mark(i, CHOSEN_EMPTY);
      this.empty++;
      return -1;
    }
    this.entry[i] = delta.recEntry;
    c.kinds[i] = delta.recKind;
    this.headBits[i] = delta.recHeadBits;
    this.head[i] = delta.recHead;
    return cost;
  }

  /**
   * The selection's step in rank order: measures candidate `i` and takes it when the packet still fits the budget
   * with it (and the slot gaps' bound for one more record), when it is the first, or when it is `reliable` and within
   * the hard cap. False for a record that does not fit (a miss).
   */
  private take(i: number, reliable: boolean): boolean {
    const cost = this.measure(i);
    if (cost < 0) return true;
    const withGap =
      this.headerBits + this.bodies + cost + this.gapBound(this.picked + 1, this.span, this.gapK);
    if (withGap <= this.budget || this.picked + this.empty === 0 || (reliable && withGap <= this.hard)) {
      this.mark(i, CHOSEN_WRITTEN);
      this.picked++;
      this.bodies += cost;
      return true;
    }
    return false;
  }

  /** Candidate `i` is in the packet: written, or an empty update acked as virtual. */
  private mark(i: number, how: number): void {
    this.chosen[i] = how;
    this.taken[i >>> 5] |= 1 << (i & 31);
  }

  /**
   * Whether the client's ranking is the plain one (no field priorities or reliable fields, no distance factor): then
   * the candidates' gatherer grows their accumulators (`accrue`) and fills `Candidates.q`.
   */
  plain(cs: ClientState): boolean {
    return !this.fieldWeights && !(cs.focus !== null && this.interest.hasPosition);
  }

  /**
   * The plain ranking by counting sort of the quantised accumulators `q` (highest first, ties by higher candidate
   * index: the order of the packed keys): counts each value and turns the counts into where each value's run starts
   * in `rank`; `placeRanks` then fills `rank`. False, with nothing counted, when some value is out of the counting
   * range or the values spread too wide (large priorities): then the packed keys are sorted instead.
   */
  private countRank(q: Int32Array, n: number): boolean {
    const hist = this.hist;
    let qmin = QUANT_LIMIT;
    let qmax = -1;
    let counted = true;
    for (let i = 0; i < n; i++) {
      const v = q[i];
      if (v < 0) {
        counted = false;
        break;
      }
      hist[v]++;
      if (v > qmax) qmax = v;
      if (v < qmin) qmin = v;
    }
    if (n === 0) {
      this.qmin = 0;
      this.qmax = -1;
      return true;
    }
    if (!counted || qmax - qmin > 8 * n + 512) {
      if (qmax >= 0) hist.fill(0, qmin, qmax + 1);
      return false;
    }
    for (let v = qmax, at = 0; v >= qmin; v--) {
      const k = hist[v];
      hist[v] = at;
      at += k;
    }
    this.qmin = qmin;
    this.qmax = qmax;
    this.floor = qmax + 1;
    return true;
  }

  /**
   * Places the candidates of the next values down the ranking (below `floor`), enough of them to fill the ranks up to
   * `limit`, in one pass over `q` from the highest candidate index down (so ties come out in that order). Returns how
   * many ranks are placed. A packet reads only the top few hundred of its ranks: placing all of them (a scattered
   * store per candidate) was most of the ranking's time.
   */
  private placeRanks(limit: number, n: number): number {
    const hist = this.hist;
    const q = this.c.q;
    const rank = this.rank;
    const top = this.floor;
    // hist[v] below `floor` still holds the start of v's run: take every value whose run starts before `limit`.
    let f = top - 1;
    while (f > this.qmin && hist[f - 1] < limit) f--;
    const width = top - f;
    for (let i = n - 1; i >= 0; i--) {
      const v = q[i];
      if ((v - f) >>> 0 < width) rank[hist[v]++] = i;
    }
    this.floor = f;
    return f === this.qmin ? n : hist[f - 1];
  }

  /**
   * Selection over packed sort keys in `keys` (the weighted ranking, or a plain one whose values span too wide a range
   * for counting): the same choice as taking records in key order, with the sorting confined to the top of the ranking.
   */
  private pickByKeys(cs: ClientState, n: number): void {
    const keys = this.keys;
    const budget = this.budget;
    // Only the top of the ranking is ever reached (about budget / record size, plus the misses allowed below).
    const fit = Math.ceil(budget / Math.max(8, cs.recordBits));
    const chunk = Math.ceil(1.25 * fit) + 32;
    // Most of a packet is the top `head` of the ranking (9/10 of what recent record sizes say fits). When all of them
    // fit, the rank-order loop below would take every one of them (the gap bound grows with the count), so they are
    // quickselected in O(n) and taken in any order; only the ranks after them are sorted. Else they are sorted and
    // go through the loop like the rest.
    const head = Math.min(n, Math.floor(0.9 * fit));
    let sortedFrom = n;
    let start = n - 1;
    let step = chunk;
    if (head > 0) {
      sortedFrom = n - head;
      if (sortedFrom > 0) selectTop(keys, sortedFrom, n);
      for (let j = sortedFrom; j < n; j++) {
        const i = keyIndex(keys[j]);
        const cost = this.measure(i);
        if (cost < 0) continue;
        this.mark(i, CHOSEN_WRITTEN);
        this.picked++;
        this.bodies += cost;
      }
      if (
        this.picked === 0 ||
        this.headerBits + this.bodies + this.gapBound(this.picked, this.span, this.gapK) <= budget
      ) {
        start = sortedFrom - 1;
        step = Math.max(32, chunk - head);
      } else {
        for (let j = sortedFrom; j < n; j++) {
          const i = keyIndex(keys[j]);
          this.taken[i >>> 5] &= ~(1 << (i & 31));
        }
        this.bodies = 0;
        this.picked = 0;
        this.empty = 0;
        sortRange(keys, sortedFrom, n - 1);
      }
    }
    // Selected and sorted in chunks: a loop that runs past one selects and sorts the next from what is left, so a
    // packet sorts little more than it reads. Rank r is keys[n - 1 - r] (sorted ascending, taken from the top).
    this.sortedFrom = sortedFrom;
    this.sortStep = step;
    this.takeInRankOrder(n - 1 - start, n - sortedFrom, n, chunk, true);
  }

  /** The key ranking's sorted part is `keys[sortedFrom..n)`; the next chunk to sort has `sortStep` keys. */
  private sortedFrom = 0;
  private sortStep = 0;

  /** Selects and sorts the next chunk of keys below the sorted part; returns the rank where it ends. */
  private sortNextKeys(n: number, chunk: number): number {
    const sortedFrom = this.sortedFrom;
    const from = Math.max(0, sortedFrom - this.sortStep);
    if (from > 0) selectTop(this.keys, from, sortedFrom);
    sortRange(this.keys, from, sortedFrom - 1);
    this.sortedFrom = from;
    this.sortStep = chunk;
    return n - from;
  }

  /**
   * The selection loop of both rankings: ranks `from`.. (0 is the top) in order, each `take`n, until the ranking
   * ends or more than 8 records did not fit (reliable ones are not counted). Ranks from `ready` on are not known
   * yet: they are prepared a chunk at a time as the loop reaches them (`placeRanks` for the counting ranking,
   * `sortNextKeys` for the keys), so a packet ranks little more than it reads.
   */
  private takeInRankOrder(from: number, ready: number, n: number, chunk: number, byKeys: boolean): void {
    const keys = this.keys;
    const rank = this.rank;
    let misses = 0;
    for (let r = from; r < n; r++) {
      if (r === ready) ready = byKeys ? this.sortNextKeys(n, chunk) : this.placeRanks(r + chunk, n);
      let i: number;
      let reliable = false;
      if (byKeys) {
        const key = keys[n - 1 - r];
        i = keyIndex(key);
        reliable = key >= 0x80000000 * 2097152;
      } else i = rank[r];
      if (!this.take(i, reliable) && !reliable && ++misses > 8) break;
    }
  }

  private recPriority = 1;
  private recReliable = false;

  /** The ranking with field priorities, reliable fields and the distance factor: accumulators grown, packed keys. */
  private rankWeighted(cs: ClientState, snap: Snapshot, c: Candidates, n: number): void {
    const { cand, candBase } = c;
    const keys = this.keys;
    const acc = cs.acc;
    const priority = this.store.priority;
    const byDistance = cs.focus !== null && this.interest.hasPosition;
    for (let i = 0; i < n; i++) {
      const code = cand[i];
      const s = code >>> 3;
      const kind = code & 3;
      let fp = 1;
      let reliable = false;
      if (kind === KIND_UPDATE && this.fieldWeights) {
        this.changedWeight(cs, snap, s, candBase[i]);
        fp = this.recPriority;
        reliable = this.recReliable;
      }
      const df = byDistance ? this.interest.distanceFactor(cs, snap, s) : 1;
      const a = Math.fround(acc[s] + KIND_WEIGHT[kind] * priority[s] * fp * df);
      acc[s] = a;
      keys[i] = packKey(a, reliable, i);
    }
  }

  /** gapBitsBound(m, span, k), memoised (see gapMemo). */
  private gapBound(m: number, span: number, k: number): number {
    if (span !== this.memoSpan || k !== this.memoK) {
      this.memoSpan = span;
      this.memoK = k;
      this.gapGeneration++;
    }
    if (this.gapGen[m] === this.gapGeneration) return this.gapMemo[m];
    const b = gapBitsBound(m, span, k);
    this.gapMemo[m] = b;
    this.gapGen[m] = this.gapGeneration;
    return b;
  }

  /** Sets recPriority / recReliable from the fields of `s` that differ from the client's baseline. */
  private changedWeight(cs: ClientState, snap: Snapshot, s: number, baseTick: number): void {
    this.recPriority = 1;
    this.recReliable = false;
    const store = this.store;
    const base = store.baselineSnapshot(s, baseTick, snap.ids[s]);
    if (!base) return;
    const isOwner = store.owner[s] === cs.index;
    const mask = snap.masks[s] & base.masks[s];
    const o = s * store.row;
    const a = snap.values;
    const b = base.values;
    for (const c of store.comps) {
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
}

/**
 * Packed sort key: reliable first, then the accumulator (quantised; `a` rounded as the Float32Array stores it, so the
 * key is the stored accumulator's), then the candidate index in the low 21 bits.
 */
function packKey(a: number, reliable: boolean, i: number): number {
  const q = Math.min(Math.floor(a * 64), 0x7fffffff) + (reliable ? 0x80000000 : 0);
  return q * 2097152 + i;
}

/** The candidate index in a packed sort key: its low 21 bits (floating-point modulo is slow). */
function keyIndex(key: number): number {
  return key - Math.floor(key / 2097152) * 2097152;
}

/**
 * Quickselect (Hoare partition, median-of-three pivot): rearranges `a[0..n)` so that `a[k..n)` holds its largest
 * `n - k` values (in any order) and `a[0..k)` the rest. Keys are distinct (they embed the candidate index).
 */
export function selectTop(a: Float64Array, k: number, n: number): void {
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

/**
 * Sorts `a[lo..hi]` ascending in place: quicksort (median of three) with insertion sort below 16 elements. Several
 * times faster than `TypedArray.prototype.sort` on the few hundred keys of a packet, which dominated the encode
 * profile (also used for the chosen candidates' indices); values are distinct, so equal runs need no care.
 */
export function sortRange(a: Float64Array | Int32Array, lo: number, hi: number): void {
  while (hi - lo >= 16) {
    const x = a[lo];
    const y = a[(lo + hi) >>> 1];
    const z = a[hi];
    const pivot = Math.max(Math.min(x, y), Math.min(Math.max(x, y), z));
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
    // Recurse into the smaller side, loop on the larger: stack depth stays logarithmic.
    if (j - lo < hi - i) {
      sortRange(a, lo, j);
      lo = i;
    } else {
      sortRange(a, i, hi);
      hi = j;
    }
  }
  for (let i = lo + 1; i <= hi; i++) {
    const v = a[i];
    let j = i - 1;
    while (j >= lo && a[j] > v) {
      a[j + 1] = a[j];
      j--;
    }
    a[j + 1] = v;
  }
}

/**
 * Upper bound of the bits of `m` slot gaps in exp-Golomb order `k` when every slot is below `span`: the gaps sum to
 * at most `span`, a code takes at most 2 log2(g + 2^k) - k + 1 bits, and log is concave, so the sum is largest with
 * equal gaps (Jensen). One bit of slack covers floating-point rounding.
 */
export function gapBitsBound(m: number, span: number, k: number): number {
  return Math.ceil(m * (2 * Math.log2(span / m + 2 ** k) - k + 1)) + 1;
}
