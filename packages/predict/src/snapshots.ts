/**
 * Feeding tick-numbered state snapshots (such as `@quiver/sync`'s `SyncClient` `snapshot` event) into an
 * {@link InterpolationBuffer}. The snapshot is taken by shape, so this package needs no dependency on the sync layer:
 * anything with a `tick`, the entity ids and a per-entity getter fits.
 */
import { checkOption } from './errors.js';
import type { EntitySample, InterpolationBuffer } from './interpolation.js';

/** The shape of one decoded tick of state (`@quiver/sync`'s `ClientSnapshot` has it). */
export interface TickSnapshotLike<V> {
  /** Server tick the state belongs to. */
  readonly tick: number;
  /** Ids of the entities in the snapshot. */
  ids(): Iterable<number>;
  /** Values of one entity; undefined when it is not in the snapshot. */
  get(id: number): V | undefined;
}

/** Options of {@link SnapshotFeed}. */
export interface SnapshotFeedOptions<V> {
  /** Server ticks per second: a snapshot of tick `n` was taken at server time `n · 1000 / tickRate` ms. */
  tickRate: number;
  /**
   * The pose of an entity from its values (e.g. `(v) => v.transform && { position: v.transform.pos,
   * rotation: v.transform.rot }`), or undefined for entities that are not interpolated (no pose component).
   */
  pose(values: V, id: number): EntitySample | undefined;
}

/**
 * Pushes tick snapshots into an interpolation buffer: converts the tick to server time and picks each entity's pose.
 * Call {@link push} from inside the snapshot callback (sync recycles the snapshot's views afterwards); the poses are
 * copied, so nothing of the snapshot is kept.
 */
export class SnapshotFeed<V> {
  /** Milliseconds per server tick (1000 / `tickRate`). */
  readonly tickMs: number;
  /** Live counters. */
  readonly stats = {
    /** Snapshots pushed into the buffer. */
    snapshots: 0,
    /** Entities skipped because `pose` returned undefined. */
    skipped: 0,
  };
  readonly #pose: (values: V, id: number) => EntitySample | undefined;

  constructor(
    /** The buffer the poses go into. */
    readonly buffer: InterpolationBuffer,
    options: SnapshotFeedOptions<V>,
  ) {
    this.tickMs = 1000 / checkOption('tickRate', options.tickRate, 1, 1000);
    this.#pose = options.pose;
  }

  /** Server time (ms) of a tick. */
  serverTimeOf(tick: number): number {
    return tick * this.tickMs;
  }

  /** Adds the snapshot that arrived at local time `localTimeMs` (the client's clock, e.g. `performance.now()`). */
  push(snapshot: TickSnapshotLike<V>, localTimeMs: number): void {
    const entities: [number, EntitySample][] = [];
    for (const id of snapshot.ids()) {
      const values = snapshot.get(id);
      const pose = values === undefined ? undefined : this.#pose(values, id);
      if (!pose) {
        this.stats.skipped++;
        continue;
      }
      entities.push([id, copyPose(pose)]);
    }
    this.stats.snapshots++;
    this.buffer.push(this.serverTimeOf(snapshot.tick), localTimeMs, entities);
  }
}

function copyPose(p: EntitySample): EntitySample {
  const out: EntitySample = { position: { x: p.position.x, y: p.position.y, z: p.position.z } };
  if (p.rotation) out.rotation = { x: p.rotation.x, y: p.rotation.y, z: p.rotation.z, w: p.rotation.w };
  if (p.velocity) out.velocity = { x: p.velocity.x, y: p.velocity.y, z: p.velocity.z };
  return out;
}
