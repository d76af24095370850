/**
 * The demo server: fastify serving the page, Quiver's WebTransport (UDP) and WebSocket endpoints on `/quiver`,
 * `/metrics`, and the authoritative world at a fixed tick, replicated to every player with `@quiver/sync` deltas
 * on the unreliable channel (datagrams on WebTransport).
 */
import fastifyStatic from '@fastify/static';
import quiver from '@quiver/fastify';
import {
  FixedTicker,
  InputReceiver,
  PredictError,
  type SequencedInput,
  decodeInputPacket,
} from '@quiver/predict';
import { reject } from '@quiver/session';
import { Room, type RoomClient } from '@quiver/rooms';
import quiverRoomsRedis from '@quiver/redis/fastify';
import { SyncError, SyncServer } from '@quiver/sync';
import Fastify, { type FastifyInstance } from 'fastify';
import {
  ARENA,
  type ArenaOptions,
  BotCount,
  type ClientFrame,
  decodePose,
  Frame,
  Hello,
  inputCodec,
  MAX_BOTS,
  messages,
  NEUTRAL_INPUT,
  type PlayerInput,
  RoomInfo,
  SetBots,
  Snapshot,
  schema,
  TICK_RATE,
  yawQuat,
} from '../shared/protocol.js';
import { buildClient, PUBLIC_DIR } from './build.js';
import { type AvatarState, World, worldOf } from './world.js';

export interface DemoServerOptions {
  /** Default `localhost` (a secure context for the page without a certificate). */
  host?: string;
  /** HTTP port; 0 lets the OS choose. Default 8080. */
  port?: number;
  /** UDP port of WebTransport. Default: the HTTP port number. */
  webtransportPort?: number;
  /** Bots at start (default 8, at most {@link MAX_BOTS}). */
  bots?: number;
  /** Seed of the world (layout and bot decisions). Default 8. */
  seed?: number;
  /** Build the browser bundle before listening (default true). */
  build?: boolean;
  /** fastify logger (default false). */
  logger?: boolean | { level: string };
  /** Inputs a player may have queued before the oldest is dropped (default 64, about 2 s). */
  maxQueuedInputs?: number;
  /**
   * Most inputs of one player applied in a burst (default 30, one second's worth). A player earns one input per
   * tick up to this credit, so a page that stalled and then sends a burst catches up at once, while no client
   * can walk faster on average than one input per tick.
   */
  maxInputBurst?: number;
  /** Sessions at once from one remote address (default 8); more get 429. */
  maxSessionsPerIp?: number;
  /** New sessions per minute from one remote address (default 60); more get 429. */
  sessionsPerMinutePerIp?: number;
  /**
   * `redis://host:port`: rooms, matchmaking and presence on Redis (`@quiver/redis`), shared by every demo process
   * on it. Default: none (in-memory, this process only).
   */
  redisUrl?: string;
  /** The base URL clients reach this process at (`https://game1.example`), advertised in reservations. */
  publicUrl?: string;
}

export interface DemoStats {
  players: number;
  bots: number;
  tick: number;
  /** Ticks skipped because the process stalled for longer than 8 ticks. */
  droppedTickMs: number;
  inputsApplied: number;
  /** Inputs dropped because a player's queue was full. */
  inputsDropped: number;
  /** Malformed input packets (counted by the receivers, summed over players ever seen). */
  inputsRejected: number;
  /** Inputs that never arrived (every redundant copy lost) and were filled in with the previous one. */
  inputsFilled: number;
  /** Input streams restarted because a packet jumped too far ahead (a long outage). */
  inputResets: number;
  /** Sync acks refused by the sync layer. */
  acksRejected: number;
  /** The same, by `SyncError` code. */
  acksRejectedBy: Record<string, number>;
  /** Snapshots the session layer refused to send (congestion, budget, disconnected). */
  snapshotsDropped: number;
  snapshotsSent: number;
}

export interface DemoServer {
  readonly app: FastifyInstance;
  /** `http://<host>:<port>/` */
  readonly url: string;
  readonly port: number;
  readonly world: World;
  readonly stats: DemoStats;
  close(): Promise<void>;
}

interface Player {
  client: RoomClient;
  /** The session the sync baselines belong to: a seat taken back on a new session starts them over. */
  session: RoomClient['session'];
  entity: number;
  receiver: InputReceiver<PlayerInput>;
  queue: SequencedInput<PlayerInput>[];
  /** Inputs this player may apply now (one earned per tick, at most `maxInputBurst`). */
  credit: number;
}

