/**
 * Several nodes in one process, sharing one registry and presence (the in-memory ones): placement of new rooms,
 * cross-node broadcast and messages into a room, drain with `moved`. The same code runs on Redis across processes
 * (`@quiver/redis` tests); here every step is deterministic.
 */
import { describe, expect, it } from 'vitest';
import { joinWithSeat } from '../src/client/index.js';
import { MemoryDriver, MemoryPresence, message, Room, RoomCloseCode } from '../src/index.js';
import { memoryRooms, until, useCleanup } from './support.js';

useCleanup();

const Note = message<{ text: string }>('note');
const Poke = message<{ text: string }>('poke');

class Arena extends Room<{ mode?: string }> {
  override maxClients = 4;
  pokes: { text: string; from: string }[] = [];
  override onCreate() {
    this.onRemoteMessage(Poke, (m, from) => this.pokes.push({ text: m.text, from: from.processId }));
  }
}

/** Nodes `n1`, `n2`, ... on one shared driver and presence, started (they take placed rooms). */
async function cluster(n: number) {
  const driver = new MemoryDriver();
  const presence = new MemoryPresence();
  const nodes = Array.from({ length: n }, (_, i) =>
    memoryRooms({ driver, presence, processId: `n${i + 1}` }),
  );
  for (const node of nodes) {
    node.rooms.define('arena', Arena, { filterBy: ['mode'] });
    await node.rooms.start();
  }
  /** Reserves through `via`, then joins on whichever node hosts the room. */
  const join = async (via: (typeof nodes)[number], mode: string) => {
    const r = await via.rooms.joinOrCreate('arena', { mode });
    const host = nodes.find((x) => x.rooms.processId === r.processId)!;
    const room = await joinWithSeat(await host.clientSession(), r.seat);
    return { room, processId: r.processId };
  };
  return { driver, presence, nodes, join };
}

