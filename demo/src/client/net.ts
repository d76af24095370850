/**
 * The page's side of the demo, without any rendering: the session (transport fallback, reconnection), the
 * emulated link, state sync, prediction of the own avatar, interpolation of everything else, and the figures the
 * overlay shows. Components read it; it knows nothing about them.
 */
import type { QuiverInfo } from '@quiver/fastify';
import { type ClientRoom, RoomsClient } from '@quiver/rooms/client';
import {
  type EntitySample,
  FixedTicker,
  InputSender,
  InterpolationBuffer,
  Predictor,
  type SampledPose,
} from '@quiver/predict';
import {
  nativeWebTransportConnector,
  type SessionClient,
  type TransportAttempt,
  type TransportCandidate,
} from '@quiver/session';
import { connect as connectInWorker, WorkerClientSession } from '@quiver/session/worker';
import { type EntityValues, SyncClient, SyncError } from '@quiver/sync';
import { connectHttpPosts } from './http-posts.js';
import { connectWebSocket } from '@quiver/websocket';
import {
  type ArenaOptions,
  BotCount,
  desktopPose,
  encodePose,
  Frame,
  inputCodec,
  Hello,
  type PlayerInput,
  type PlayerState,
  type Pose,
  playerSim,
  type Quat,
  SetBots,
  Snapshot,
  schema,
  type Vec3,
  RoomInfo,
  type WelcomeInfo,
  WALK_SPEED,
  yawQuat,
  yawToInput,
} from '../shared/protocol.js';
import { type LinkSettings, type ShaperStats, shapeConnector } from './shaper.js';

export type TransportMode = 'auto' | 'webtransport' | 'websocket' | 'http';
type Values = EntityValues<typeof schema.components>;

export interface DemoSettings {
  transport: TransportMode;
  prediction: boolean;
  interpolation: boolean;
  /** Emulated one-way latency (ms). */
  latencyMs: number;
  /** Emulated datagram loss, each way (percent). */
  lossPct: number;
  /**
   * The session runs in a dedicated Worker (`@quiver/session/worker`, default), so that a busy page delays neither
   * heartbeats nor the network; off, it runs on the page's main thread, for comparison.
   */
  worker: boolean;
}

/** What the scene draws for one entity this frame. */
export interface RenderEntity {
  id: number;
  kind: 'ball' | 'box' | 'avatar';
  size: number;
  color: number;
  pos: Vec3;
  rot: Quat;
  own: boolean;
  name: string;
  bot: boolean;
  /** The player's connection dropped (drawn faded until the session resumes or ends). */
  away: boolean;
  head?: { pos: Vec3; rot: Quat };
  left?: { pos: Vec3; rot: Quat };
  right?: { pos: Vec3; rot: Quat };
}

/** Live figures, sampled four times a second. */
export interface NetFigures {
  rttMs: number;
  jitterMs: number;
  /** Heartbeat probe loss estimate of the session layer, 0..1. */
  loss: number;
  kbpsIn: number;
  kbpsOut: number;
  correctionsPerSec: number;
  interpDelayMs: number;
  fps: number;
  /**
   * Longest gap between two runs of the 5 ms tick timer in the last second, minus 5 ms: how long the page's main
   * thread was busy (rendering, GC). Messages wait that long too, so it inflates the RTT and jitter measured here.
   */
  stallMs: number;
  /**
   * Worker mode: the longest time in the last second a message from the Worker waited for the page's main thread
   * (`mainThreadDelay.maxMs`); 0 on the main thread, where that wait hides inside the RTT instead.
   */
  waitMs: number;
}

export const HISTORY = 120;

export interface DesktopControls {
  /** Movement intent in camera space: forward and right in -1..1. */
  forward: number;
  right: number;
  /** Camera yaw and pitch (radians). */
  yaw: number;
  pitch: number;
}

const b64 = (s: string) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));

