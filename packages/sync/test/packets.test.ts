import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { defineComponent, defineSchema, SyncClient, SyncServer, t } from '../src/index.js';
import { mutate, rng, schema, TickLink } from './helpers.js';

/**
 * The packets of fixed seeded scenes, pinned by their SHA-256: the encoder's speed work must not change one byte of
 * what it sends. Each scene also asserts that the paths it is meant to cover were taken (budget selection, older
 * baselines, value prediction, shared packets), so the pin cannot silently stop covering them. A deliberate change of
 * the wire format or of what the encoder chooses updates the digests here, in the same commit, with the reason.
 */

/** Sends each server packet over a lossy, delaying link to a client and its acks back; returns every packet's digest. */
function drive<S extends SyncServer<never>>(
  server: S,
  keys: string[],
  ticks: number,
  seed: number,
  loss: number,
  mutateTick: (tick: number) => void,
  newClient: () => SyncClient<never>,
  blackout?: { key: string; from: number; to: number },
): { digest: string; bytes: number } {
  const hash = createHash('sha256');
  let bytes = 0;
  const peers = keys.map((key, i) => ({
    key,
    client: newClient(),
    down: new TickLink(rng(seed * 31 + i), { loss, burstEnter: 0.01, burstExit: 0.3, maxDelay: 3 }),
    up: new TickLink(rng(seed * 37 + i), { loss, burstEnter: 0.01, burstExit: 0.3, maxDelay: 3 }),
  }));
  for (let now = 0; now < ticks; now++) {
    mutateTick(now);
    server.tick();
    for (const p of peers) {
      // A link that drops everything for longer than the window: baselines leave it, records are sent absolute.
      if (p.key === blackout?.key) p.down.blackout = now >= blackout.from && now < blackout.to;
      const packet = server.encodeFor(p.key);
      hash.update(packet);
      bytes += packet.length;
      p.down.send(now, packet);
      for (const b of p.down.deliver(now)) {
        try {
          p.client.receive(b);
        } catch {
          // A delta against a baseline the client has replaced (late, reordered): dropped, as a client does.
        }
        p.up.send(now, p.client.createAck());
      }
      for (const a of p.up.deliver(now)) {
        try {
          server.receiveAck(p.key, a);
        } catch {
          // A long-delayed ack may name a tick that has left the window.
        }
      }
    }
  }
  return { digest: hash.digest('hex'), bytes };
}

const Mover = defineComponent({
  pos: t.vec3({ min: -64, max: 64, precision: 1 / 512 }),
  rot: t.quat({ bits: 9 }),
});
const moverSchema = defineSchema({ e: Mover }, { maxEntities: 512 });

describe('packets are pinned byte for byte', () => {
  test('every entity moving, over budget, 3 % loss with bursts and late acks (plain ranking, prediction)', () => {
    const server = new SyncServer(moverSchema);
    const rand = rng(11);
    const n = 300;
    const ids: number[] = [];
    const x = new Float64Array(n);
    const z = new Float64Array(n);
    const yaw = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      x[i] = (rand() - 0.5) * 100;
      z[i] = (rand() - 0.5) * 100;
      ids.push(server.spawn({ e: { pos: { x: x[i], y: 0.5, z: z[i] } } }));
    }
    const keys = Array.from({ length: 6 }, (_, i) => `c${i}`);
    for (const k of keys) server.addClient(k, k === 'c5' ? { budgetBytes: 300 } : {});
    const out = drive(
      server as never,
      keys,
      180,
      3,
      0.03,
      (now) => {
        for (let i = 0; i < n; i++) {
          // Now and then a teleport (absolute form) and a turn past the largest component.
          const jump = rand() < 0.01 ? 40 : 0.05;
          x[i] += (rand() - 0.5) * jump;
          z[i] += (rand() - 0.5) * jump;
          yaw[i] += (rand() - 0.5) * (rand() < 0.02 ? 3 : 0.05);
          server.set(ids[i], 'e', {
            pos: { x: x[i], y: 0.5, z: z[i] },
            rot: { x: 0, y: Math.sin(yaw[i] / 2), z: 0, w: Math.cos(yaw[i] / 2) },
          });
        }
        if (now % 20 === 7) {
          server.despawn(ids[now % n]);
          ids[now % n] = server.spawn({ e: { pos: { x: 0, y: 0, z: 0 } } });
        }
      },
      () => new SyncClient(moverSchema) as never,
    );
    expect(server.stats.deferred).toBeGreaterThan(100_000);
    expect(server.stats.predicted).toBeGreaterThan(10_000);
    expect(out).toEqual({
      digest: '986192d9248f24eca47a88069dfaa5f7a512924dce5055ed6398fe148ebb10ff',
      bytes: 1_070_202,
    });
  });

  test('mixed scene: owners, removals, interest radius and distance priority, shared packets', () => {
    const server = new SyncServer(schema, {
      position: { component: 'transform', field: 'pos' },
      budgetBytes: 400,
    });
    const rand = rng(23);
    const live: number[] = [];
    const keys = ['owner', 'a', 'b', 'near', 'focus'];
    for (const k of keys) server.addClient(k, k === 'near' ? { radius: 60 } : {});
    server.setFocus('near', { x: 10, y: 0, z: -10 });
    server.setFocus('focus', { x: -30, y: 0, z: 30 });
    for (let i = 0; i < 150; i++) mutate(rand, server, live, 180);
    const out = drive(
      server as never,
      keys,
      300,
      5,
      0.02,
      (now) => {
        mutate(rand, server, live, 180);
        if (now > 150 && now < 170) for (let i = 0; i < 5; i++) mutate(rand, server, live, 180);
      },
      () => new SyncClient(schema) as never,
      { key: 'b', from: 100, to: 180 },
    );
    expect(server.stats.deferred).toBeGreaterThan(1000);
    expect(server.stats.sharedPackets).toBeGreaterThan(0);
    expect(server.stats.refreshes).toBeGreaterThan(0);
    expect(server.stats.predicted).toBeGreaterThan(0);
    expect(out).toEqual({
      digest: 'c9839cea89c423cf1b39b0d486e127343a6d117f2d036956049036a75b5b6ff6',
      bytes: 202_847,
    });
  });
});
