/**
 * The sync bench's scenes, recorded once per seed as traces (per tick: which entities changed, and their values), so
 * that every encoder and every link setting replays exactly the same motion:
 * - arena: 64 players on a 128 m plane, steering between targets at up to 6 m/s, pausing, taking hits;
 * - crowd: 500 NPCs on a 256 m plane, each walking about 10 % of the time (walks of ~2 s between ~18 s idles);
 * - xr: a 4-user room, head and both hands per user (12 tracked poses), all moving every tick at 60 Hz, with
 *   0.1 mm tracking jitter;
 * - cubes: the 3-D cube scene of `_sync-cubes.ts` (901 bodies, full quaternions), after its piles have settled.
 */
import { createRng } from '@quiver/transport';
import { CUBE_HEIGHT, CUBE_WORLD, CubeWorld } from './_sync-cubes.ts';

export const HZ = 60;
const DT = 1 / HZ;

export interface Trace {
  /** Entities. */
  n: number;
  /** Numbers per entity. */
  k: number;
  initial: Float64Array;
  /** Per tick: the entities whose values changed, and those values (k per entity). */
  frames: { idx: Int32Array; vals: Float64Array }[];
  /** Share of entities moving per tick. */
  moving: number[];
}

class Recorder {
  readonly frames: Trace['frames'] = [];
  readonly moving: number[] = [];
  constructor(
    readonly n: number,
    readonly k: number,
  ) {}
  frame(idx: number[], get: (i: number, out: Float64Array, o: number) => void, moving: number): void {
    const vals = new Float64Array(idx.length * this.k);
    for (let j = 0; j < idx.length; j++) get(idx[j], vals, j * this.k);
    this.frames.push({ idx: Int32Array.from(idx), vals });
    this.moving.push(moving / this.n);
  }
}

const wrapAngle = (a: number) => Math.atan2(Math.sin(a), Math.cos(a));

/** 64 players: x, z, yaw, hp. */
export function arenaTrace(seed: number, ticks: number): Trace {
  const n = 64;
  const rand = createRng(seed).next;
  const half = 60;
  const x = new Float64Array(n);
  const z = new Float64Array(n);
  const heading = new Float64Array(n);
  const speed = new Float64Array(n);
  const tx = new Float64Array(n);
  const tz = new Float64Array(n);
  const idle = new Float64Array(n);
  const hp = new Float64Array(n).fill(100);
  const target = (i: number) => {
    tx[i] = (rand() - 0.5) * 2 * half;
    tz[i] = (rand() - 0.5) * 2 * half;
  };
  for (let i = 0; i < n; i++) {
    x[i] = (rand() - 0.5) * 2 * half;
    z[i] = (rand() - 0.5) * 2 * half;
    heading[i] = rand() * 2 * Math.PI - Math.PI;
    target(i);
  }
  const get = (i: number, out: Float64Array, o: number) => {
    out[o] = x[i];
    out[o + 1] = z[i];
    out[o + 2] = heading[i];
    out[o + 3] = hp[i];
  };
  const initial = new Float64Array(n * 4);
  for (let i = 0; i < n; i++) get(i, initial, i * 4);
  const rec = new Recorder(n, 4);
  for (let t = 0; t < ticks; t++) {
    const changed: number[] = [];
    let moving = 0;
    for (let i = 0; i < n; i++) {
      let did = false;
      if (rand() < 0.003) {
        // A hit; at 0 the player respawns somewhere else.
        hp[i] -= 10 + Math.floor(rand() * 20);
        if (hp[i] <= 0) {
          hp[i] = 100;
          x[i] = (rand() - 0.5) * 2 * half;
          z[i] = (rand() - 0.5) * 2 * half;
          speed[i] = 0;
        }
        did = true;
      }
      if (idle[i] > 0) idle[i] -= DT;
      else {
        const dx = tx[i] - x[i];
        const dz = tz[i] - z[i];
        if (Math.hypot(dx, dz) < 1.5) {
          target(i);
          if (rand() < 0.3) idle[i] = 0.5 + rand() * 2.5;
          speed[i] = 0;
        } else {
          // Turn towards the target at up to 4 rad/s, run at up to 6 m/s (accelerating at 20 m/s^2).
          const want = Math.atan2(dx, dz);
          const turn = wrapAngle(want - heading[i]);
          heading[i] = wrapAngle(heading[i] + Math.max(-4 * DT, Math.min(4 * DT, turn)));
          speed[i] = Math.min(6, speed[i] + 20 * DT);
          x[i] = Math.max(-64, Math.min(64, x[i] + Math.sin(heading[i]) * speed[i] * DT));
          z[i] = Math.max(-64, Math.min(64, z[i] + Math.cos(heading[i]) * speed[i] * DT));
          did = true;
          moving++;
        }
      }
      if (did) changed.push(i);
    }
    rec.frame(changed, get, moving);
  }
  return { n, k: 4, initial, frames: rec.frames, moving: rec.moving };
}

