/**
 * Three server processes and a real redis-server: placement of new rooms across nodes, matchmaking through any
 * node, cross-node broadcast and messages to a room, a node killed with SIGKILL (its clients rematchmake by
 * themselves, or get a typed `node-lost`), and a node drained (its clients are `moved` and rematchmake).
 */
import { once } from 'node:events';
import type { RoomMessage } from '@quiver/rooms';
import { type ClientRoom, type RoomError, RoomsClient } from '@quiver/rooms/client';
import { connectWebSocket } from '@quiver/websocket';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RedisDriver } from '../src/index.js';
import { type RedisServer, startRedis } from '../src/testing.js';
import { Heard, PokeRoom, Say, Shout, Shouted } from './fixtures/messages.js';
import { listing, startNode, stopNodes, type TestNode, waitFor } from './support.js';

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(() => redis.stop());
afterEach(stopNodes);

/** A client that matchmakes through `first`, falling over to the other nodes. */
function clientVia(nodes: TestNode[], first: TestNode, options: { rematchmake?: boolean } = {}) {
  const rest = nodes.filter((n) => n !== first).map((n) => n.endpoint);
  return new RoomsClient({
    endpoint: [first.endpoint, ...rest],
    connectors: { websocket: connectWebSocket },
    nodeCheckMs: 100,
    ...options,
  });
}

/** The next message of `type` the room gets. */
function next<T>(room: ClientRoom, type: RoomMessage<T>): Promise<T> {
  return new Promise<T>((resolve) => {
    const off = room.on(type, (m) => {
      off();
      resolve(m);
    });
  });
}

