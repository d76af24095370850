import { createRng } from '@quiver/transport';
import { expect } from 'vitest';
import {
  type ComponentMap,
  defineComponent,
  defineSchema,
  type SyncClient,
  SyncError,
  type SyncServer,
  t,
} from '../src/index.js';

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

type S = typeof schema.components;

/**
 * A random batch of scene edits: spawns (up to `maxLive` live entities), despawns, moves and teleports, stats and tag
 * changes, component removals.
 */
export function mutate(rand: () => number, server: SyncServer<S>, live: number[], maxLive = 200): void {
  const r = () => (rand() - 0.5) * 180;
  const ops = Math.floor(rand() * 12);
  for (let i = 0; i < ops; i++) {
    const op = rand();
    if (op < 0.12 && live.length < maxLive) {
      const id = server.spawn(
        {
          transform: {
            pos: { x: r(), y: r(), z: r() },
            rot: { x: rand(), y: rand(), z: rand(), w: rand() - 0.5 },
          },
          ...(rand() < 0.6
            ? {
                stats: {
                  hp: Math.floor(rand() * 140) - 20,
                  name: rand() < 0.5 ? 'orc' : 'ünïcode✓',
                  secret: 7,
                },
              }
            : {}),
        },
        rand() < 0.3 ? { owner: 'owner' } : {},
      );
      live.push(id);
    } else if (op < 0.2 && live.length > 0) {
      server.despawn(live.splice(Math.floor(rand() * live.length), 1)[0]);
    } else if (live.length > 0) {
      const id = live[Math.floor(rand() * live.length)];
      const which = rand();
      if (which < 0.5) {
        const p = server.getQuantised(id)?.transform?.pos ?? { x: 0, y: 0, z: 0 };
        const step = rand() < 0.8 ? 0.5 : 60;
        server.set(id, 'transform', {
          pos: { x: p.x + (rand() - 0.5) * step, y: p.y, z: p.z + (rand() - 0.5) * step },
          ...(rand() < 0.5
            ? { rot: { x: rand() - 0.5, y: rand() - 0.5, z: rand() - 0.5, w: rand() - 0.5 } }
            : {}),
        });
      } else if (which < 0.75) {
        server.set(id, 'stats', {
          hp: Math.floor(rand() * 101),
          alive: rand() < 0.5,
          kind: (['a', 'b', 'c'] as const)[Math.floor(rand() * 3)],
          secret: Math.floor(rand() * 1000),
          ...(rand() < 0.2 ? { name: `n${Math.floor(rand() * 1e6)}` } : {}),
        });
      } else if (which < 0.85) server.set(id, 'tag', { team: Math.floor(rand() * 4) });
      else if (which < 0.92) server.removeComponent(id, rand() < 0.5 ? 'tag' : 'stats');
      else server.set(id, 'stats', { alive: true });
    }
  }
}

export interface Peer<M extends ComponentMap = typeof schema.components> {
  key: string;
  client: SyncClient<M>;
  down: TickLink;
  up: TickLink;
  /** Check client == server at every applied tick (all-interest, unlimited budget clients only). */
  exact: boolean;
  known: Set<number>;
}

/**
 * One tick: snapshot, one packet per peer over its link (or directly when `lossless`), acks back. Exact peers are
 * checked against the server's state of every tick they apply (`history`, keyed by tick, of client 'all').
 */
export function step<M extends ComponentMap>(
  server: SyncServer<M>,
  peers: Peer<M>[],
  history: Map<number, Map<number, unknown>>,
  now: number,
  lossless: boolean,
): void {
  const tick = server.tick();
  history.set(tick, server.quantisedStateFor('all'));
  history.delete(tick - 80);
  for (const p of peers) {
    const bytes = server.encodeFor(p.key);
    if (lossless) {
      p.down.clear();
      p.up.clear();
      p.client.receive(bytes);
      server.receiveAck(p.key, p.client.createAck());
      if (p.exact) expect(p.client.state()).toEqual(history.get(tick));
      continue;
    }
    p.down.send(now, bytes);
    for (const b of p.down.deliver(now)) {
      let applied = false;
      try {
        applied = p.client.receive(b);
      } catch (e) {
        // Deltas against a baseline the client has replaced are the only legitimate failure here.
        expect(e).toBeInstanceOf(SyncError);
        expect((e as SyncError).code).toBe('baseline-missing');
      }
      if (applied && p.exact) expect(p.client.state()).toEqual(history.get(p.client.tick));
      p.up.send(now, p.client.createAck());
    }
    for (const a of p.up.deliver(now)) {
      try {
        server.receiveAck(p.key, a);
      } catch (e) {
        // A long-delayed ack may name a tick that has left the window.
        expect((e as SyncError).code).toBe('out-of-window');
      }
    }
  }
}

export function equal(a: unknown, b: unknown): boolean {
  try {
    expect(a).toEqual(b);
    return true;
  } catch {
    return false;
  }
}
