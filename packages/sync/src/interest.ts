import { type CompiledField, numberOf, type SyncSchema, type Vec3 } from './schema.js';
import type { Snapshot } from './store.js';

/** What interest management needs to know of a client. */
export interface InterestClient {
  opts: {
    radius?: number;
    includeUnpositioned?: boolean;
    filter?: (entityId: number) => boolean;
  };
  focus: Vec3 | null;
  /** Per slot, 1 when the entity is in this client's interest (valid after `compute`). */
  interest: Uint8Array;
}

/**
 * Which entities each client sees: everything, a radius around its focus (a spatial hash of `cellSize` cells, then
 * an exact distance test) and a custom filter; plus the distance factor of the priority accumulator.
 */
export class Interest {
  private readonly posSlot: number;
  private readonly posComp: number;
  private readonly posField: CompiledField | null;
  /** 2 for a vec2 position (its y is the z of the focus: a plane), 3 for vec3. */
  private readonly posAxes: number;
  private readonly row: number;
  private grid: Map<number, number[]> | null = null;

  constructor(
    schema: SyncSchema,
    position: { component: string; field: string } | undefined,
    readonly cellSize: number,
  ) {
    this.row = schema.rowWidth;
    if (position) {
      const c = schema.byName.get(position.component);
      const f = c?.fields.find((x) => x.name === position.field);
      if (!c || !f || (f.kind !== 'vec3' && f.kind !== 'vec2'))
        throw new RangeError('position must name a vec3 or vec2 field');
      this.posComp = c.index;
      this.posSlot = f.slot;
      this.posField = f;
      this.posAxes = f.kind === 'vec2' ? 2 : 3;
    } else {
      this.posComp = -1;
      this.posSlot = -1;
      this.posField = null;
      this.posAxes = 3;
    }
  }

  get hasPosition(): boolean {
    return this.posSlot >= 0;
  }

  /** A new tick: the spatial grid is rebuilt on first use. */
  reset(): void {
    this.grid = null;
  }

  static all(cs: InterestClient): boolean {
    return cs.opts.radius === undefined && cs.opts.filter === undefined;
  }

  static has(cs: InterestClient, slot: number): boolean {
    return Interest.all(cs) || cs.interest[slot] === 1;
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

  /** Position of slot `s` along x (0), y (1), z (2); a vec2 position (x, y) lies in the x-z plane. */
  private pos(snap: Snapshot, s: number, axis: number): number {
    let i = axis;
    if (this.posAxes === 2) {
      if (axis === 1) return 0;
      if (axis === 2) i = 1;
    }
    return numberOf(this.posField!, i, snap.values[s * this.row + this.posSlot + i]);
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

  /** Fills `cs.interest` for `snap` (nothing to do for a client that sees everything). */
  compute(cs: InterestClient, snap: Snapshot): void {
    if (Interest.all(cs)) return;
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

  /** Priority falls with distance from the client's focus: 1 / (1 + d / radius). */
  distanceFactor(cs: InterestClient, snap: Snapshot, s: number): number {
    const f = cs.focus;
    if (!f || this.posComp < 0 || !(snap.masks[s] & (1 << this.posComp))) return 1;
    const d = Math.hypot(this.pos(snap, s, 0) - f.x, this.pos(snap, s, 1) - f.y, this.pos(snap, s, 2) - f.z);
    const r = cs.opts.radius ?? this.cellSize * 4;
    return 1 / (1 + d / r);
  }
}
