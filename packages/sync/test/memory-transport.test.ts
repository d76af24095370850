/**
 * Sync over @quiver/transport's memory transport: every packet and every ack is a real datagram on a seeded link
 * model (delay, jitter, loss, reordering) under a ManualClock, so each seed replays exactly. Property: the client
 * that sees everything holds exactly the server's quantised state of every tick it applies, and after the loss
 * every client (radius interest, a starved budget and an owner of owner-only fields too) ends equal to `quantisedStateFor` it.
 */
import { createMemoryPair, ManualClock, type QuiverSession } from '@quiver/transport';
import { describe, expect, test } from 'vitest';
import { type ClientOptions, SyncClient, SyncError, SyncServer } from '../src/index.js';
import { mutate, rng, schema } from './helpers.js';

type S = typeof schema.components;

const TICK_MS = 16;
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

async function drain(readable: ReadableStream<Uint8Array>, into: Uint8Array[]): Promise<void> {
  const reader = readable.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    into.push(value);
  }
}

interface Peer {
  key: string;
  exact: boolean;
  client: SyncClient<S>;
  sessions: QuiverSession[];
  down: WritableStreamDefaultWriter<Uint8Array>;
  up: WritableStreamDefaultWriter<Uint8Array>;
  atClient: Uint8Array[];
  atServer: Uint8Array[];
  reading: Promise<void>[];
  applied: number;
}

async function connectPeer(
  server: SyncServer<S>,
  clock: ManualClock,
  key: string,
  opts: ClientOptions,
  exact: boolean,
  seed: number,
  link: { delayMs: number; jitterMs: number; lossRate: number; reorderRate: number },
): Promise<Peer> {
  const pair = createMemoryPair({ clock, seed, link });
  await Promise.all([pair.client.ready, pair.server.ready]);
  server.addClient(key, opts);
  const atClient: Uint8Array[] = [];
  const atServer: Uint8Array[] = [];
  return {
    key,
    exact,
    client: new SyncClient(schema, { window: server.window }),
    sessions: [pair.client, pair.server],
    down: pair.server.datagrams.writable.getWriter(),
    up: pair.client.datagrams.writable.getWriter(),
    atClient,
    atServer,
    reading: [
      drain(pair.client.datagrams.readable, atClient).catch(() => {}),
      drain(pair.server.datagrams.readable, atServer).catch(() => {}),
    ],
    applied: 0,
  };
}

describe('property: sync over memory-transport datagrams with seeded loss, jitter and reordering', () => {
  for (let seed = 1; seed <= 6; seed++) {
    test(`seed ${seed}`, async () => {
      const rand = rng(seed * 1009);
      const clock = new ManualClock(0);
      const link = {
        delayMs: 5 + Math.floor(rand() * 60),
        jitterMs: Math.floor(rand() * 30),
        lossRate: [0.02, 0.1, 0.25][seed % 3],
        reorderRate: rand() * 0.2,
      };
      const server = new SyncServer(schema, {
        window: 64,
        position: { component: 'transform', field: 'pos' },
        // A full state of the capped scene fits one datagram, so the all-interest client is never deferred.
        budgetBytes: 1200,
        maxPacketBytes: 1200,
      });
      const peers = [
        await connectPeer(server, clock, 'all', {}, true, seed * 3 + 1, link),
        await connectPeer(server, clock, 'radius', { radius: 40 + rand() * 40 }, false, seed * 3 + 2, link),
        await connectPeer(server, clock, 'tiny', { budgetBytes: 120 }, false, seed * 3 + 3, link),
        // Owns some of the entities, so it also receives their owner-only fields.
        await connectPeer(server, clock, 'owner', {}, false, seed * 3 + 4, link),
      ];
      server.setFocus('radius', { x: 0, y: 0, z: 0 });
      const history = new Map<number, Map<number, unknown>>();
      const live: number[] = [];

      const step = (mutating: boolean) => {
        if (mutating) mutate(rand, server, live, 40);
        const tick = server.tick();
        history.set(tick, server.quantisedStateFor('all'));
        history.delete(tick - 200);
        for (const p of peers) {
          for (const ack of p.atServer.splice(0)) {
            try {
              server.receiveAck(p.key, ack);
            } catch (e) {
              // An ack delayed past the server's window names a tick it no longer keeps.
              expect(e).toBeInstanceOf(SyncError);
              expect((e as SyncError).code).toBe('out-of-window');
            }
          }
          const bytes = server.encodeFor(p.key);
          expect(bytes.length).toBeLessThanOrEqual(1200);
          void p.down.write(bytes);
          for (const b of p.atClient.splice(0)) {
            let applied = false;
            try {
              applied = p.client.receive(b);
            } catch (e) {
              // A delta against a baseline the client has already replaced is the one legitimate failure.
              expect(e).toBeInstanceOf(SyncError);
              expect((e as SyncError).code).toBe('baseline-missing');
            }
            if (applied) {
              p.applied++;
              if (p.exact) expect(p.client.state()).toEqual(history.get(p.client.tick));
            }
            void p.up.write(p.client.createAck());
          }
        }
      };

      for (let i = 0; i < 300; i++) {
        step(true);
        clock.advance(TICK_MS);
        await flush();
      }
      // Recovery: the scene stops changing while the link stays lossy; what is unacknowledged is repeated.
      let converged = 0;
      for (let i = 0; i < 600 && converged < peers.length; i++) {
        step(false);
        clock.advance(TICK_MS);
        await flush();
        converged = peers.filter((p) => equal(p.client.state(), server.quantisedStateFor(p.key))).length;
      }
      expect(live.length).toBeGreaterThan(5);
      for (const p of peers) {
        expect(p.client.state(), p.key).toEqual(server.quantisedStateFor(p.key));
        expect(p.applied, p.key).toBeGreaterThan(100);
      }
      // The memory links really lost datagrams both ways (counted on the receiving side as `lost`).
      let lostDown = 0;
      let lostUp = 0;
      for (const p of peers) {
        lostDown += (await p.sessions[0].getStats()).datagrams.droppedIncoming.lost ?? 0;
        lostUp += (await p.sessions[1].getStats()).datagrams.droppedIncoming.lost ?? 0;
      }
      expect(lostDown).toBeGreaterThan(0);
      expect(lostUp).toBeGreaterThan(0);

      for (const p of peers) for (const s of p.sessions) s.close();
      clock.runAll();
      await Promise.all(peers.flatMap((p) => p.reading));
    });
  }
});

function equal(a: unknown, b: unknown): boolean {
  try {
    expect(a).toEqual(b);
    return true;
  } catch {
    return false;
  }
}
