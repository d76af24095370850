import { describe, expect, test } from 'vitest';
import { defineComponent, defineSchema, SyncClient, SyncServer, t } from '../src/index.js';
import { rng, schema } from './helpers.js';

const Body = defineComponent({
  pos: t.vec3({ min: -500, max: 500, precision: 0.01 }),
  hp: t.int({ min: 0, max: 1000, reliable: true }),
  mood: t.int({ min: 0, max: 255, priority: 8 }),
});
const bodySchema = defineSchema({ body: Body }, { maxEntities: 2048 });

function pump(
  server: SyncServer<typeof bodySchema.components>,
  key: string,
  client: SyncClient<typeof bodySchema.components>,
) {
  const bytes = server.encodeFor(key);
  client.receive(bytes);
  server.receiveAck(key, client.createAck());
  return bytes;
}

describe('byte budget and the priority accumulator', () => {
  test('every packet respects the budget and every changing entity keeps being sent (no starvation)', () => {
    const server = new SyncServer(bodySchema, { budgetBytes: 200 });
    server.addClient('c');
    const client = new SyncClient(bodySchema);
    const n = 400;
    const ids = Array.from({ length: n }, (_, i) =>
      server.spawn({ body: { pos: { x: i, y: 0, z: 0 } } }, { priority: i < 40 ? 4 : 1 }),
    );
    const lastSeen = new Map<number, number>();
    const updates = new Map<number, number>();
    client.on('changed', (e) => {
      lastSeen.set(e.id, e.tick);
      updates.set(e.id, (updates.get(e.id) ?? 0) + 1);
    });
    client.on('entered', (e) => lastSeen.set(e.id, e.tick));
    let maxGap = 0;
    for (let tick = 1; tick <= 600; tick++) {
      for (const [i, id] of ids.entries()) server.set(id, 'body', { pos: { x: i, y: tick * 0.05, z: 0 } });
      server.tick();
      const bytes = pump(server, 'c', client);
      expect(bytes.length).toBeLessThanOrEqual(200);
      if (tick > 100) for (const id of ids) maxGap = Math.max(maxGap, tick - (lastSeen.get(id) ?? 0));
    }
    expect(server.stats.deferred).toBeGreaterThan(0);
    // Everyone was sent at least every few dozen ticks although only ~25 entities fit a packet.
    expect(maxGap).toBeLessThan(40);
    const hi = ids.slice(0, 40).reduce((a, id) => a + (updates.get(id) ?? 0), 0) / 40;
    const lo = ids.slice(40).reduce((a, id) => a + (updates.get(id) ?? 0), 0) / (n - 40);
    expect(hi / lo).toBeGreaterThan(2);
    // Once the scene stops, the client converges to the exact server state.
    for (let i = 0; i < 100; i++) {
      server.tick();
      pump(server, 'c', client);
    }
    expect(client.state()).toEqual(server.quantisedStateFor('c'));
  });

  test('under budget pressure and loss nothing received goes back in time or flickers out', () => {
    const server = new SyncServer(bodySchema, { budgetBytes: 150 });
    server.addClient('c');
    const client = new SyncClient(bodySchema);
    const rand = rng(11);
    const ids = Array.from({ length: 300 }, (_, i) => server.spawn({ body: { pos: { x: i, y: 0, z: 0 } } }));
    const seenY = new Map<number, number>();
    let lefts = 0;
    client.on('left', () => lefts++);
    client.on('snapshot', (snap) => {
      for (const id of snap.ids()) {
        const y = snap.get(id)!.body!.pos.y;
        expect(y).toBeGreaterThanOrEqual(seenY.get(id) ?? 0);
        seenY.set(id, y);
      }
    });
    const inflight: { at: number; bytes: Uint8Array; ack: boolean }[] = [];
    for (let tick = 1; tick <= 400; tick++) {
      // Every entity climbs every tick: y is a clock, so any step back would show.
      for (const id of ids) server.set(id, 'body', { pos: { x: id, y: tick * 0.01, z: 0 } });
      server.tick();
      const p = server.encodeFor('c');
      expect(p.length).toBeLessThanOrEqual(150);
      if (rand() > 0.1) inflight.push({ at: tick + 1 + Math.floor(rand() * 3), bytes: p, ack: false });
      for (const m of inflight.filter((x) => x.at <= tick)) {
        inflight.splice(inflight.indexOf(m), 1);
        if (m.ack) server.receiveAck('c', m.bytes);
        else {
          client.receive(m.bytes);
          if (rand() > 0.1) inflight.push({ at: tick + 2, bytes: client.createAck(), ack: true });
        }
      }
    }
    expect(lefts).toBe(0);
    expect(client.size).toBe(300);
    expect(server.stats.deferred).toBeGreaterThan(0);
  });

  test('field priority and reliable fields jump the queue', () => {
    const server = new SyncServer(bodySchema, { budgetBytes: 120, maxPacketBytes: 400 });
    server.addClient('c');
    const client = new SyncClient(bodySchema);
    const ids = Array.from({ length: 300 }, (_, i) => server.spawn({ body: { pos: { x: i, y: 0, z: 0 } } }));
    for (let i = 0; i < 200; i++) {
      server.tick();
      pump(server, 'c', client);
    }
    expect(client.size).toBe(300);
    // All entities move (a backlog over budget); one gets a reliable hp change, one a high-priority mood.
    for (let tick = 0; tick < 3; tick++) {
      for (const [i, id] of ids.entries()) server.set(id, 'body', { pos: { x: i, y: 10 + tick, z: 0 } });
      if (tick === 0) {
        server.set(ids[250], 'body', { hp: 999 });
        server.set(ids[260], 'body', { mood: 200 });
      }
      server.tick();
      const bytes = pump(server, 'c', client);
      if (tick === 0) {
        expect(client.get(ids[250])?.body?.hp).toBe(999);
        expect(client.get(ids[260])?.body?.mood).toBe(200);
        expect(client.get(ids[100])?.body?.pos.y).toBe(0);
      }
      expect(bytes.length).toBeLessThanOrEqual(400);
    }
  });

  test('a budget too small for one entity record is refused up front', () => {
    expect(() => new SyncServer(schema, { budgetBytes: 20 })).toThrow(RangeError);
    const s = new SyncServer(schema);
    expect(() => s.addClient('x', { budgetBytes: 10 })).toThrow(RangeError);
  });

  test('the counting ranking picks what the sorted ranking picks (same packets, byte for byte)', () => {
    // Priority 1 keeps the quantised accumulators in a small range: the selector ranks by counting sort. Priority 4096
    // scales every accumulator alike (same order, exact in float32 at these sizes) but spreads them far beyond the
    // counting range: the selector falls back to sorting packed keys. The packets must not differ.
    const run = (priority: number) => {
      const server = new SyncServer(schema, { budgetBytes: 160 });
      server.addClient('c');
      const client = new SyncClient(schema);
      const rand = rng(5);
      const live: number[] = [];
      const spawn = () =>
        live.push(server.spawn({ transform: { pos: { x: rand() * 50, y: 0, z: 0 } } }, { priority }));
      for (let i = 0; i < 200; i++) spawn();
      const out: Uint8Array[] = [];
      for (let tick = 1; tick <= 150; tick++) {
        for (const id of live)
          if (rand() < 0.8) server.set(id, 'transform', { pos: { x: rand() * 50, y: tick, z: 0 } });
        // Creations and removals too: their kinds weigh 2 and 4 in the accumulator.
        if (rand() < 0.3) server.despawn(live.splice(Math.floor(rand() * live.length), 1)[0]);
        if (rand() < 0.3) spawn();
        server.tick();
        const bytes = server.encodeFor('c');
        out.push(bytes);
        // Lost packets and acks leave accumulators of many different ages.
        if (rand() < 0.8) {
          client.receive(bytes);
          if (rand() < 0.8) server.receiveAck('c', client.createAck());
        }
      }
      expect(server.stats.deferred).toBeGreaterThan(1000);
      return out;
    };
    const counted = run(1);
    const sorted = run(4096);
    for (let i = 0; i < counted.length; i++) expect(sorted[i], `tick ${i + 1}`).toEqual(counted[i]);
  });
});

