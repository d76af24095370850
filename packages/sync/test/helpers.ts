import { createRng } from '@quiver/transport';
import { defineComponent, defineSchema, t } from '../src/index.js';

/** Floats in [0, 1) for test scenes and loss patterns: the transport's seeded PRNG (mulberry32). */
export function rng(seed: number): () => number {
  return createRng(seed).next;
}

export const Transform = defineComponent({
  pos: t.vec3({ min: -100, max: 100, precision: 0.01 }),
  rot: t.quat({ bits: 9 }),
});
export const Stats = defineComponent({
  hp: t.int({ min: 0, max: 100 }),
  alive: t.bool(),
  kind: t.enum(['a', 'b', 'c']),
  name: t.string({ maxBytes: 16 }),
  secret: t.int({ min: -5, max: 1000, ownerOnly: true }),
});
export const Tag = defineComponent({ team: t.int({ min: 0, max: 3 }) });

export const schema = defineSchema({ transform: Transform, stats: Stats, tag: Tag }, { maxEntities: 512 });

/**
 * A seeded lossy, reordering one-way link driven by ticks: base loss, Gilbert-Elliott bursts and scheduled
 * blackouts (100 % loss), plus a random latency of 0..maxDelay ticks.
 */
export class TickLink {
  private readonly queue: { at: number; bytes: Uint8Array }[] = [];
  private bad = false;
  sent = 0;
  lost = 0;
  blackout = false;

  constructor(
    private readonly rand: () => number,
    readonly opts: { loss: number; burstEnter: number; burstExit: number; maxDelay: number },
  ) {}

  send(now: number, bytes: Uint8Array): void {
    this.sent++;
    if (this.bad) this.bad = this.rand() >= this.opts.burstExit;
    else this.bad = this.rand() < this.opts.burstEnter;
    if (this.blackout || this.bad || this.rand() < this.opts.loss) {
      this.lost++;
      return;
    }
    this.queue.push({ at: now + Math.floor(this.rand() * (this.opts.maxDelay + 1)), bytes });
  }

  /** Messages due at `now`, in arrival order (later-sent may come first when delays differ). */
  deliver(now: number): Uint8Array[] {
    const due = this.queue.filter((m) => m.at <= now);
    for (const m of due) this.queue.splice(this.queue.indexOf(m), 1);
    return due.map((m) => m.bytes);
  }

  clear(): void {
    this.queue.length = 0;
    this.bad = false;
  }
}