/** 500 NPCs: x, z, yaw, walking (0/1). */
export function crowdTrace(seed: number, ticks: number): Trace {
  const n = 500;
  const rand = createRng(seed).next;
  const half = 120;
  const x = new Float64Array(n);
  const z = new Float64Array(n);
  const heading = new Float64Array(n);
  const turn = new Float64Array(n);
  const walking = new Uint8Array(n);
  const until = new Float64Array(n);
  // Exponential durations: walks of 2 s on average between idles of 18 s: 10 % walking.
  const duration = (mean: number) => -Math.log(1 - rand()) * mean;
  for (let i = 0; i < n; i++) {
    x[i] = (rand() - 0.5) * 2 * half;
    z[i] = (rand() - 0.5) * 2 * half;
    heading[i] = rand() * 2 * Math.PI - Math.PI;
    walking[i] = rand() < 0.1 ? 1 : 0;
    until[i] = duration(walking[i] ? 2 : 18);
  }
  const get = (i: number, out: Float64Array, o: number) => {
    out[o] = x[i];
    out[o + 1] = z[i];
    out[o + 2] = heading[i];
    out[o + 3] = walking[i];
  };
  const initial = new Float64Array(n * 4);
  for (let i = 0; i < n; i++) get(i, initial, i * 4);
  const rec = new Recorder(n, 4);
  let time = 0;
  for (let t = 0; t < ticks; t++) {
    time += DT;
    const changed: number[] = [];
    let moving = 0;
    for (let i = 0; i < n; i++) {
      let did = false;
      if (time >= until[i]) {
        walking[i] ^= 1;
        until[i] = time + duration(walking[i] ? 2 : 18);
        if (walking[i]) {
          heading[i] = wrapAngle(heading[i] + (rand() - 0.5) * 2);
          turn[i] = (rand() - 0.5) * 0.6;
        }
        did = true;
      }
      if (walking[i]) {
        heading[i] = wrapAngle(heading[i] + turn[i] * DT);
        x[i] = Math.max(-128, Math.min(128, x[i] + Math.sin(heading[i]) * 1.4 * DT));
        z[i] = Math.max(-128, Math.min(128, z[i] + Math.cos(heading[i]) * 1.4 * DT));
        did = true;
        moving++;
      }
      if (did) changed.push(i);
    }
    rec.frame(changed, get, moving);
  }
  return { n, k: 4, initial, frames: rec.frames, moving: rec.moving };
}

