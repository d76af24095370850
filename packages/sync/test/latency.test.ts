import { describe, expect, test } from 'vitest';
import { defineComponent, defineSchema, SyncClient, SyncServer, t } from '../src/index.js';
import { equal, type Peer, rng, step, TickLink } from './helpers.js';

/**
 * Baselines under latency: records are deltas against values extrapolated from two acknowledged baselines when that is
 * shorter. Exact convergence must hold under loss, reordering and blackouts, with acks several ticks late.
 */

const Mover = defineComponent({
  pos: t.vec3({ min: [-200, 0, -200], max: [200, 10, 200], precision: [0.01, 0.05, 0.01] }),
  yaw: t.angle({ precision: 0.5 }),
  rot: t.quat({ bits: 10 }),
  speed: t.float({ min: 0, max: 20, precision: 0.1 }),
  hp: t.int({ min: 0, max: 100 }),
});
const Tag = defineComponent({ team: t.int({ min: 0, max: 3 }) });
const schema = defineSchema({ mover: Mover, tag: Tag }, { maxEntities: 256 });
type M = typeof schema.components;

interface Body {
  id: number;
  x: number;
  z: number;
  yaw: number;
  spin: number;
  speed: number;
}

/** Bodies moving on straight lines and arcs, stopping and starting, turning past ±π; spawns, despawns, hits. */
function move(rand: () => number, server: SyncServer<M>, bodies: Body[]): void {
  if (rand() < 0.05 && bodies.length < 60) {
    const b: Body = {
      id: 0,
      x: (rand() - 0.5) * 300,
      z: (rand() - 0.5) * 300,
      yaw: rand() * 7,
      spin: 0,
      speed: 3,
    };
    b.id = server.spawn({ mover: { pos: { x: b.x, y: 1, z: b.z }, yaw: b.yaw, speed: b.speed } });
    bodies.push(b);
  }
  if (rand() < 0.03 && bodies.length > 0)
    server.despawn(bodies.splice(Math.floor(rand() * bodies.length), 1)[0].id);
  for (const b of bodies) {
    if (rand() < 0.02) b.speed = b.speed > 0 ? 0 : 1 + rand() * 8;
    if (rand() < 0.03) b.spin = (rand() - 0.5) * 4;
    b.yaw += b.spin / 60;
    b.x += (Math.sin(b.yaw) * b.speed) / 60;
    b.z += (Math.cos(b.yaw) * b.speed) / 60;
    const h = b.yaw / 2;
    server.set(b.id, 'mover', {
      pos: { x: b.x, y: 1 + Math.sin(b.x / 7), z: b.z },
      yaw: b.yaw,
      rot: { x: 0.1 * Math.sin(b.z), y: Math.sin(h), z: 0, w: Math.cos(h) },
      speed: b.speed,
      ...(rand() < 0.01 ? { hp: Math.floor(rand() * 101) } : {}),
    });
    if (rand() < 0.005) server.set(b.id, 'tag', { team: Math.floor(rand() * 4) });
    if (rand() < 0.003) server.removeComponent(b.id, 'tag');
  }
}

describe('property: prediction from acked baselines converges exactly under latency and loss', () => {
  for (let seed = 1; seed <= 10; seed++) {
    test(`seed ${seed}`, () => {
      const rand = rng(seed * 7 + 3);
      const window = 24 + Math.floor(rand() * 40);
      const server = new SyncServer(schema, {
        window,
        budgetBytes: 4000,
        maxPacketBytes: 4000,
        position: { component: 'mover', field: 'pos' },
      });
      const loss = [0, 0.02, 0.1, 0.3][seed % 4];
      // Fixed latency (3..6 ticks each way, a 100 to 200 ms round trip at 60 Hz) plus jitter that reorders.
      const latency = 3 + Math.floor(rand() * 4);
      const link = () => ({ loss, burstEnter: rand() * 0.03, burstExit: 0.3, maxDelay: 2 });
      const peers: Peer<M>[] = ['all', 'radius', 'tiny'].map((key, i) => {
        server.addClient(
          key,
          key === 'radius'
            ? { radius: 80 }
            : key === 'tiny'
              ? { budgetBytes: 150 + Math.floor(rand() * 100) }
              : {},
        );
        return {
          key,
          client: new SyncClient(schema, { window }),
          down: new DelayedLink(rng(seed * 31 + i), link(), latency),
          up: new DelayedLink(rng(seed * 17 + i), link(), latency),
          exact: key === 'all',
          known: new Set<number>(),
        };
      });
      server.setFocus('radius', { x: 0, y: 0, z: 0 });
      const bodies: Body[] = [];
      const history = new Map<number, Map<number, unknown>>();
      let now = 0;
      const blackoutAt = 100 + Math.floor(rand() * 100);
      for (; now < 400; now++) {
        const dark = now >= blackoutAt && now < blackoutAt + 30;
        for (const p of peers) p.down.blackout = p.up.blackout = dark;
        move(rand, server, bodies);
        step(server, peers, history, now, false);
      }
      let converged = 0;
      for (let i = 0; i < 300 && converged < peers.length; i++, now++) {
        step(server, peers, history, now, true);
        converged = peers.filter((p) => equal(p.client.state(), server.quantisedStateFor(p.key))).length;
      }
      for (const p of peers) expect(p.client.state(), p.key).toEqual(server.quantisedStateFor(p.key));
      // Prediction was really exercised: a good share of the updates were encoded against it.
      expect(server.stats.predicted).toBeGreaterThan(server.stats.records / 20);
      if (loss > 0) expect(peers[0].down.lost).toBeGreaterThan(0);
    });
  }
});

/** A TickLink with a fixed latency on top of its jitter. */
class DelayedLink extends TickLink {
  constructor(
    rand: () => number,
    opts: ConstructorParameters<typeof TickLink>[1],
    private readonly latency: number,
  ) {
    super(rand, opts);
  }
  override send(now: number, bytes: Uint8Array): void {
    super.send(now + this.latency, bytes);
  }
}
