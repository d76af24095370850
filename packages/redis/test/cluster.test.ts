import { MemoryPresence, Room, type RoomListing } from '@quiver/rooms';
import { joinWithSeat } from '@quiver/rooms/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memoryRooms, until, useCleanup, cleanups } from '../../rooms/test/support.js';
import { RedisDriver, RedisPresence } from '../src/index.js';
import { type RedisServer, startRedis } from '../src/testing.js';
import { waitFor } from './support.js';

useCleanup();

class Arena extends Room<{ mode?: string }> {
  override maxClients = 8;
}

let server: RedisServer;
beforeAll(async () => {
  server = await startRedis();
});
afterAll(() => server.stop());

let prefixes = 0;

/** A room server on the memory transport whose registry and presence are the shared Redis (its own connections). */
function node(
  prefix: string,
  processId: string,
  driverOptions: { heartbeatMs?: number; nodeTtlMs?: number } = {},
) {
  const redis = server.client();
  const driver = new RedisDriver({ redis, prefix, ...driverOptions });
  const presence = new RedisPresence({ redis });
  const n = memoryRooms({ driver, presence, processId }, { preAuth: { maxPendingPerIp: 256 } });
  n.rooms.define('arena', Arena, { filterBy: ['mode'] });
  // Runs after the room server's own cleanup (cleanups run last first): rooms are disposed, then Redis closes.
  cleanups.unshift(async () => {
    await driver.close();
    await presence.close();
    redis.disconnect();
  });
  return { ...n, driver, presence, redis };
}