describe('interest management', () => {
  test('radius: only entities near the focus are replicated; moving the focus enters and leaves them', () => {
    const server = new SyncServer(bodySchema, {
      position: { component: 'body', field: 'pos' },
      cellSize: 16,
    });
    server.addClient('near', { radius: 30 });
    const client = new SyncClient(bodySchema);
    const rand = rng(5);
    const ids = Array.from({ length: 500 }, () =>
      server.spawn({ body: { pos: { x: (rand() - 0.5) * 800, y: 0, z: (rand() - 0.5) * 800 } } }),
    );
    const entered = new Set<number>();
    const left = new Set<number>();
    client.on('entered', (e) => entered.add(e.id));
    client.on('left', (e) => left.add(e.id));
    const inside = (id: number, c: { x: number; z: number }) => {
      const p = server.getQuantised(id)!.body!.pos;
      return Math.hypot(p.x - c.x, p.z - c.z) <= 30;
    };
    for (const focus of [
      { x: 0, y: 0, z: 0 },
      { x: 200, y: 0, z: -100 },
    ]) {
      server.setFocus('near', focus);
      for (let i = 0; i < 5; i++) {
        server.tick();
        pump(server, 'near', client);
      }
      const want = ids.filter((id) => inside(id, focus));
      expect(want.length).toBeGreaterThan(0);
      expect(new Set(client.ids())).toEqual(new Set(want));
      expect(client.state()).toEqual(server.quantisedStateFor('near'));
    }
    expect(left.size).toBeGreaterThan(0);
    expect([...left].every((id) => entered.has(id))).toBe(true);
  });

  test('custom filters and owner-only fields', () => {
    const server = new SyncServer(schema);
    server.addClient('owner');
    server.addClient('other', { filter: (id) => id % 2 === 0 });
    const a = new SyncClient(schema);
    const b = new SyncClient(schema);
    const ids = Array.from({ length: 10 }, (_, i) =>
      server.spawn({ stats: { hp: i, secret: 100 + i } }, { owner: i < 5 ? 'owner' : undefined }),
    );
    for (let i = 0; i < 3; i++) {
      server.tick();
      for (const [key, c] of [
        ['owner', a],
        ['other', b],
      ] as const) {
        c.receive(server.encodeFor(key));
        server.receiveAck(key, c.createAck());
      }
    }
    expect(a.get(ids[1])?.stats?.secret).toBe(101);
    expect(a.get(ids[7])?.stats?.secret).toBe(0);
    expect(b.ids().sort()).toEqual(ids.filter((id) => id % 2 === 0).sort());
    for (const id of b.ids()) expect(b.get(id)?.stats?.secret).toBe(0);
    server.set(ids[1], 'stats', { secret: 555 });
    server.tick();
    a.receive(server.encodeFor('owner'));
    b.receive(server.encodeFor('other'));
    expect(a.get(ids[1])?.stats?.secret).toBe(555);
    expect(a.state()).toEqual(server.quantisedStateFor('owner'));
    expect(b.state()).toEqual(server.quantisedStateFor('other'));
  });

  test('clients on the same baseline share one encoding byte for byte', () => {
    const server = new SyncServer(bodySchema);
    const clients = Array.from({ length: 8 }, (_, i) => {
      server.addClient(i);
      return new SyncClient(bodySchema);
    });
    const ids = Array.from({ length: 100 }, (_, i) => server.spawn({ body: { pos: { x: i, y: 0, z: 0 } } }));
    for (let tick = 1; tick <= 20; tick++) {
      for (const id of ids)
        if (id % 3 === tick % 3) server.set(id, 'body', { pos: { x: id, y: tick, z: 0 } });
      server.tick();
      const packets = clients.map((c, i) => {
        const p = server.encodeFor(i);
        // Client 7 loses every other packet: its baseline diverges, so it gets its own encoding.
        if (i !== 7 || tick % 2 === 0) {
          c.receive(p);
          server.receiveAck(i, c.createAck());
        }
        return p;
      });
      // Before the first ack there is no baseline to share on: equal bytes, encoded separately.
      for (let i = 1; i < 7; i++) expect(packets[i]).toEqual(packets[0]);
      if (tick > 1) for (let i = 1; i < 7; i++) expect(packets[i]).toBe(packets[0]);
      for (const c of clients.slice(0, 7)) expect(c.state()).toEqual(server.quantisedStateFor(0));
    }
    expect(server.stats.sharedPackets).toBeGreaterThanOrEqual(6 * 19);
    server.tick();
    clients[7].receive(server.encodeFor(7));
    expect(clients[7].state()).toEqual(server.quantisedStateFor(7));
    // Acks of a shared packet count for each client on its own: when a burst of spawns overflows the budget
    // (per-entity baselines take over from the shared path), nobody re-receives the entities it already has.
    for (let i = 0; i < 200; i++) server.spawn({ body: { pos: { x: i, y: 1, z: 1 } } });
    const bytes = new Array<number>(8).fill(0);
    for (let tick = 0; tick < 30; tick++) {
      server.tick();
      clients.forEach((c, i) => {
        const p = server.encodeFor(i);
        bytes[i] += p.length;
        c.receive(p);
        server.receiveAck(i, c.createAck());
      });
    }
    for (const [i, c] of clients.entries()) {
      expect(c.state()).toEqual(server.quantisedStateFor(i));
      expect(bytes[i]).toBeLessThan(bytes[0] * 1.1);
    }
  });
});