export class DemoClient extends EventTarget {
  readonly settings: DemoSettings;
  readonly link: LinkSettings = { latencyMs: 0, loss: 0 };
  readonly shaperStats: ShaperStats = { droppedIn: 0, droppedOut: 0 };
  session: SessionClient | undefined;
  /** The arena room joined, and how many players it holds (shown in the overlay). */
  room: ClientRoom | undefined;
  roomId = '';
  roomClients = 0;
  status: 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed' | 'error' = 'idle';
  error = '';
  attempts: TransportAttempt[] = [];
  welcome: WelcomeInfo | undefined;
  bots = 0;
  /** Server figures scraped from /metrics. */
  serverSessions: Record<string, number> = {};
  serverScrapedAt = 0;
  readonly figures: NetFigures = {
    rttMs: 0,
    jitterMs: 0,
    loss: 0,
    kbpsIn: 0,
    kbpsOut: 0,
    correctionsPerSec: 0,
    interpDelayMs: Number.NaN,
    fps: 0,
    stallMs: 0,
    waitMs: 0,
  };
  readonly history: Record<keyof NetFigures, number[]> = {
    rttMs: [],
    jitterMs: [],
    loss: [],
    kbpsIn: [],
    kbpsOut: [],
    correctionsPerSec: [],
    interpDelayMs: [],
    fps: [],
    stallMs: [],
    waitMs: [],
  };
  /** Counters since the page loaded. */
  readonly counters = {
    snapshots: 0,
    staleSnapshots: 0,
    rejectedSnapshots: 0,
    corrections: 0,
    frames: 0,
    connects: 0,
  };
  controls: DesktopControls = { forward: 0, right: 0, yaw: 0, pitch: -0.42 };
  /** Set by the XR session: the tracked pose and thumbstick movement replace the desktop ones. */
  xr: { pose: Pose; moveX: number; moveZ: number } | undefined;