/** 4 users x (head, left hand, right hand): x, y, z, qx, qy, qz, qw. */
export function xrTrace(seed: number, ticks: number): Trace {
  const users = 4;
  const n = users * 3;
  const rand = createRng(seed).next;
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const JITTER = 0.0001;
  // Per user: a slowly wandering standing point and gaze, gesture frequencies and phases for the hands.
  const u = Array.from({ length: users }, (_, i) => ({
    cx: Math.cos((i * Math.PI) / 2) * 1.5,
    cz: Math.sin((i * Math.PI) / 2) * 1.5,
    yaw: rand() * 2 * Math.PI,
    yawRate: 0,
    f: [0.3 + rand() * 1.2, 0.3 + rand() * 1.2, 0.2 + rand() * 0.8],
    ph: [rand() * 6, rand() * 6, rand() * 6, rand() * 6],
    amp: [0.1 + rand() * 0.2, 0.1 + rand() * 0.2],
  }));
  const pose = new Float64Array(n * 7);
  let time = 0;
  const quatYawPitchRoll = (yaw: number, pitch: number, roll: number, out: Float64Array, o: number) => {
    const cy = Math.cos(yaw / 2);
    const sy = Math.sin(yaw / 2);
    const cp = Math.cos(pitch / 2);
    const sp = Math.sin(pitch / 2);
    const cr = Math.cos(roll / 2);
    const sr = Math.sin(roll / 2);
    out[o + 3] = cy * sp * cr + sy * cp * sr;
    out[o + 4] = sy * cp * cr - cy * sp * sr;
    out[o + 5] = cy * cp * sr - sy * sp * cr;
    out[o + 6] = cy * cp * cr + sy * sp * sr;
  };
  const update = () => {
    for (let i = 0; i < users; i++) {
      const s = u[i];
      s.yawRate = Math.max(-1.5, Math.min(1.5, s.yawRate * 0.98 + gauss() * 0.08));
      s.yaw += s.yawRate * DT;
      s.cx = Math.max(-2, Math.min(2, s.cx + Math.sin(time * 0.2 + i) * 0.3 * DT));
      s.cz = Math.max(-2, Math.min(2, s.cz + Math.cos(time * 0.17 + i) * 0.3 * DT));
      const h = i * 3 * 7;
      pose[h] = s.cx + Math.sin(time * 1.1 + i) * 0.03 + gauss() * JITTER;
      pose[h + 1] = 1.65 + Math.sin(time * 0.3 + i) * 0.02 + gauss() * JITTER;
      pose[h + 2] = s.cz + Math.cos(time * 0.9 + i) * 0.03 + gauss() * JITTER;
      quatYawPitchRoll(
        s.yaw,
        Math.sin(time * s.f[2] + s.ph[2]) * 0.3,
        Math.sin(time * 0.4 + i) * 0.05,
        pose,
        h,
      );
      for (let hand = 0; hand < 2; hand++) {
        const o = h + (hand + 1) * 7;
        const side = hand === 0 ? -1 : 1;
        const g = time * s.f[hand] * 2 * Math.PI + s.ph[hand];
        const lx = side * 0.25 + Math.sin(g) * s.amp[hand];
        const ly = -0.45 + Math.sin(g * 0.7 + 1) * s.amp[hand];
        const lz = 0.35 + Math.cos(g) * s.amp[hand] * 0.6;
        const c = Math.cos(s.yaw);
        const sn = Math.sin(s.yaw);
        pose[o] = pose[h] + c * lx + sn * lz + gauss() * JITTER;
        pose[o + 1] = pose[h + 1] + ly + gauss() * JITTER;
        pose[o + 2] = pose[h + 2] - sn * lx + c * lz + gauss() * JITTER;
        quatYawPitchRoll(
          s.yaw + Math.sin(g) * 0.6,
          Math.cos(g * 0.8) * 0.7,
          side * 0.4 + Math.sin(g * 1.3) * 0.5,
          pose,
          o,
        );
      }
    }
  };
  update();
  const initial = Float64Array.from(pose);
  const rec = new Recorder(n, 7);
  const all = Array.from({ length: n }, (_, i) => i);
  for (let t = 0; t < ticks; t++) {
    time += DT;
    update();
    rec.frame(all, (i, out, o) => out.set(pose.subarray(i * 7, i * 7 + 7), o), n);
  }
  return { n, k: 7, initial, frames: rec.frames, moving: rec.moving };
}

/** The cube scene after `settleSteps` of settling: x, y, z, qx, qy, qz, qw per body (the player is the last). */
export function cubeTrace(seed: number, ticks: number, cubes = 900, settleSteps = 600): Trace {
  const w = new CubeWorld(seed, cubes);
  w.settle(settleSteps);
  const n = w.n;
  const get = (i: number, out: Float64Array, o: number) => {
    out[o] = w.px[i];
    out[o + 1] = Math.min(w.py[i], CUBE_HEIGHT);
    out[o + 2] = w.pz[i];
    out[o + 3] = w.qx[i];
    out[o + 4] = w.qy[i];
    out[o + 5] = w.qz[i];
    out[o + 6] = w.qw[i];
  };
  const initial = new Float64Array(n * 7);
  for (let i = 0; i < n; i++) get(i, initial, i * 7);
  const rec = new Recorder(n, 7);
  for (let t = 0; t < ticks; t++) {
    w.step();
    rec.frame(w.dirty, get, w.dirty.length);
  }
  return { n, k: 7, initial, frames: rec.frames, moving: rec.moving };
}

export { CUBE_WORLD, CUBE_HEIGHT };