describe('client events and the snapshot stream', () => {
  test('entered, changed, left and per-tick snapshots', () => {
    const server = new SyncServer(schema);
    server.addClient('c');
    const client = new SyncClient(schema);
    const log: string[] = [];
    client.on('entered', (e) => log.push(`+${e.id}@${e.tick}`));
    client.on('left', (e) => log.push(`-${e.id}@${e.tick}`));
    client.on('changed', (e) => log.push(`~${e.id}@${e.tick}:${e.components.join(',')}`));
    const snaps: [number, number, number | undefined][] = [];
    client.on('snapshot', (s) => snaps.push([s.tick, s.size, s.get(1)?.stats?.hp]));
    const a = server.spawn({ stats: { hp: 5 } });
    server.tick();
    client.receive(server.encodeFor('c'));
    server.receiveAck('c', client.createAck());
    server.set(a, 'stats', { hp: 6 });
    server.set(a, 'tag', { team: 2 });
    server.tick();
    client.receive(server.encodeFor('c'));
    server.receiveAck('c', client.createAck());
    server.despawn(a);
    server.spawn({ tag: { team: 1 } });
    server.tick();
    client.receive(server.encodeFor('c'));
    expect(log).toEqual(['+1@1', '~1@2:stats,tag', '-1@3', '+2@3']);
    expect(snaps).toEqual([
      [1, 1, 5],
      [2, 1, 6],
      [3, 1, undefined],
    ]);
  });
});