describe('RedisDriver across nodes', () => {
  it('a join storm spread over 4 nodes: 200 joinOrCreate into rooms of 8, none over capacity, no seat leaked', async () => {
    const prefix = `storm${++prefixes}:`;
    const nodes = ['n1', 'n2', 'n3', 'n4'].map((id) => node(prefix, id));
    const byProcess = new Map(nodes.map((n) => [n.rooms.processId, n]));
    const reservations = await Promise.all(
      Array.from({ length: 200 }, (_, i) => nodes[i % 4]!.rooms.joinOrCreate('arena', { mode: 'ffa' })),
    );
    // Reserved, nobody joined yet: every room holds at most 8 reservations.
    const listed = await nodes[0]!.driver.query({ name: 'arena', includeUnavailable: true });
    let reserved = 0;
    for (const l of listed) {
      const r = await nodes[1]!.driver.reservations(l.roomId);
      expect(l.clients + r).toBeLessThanOrEqual(8);
      reserved += r;
    }
    expect(reserved).toBe(200);
    expect(listed.length).toBe(25); // rooms fill before new ones open, whichever node matchmade
    // Each client joins on the node that hosts its room.
    const joined = await Promise.all(
      reservations.map(async (r) => {
        const host = byProcess.get(r.processId)!;
        return joinWithSeat(await host.clientSession(), r.seat);
      }),
    );
    const clientIds = new Set(joined.map((c) => c.clientId));
    expect(clientIds.size).toBe(200);
    let hosted = 0;
    for (const n of nodes) {
      for (const room of n.rooms.localRooms) {
        expect(room.clients.length).toBeLessThanOrEqual(8);
        hosted += room.clients.length;
      }
    }
    expect(hosted).toBe(200);
    for (const l of await nodes[2]!.driver.query({ includeUnavailable: true })) {
      expect(l.clients).toBe(8);
      expect(await nodes[3]!.driver.reservations(l.roomId)).toBe(0);
    }
    await Promise.all(joined.map((c) => c.leave()));
    await until(() => nodes.every((n) => n.rooms.localRooms.length === 0), 'every room disposed');
    expect(await nodes[0]!.driver.query({ includeUnavailable: true, includePrivate: true })).toEqual([]);
  });

  it('GET-style listing on any node shows the rooms of every node; a seat reserved on one node is joined on another', async () => {
    const prefix = `list${++prefixes}:`;
    const a = node(prefix, 'a');
    const b = node(prefix, 'b');
    const ra = await a.rooms.create('arena', { mode: 'x' });
    const rb = await b.rooms.create('arena', { mode: 'y' });
    const ids = (ls: RoomListing[]) => ls.map((l) => l.roomId).sort();
    expect(ids(await a.rooms.query({}))).toEqual([ra.roomId, rb.roomId].sort());
    expect(ids(await b.rooms.query({}))).toEqual([ra.roomId, rb.roomId].sort());
    // Matchmaking on b for mode x finds a's room, and the seat is taken on a.
    const r = await b.rooms.joinOrCreate('arena', { mode: 'x' });
    expect(r).toMatchObject({ roomId: ra.roomId, processId: 'a' });
    const c = await joinWithSeat(await a.clientSession(), r.seat);
    expect(c.roomId).toBe(ra.roomId);
  });

  it('a node that stops heartbeating has its rooms removed from the registry', async () => {
    const prefix = `crash${++prefixes}:`;
    const fast = { heartbeatMs: 50, nodeTtlMs: 200 };
    const doomed = node(prefix, 'doomed', fast);
    const survivor = node(prefix, 'survivor', fast);
    await doomed.rooms.create('arena', { mode: 'a' });
    await doomed.rooms.create('arena', { mode: 'b' });
    await survivor.rooms.create('arena', { mode: 'c' });
    expect((await survivor.rooms.query({})).length).toBe(3);
    // The doomed node loses Redis as a crash would: no more heartbeats, no clean removal.
    doomed.redis.disconnect();
    await waitFor(async () => (await survivor.rooms.query({})).length === 1, 'the dead node unlisted');
    await waitFor(
      async () => (await survivor.redis.smembers(`${prefix}nodes`)).join() === 'survivor',
      'the dead node swept',
    );
    expect((await survivor.rooms.query({}))[0]?.processId).toBe('survivor');
    // The survivor's sweep also cleared the indexes: nothing of the dead node is left behind.
    const keys = await survivor.redis.keys(`${prefix}*doomed*`);
    expect(keys).toEqual([]);
    // Back on Redis for the cleanup (its rooms then remove nothing: they are gone).
    await doomed.redis.connect();
  });

  it('a started node leaves listings and placement the moment its connection closes; the sweep waits for its heartbeat', async () => {
    const prefix = `alive${++prefixes}:`;
    // A heartbeat TTL far beyond the test: only the liveness subscription can tell the node is gone.
    const slow = { heartbeatMs: 50, nodeTtlMs: 60_000 };
    const doomed = node(prefix, 'doomed', slow);
    const survivor = node(prefix, 'survivor', slow);
    await doomed.rooms.start();
    await survivor.rooms.start();
    await doomed.rooms.createRoom('arena', { mode: 'a' });
    expect((await survivor.driver.nodes()).map((n) => n.processId).sort()).toEqual(['doomed', 'survivor']);
    expect((await survivor.rooms.query({})).length).toBe(1);
    // What the kernel does to a killed process's sockets: the liveness connection closes.
    (doomed.driver as unknown as { aliveSub: { disconnect(): void } }).aliveSub.disconnect();
    await waitFor(async () => (await survivor.rooms.query({})).length === 0, 'the node unlisted');
    expect((await survivor.driver.nodes()).map((n) => n.processId)).toEqual(['survivor']);
    // New rooms go to the survivor, whichever node matchmakes.
    expect((await survivor.rooms.joinOrCreate('arena', { mode: 'b' })).processId).toBe('survivor');
    // The registry keeps the room while the heartbeat lives (a reconnecting connection must not lose its rooms).
    expect(await survivor.driver.sweep()).toBe(0);
    expect(await survivor.redis.exists(`${prefix}room:${doomed.rooms.localRooms[0]!.roomId}`)).toBe(1);
  });

  it('a Redis restart (no persistence) empties the registry; each node lists its live rooms again on its next heartbeat', async () => {
    const prefix = `restart${++prefixes}:`;
    const n = node(prefix, 'r1', { heartbeatMs: 50, nodeTtlMs: 500 });
    const res = await n.rooms.joinOrCreate('arena', { mode: 'z' });
    await joinWithSeat(await n.clientSession(), res.seat);
    await server.kill();
    await server.start();
    await waitFor(async () => {
      try {
        const [l] = await n.rooms.query({});
        return l?.roomId === res.roomId && l.clients === 1;
      } catch {
        return false; // still reconnecting
      }
    }, 'the room relisted with its client');
  });
});

