/**
 * A node too busy to finish a handshake (its pre-authentication slots for the address are taken, so the oldest
 * pending handshake is evicted) must not lose the join: the seat stays reserved and `RoomsClient` connects again.
 */
import quiver from '@quiver/fastify';
import { connectWebSocket } from '@quiver/websocket';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { RoomsClient } from '../src/client/index.js';
import quiverRooms from '../src/fastify.js';
import { Room } from '../src/index.js';

class Duo extends Room {
  override maxClients = 2;
}

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

describe('RoomsClient on a busy node', () => {
  it('an evicted handshake is retried while the seat holds; with no retry budget the join fails', async () => {
    // The first handshake stays in authentication until a second one arrives, which (one pending handshake per
    // address) evicts it.
    let calls = 0;
    let firstStarted!: () => void;
    const started = new Promise<void>((r) => {
      firstStarted = r;
    });
    let release!: () => void;
    let gate = new Promise<void>((r) => {
      release = r;
    });
    const app = Fastify();
    await app.register(quiver, {
      path: '/quiver',
      webtransport: false,
      session: {
        preAuth: { maxPendingPerIp: 1 },
        authenticate: async () => {
          if (++calls === 1) {
            firstStarted();
            await gate;
          } else release();
          return { userId: `u${calls}` };
        },
      },
    });
    await app.register(quiverRooms, { setup: (rooms) => rooms.define('duo', Duo) });
    await app.listen({ host: '127.0.0.1', port: 0 });
    cleanups.push(() => app.close());
    const endpoint = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    const client = (connectRetryMs?: number) =>
      new RoomsClient({ endpoint, connectors: { websocket: connectWebSocket }, connectRetryMs });

    const first = client().joinOrCreate('duo');
    await started;
    const second = await client().joinOrCreate('duo');
    const retried = await first;
    expect(retried.roomId).toBe(second.roomId);
    expect(app.quiver.metrics.rejections['handshake-evicted']).toBe(1);
    await Promise.all([retried.leave(), second.leave()]);

    // The same eviction without a retry budget: the join is lost, with the reason in the error.
    calls = 0;
    const again = new Promise<void>((r) => {
      firstStarted = r;
    });
    gate = new Promise<void>((r) => {
      release = r;
    });
    const lost = client(0)
      .joinOrCreate('duo')
      .then(
        () => 'joined',
        (err: unknown) => err,
      );
    await again;
    const other = await client().joinOrCreate('duo');
    expect(await lost).toMatchObject({ name: 'RoomError', code: 'matchmake-failed' });
    expect(app.quiver.metrics.rejections['handshake-evicted']).toBe(2);
    await other.leave();
  });
});