export async function createDemoServer(options: DemoServerOptions = {}): Promise<DemoServer> {
  const host = options.host ?? 'localhost';
  const maxQueued = options.maxQueuedInputs ?? 64;
  const maxBurst = options.maxInputBurst ?? 30;
  const maxPerIp = options.maxSessionsPerIp ?? 8;
  if (options.build !== false) await buildClient();

  const app = Fastify({ logger: options.logger ?? false });
  await app.register(fastifyStatic, { root: PUBLIC_DIR, index: ['index.html'], cacheControl: false });
  await app.register(quiver, {
    path: '/quiver',
    // Where clients reach this process, in /quiver/info and in reservations made by any process.
    ...(options.publicUrl ? { publicUrl: options.publicUrl } : {}),
    webtransport: {
      // `localhost` resolves to both 127.0.0.1 and ::1; the page is told the IPv4 address (see /quiver/info).
      host: host === 'localhost' ? '127.0.0.1' : host,
      ...(options.webtransportPort !== undefined ? { port: options.webtransportPort } : {}),
    },
    session: {
      messages,
      maxSessions: 64,
      // The demo has no accounts: one address must not take every seat of `maxSessions`.
      authenticate: (req) => {
        let open = 0;
        for (const s of app.quiver.sessions.values())
          if (s.state === 'open' && s.request.remoteAddress === req.remoteAddress) open++;
        if (open >= maxPerIp) return reject(429, 'too many sessions from this address');
        return { userId: 'anonymous' };
      },
      // Connections still in their handshake, per address (the oldest is evicted): idle sockets cannot hold the
      // 64 places either.
      preAuth: { maxPending: 128, maxPendingPerIp: 8 },
      rateLimits: {
        perSession: { messagesPerSecond: 240, bytesPerSecond: 256_000 },
        perIp: { sessionsPerMinute: options.sessionsPerMinutePerIp ?? 60 },
      },
    },
  });

  const stats: DemoStats = {
    players: 0,
    bots: 0,
    tick: 0,
    droppedTickMs: 0,
    inputsApplied: 0,
    inputsDropped: 0,
    inputsRejected: 0,
    inputsFilled: 0,
    inputResets: 0,
    acksRejected: 0,
    acksRejectedBy: {},
    snapshotsDropped: 0,
    snapshotsSent: 0,
  };
  const world = new World({ seed: options.seed ?? 8, bots: 0 });
  const sync = new SyncServer(schema, { budgetBytes: 1000, maxPacketBytes: 1100 });
  const thingIds = world.things.map((t) =>
    sync.spawn({
      body: { pos: t.pos, rot: t.rot },
      shape: { kind: t.kind, size: t.size, color: t.color },
    }),
  );
  const spawnAvatar = (name: string, owner?: string): number =>
    sync.spawn({ shape: { kind: 'avatar', size: 0.3, color: 0 }, avatar: { name } }, owner ? { owner } : {});
  world.setBotCount(options.bots ?? 8);
  world.reconcileBots(spawnAvatar, (id) => sync.despawn(id));

  const players = new Map<string, Player>();

  const welcome = (p: Player) => {
    const a = world.avatars.get(p.entity)!;
    return {
      roomId: arena.roomId,
      clients: players.size,
      entity: p.entity,
      tickRate: TICK_RATE,
      arena: ARENA,
      bots: world.botCount,
      x: a.x,
      z: a.z,
    };
  };
  const roomInfo = () => arena.broadcast(RoomInfo, { roomId: arena.roomId, clients: players.size });

  const onFrame = (p: Player, f: ClientFrame) => {
    if (f.a) {
      try {
        sync.receiveAck(p.client.id, f.a);
      } catch (err) {
        if (!(err instanceof SyncError)) throw err;
        stats.acksRejected++;
        stats.acksRejectedBy[err.code] = (stats.acksRejectedBy[err.code] ?? 0) + 1;
      }
    }
    if (f.i) {
      let inputs: SequencedInput<PlayerInput>[] = [];
      try {
        inputs = p.receiver.receive(f.i);
      } catch (err) {
        if (!(err instanceof PredictError)) throw err;
        // After a long outage the packet starts far past what the receiver expects: start over from it rather
        // than inventing hundreds of inputs (the player's prediction reconciles against what we send).
        try {
          const first = decodeInputPacket(inputCodec, f.i)[0].seq;
          if (first > p.receiver.lastSeq) {
            stats.inputsRejected += p.receiver.stats.rejected;
            stats.inputsFilled += p.receiver.stats.filled;
            p.receiver = new InputReceiver(inputCodec, NEUTRAL_INPUT, { firstSeq: first });
            p.queue.length = 0;
            inputs = p.receiver.receive(f.i);
            stats.inputResets++;
          }
        } catch {
          // malformed: already counted by the receiver
        }
      }
      for (const input of inputs) {
        p.queue.push(input);
        if (p.queue.length > maxQueued) {
          p.queue.shift();
          stats.inputsDropped++;
        }
      }
    }
    if (f.p) world.setPose(p.entity, decodePose(f.p));
  };

  /** The scene is one `arena` room: every page matchmakes into it. */
  class Arena extends Room<ArenaOptions, { player?: Player }> {
    override maxClients = 64;
    // The world lives on (bots keep playing) when the last player leaves.
    override autoDispose = false;
    // A page whose session could not be resumed takes its avatar back with its reconnection token.
    override reconnectWindowMs = 15_000;

    override onCreate() {
      this.onMessage(SetBots, (_c, m) => world.setBotCount(Math.min(MAX_BOTS, m.count)));
      this.onMessage(Frame, (c, f) => {
        const p = c.data.player;
        if (p) onFrame(p, f);
      });
      this.onRequest(Hello, (c) => {
        const p = c.data.player!;
        if (p.session !== c.session) {
          // A new session (not a resume): the page starts its sync state over, so must the server.
          sync.removeClient(c.id);
          sync.addClient(c.id);
          p.session = c.session;
        }
        return welcome(p);
      });
    }

    override onJoin(client: RoomClient<{ player?: Player }>, options: ArenaOptions) {
      sync.addClient(client.id);
      const name = String(options?.name ?? 'player').slice(0, 24) || 'player';
      const entity = spawnAvatar(name, client.id);
      world.addAvatar(entity, name, false);
      const p: Player = {
        client,
        session: client.session,
        entity,
        receiver: new InputReceiver(inputCodec, NEUTRAL_INPUT, { firstSeq: 1 }),
        queue: [],
        credit: 1,
      };
      client.data.player = p;
      players.set(client.id, p);
      entityOwner.set(entity, p);
      roomInfo();
    }

    override onLeave(client: RoomClient<{ player?: Player }>) {
      const p = client.data.player;
      if (!p) return;
      stats.inputsRejected += p.receiver.stats.rejected;
      stats.inputsFilled += p.receiver.stats.filled;
      players.delete(client.id);
      entityOwner.delete(p.entity);
      world.removeAvatar(p.entity);
      sync.despawn(p.entity);
      sync.removeClient(client.id);
      roomInfo();
    }
  }

  const entityOwner = new Map<number, Player>();
  const writeAvatar = (id: number, a: AvatarState) => {
    sync.set(id, 'body', { pos: { x: a.x, y: 0, z: a.z }, rot: yawQuat(a.yaw) });
    sync.set(id, 'shape', { color: a.color });
    sync.set(id, 'avatar', {
      head: worldOf(a, a.pose.head),
      headRot: a.pose.headRot,
      left: worldOf(a, a.pose.left),
      leftRot: a.pose.leftRot,
      right: worldOf(a, a.pose.right),
      rightRot: a.pose.rightRot,
      bot: a.bot,
      away: !a.bot && entityOwner.get(id)?.client.session.connected === false,
      seq: a.seq,
    });
  };

  const tickOnce = () => {
    for (const p of players.values()) {
      // Each input is one simulation step, exactly as the page predicted it: applying a burst at once (after a
      // stall of the page or the network) keeps the prediction right; the credit keeps the average at one per tick.
      p.credit = Math.min(maxBurst, p.credit + 1);
      const n = Math.min(p.queue.length, Math.floor(p.credit));
      p.credit -= n;
      for (let i = 0; i < n; i++) {
        const { seq, input } = p.queue.shift()!;
        world.applyInput(p.entity, seq, input);
        stats.inputsApplied++;
      }
    }
    const botsBefore = world.botCount;
    world.reconcileBots(spawnAvatar, (id) => sync.despawn(id));
    world.step();
    if (world.botCount !== botsBefore) arena.broadcast(BotCount, { count: world.botCount });
    world.things.forEach((t, i) => {
      sync.set(thingIds[i], 'body', { pos: t.pos, rot: t.rot });
    });
    for (const [id, a] of world.avatars) writeAvatar(id, a);
    sync.tick();
    for (const [key, p] of players) {
      if (!p.client.session.connected || p.client.state !== 'joined') continue;
      if (p.client.send(Snapshot, sync.encodeFor(key))) stats.snapshotsSent++;
      else stats.snapshotsDropped++;
    }
    stats.tick = world.tick;
    stats.players = players.size;
    stats.bots = world.botCount;
  };

  // The world runs on the arena room's clock: a fixed tick, caught up in steps when the process was late; the
  // room's timers stop when it is disposed (app close).
  const ticker = new FixedTicker(TICK_RATE);
  // With a Redis URL the arena's listing and matchmaking are shared by every demo process on that Redis.
  await app.register(quiverRoomsRedis, {
    setup: (rooms) => rooms.define('arena', Arena),
    redisUrl: options.redisUrl ?? '',
  });
  const arena = await app.rooms.createRoom<Arena>('arena');
  arena.setSimulationInterval(
    (dt) => {
      const n = ticker.advance(dt);
      for (let i = 0; i < n; i++) tickOnce();
      stats.droppedTickMs = ticker.droppedMs;
    },
    Math.max(1, Math.floor(ticker.tickMs / 4)),
  );

  // Counters of live receivers are added to those of receivers already gone.
  const receiverSum = (k: 'rejected' | 'filled') =>
    [...players.values()].reduce((n, p) => n + p.receiver.stats[k], 0);
  app.get('/demo/status', async () => ({
    ...stats,
    inputsRejected: stats.inputsRejected + receiverSum('rejected'),
    inputsFilled: stats.inputsFilled + receiverSum('filled'),
  }));

  const address = await app.listen({ host, port: options.port ?? 8080 });
  await app.quiverTransports.ready();
  const port = Number(new URL(address).port);
  const urlHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
  return {
    app,
    url: `http://${urlHost}:${port}/`,
    port,
    world,
    stats,
    close: () => app.close(),
  };
}