describe('RedisDriver: a stalled node swept and relisted', () => {
  it('seats reserved before the sweep are refused, so the relisted room never goes over capacity', async () => {
    const prefix = `stall${++prefixes}:`;
    const clock = { now: () => Date.now(), setTimeout, clearTimeout } as never;
    const a = new RedisDriver({ redis: server.client(), prefix, heartbeatMs: 50, nodeTtlMs: 200, clock });
    const b = new RedisDriver({
      redis: server.client(),
      prefix,
      heartbeatMs: 10_000,
      nodeTtlMs: 20_000,
      clock,
    });
    cleanups.push(
      () => a.close(),
      () => b.close(),
    );
    const listing = {
      roomId: 'stalled',
      name: 'arena',
      processId: 'slow',
      clients: 0,
      maxClients: 2,
      locked: false,
      private: false,
      metadata: {},
      createdAt: 1,
    };
    await a.create(listing);
    const seat = (token: string) => ({
      token,
      roomId: 'stalled',
      expiresAt: Date.now() + 60_000,
      options: {},
    });
    expect(await a.reserveSeat(seat('t1'))).toBe('ok');
    expect(await a.reserveSeat(seat('t2'))).toBe('ok');
    // The node's heartbeat lapses (a long stall): another node sweeps its room with the reservations.
    await server.client().del(`${prefix}node:slow`);
    expect(await b.sweep()).toBe(1);
    // The stalled node's next beat lists the room again, without the reservations it cannot know of.
    await waitFor(async () => (await b.get('stalled')) !== undefined, 'relisted');
    expect(await b.reserveSeat(seat('t3'))).toBe('ok');
    expect(await b.reserveSeat(seat('t4'))).toBe('ok');
    expect(await a.consumeSeat('stalled', 't1')).toBe('invalid');
    expect(await a.consumeSeat('stalled', 't3')).toMatchObject({ token: 't3' });
    expect(await a.consumeSeat('stalled', 't4')).toMatchObject({ token: 't4' });
    expect((await b.get('stalled'))?.clients).toBe(2);
  });
});

describe('RedisPresence', () => {
  it('pub/sub across two connections; unsubscribing stops delivery', async () => {
    const a = new RedisPresence({ redis: server.client() });
    const b = new RedisPresence({ redis: server.client() });
    cleanups.push(
      () => a.close(),
      () => b.close(),
    );
    const got: string[] = [];
    const off = await a.subscribe('quiver:test', (m) => got.push(m));
    expect(await b.publish('quiver:test', 'hello')).toBe(1);
    await until(() => got.length === 1, 'delivery');
    expect(got).toEqual(['hello']);
    await off();
    expect(await b.publish('quiver:test', 'again')).toBe(0);
  });

  for (const [name, make] of [
    ['MemoryPresence', () => new MemoryPresence()],
    ['RedisPresence', () => new RedisPresence({ redis: server.client() })],
  ] as const) {
    it(`${name}: keys, locks, sets and hashes`, async () => {
      const p = make();
      const k = `quiver:t:${name}:${Math.random()}`;
      expect(await p.get(k)).toBeUndefined();
      expect(await p.set(k, 'a', { onlyIfAbsent: true, ttlMs: 60_000 })).toBe(true);
      expect(await p.set(k, 'b', { onlyIfAbsent: true })).toBe(false);
      expect(await p.get(k)).toBe('a');
      expect(await p.del(k, 'b')).toBe(false);
      expect(await p.del(k, 'a')).toBe(true);
      expect(await p.del(k)).toBe(false);
      expect(await p.expire(k, 1000)).toBe(false);
      expect(await p.sadd(`${k}:s`, 'x')).toBe(true);
      expect(await p.sadd(`${k}:s`, 'x')).toBe(false);
      await p.sadd(`${k}:s`, 'y');
      expect((await p.smembers(`${k}:s`)).sort()).toEqual(['x', 'y']);
      expect(await p.srem(`${k}:s`, 'x')).toBe(true);
      expect(await p.srem(`${k}:s`, 'x')).toBe(false);
      await p.hset(`${k}:h`, 'f', '1');
      await p.hset(`${k}:h`, 'g', '2');
      expect(await p.hget(`${k}:h`, 'f')).toBe('1');
      expect(await p.hgetall(`${k}:h`)).toEqual({ f: '1', g: '2' });
      expect(await p.hdel(`${k}:h`, 'f')).toBe(true);
      expect(await p.hdel(`${k}:h`, 'f')).toBe(false);
      expect(await p.del(`${k}:h`, 'x')).toBe(false); // a hash is not a lock holding 'x'
      expect(await p.expire(`${k}:h`, 20)).toBe(true);
      await waitFor(async () => (await p.hget(`${k}:h`, 'g')) === undefined, 'hash expired');
      if (p instanceof RedisPresence) await p.close();
    });
  }
});
