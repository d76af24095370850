import quiver from '@quiver/fastify';
import { message, Room, type RoomClient, request } from '@quiver/rooms';
import { RoomsClient } from '@quiver/rooms/client';
import quiverRooms from '@quiver/rooms/fastify';
import { connectWebTransport } from '@quiver/webtransport';
import { connectWebSocket } from '@quiver/websocket';
import Fastify from 'fastify';
import { z } from 'zod';

// Shared by server and client: typed messages, checked on arrival by their schema (any Standard Schema).
const Move = message('move', z.object({ dx: z.number().min(-1).max(1), dy: z.number().min(-1).max(1) }));
const Moved = message<{ name: string; x: number; y: number }>('moved');
const Where = request('where', z.object({})).returns<{ x: number; y: number }>();

type Player = { name: string; x: number; y: number };
class Arena extends Room<{ name: string }, Player> {
  override maxClients = 4;
  override onCreate() {
    this.onMessage(Move, (client, { dx, dy }) => {
      const p = client.data;
      p.x += dx;
      p.y += dy;
      this.broadcast(Moved, p, { except: client });
    });
    this.onRequest(Where, (client) => ({ x: client.data.x, y: client.data.y }));
  }
  override onJoin(client: RoomClient<Player>, options: { name: string }) {
    client.data = { name: options.name, x: 0, y: 0 };
  }
}

const app = Fastify();
await app.register(quiver); // WebTransport and WebSocket endpoints
await app.register(quiverRooms, { setup: (rooms) => rooms.define('arena', Arena) }); // matchmaking routes
const endpoint = await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 4433) });

// Clients: matchmaking plus connection in one call, WebTransport first, WebSocket as the fallback.
const client = new RoomsClient({
  endpoint,
  connectors: { webtransport: connectWebTransport, websocket: connectWebSocket },
});
const alice = await client.joinOrCreate('arena', { name: 'alice' });
const bob = await client.joinOrCreate('arena', { name: 'bob' });
const seen = new Promise((resolve) => bob.on(Moved, resolve));
alice.send(Move, { dx: 1, dy: 0 });
console.log(`alice asks where she is: ${JSON.stringify(await alice.request(Where, {}))}`);
console.log(
  `bob sees ${JSON.stringify(await seen)} in room ${bob.roomId} (same: ${alice.roomId === bob.roomId})`,
);
console.log(`over ${alice.session.transport}`);
await Promise.all([alice.leave(), bob.leave()]);
await app.close();