  sync = new SyncClient(schema);
  predictor: Predictor<PlayerState, PlayerInput> | undefined;
  sender = new InputSender(inputCodec, { firstSeq: 1 });
  interp = this.#newInterp();
  /** The newest replicated state (drawn as is when interpolation is off). */
  latest = new Map<number, Values>();
  #prevPredicted: PlayerState | undefined;
  #ticker = new FixedTicker(30);
  #tickTimer: ReturnType<typeof setInterval> | undefined;
  #sampleTimer: ReturnType<typeof setInterval> | undefined;
  #scrapeTimer: ReturnType<typeof setInterval> | undefined;
  #lastTick = 0;
  #walkPhase = 0;
  #correctionTimes: number[] = [];
  #stalls: number[] = [];
  #frameTimes: number[] = [];
  #lastBytes = { in: 0, out: 0, at: 0 };
  #connectSerial = 0;
  #worker: Worker | undefined;
  /** When the snapshot being decoded arrived (performance.now() scale): from the Worker when it runs the session. */
  #arrivalMs = 0;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    settings: Partial<DemoSettings> = {},
    readonly name = `Guest ${Math.floor(100 + Math.random() * 900)}`,
  ) {
    super();
    this.settings = {
      transport: 'auto',
      prediction: true,
      interpolation: true,
      latencyMs: 0,
      lossPct: 0,
      worker: true,
      ...settings,
    };
    this.#applyLink();
  }

  #newInterp(): InterpolationBuffer {
    return new InterpolationBuffer({ snapshotIntervalMs: 1000 / 30, maxExtrapolationMs: 200 });
  }

  #changed(): void {
    this.dispatchEvent(new Event('change'));
  }

  #applyLink(): void {
    this.link.latencyMs = Math.max(0, this.settings.latencyMs);
    this.link.loss = Math.min(1, Math.max(0, this.settings.lossPct / 100));
    this.#worker?.postMessage({ q: 'link', link: this.link });
  }

  /** The Worker hosting the session (`net-worker.ts`), started once; it runs the emulated link there too. */
  #sessionWorker(): Worker {
    if (!this.#worker) {
      const w = new Worker('/net-worker.js', { type: 'module' });
      w.addEventListener('message', (ev: MessageEvent) => {
        if (ev.data?.q === 'shaper') Object.assign(this.shaperStats, ev.data.stats);
      });
      this.#worker = w;
      this.#applyLink();
    }
    return this.#worker;
  }

  start(): void {
    this.#lastTick = performance.now();
    this.#tickTimer = setInterval(() => this.#tickLoop(), 5);
    this.#sampleTimer = setInterval(() => this.#sample(), 250);
    this.#scrapeTimer = setInterval(() => void this.scrapeServer(), 1000);
    void this.connect();
  }

  async stop(): Promise<void> {
    clearInterval(this.#tickTimer);
    clearInterval(this.#sampleTimer);
    clearInterval(this.#scrapeTimer);
    clearTimeout(this.#retryTimer);
    this.#connectSerial++;
    await this.room?.leave();
  }

  update(patch: Partial<DemoSettings>): void {
    const transportChanged =
      (patch.transport !== undefined && patch.transport !== this.settings.transport) ||
      (patch.worker !== undefined && patch.worker !== this.settings.worker);
    Object.assign(this.settings, patch);
    this.#applyLink();
    if (patch.interpolation !== undefined) this.interp = this.#refilledInterp();
    this.#changed();
    if (transportChanged) void this.connect();
  }

  setBots(count: number): void {
    if (this.room && !this.room.left) this.room.send(SetBots, { count });
  }

  /**
   * (Re)joins the arena with the current transport setting: matchmaking (`POST /quiver/matchmake/joinOrCreate/arena`)
   * and the session in one call; the previous room is left first.
   */
  async connect(): Promise<void> {
    const serial = ++this.#connectSerial;
    clearTimeout(this.#retryTimer);
    const previous = this.room;
    this.room = undefined;
    this.session = undefined;
    this.#resetWorld();
    this.status = 'connecting';
    this.error = '';
    this.attempts = [];
    this.#changed();
    if (previous) await previous.leave().catch(() => {});
    try {
      const mode = this.settings.transport;
      const rooms = new RoomsClient({
        endpoint: '',
        ...(this.settings.worker
          ? { connect: (url, o) => connectInWorker(url, { ...o, worker: this.#sessionWorker() }) }
          : {}),
        transports: (endpoints) => this.#candidates({ path: '/quiver', ...endpoints }),
        session: {
          // A forced transport is a test of that transport: it must not teach the automatic mode anything.
          fallback: {
            headStartMs: 400,
            connectTimeoutMs: 8000,
            ...(mode === 'auto' ? {} : { memory: false }),
          },
          messages: [Frame, SetBots],
          reconnect: { initialMs: 250, maxMs: 5000 },
          heartbeat: { intervalMs: 500, idleIntervalMs: 1000, idleAfterMs: 5000, timeoutMs: 10000 },
        },
      });
      const room = await rooms.joinOrCreate<ArenaOptions>('arena', { name: this.name });
      if (serial !== this.#connectSerial) {
        await room.leave();
        return;
      }
      this.room = room;
      this.status = 'open';
      this.counters.connects++;
      // Room messages through the room handle: they follow it to another room when it rematchmakes.
      room.on(BotCount, (b) => {
        this.bots = b.count;
        this.#changed();
      });
      room.on(RoomInfo, (r) => {
        this.roomId = r.roomId;
        this.roomClients = r.clients;
        this.#changed();
      });
      room.on(Snapshot, (bytes) => this.#onSnapshot(bytes));
      // Transport events of the room's session (a new one after a rematch).
      const watch = (session: SessionClient) => {
        this.session = session;
        this.attempts = [...session.transportAttempts];
        session.on('open', () => {
          this.status = 'open';
          this.attempts = [...session.transportAttempts];
          this.counters.connects++;
          this.#changed();
        });
        session.on('reconnecting', () => {
          this.status = 'reconnecting';
          this.#changed();
        });
      };
      watch(room.session);
      // Back on the same seat: a resumed session lost nothing; a new one (the room took the seat back with the
      // reconnection token) starts the world over.
      room.on('reconnect', () => {
        if (room.session.recovered) return;
        this.#resetWorld();
        void this.#hello(room, serial);
      });
      // The arena's process drained or died: the client matchmade again and is in another process's arena.
      room.on('rematch', () => {
        this.counters.connects++;
        watch(room.session);
        this.status = 'open';
        this.#resetWorld();
        void this.#hello(room, serial);
      });
      room.on('leave', (l) => {
        if (this.room !== room) return;
        this.status = 'closed';
        this.error = `left the room: ${l.code} ${l.reason}`;
        this.#changed();
        this.#retryTimer = setTimeout(() => void this.connect(), 2000);
      });
      await this.#hello(room, serial);
      this.#changed();
    } catch (err) {
      if (serial !== this.#connectSerial) return;
      this.status = 'error';
      const e = err as Error & { attempts?: TransportAttempt[] };
      this.error = e.message;
      if (e.attempts) this.attempts = e.attempts;
      this.#changed();
      this.#retryTimer = setTimeout(() => void this.connect(), 3000);
    }
  }

  /** Asks the room for the own avatar and the world's parameters (after every join). */
  async #hello(room: ClientRoom, serial: number): Promise<void> {
    const w = await room.request(Hello, {});
    if (serial !== this.#connectSerial || this.room !== room) return;
    this.roomId = w.roomId;
    this.roomClients = w.clients;
    this.#onWelcome(w);
  }

  #candidates(info: QuiverInfo): TransportCandidate[] {
    const out: TransportCandidate[] = [];
    const mode = this.settings.transport;
    const wt = info.webtransport;
    if (wt && (mode === 'auto' || mode === 'webtransport')) {
      // The server binds UDP on the address it reports; from another machine, reach the same host name the page
      // came from.
      const u = new URL(wt.url);
      if (location.hostname !== 'localhost' && !/^127\.|^\[?::1\]?$/.test(location.hostname))
        u.hostname = location.hostname;
      out.push({
        name: 'webtransport',
        connector: shapeConnector(nativeWebTransportConnector, this.link, this.shaperStats),
        url: u.toString(),
        options: {
          serverCertificateHashes: wt.certificateHashes.map((h) => ({
            algorithm: h.algorithm,
            value: b64(h.value),
          })),
        },
      });
    }
    if (info.websocket && (mode === 'auto' || mode === 'websocket')) {
      const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
      out.push({
        name: 'websocket',
        connector: shapeConnector(connectWebSocket, this.link, this.shaperStats),
        url: `${scheme}//${location.host}${info.path}`,
      });
    }
    if (info.http && (mode === 'auto' || mode === 'http')) {
      // The last resort, for networks that drop UDP and refuse WebSocket upgrades: it starts a second after
      // WebSocket, so that it only runs where WebSocket had a fair chance and failed or hung.
      out.push({
        name: 'http',
        connector: shapeConnector(connectHttpPosts, this.link, this.shaperStats),
        url: `${location.protocol}//${location.host}${info.path}`,
        headStartMs: 1000,
      });
    }
    if (out.length === 0) throw new Error(`the server offers no ${mode} endpoint`);
    return out;
  }

  #resetWorld(): void {
    this.welcome = undefined;
    this.sync = new SyncClient(schema);
    this.sync.on('snapshot', (snap) => {
      const tickMs = 1000 / (this.welcome?.tickRate ?? 30);
      const map = snap.toMap();
      this.latest = map;
      const now = performance.now();
      const samples: [string | number, EntitySample][] = [];
      for (const [id, v] of map) {
        if (v.body) samples.push([id, { position: v.body.pos, rotation: v.body.rot }]);
        if (v.avatar) {
          samples.push([`h${id}`, { position: v.avatar.head, rotation: v.avatar.headRot }]);
          samples.push([`l${id}`, { position: v.avatar.left, rotation: v.avatar.leftRot }]);
          samples.push([`r${id}`, { position: v.avatar.right, rotation: v.avatar.rightRot }]);
        }
      }
      // Stamped with its arrival (in the Worker when it runs the session): the buffer's delay then follows the
      // network's jitter, not how long the page's main thread kept the snapshot waiting.
      this.interp.push(snap.tick * tickMs, this.#arrivalMs || now, samples);
      const own = this.welcome ? map.get(this.welcome.entity) : undefined;
      if (own?.body && own.avatar && own.avatar.seq > 0 && this.predictor) {
        this.predictor.reconcile({ x: own.body.pos.x, z: own.body.pos.z }, own.avatar.seq);
        this.sender.ack(own.avatar.seq);
      }
    });
    this.sync.on('left', ({ id }) => {
      this.interp.remove(id);
      for (const p of ['h', 'l', 'r']) this.interp.remove(`${p}${id}`);
    });
    this.latest = new Map();
    this.interp = this.#newInterp();
    this.predictor = undefined;
    this.sender = new InputSender(inputCodec, { firstSeq: 1 });
  }

  /** Interpolation toggled: start a fresh buffer (its render clock must not carry over a gap). */
  #refilledInterp(): InterpolationBuffer {
    return this.#newInterp();
  }

  #onWelcome(w: WelcomeInfo): void {
    this.welcome = w;
    this.bots = w.bots;
    this.#ticker = new FixedTicker(w.tickRate);
    this.predictor = new Predictor(
      playerSim,
      { x: w.x, z: w.z },
      {
        position: (s) => ({ x: s.x, y: 0, z: s.z }),
        equals: (a, b) => a.x === b.x && a.z === b.z,
        smoothingHalfLifeMs: 80,
      },
    );
    this.#prevPredicted = { x: w.x, z: w.z };
    this.predictor.onCorrection(() => {
      this.counters.corrections++;
      this.#correctionTimes.push(performance.now());
    });
    this.#changed();
  }

  #onSnapshot(bytes: Uint8Array): void {
    if (!this.welcome) return;
    this.counters.snapshots++;
    const s = this.session;
    this.#arrivalMs =
      s instanceof WorkerClientSession && s.receivedAt > 0
        ? s.receivedAt - performance.timeOrigin
        : performance.now();
    try {
      if (!this.sync.receive(bytes)) this.counters.staleSnapshots++;
    } catch (err) {
      if (!(err instanceof SyncError)) throw err;
      this.counters.rejectedSnapshots++;
    }
  }

  #stallMax = 0;

  #tickLoop(): void {
    const now = performance.now();
    this.#stallMax = Math.max(this.#stallMax, now - this.#lastTick - 5);
    const n = this.#ticker.advance(now - this.#lastTick);
    this.#lastTick = now;
    for (let i = 0; i < n; i++) this.#tickOnce();
  }

  #currentInput(): PlayerInput {
    const c = this.controls;
    let mx: number;
    let mz: number;
    if (this.xr) {
      mx = this.xr.moveX;
      mz = this.xr.moveZ;
    } else {
      // Camera space to world: forward is -z rotated by yaw.
      const fx = -Math.sin(c.yaw);
      const fz = -Math.cos(c.yaw);
      mx = fx * c.forward + Math.cos(c.yaw) * c.right;
      mz = fz * c.forward - Math.sin(c.yaw) * c.right;
    }
    const len = Math.hypot(mx, mz);
    if (len > 1) {
      mx /= len;
      mz /= len;
    }
    return { mx: Math.round(mx * 127), mz: Math.round(mz * 127), yaw: yawToInput(c.yaw) };
  }

  /** The own avatar's pose relative to its origin: tracked in XR, synthesized on desktop. */
  localPose(): Pose {
    if (this.xr) return this.xr.pose;
    const c = this.controls;
    const walking = Math.min(1, Math.hypot(c.forward, c.right));
    return desktopPose(c.yaw, c.pitch, this.#walkPhase, walking, 0);
  }

  #tickOnce(): void {
    const session = this.session;
    if (!session || !this.welcome || !this.predictor) return;
    const { seq, input } = this.sender.capture(this.#currentInput());
    this.#prevPredicted = this.predictor.state;
    this.predictor.apply(seq, input);
    const walking = Math.hypot(input.mx, input.mz) / 127;
    this.#walkPhase += walking * (WALK_SPEED / 30) * 3.5;
    if (!session.connected) return;
    const packet = this.sender.packet();
    session.send(Frame, {
      ...(this.sync.tick > 0 ? { a: this.sync.createAck() } : {}),
      ...(packet ? { i: packet } : {}),
      p: encodePose(this.localPose()),
    });
  }

  /** Called by the scene once per animation frame: advances smoothing and the render clock. */
  frame(now: number, dtMs: number): void {
    this.#frameTimes.push(now);
    this.predictor?.smooth(dtMs);
    if (this.settings.interpolation) this.interp.update(now);
  }

  /** Own avatar position to draw: predicted, blended between the last two ticks, plus the correction offset. */
  ownPosition(): Vec3 | undefined {
    const p = this.predictor;
    if (!p || !this.#prevPredicted) return undefined;
    const a = this.#ticker.alpha;
    const prev = this.#prevPredicted;
    const off = p.visualOffset;
    return {
      x: prev.x + (p.state.x - prev.x) * a + off.x,
      y: 0,
      z: prev.z + (p.state.z - prev.z) * a + off.z,
    };
  }

  #pose(
    id: string | number,
    fallback: { pos: Vec3; rot: Quat } | undefined,
  ): { pos: Vec3; rot: Quat } | undefined {
    if (!this.settings.interpolation) return fallback;
    const s: SampledPose | undefined = this.interp.sample(id);
    return s ? { pos: s.position, rot: s.rotation } : fallback;
  }

  /** Everything to draw this frame. */
  entities(): RenderEntity[] {
    const out: RenderEntity[] = [];
    const ownId = this.welcome?.entity;
    const predicted = this.settings.prediction ? this.ownPosition() : undefined;
    for (const [id, v] of this.latest) {
      if (!v.body || !v.shape) continue;
      const own = id === ownId;
      const base = { pos: v.body.pos, rot: v.body.rot };
      const e: RenderEntity = {
        id,
        kind: v.shape.kind,
        size: v.shape.size,
        color: v.shape.color,
        ...base,
        own,
        name: v.avatar?.name ?? '',
        bot: v.avatar?.bot ?? false,
        away: v.avatar?.away ?? false,
      };
      if (own && predicted) {
        // The own avatar is drawn where the prediction puts it, with the pose from this page, not the echo.
        e.pos = predicted;
        e.rot = yawQuat(this.controls.yaw);
        const pose = this.localPose();
        const at = (o: Vec3): Vec3 => ({ x: predicted.x + o.x, y: o.y, z: predicted.z + o.z });
        e.head = { pos: at(pose.head), rot: pose.headRot };
        e.left = { pos: at(pose.left), rot: pose.leftRot };
        e.right = { pos: at(pose.right), rot: pose.rightRot };
      } else {
        const b = this.#pose(id, base);
        if (b) {
          e.pos = b.pos;
          e.rot = b.rot;
        }
        if (v.avatar) {
          e.head = this.#pose(`h${id}`, { pos: v.avatar.head, rot: v.avatar.headRot });
          e.left = this.#pose(`l${id}`, { pos: v.avatar.left, rot: v.avatar.leftRot });
          e.right = this.#pose(`r${id}`, { pos: v.avatar.right, rot: v.avatar.rightRot });
        }
      }
      out.push(e);
    }
    return out;
  }

  #sample(): void {
    const now = performance.now();
    const s = this.session;
    const f = this.figures;
    if (s?.connected) {
      f.rttMs = s.rtt;
      f.jitterMs = s.jitter;
      f.loss = s.loss;
    }
    const sum = (r: Record<string, number> | undefined) => Object.values(r ?? {}).reduce((a, b) => a + b, 0);
    const bin = sum(s?.stats.bytesIn);
    const bout = sum(s?.stats.bytesOut);
    const dt = (now - this.#lastBytes.at) / 1000;
    if (this.#lastBytes.at > 0 && dt > 0) {
      f.kbpsIn = Math.max(0, ((bin - this.#lastBytes.in) * 8) / 1000 / dt);
      f.kbpsOut = Math.max(0, ((bout - this.#lastBytes.out) * 8) / 1000 / dt);
    }
    this.#lastBytes = { in: bin, out: bout, at: now };
    this.#correctionTimes = this.#correctionTimes.filter((t) => t > now - 1000);
    f.correctionsPerSec = this.#correctionTimes.length;
    this.#frameTimes = this.#frameTimes.filter((t) => t > now - 1000);
    f.fps = this.#frameTimes.length;
    f.interpDelayMs = this.settings.interpolation ? this.interp.currentDelayMs : 0;
    // Kept over the last second (four samples).
    this.#stalls.push(Math.max(0, this.#stallMax));
    if (this.#stalls.length > 4) this.#stalls.shift();
    this.#stallMax = 0;
    f.stallMs = Math.max(...this.#stalls);
    f.waitMs = s instanceof WorkerClientSession ? s.mainThreadDelay.maxMs : 0;
    for (const k of Object.keys(f) as (keyof NetFigures)[]) {
      const h = this.history[k];
      h.push(Number.isFinite(f[k]) ? f[k] : 0);
      if (h.length > HISTORY) h.shift();
    }
    this.dispatchEvent(new Event('sample'));
  }

  /** Payload bytes the session layer counted (the same measure as the server's `quiver_bytes_total`). */
  get bytes(): { in: number; out: number } {
    const sum = (r: Record<string, number> | undefined) => Object.values(r ?? {}).reduce((a, b) => a + b, 0);
    return { in: sum(this.session?.stats.bytesIn), out: sum(this.session?.stats.bytesOut) };
  }

  /** Reads the server's own view from `/metrics` (Prometheus text), for the overlay to show next to ours. */
  async scrapeServer(): Promise<void> {
    try {
      const text = await (await fetch('/metrics')).text();
      const sessions: Record<string, number> = {};
      for (const m of text.matchAll(/^quiver_sessions_active\{transport="([^"]+)"\} (\S+)$/gm))
        sessions[m[1]] = Number(m[2]);
      this.serverSessions = sessions;
      this.serverScrapedAt = Date.now();
      this.dispatchEvent(new Event('server'));
    } catch {
      // the server is restarting; the next scrape will tell
    }
  }
}
