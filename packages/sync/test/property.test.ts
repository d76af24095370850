import { describe, expect, test } from 'vitest';
import { type ClientOptions, SyncClient, SyncServer } from '../src/index.js';
import { equal, mutate, type Peer, rng, schema, step, TickLink } from './helpers.js';

function randomScene(seed: number) {
  const rand = rng(seed);
  const server = new SyncServer(schema, {
    window: 16 + Math.floor(rand() * 48),
    position: { component: 'transform', field: 'pos' },
    cellSize: 10 + rand() * 30,
    budgetBytes: 4000,
    maxPacketBytes: 4000,
  });
  const loss = [0, 0.02, 0.1, 0.3, 0.6][Math.floor(rand() * 5)];
  const link = () => ({
    loss,
    burstEnter: rand() * 0.05,
    burstExit: 0.2 + rand() * 0.5,
    maxDelay: Math.floor(rand() * 4),
  });
  const specs: [string, ClientOptions, boolean][] = [
    ['all', {}, true],
    ['owner', {}, false],
    ['radius', { radius: 20 + rand() * 60 }, false],
    ['filter', { filter: (id) => id % 3 !== 0 }, false],
    ['tiny', { budgetBytes: 100 + Math.floor(rand() * 200) }, false],
  ];
  const peers: Peer[] = specs.map(([key, opts, exact]) => {
    server.addClient(key, opts);
    const client = new SyncClient(schema, { window: server.window });
    const peer: Peer = {
      key,
      client,
      down: new TickLink(rng(seed * 31 + key.length), link()),
      up: new TickLink(rng(seed * 17 + key.length), link()),
      exact,
      known: new Set(),
    };
    client.on('entered', (e) => {
      expect(peer.known.has(e.id)).toBe(false);
      peer.known.add(e.id);
    });
    client.on('left', (e) => {
      expect(peer.known.delete(e.id)).toBe(true);
      // Clients that see everything lose an entity only when it is gone (never to budget or loss).
      if (key === 'all' || key === 'owner' || key === 'tiny') expect(server.has(e.id)).toBe(false);
    });
    return peer;
  });
  server.setFocus('radius', { x: 0, y: 0, z: 0 });
  return { rand, server, peers, loss };
}

describe('property: client state converges to the server quantised state under loss', () => {
  for (let seed = 1; seed <= 24; seed++) {
    test(`seed ${seed}`, () => {
      const { rand, server, peers, loss } = randomScene(seed);
      const live: number[] = [];
      const history = new Map<number, Map<number, unknown>>();
      let now = 0;
      const chaosTicks = 150 + Math.floor(rand() * 150);
      const blackoutAt = Math.floor(rand() * chaosTicks);
      const blackoutLen = Math.floor(rand() * 120);
      for (; now < chaosTicks; now++) {
        const dark = now >= blackoutAt && now < blackoutAt + blackoutLen;
        for (const p of peers) p.down.blackout = p.up.blackout = dark;
        mutate(rand, server, live);
        step(server, peers, history, now, false);
      }
      // Recovery: lossless; with mutations still running, the unlimited client is exact from the first tick.
      for (let i = 0; i < 5; i++, now++) {
        mutate(rand, server, live);
        step(server, peers, history, now, true);
      }
      // Quiet: every client (also the budget-starved one) must converge.
      let converged = 0;
      for (let i = 0; i < 400 && converged < peers.length; i++, now++) {
        step(server, peers, history, now, true);
        converged = peers.filter((p) => equal(p.client.state(), server.quantisedStateFor(p.key))).length;
      }
      for (const p of peers) {
        expect(p.client.state(), p.key).toEqual(server.quantisedStateFor(p.key));
        expect(new Set(p.client.ids())).toEqual(p.known);
      }
      // The scene really was lossy (the link model is not silently lossless).
      if (loss > 0 || blackoutLen > 0) expect(peers[0].down.lost + peers[0].up.lost).toBeGreaterThan(0);
    });
  }
});
