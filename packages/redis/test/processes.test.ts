import { once } from 'node:events';
import { RoomsClient } from '@quiver/rooms/client';
import { connectWebSocket } from '@quiver/websocket';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Heard, Say } from './fixtures/messages.js';
import { type RedisServer, startRedis } from '../src/testing.js';
import { listing, startNode as startTestNode, stopNodes, waitFor } from './support.js';

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(() => redis.stop());

afterEach(stopNodes);

/** A server process (`fixtures/node.ts`) on the test's Redis. */
const startNode = (name: string, host = '127.0.0.1') => startTestNode(redis.url, name, host);

describe('two server processes on one Redis', () => {
  it('one room listing on both; matchmaking on either node sends clients to the node that owns the room', async () => {
    const [a, b] = await Promise.all([startNode('node-a'), startNode('node-b')]);
    const clientOf = (endpoint: string) =>
      new RoomsClient({ endpoint, connectors: { websocket: connectWebSocket } });

    // A room on each node.
    const onA = await clientOf(a.endpoint).joinOrCreate('arena', { mode: 'a' });
    const onB = await clientOf(b.endpoint).joinOrCreate('arena', { mode: 'b' });
    const ids = async (e: string) => (await listing(e)).map((r) => r.id).sort();
    expect(await ids(a.endpoint)).toEqual([onA.roomId, onB.roomId].sort());
    expect(await ids(b.endpoint)).toEqual([onA.roomId, onB.roomId].sort());

    // Matchmaking on B for mode 'a' answers A's room with A's endpoints.
    const res = await fetch(`${b.endpoint}/quiver/matchmake/joinOrCreate/arena`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ mode: 'a' }),
    });
    const reservation = (await res.json()) as {
      roomId: string;
      processId: string;
      session: { websocket: { url: string } | null };
    };
    expect(reservation).toMatchObject({ roomId: onA.roomId, processId: 'node-a' });
    expect(new URL(reservation.session.websocket!.url).port).toBe(String(a.port));

    // A client that matchmakes on B joins the room on A, and they talk.
    const viaB = await clientOf(b.endpoint).joinOrCreate('arena', { mode: 'a' });
    expect(viaB.roomId).toBe(onA.roomId);
    const heard = new Promise<{ text: string; from: string }>((r) => onA.on(Heard, r));
    viaB.send(Say, { text: 'hi from b' });
    expect(await heard).toEqual({ text: 'hi from b', from: 'node-a' });
    await waitFor(
      async () => (await listing(b.endpoint)).find((r) => r.id === onA.roomId)?.clients === 2,
      'two joined',
    );
    await viaB.leave();
    await onA.leave();
    await onB.leave();
  });

  it('a node killed with SIGKILL: its rooms leave the registry on the surviving node', async () => {
    const [a, b] = await Promise.all([startNode('doomed'), startNode('survivor')]);
    const clientOf = (endpoint: string) =>
      new RoomsClient({ endpoint, connectors: { websocket: connectWebSocket } });
    const onA = await clientOf(a.endpoint).joinOrCreate('arena', { mode: 'x' });
    const onB = await clientOf(b.endpoint).joinOrCreate('arena', { mode: 'y' });
    expect((await listing(b.endpoint)).length).toBe(2);
    const exited = once(a.proc, 'exit');
    a.proc.kill('SIGKILL');
    await exited;
    await waitFor(async () => (await ids(b.endpoint)) === onB.roomId, 'the dead node unlisted');
    // The dead node's clients cannot take their seats back: a typed error at once, not a timeout.
    await expect(clientOf(b.endpoint).reconnect(onA.reconnectToken)).rejects.toMatchObject({
      code: 'reconnect-expired',
    });
    // Matchmaking for the dead node's mode now creates a room on the survivor.
    const again = await clientOf(b.endpoint).joinOrCreate('arena', { mode: 'x' });
    expect(again.roomId).not.toBe(onA.roomId);
    await again.leave();
    await onB.leave();
    async function ids(e: string) {
      return (await listing(e)).map((r) => r.id).join();
    }
  });

  it('Redis restarted: rooms keep playing, matchmaking fails while it is down, the listing comes back on both nodes', async () => {
    const [a, b] = await Promise.all([startNode('r-a'), startNode('r-b')]);
    const clientOf = (endpoint: string) =>
      new RoomsClient({ endpoint, connectors: { websocket: connectWebSocket } });
    const first = await clientOf(a.endpoint).joinOrCreate('arena', { mode: 'r' });
    const second = await clientOf(b.endpoint).joinOrCreate('arena', { mode: 'r' });
    expect(second.roomId).toBe(first.roomId);
    await redis.kill();
    // The room lives in node A's process: its clients still talk.
    const heard = new Promise<{ text: string }>((r) => first.on(Heard, r));
    second.send(Say, { text: 'redis is down' });
    expect((await heard).text).toBe('redis is down');
    const down = await fetch(`${b.endpoint}/quiver/matchmake/joinOrCreate/arena`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"mode":"r"}',
    });
    expect(((await down.json()) as { error: { code: string } }).error.code).toBe('matchmake-failed');
    // A rematch's room check cannot tell whether the room lives: it rejects (the SDK keeps the room), rather than
    // answering "gone" and moving the handle out of a room that plays on.
    await expect(
      clientOf(b.endpoint).rematchIfGone('joinOrCreate', 'arena', { mode: 'r' }, first.roomId),
    ).rejects.toMatchObject({ name: 'RoomError', code: 'matchmake-failed' });
    await redis.start();
    // Node A relists its room with both clients; node B sees it; matchmaking joins it again.
    await waitFor(async () => {
      try {
        const l = await listing(b.endpoint);
        return l.length === 1 && l[0]?.id === first.roomId && l[0].clients === 2;
      } catch {
        return false;
      }
    }, 'the room relisted');
    const third = await clientOf(b.endpoint).joinOrCreate('arena', { mode: 'r' });
    expect(third.roomId).toBe(first.roomId);
    await Promise.all([first.leave(), second.leave(), third.leave()]);
  });

  it('a node bound to every interface advertises the host clients matchmade through, not 0.0.0.0', async () => {
    const nodes = await Promise.all([startNode('any-a', '0.0.0.0'), startNode('any-b', '0.0.0.0')]);
    const onA = await new RoomsClient({
      endpoint: nodes[0].endpoint,
      connectors: { websocket: connectWebSocket },
    }).create('arena', { mode: 'h' });
    // Asked through either node (placement may have put the room on either): the hosting node's port, under the
    // host the request reached.
    for (const via of nodes) {
      const res = await fetch(`${via.endpoint}/quiver/matchmake/joinById/${onA.roomId}`, { method: 'POST' });
      const r = (await res.json()) as { processId: string; session: { websocket: { url: string } } };
      const host = nodes.find((n) => n.name === r.processId)!;
      expect(r.session.websocket.url).toBe(`ws://127.0.0.1:${host.port}/quiver`);
    }
    await onA.leave();
  });
});