describe('three server processes on one Redis', () => {
  it('places rooms on the least-loaded node; matchmaking, broadcast and room messages work across nodes', async () => {
    const nodes = await Promise.all(['p1', 'p2', 'p3'].map((n) => startNode(redis.url, n)));
    const [n1, , n3] = nodes as [TestNode, TestNode, TestNode];
    // Three rooms, all matchmade through n1: one on each node.
    const rooms: ClientRoom[] = [];
    for (const mode of ['x', 'y', 'z'])
      rooms.push(await clientVia(nodes, n1).joinOrCreate('arena', { mode }));
    expect(new Set(rooms.map((r) => r.processId))).toEqual(new Set(['p1', 'p2', 'p3']));
    // Every node lists all three.
    for (const n of nodes) expect((await listing(n.endpoint)).length).toBe(3);

    // Matchmaking through n3 for mode 'x' joins the room of 'x', wherever it is, and connects straight to it.
    const [x, y, z] = rooms as [ClientRoom, ClientRoom, ClientRoom];
    const x2 = await clientVia(nodes, n3).joinOrCreate('arena', { mode: 'x' });
    expect(x2.roomId).toBe(x.roomId);
    expect(x2.processId).toBe(x.processId);
    const said = next(x, Heard);
    x2.send(Say, { text: 'hello' });
    expect((await said).text).toBe('hello');

    // A broadcast to every arena room from the room on one node reaches the clients on all three.
    const heard = [x, x2, y, z].map((r) => next(r, Shouted));
    y.send(Shout, { text: 'to everyone' });
    for (const m of await Promise.all(heard)) expect(m).toEqual({ text: 'to everyone', from: y.processId });

    // A message into a room on another node (`cluster.sendToRoom`), handled by its `onRemoteMessage`.
    const poked = next(z, Heard);
    x.send(PokeRoom, { roomId: z.roomId, text: 'poke' });
    expect(await poked).toEqual({ text: 'poke', from: x.processId });

    await Promise.all([x, x2, y, z].map((r) => r.leave()));
  });

  it('SIGKILL of a node: its rooms leave at once, its clients rematchmake by themselves onto the others', async () => {
    const nodes = await Promise.all(['k1', 'k2', 'k3'].map((n) => startNode(redis.url, n)));
    const [n1] = nodes as [TestNode];
    const a = await clientVia(nodes, n1).joinOrCreate('arena', { mode: 'k' });
    const b = await clientVia(nodes, n1).joinOrCreate('arena', { mode: 'k' });
    const fixed = await clientVia(nodes, n1, { rematchmake: false }).joinOrCreate('arena', { mode: 'k' });
    expect(new Set([a.roomId, b.roomId, fixed.roomId]).size).toBe(1);
    const victim = nodes.find((n) => n.name === a.processId)!;
    const survivors = nodes.filter((n) => n !== victim);

    const rematched = [a, b].map(
      (r) =>
        new Promise<{ previousRoomId: string; reason: string }>((resolve, reject) => {
          r.on('rematch', resolve);
          r.on('leave', (info) => reject(new Error(`left: ${info.code} ${info.reason}`)));
        }),
    );
    const lost = new Promise<RoomError>((resolve) => fixed.on('error', resolve));
    const previous = a.roomId;
    const exited = once(victim.proc, 'exit');
    victim.proc.kill('SIGKILL');
    await exited;

    // Without rematchmaking: a typed error, and the handle leaves.
    expect(await lost).toMatchObject({ name: 'RoomError', code: 'node-lost' });
    await waitFor(async () => fixed.left, 'the handle left');
    // With it: both clients are in one room again, on a surviving node, and they talk.
    for (const info of await Promise.all(rematched)) {
      expect(info).toEqual({ previousRoomId: previous, reason: 'node-lost' });
    }
    expect(a.roomId).toBe(b.roomId);
    expect(survivors.map((n) => n.name)).toContain(a.processId);
    const said = next(b, Heard);
    a.send(Say, { text: 'back' });
    expect((await said).text).toBe('back');
    // The dead node's room is gone from every survivor's listing; only the new one is left.
    for (const n of survivors) expect((await listing(n.endpoint)).map((r) => r.id)).toEqual([a.roomId]);
    await Promise.all([a.leave(), b.leave()]);
  });

  it('a rematch is its own room check: while the room lives it reserves nothing; once its node is killed, one answer seats the client', async () => {
    const nodes = await Promise.all(['r1', 'r2', 'r3'].map((n) => startNode(redis.url, n)));
    // Every request the client makes, as `METHOD path?query`.
    const requests: string[] = [];
    const client = new RoomsClient({
      endpoint: nodes.map((n) => n.endpoint),
      connectors: { websocket: connectWebSocket },
      nodeCheckMs: 100,
      fetch: (input, init) => {
        const u = new URL(String(input));
        requests.push(`${init?.method ?? 'GET'} ${u.pathname}${u.search}`);
        return fetch(input, init);
      },
    });
    const a = await client.joinOrCreate('arena', { mode: 'r' });
    const victim = nodes.find((n) => n.name === a.processId)!;
    const registry = new RedisDriver({ redis: redis.client(), ownsClient: true });
    try {
      // The room lives: the answer says so, and nothing was reserved or created for it.
      expect(await client.rematchIfGone('joinOrCreate', 'arena', { mode: 'r' }, a.roomId)).toBe('hosted');
      expect(await registry.reservations(a.roomId)).toBe(0);
      expect((await listing(nodes[0]!.endpoint)).map((r) => r.id)).toEqual([a.roomId]);

      const rematched = new Promise<{ previousRoomId: string; reason: string }>((resolve, reject) => {
        a.on('rematch', resolve);
        a.on('leave', (info) => reject(new Error(`left: ${info.code} ${info.reason}`)));
      });
      const previous = a.roomId;
      requests.length = 0;
      const exited = once(victim.proc, 'exit');
      victim.proc.kill('SIGKILL');
      await exited;
      expect(await rematched).toEqual({ previousRoomId: previous, reason: 'node-lost' });
      expect(a.processId).not.toBe(victim.name);
      // No separate room check and no second matchmaking: every request after the kill was a conditional rematch
      // (some asked the dead node first and were refused), and the seat of the one that saw the room gone was used.
      expect(requests.length).toBeGreaterThan(0);
      for (const r of requests) {
        expect(r).toBe(`POST /quiver/matchmake/joinOrCreate/arena?replaces=${encodeURIComponent(previous)}`);
      }
      expect(await registry.reservations(a.roomId)).toBe(0);
    } finally {
      await registry.close();
    }
    await a.leave();
  });

  it('a drained node (SIGTERM) hands its clients a typed moved close; they rematchmake onto the other nodes', async () => {
    const nodes = await Promise.all(['d1', 'd2', 'd3'].map((n) => startNode(redis.url, n)));
    const [n1] = nodes as [TestNode];
    const a = await clientVia(nodes, n1).joinOrCreate('arena', { mode: 'd' });
    const b = await clientVia(nodes, n1).joinOrCreate('arena', { mode: 'd' });
    const draining = nodes.find((n) => n.name === a.processId)!;
    const moved = [a, b].map(
      (r) =>
        new Promise<{ previousRoomId: string; reason: string }>((resolve, reject) => {
          r.on('rematch', resolve);
          r.on('leave', (info) => reject(new Error(`left: ${info.code} ${info.reason}`)));
        }),
    );
    const previous = a.roomId;
    const exited = once(draining.proc, 'exit');
    draining.proc.kill('SIGTERM');
    for (const info of await Promise.all(moved))
      expect(info).toEqual({ previousRoomId: previous, reason: 'moved' });
    await exited;
    expect(a.processId).not.toBe(draining.name);
    expect(a.roomId).toBe(b.roomId);
    const said = next(a, Heard);
    b.send(Say, { text: 'moved' });
    expect((await said).text).toBe('moved');
    await Promise.all([a.leave(), b.leave()]);
  });

  it('a hung node (SIGSTOP): clients that ask it first still see their room gone and rematchmake', async () => {
    // A stopped process keeps its sockets: the kernel accepts connections to it and nobody answers, and its
    // liveness subscription stays. Its rooms leave listings when its heartbeat expires (5 s in the fixture); a
    // client whose room check asked the hung node first waited for it without end (undici's 300 s).
    const nodes = await Promise.all(['h1', 'h2', 'h3'].map((n) => startNode(redis.url, n)));
    const a = await clientVia(nodes, nodes[0]!).joinOrCreate('arena', { mode: 'h' });
    const victim = nodes.find((n) => n.name === a.processId)!;
    const survivors = nodes.filter((n) => n !== victim);
    // Its matchmaking answered by the hung node: its room checks ask that node first.
    const b = await new RoomsClient({
      endpoint: [victim.endpoint, ...survivors.map((n) => n.endpoint)],
      connectors: { websocket: connectWebSocket },
      nodeCheckMs: 100,
      nodeCheckTimeoutMs: 500,
    }).joinOrCreate('arena', { mode: 'h' });
    expect(b.roomId).toBe(a.roomId);
    const rematched = new Promise<{ previousRoomId: string; reason: string }>((resolve, reject) => {
      b.on('rematch', resolve);
      b.on('leave', (info) => reject(new Error(`left: ${info.code} ${info.reason}`)));
    });
    const previous = b.roomId;
    victim.proc.kill('SIGSTOP');
    try {
      expect(await rematched).toEqual({ previousRoomId: previous, reason: 'node-lost' });
      expect(survivors.map((n) => n.name)).toContain(b.processId);
    } finally {
      const exited = once(victim.proc, 'exit');
      victim.proc.kill('SIGKILL');
      await exited;
    }
    await Promise.all([a.leave(), b.leave()]);
  });
});