describe('nodes sharing a registry', () => {
  it('places new rooms on the least-loaded node that defines the type, skipping draining and silent nodes', async () => {
    const { driver, nodes } = await cluster(3);
    const [n1, n2] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    // Three rooms matchmade through n1: one per node (fewest rooms, then lowest processId).
    const placed = [];
    for (const mode of ['a', 'b', 'c'])
      placed.push((await n1.rooms.joinOrCreate('arena', { mode })).processId);
    expect(placed).toEqual(['n1', 'n2', 'n3']);
    // A node that is listed but does not listen for other nodes (it never started its bus): the room is made
    // on the asking node at once (nobody subscribed), and that is counted.
    await driver.registerNode('m0', () => ({ clients: 0, types: ['arena'], draining: false }));
    expect((await n2.rooms.joinOrCreate('arena', { mode: 'd' })).processId).toBe('n2');
    expect(n2.rooms.metrics.errors['node-unreachable']).toBe(1);
    // A node that does not define the type is never picked.
    await driver.registerNode('a0', () => ({ clients: 0, types: ['lobby'], draining: false }));
    const next = await n1.rooms.joinOrCreate('arena', { mode: 'e' });
    expect(next.processId).not.toBe('a0');
  });

  it('a join storm through one node: rooms are created in batches for the waiting requests, spread over every node', async () => {
    const { nodes, presence } = await cluster(3);
    const n1 = nodes[0]!;
    let locks = 0;
    const set = presence.set.bind(presence);
    presence.set = (key, value, options) => {
      if (key.startsWith('quiver:mm:create:') && options?.onlyIfAbsent) locks++;
      return set(key, value, options);
    };
    const seats = await Promise.all(
      Array.from({ length: 48 }, () => n1.rooms.joinOrCreate('arena', { mode: 'storm' })),
    );
    // One room while the capacity (4) is unknown, then one batch of 11 for the 44 requests waiting: placed on one
    // view of the nodes, each counted where it goes, so they do not all land on the node that was least loaded.
    expect(locks).toBe(2);
    const perRoom = new Map<string, number>();
    for (const s of seats) perRoom.set(s.roomId, (perRoom.get(s.roomId) ?? 0) + 1);
    expect(perRoom.size).toBe(12);
    expect([...perRoom.values()].every((n) => n === 4)).toBe(true);
    const perNode = new Map<string, number>();
    for (const n of nodes) perNode.set(n.rooms.processId, n.rooms.localRooms.length);
    expect(Object.fromEntries(perNode)).toEqual({ n1: 4, n2: 4, n3: 4 });
  });

  it('broadcasts to rooms of a type on every node, and delivers a message into a room on another node', async () => {
    const { nodes, join } = await cluster(2);
    const [n1, n2] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    const a = await join(n1, 'a');
    const b = await join(n1, 'b');
    expect([a.processId, b.processId]).toEqual(['n1', 'n2']);
    const got: string[] = [];
    a.room.on(Note, (m) => got.push(`a:${m.text}`));
    b.room.on(Note, (m) => got.push(`b:${m.text}`));
    expect(await n1.rooms.broadcast(Note, { text: 'all arenas' }, { roomName: 'arena' })).toBe(1);
    await until(() => got.length === 2, 'both rooms got the broadcast');
    expect(got.sort()).toEqual(['a:all arenas', 'b:all arenas']);
    // Of another type: nobody.
    await n2.rooms.broadcast(Note, { text: 'lobbies only' }, { roomName: 'lobby' });
    // Into the room on n2, from n1.
    expect(await n1.rooms.cluster.sendToRoom(b.room.roomId, Poke, { text: 'hi' })).toBe(true);
    const arena = n2.rooms.getRoom(b.room.roomId) as Arena;
    await until(() => arena.pokes.length === 1, 'the poke');
    expect(arena.pokes).toEqual([{ text: 'hi', from: 'n1' }]);
    expect(await n1.rooms.cluster.sendToRoom('no-such-room', Poke, { text: 'x' })).toBe(false);
    // A global broadcast (no room type) after the typed one: the typed one to lobbies reached nobody.
    await n2.rooms.broadcast(Note, { text: 'everyone' });
    await until(() => got.length === 4, 'the global broadcast');
    expect(got.filter((g) => g.includes('lobbies'))).toEqual([]);
  });

  it('a broadcast is published to the other nodes before this node fans it out to its own clients', async () => {
    const { nodes, presence, join } = await cluster(2);
    const n1 = nodes[0]!;
    const a = await join(n1, 'a');
    expect(a.processId).toBe('n1');
    // The local fan-out costs time in proportion to this node's clients; publishing after it made every other
    // node's clients wait for it too.
    const order: string[] = [];
    const local = n1.rooms.getRoom(a.room.roomId) as Arena;
    const fanOut = local.broadcast.bind(local);
    local.broadcast = ((...args: Parameters<typeof fanOut>) => {
      order.push('local fan-out');
      return fanOut(...args);
    }) as typeof local.broadcast;
    const publish = presence.publish.bind(presence);
    presence.publish = (channel, m) => {
      if (channel === 'quiver:broadcast') order.push('publish');
      return publish(channel, m);
    };
    expect(await n1.rooms.broadcast(Note, { text: 'x' }, { roomName: 'arena' })).toBe(1);
    expect(order).toEqual(['publish', 'local fan-out']);
  });

  it('drain: no new rooms on the node, its clients get a typed moved close', async () => {
    const { nodes, join } = await cluster(2);
    const [n1, n2] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    await join(n1, 'a'); // on n1
    const b = await join(n1, 'b'); // on n2
    expect(b.processId).toBe('n2');
    const left = new Promise<{ code: number; reason: string }>((r) => b.room.on('leave', r));
    await n2.rooms.drain();
    expect(await left).toMatchObject({ code: RoomCloseCode.MOVED });
    expect(n2.rooms.localRooms).toEqual([]);
    // n2 has fewer rooms but drains: new rooms go to n1, also when asked through n2.
    expect((await n1.rooms.joinOrCreate('arena', { mode: 'c' })).processId).toBe('n1');
    expect((await n2.rooms.joinOrCreate('arena', { mode: 'd' })).processId).toBe('n1');
  });
});
