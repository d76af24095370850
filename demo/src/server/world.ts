/**
 * The authoritative world: avatars (players and bots) and physics-like objects on a square floor. Sans-IO: no
 * clock, no sockets; `step()` advances one fixed tick and the random choices of the bots come from a seeded
 * generator, so a run is reproducible. `app.ts` drives it and replicates it with `@quiver/sync`.
 */
import { createRng, type Rng } from '@quiver/session';
import { integrate } from '@quiver/predict';
import {
  ARENA,
  AVATAR_RADIUS,
  desktopPose,
  MAX_BOTS,
  MAX_REACH,
  type PlayerInput,
  type PlayerState,
  type Pose,
  playerSim,
  type Quat,
  quantisePos,
  TICK_RATE,
  type Vec3,
  WALK_SPEED,
  yawFromInput,
  yawQuat,
} from '../shared/protocol.js';

export interface Thing {
  kind: 'ball' | 'box';
  size: number;
  color: number;
  pos: Vec3;
  vel: Vec3;
  rot: Quat;
  /** Spin about the vertical axis (boxes), rad/s. */
  spin: number;
}

export interface AvatarState {
  name: string;
  color: number;
  bot: boolean;
  x: number;
  z: number;
  yaw: number;
  /** Velocity of the last tick (m/s), used to push objects. */
  vx: number;
  vz: number;
  pose: Pose;
  /** Walk cycle phase for the synthesized pose of bots. */
  phase: number;
  /** Last applied input seq (players). */
  seq: number;
  brain?: BotBrain;
}

interface BotBrain {
  target: number;
  goal: { x: number; z: number };
  ticksLeft: number;
  reach: number;
}

export interface WorldOptions {
  /** Seed of the bots' decisions and of the initial layout. */
  seed?: number;
  /** Objects on the floor (default 24). */
  objects?: number;
  bots?: number;
}

const BOT_NAMES = [
  'Ada',
  'Blaise',
  'Cray',
  'Dijkstra',
  'Erlang',
  'Floyd',
  'Grace',
  'Hopper',
  'Iverson',
  'Joy',
];

export class World {
  readonly dt = 1 / TICK_RATE;
  readonly things: Thing[] = [];
  readonly avatars = new Map<number, AvatarState>();
  tick = 0;
  readonly #rng: Rng;
  #nextId = 1;
  #botSerial = 0;

