/**
 * A turn-based game on rooms: tic-tac-toe for two in a private room. Moves are requests validated by a schema; the
 * room answers with the board or a typed error (`not-your-turn`, `cell-taken`); a private room is joined by id only.
 * `npm run tictactoe -w examples` plays a scripted game, illegal moves included.
 */
import quiver, { startTracingFromEnv } from '@quiver/fastify';
import { fail, message, Room, type RoomClient, request } from '@quiver/rooms';
import { type ClientRoom, RoomError, RoomsClient } from '@quiver/rooms/client';
import quiverRooms from '@quiver/rooms/fastify';
import { connectWebTransport } from '@quiver/webtransport';
import { connectWebSocket } from '@quiver/websocket';
import Fastify from 'fastify';
import { z } from 'zod';

type Mark = 'X' | 'O';
type Board = (Mark | null)[];
const Play = request('play', z.object({ cell: z.number().int().min(0).max(8) })).returns<Board>();
const Update = message<{ board: Board; next: Mark | null; winner: Mark | 'draw' | null }>('update');

const LINES = [
  [0, 1, 2],
  [3, 4, 5],
  [6, 7, 8],
  [0, 3, 6],
  [1, 4, 7],
  [2, 5, 8],
  [0, 4, 8],
  [2, 4, 6],
];
const winnerOf = (b: Board): Mark | 'draw' | null =>
  LINES.map(([x, y, z]) => (b[x] && b[x] === b[y] && b[x] === b[z] ? b[x] : null)).find((m) => m) ??
  (b.every((c) => c) ? 'draw' : null);

class TicTacToe extends Room<{ private?: boolean }, { mark: Mark }> {
  override maxClients = 2;
  board: Board = Array(9).fill(null);
  next: Mark = 'X';
  winner: Mark | 'draw' | null = null;

  override async onCreate(options: { private?: boolean }) {
    if (options.private) await this.setPrivate(true);
    this.onRequest(Play, (client, { cell }) => {
      if (this.clients.length < 2) fail('waiting', 'wait for an opponent');
      if (this.winner) fail('game-over', `the game is over: ${this.winner}`);
      if (client.data.mark !== this.next) fail('not-your-turn', `it is ${this.next}'s turn`);
      if (this.board[cell]) fail('cell-taken', `cell ${cell} is taken`);
      this.board[cell] = this.next;
      this.winner = winnerOf(this.board);
      this.next = this.next === 'X' ? 'O' : 'X';
      this.broadcast(Update, {
        board: this.board,
        next: this.winner ? null : this.next,
        winner: this.winner,
      });
      if (this.winner) void this.lock();
      return this.board;
    });
  }
  override onJoin(client: RoomClient<{ mark: Mark }>) {
    client.data.mark = this.clients.some((c) => c !== client && c.data.mark === 'X') ? 'O' : 'X';
  }
}

// OpenTelemetry from the standard environment (OTEL_TRACES_EXPORTER=console|otlp, ...); nothing is loaded without it.
const tracing = await startTracingFromEnv({ OTEL_SERVICE_NAME: 'quiver-tictactoe', ...process.env });
const app = Fastify();
await app.register(quiver);
await app.register(quiverRooms, { setup: (rooms) => rooms.define('tictactoe', TicTacToe) });
const endpoint = await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 0) });
const client = new RoomsClient({
  endpoint,
  connectors: { webtransport: connectWebTransport, websocket: connectWebSocket },
});

// Alice opens a private room and passes its id to Bob; the public listing does not show it.
const alice = await client.create('tictactoe', { private: true });
console.log(`rooms listed: ${(await client.getAvailableRooms('tictactoe')).length}`);
const bob = await client.joinById(alice.roomId);
const stranger = await client.joinOrCreate('tictactoe').catch((e: RoomError) => e);
console.log(
  `a stranger's joinOrCreate went to ${stranger instanceof RoomError ? stranger.code : stranger.roomId === alice.roomId ? 'the private room' : 'a new room'}`,
);

const done = new Promise<string>((resolve) =>
  bob.on(Update, (u) => u.winner && resolve(u.winner === 'draw' ? 'draw' : `${u.winner} wins`)),
);
const play = async (who: string, room: ClientRoom, cell: unknown) => {
  try {
    // biome-ignore lint/suspicious/noExplicitAny: the script also sends what the schema refuses
    await room.request(Play, { cell } as any);
    console.log(`${who} plays ${cell}`);
  } catch (e) {
    console.log(`${who} plays ${cell}: refused, ${(e as RoomError).code}`);
  }
};
await play('alice', alice, 4);
await play('alice', alice, 0); // not her turn
await play('bob', bob, 4); // taken
await play('bob', bob, 9); // out of the board: the schema refuses it
await play('bob', bob, 0);
await play('alice', alice, 2);
await play('bob', bob, 6);
await play('alice', alice, 3);
await play('bob', bob, 5);
await play('alice', alice, 1);
await play('bob', bob, 8);
await play('alice', alice, 7);
await play('bob', bob, 7); // too late
console.log(`result: ${await done}`);
if (!(stranger instanceof RoomError)) await stranger.leave();
await Promise.all([alice.leave(), bob.leave()]);
await app.close();
await tracing?.shutdown();