  constructor(options: WorldOptions = {}) {
    this.#rng = createRng(options.seed ?? 8);
    const n = options.objects ?? 24;
    for (let i = 0; i < n; i++) {
      const kind = i % 3 === 0 ? 'box' : 'ball';
      const size = kind === 'box' ? 0.25 + this.#rng() * 0.2 : 0.2 + this.#rng() * 0.25;
      const a = (i / n) * Math.PI * 2;
      const r = 3 + this.#rng() * 5;
      this.things.push({
        kind,
        size,
        color: i % 16,
        pos: { x: Math.cos(a) * r, y: size, z: Math.sin(a) * r },
        vel: { x: 0, y: 0, z: 0 },
        rot: yawQuat(this.#rng() * Math.PI),
        spin: 0,
      });
    }
    this.setBotCount(options.bots ?? 8);
  }

  /** Ids are handed out by the caller's replication layer; the world only keys avatars by them. */
  addAvatar(id: number, name: string, bot: boolean): AvatarState {
    const a = (this.#nextId++ * 2.399) % (Math.PI * 2);
    const x = quantisePos(Math.cos(a) * 2);
    const z = quantisePos(Math.sin(a) * 2);
    const yaw = -a - Math.PI / 2;
    const avatar: AvatarState = {
      name,
      color: Math.floor(this.#rng() * 16),
      bot,
      x,
      z,
      yaw,
      vx: 0,
      vz: 0,
      pose: desktopPose(yaw, 0, 0, 0, 0),
      phase: 0,
      seq: 0,
    };
    this.avatars.set(id, avatar);
    return avatar;
  }

  removeAvatar(id: number): void {
    this.avatars.delete(id);
  }

  get botCount(): number {
    let n = 0;
    for (const a of this.avatars.values()) if (a.bot) n++;
    return n;
  }

  /** Bot avatars to add (positive) or the ids of those to remove: the caller spawns/despawns their entities. */
  #pendingBots = 0;
  setBotCount(count: number): void {
    this.#pendingBots = Math.max(0, Math.min(MAX_BOTS, Math.floor(count))) - this.botCount;
  }

  /** Applies a pending bot count change through `spawn`/`despawn` (which own the entity ids). */
  reconcileBots(spawn: (name: string) => number, despawn: (id: number) => void): void {
    while (this.#pendingBots > 0) {
      const name = `${BOT_NAMES[this.#botSerial % BOT_NAMES.length]} (bot)`;
      this.#botSerial++;
      const id = spawn(name);
      const a = this.addAvatar(id, name, true);
      a.brain = { target: -1, goal: { x: 0, z: 0 }, ticksLeft: 0, reach: 0 };
      this.#pendingBots--;
    }
    if (this.#pendingBots < 0) {
      const bots = [...this.avatars.entries()].filter(([, a]) => a.bot).reverse();
      for (const [id] of bots.slice(0, -this.#pendingBots)) {
        this.avatars.delete(id);
        despawn(id);
      }
      this.#pendingBots = 0;
    }
  }

  /** A player's input for one tick (the same simulation step the player's browser predicts with). */
  applyInput(id: number, seq: number, input: PlayerInput): void {
    const a = this.avatars.get(id);
    if (!a) return;
    const before: PlayerState = { x: a.x, z: a.z };
    const after = playerSim.step(before, input);
    a.vx = (after.x - before.x) / this.dt;
    a.vz = (after.z - before.z) / this.dt;
    a.x = after.x;
    a.z = after.z;
    a.yaw = yawFromInput(input.yaw);
    a.seq = seq;
  }

  /** A player's tracked (or synthesized) head and hands, clamped to arm's reach. */
  setPose(id: number, pose: Pose): void {
    const a = this.avatars.get(id);
    if (!a || a.bot) return;
    const clamp = (v: Vec3): Vec3 => {
      const d = Math.hypot(v.x, v.y, v.z);
      return d > MAX_REACH
        ? { x: (v.x * MAX_REACH) / d, y: (v.y * MAX_REACH) / d, z: (v.z * MAX_REACH) / d }
        : v;
    };
    const norm = (q: Quat): Quat => {
      const n = Math.hypot(q.x, q.y, q.z, q.w);
      return n > 1e-6 ? { x: q.x / n, y: q.y / n, z: q.z / n, w: q.w / n } : { x: 0, y: 0, z: 0, w: 1 };
    };
    a.pose = {
      head: clamp(pose.head),
      headRot: norm(pose.headRot),
      left: clamp(pose.left),
      leftRot: norm(pose.leftRot),
      right: clamp(pose.right),
      rightRot: norm(pose.rightRot),
    };
  }

  step(): void {
    this.tick++;
    for (const a of this.avatars.values()) {
      if (a.brain) this.#think(a, a.brain);
    }
    this.#physics();
  }

  #think(a: AvatarState, b: BotBrain): void {
    const rng = this.#rng;
    if (b.ticksLeft <= 0 || b.target < 0 || b.target >= this.things.length) {
      b.target = Math.floor(rng() * this.things.length);
      b.goal = { x: (rng() * 2 - 1) * (ARENA - 2), z: (rng() * 2 - 1) * (ARENA - 2) };
      b.ticksLeft = Math.floor(TICK_RATE * (6 + rng() * 6));
    }
    b.ticksLeft--;
    const t = this.things[b.target];
    // Walk to the far side of the object as seen from the goal, then walk through it towards the goal.
    let gx = b.goal.x - t.pos.x;
    let gz = b.goal.z - t.pos.z;
    const gl = Math.hypot(gx, gz) || 1;
    gx /= gl;
    gz /= gl;
    if (gl < 0.8) b.ticksLeft = 0;
    const behind = {
      x: t.pos.x - gx * (t.size + AVATAR_RADIUS + 0.25),
      z: t.pos.z - gz * (t.size + AVATAR_RADIUS + 0.25),
    };
    const toBehind = Math.hypot(behind.x - a.x, behind.z - a.z);
    const aligned = (t.pos.x - a.x) * gx + (t.pos.z - a.z) * gz > 0;
    let dx: number;
    let dz: number;
    let reachTarget = 0;
    if (toBehind > 0.35 && !(aligned && toBehind < 0.9)) {
      dx = behind.x - a.x;
      dz = behind.z - a.z;
      // Go around the object rather than through it.
      const ox = t.pos.x - a.x;
      const oz = t.pos.z - a.z;
      const od = Math.hypot(ox, oz);
      if (od < t.size + AVATAR_RADIUS + 0.5 && !aligned) {
        dx += -oz / od;
        dz += ox / od;
      }
    } else {
      dx = gx;
      dz = gz;
      reachTarget = 1;
    }
    const dl = Math.hypot(dx, dz) || 1;
    const speed = WALK_SPEED * 0.7;
    const vx = (dx / dl) * speed;
    const vz = (dz / dl) * speed;
    const lim = ARENA - AVATAR_RADIUS;
    const nx = Math.min(lim, Math.max(-lim, a.x + vx * this.dt));
    const nz = Math.min(lim, Math.max(-lim, a.z + vz * this.dt));
    a.vx = (nx - a.x) / this.dt;
    a.vz = (nz - a.z) / this.dt;
    a.x = nx;
    a.z = nz;
    const targetYaw = Math.atan2(-vx, -vz);
    let dy = targetYaw - a.yaw;
    while (dy > Math.PI) dy -= 2 * Math.PI;
    while (dy < -Math.PI) dy += 2 * Math.PI;
    a.yaw += dy * 0.2;
    b.reach += (reachTarget - b.reach) * 0.15;
    a.phase += (Math.hypot(a.vx, a.vz) / WALK_SPEED) * 0.35;
    // Look at the object a little downwards.
    const look = Math.atan2(1.6 - t.pos.y, Math.hypot(t.pos.x - a.x, t.pos.z - a.z) + 0.5);
    a.pose = desktopPose(
      a.yaw,
      -Math.min(0.6, look),
      a.phase,
      Math.min(1, Math.hypot(a.vx, a.vz) / 2),
      b.reach,
    );
  }

  #physics(): void {
    const dt = this.dt;
    const things = this.things;
    for (const t of things) {
      t.pos.x += t.vel.x * dt;
      t.pos.z += t.vel.z * dt;
      const friction = t.kind === 'ball' ? 0.6 : 2.5;
      const k = Math.max(0, 1 - friction * dt);
      t.vel.x *= k;
      t.vel.z *= k;
      if (Math.hypot(t.vel.x, t.vel.z) < 0.01) {
        t.vel.x = 0;
        t.vel.z = 0;
      }
      t.spin *= Math.max(0, 1 - 2 * dt);
      if (Math.abs(t.spin) < 0.01) t.spin = 0;
      const lim = ARENA - t.size;
      if (t.pos.x < -lim || t.pos.x > lim) {
        t.pos.x = Math.max(-lim, Math.min(lim, t.pos.x));
        t.vel.x = -t.vel.x * 0.6;
      }
      if (t.pos.z < -lim || t.pos.z > lim) {
        t.pos.z = Math.max(-lim, Math.min(lim, t.pos.z));
        t.vel.z = -t.vel.z * 0.6;
      }
    }
    // Pairwise contacts: separate, then exchange momentum along the normal (restitution 0.5, mass ~ size^2).
    for (let i = 0; i < things.length; i++) {
      const a = things[i];
      for (let j = i + 1; j < things.length; j++) {
        const b = things[j];
        let nx = b.pos.x - a.pos.x;
        let nz = b.pos.z - a.pos.z;
        const d = Math.hypot(nx, nz);
        const min = a.size + b.size;
        if (d >= min || d === 0) continue;
        nx /= d;
        nz /= d;
        const ma = a.size * a.size;
        const mb = b.size * b.size;
        const overlap = min - d;
        a.pos.x -= nx * overlap * (mb / (ma + mb));
        a.pos.z -= nz * overlap * (mb / (ma + mb));
        b.pos.x += nx * overlap * (ma / (ma + mb));
        b.pos.z += nz * overlap * (ma / (ma + mb));
        const rv = (b.vel.x - a.vel.x) * nx + (b.vel.z - a.vel.z) * nz;
        if (rv < 0) {
          const j2 = (-(1 + 0.5) * rv) / (1 / ma + 1 / mb);
          a.vel.x -= (j2 / ma) * nx;
          a.vel.z -= (j2 / ma) * nz;
          b.vel.x += (j2 / mb) * nx;
          b.vel.z += (j2 / mb) * nz;
          const tangent = (b.vel.x - a.vel.x) * -nz + (b.vel.z - a.vel.z) * nx;
          if (a.kind === 'box') a.spin += tangent * 0.5;
          if (b.kind === 'box') b.spin -= tangent * 0.5;
        }
      }
    }
    // Avatars are kinematic: they push objects out of their way and lend them their speed.
    for (const av of this.avatars.values()) {
      for (const t of things) {
        let nx = t.pos.x - av.x;
        let nz = t.pos.z - av.z;
        const d = Math.hypot(nx, nz);
        const min = t.size + AVATAR_RADIUS;
        if (d >= min || d === 0) continue;
        nx /= d;
        nz /= d;
        t.pos.x = av.x + nx * min;
        t.pos.z = av.z + nz * min;
        const push = av.vx * nx + av.vz * nz;
        const vn = t.vel.x * nx + t.vel.z * nz;
        const want = Math.max(0, push) * 1.15 + 0.2;
        if (vn < want) {
          t.vel.x += (want - vn) * nx;
          t.vel.z += (want - vn) * nz;
        }
        if (t.kind === 'box') t.spin += (av.vx * -nz + av.vz * nx) * 0.8;
      }
    }
    for (const t of things) {
      if (t.kind === 'ball') {
        // Rolling without slipping: angular velocity = up x v / r.
        t.rot = integrate(t.rot, { x: t.vel.z / t.size, y: 0, z: -t.vel.x / t.size }, dt);
      } else if (t.spin !== 0) {
        t.rot = integrate(t.rot, { x: 0, y: t.spin, z: 0 }, dt);
      }
    }
  }
}

/** World-space position of a pose offset. */
export function worldOf(a: AvatarState, v: Vec3): Vec3 {
  return { x: a.x + v.x, y: v.y, z: a.z + v.z };
}
