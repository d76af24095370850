import { defineInputCodec, defineSimulation, type InputOf } from '../src/index.js';

/** A walking player on a floor with walls and pillars; every stored number is rounded to f32. */
export interface PlayerState {
  x: number;
  z: number;
  vx: number;
  vz: number;
  yaw: number;
}

export const playerCodec = defineInputCodec({ moveX: 'i8', moveZ: 'i8', yaw: 'f32', sprint: 'bool' });
export type PlayerInput = InputOf<{ moveX: 'i8'; moveZ: 'i8'; yaw: 'f32'; sprint: 'bool' }>;

const f = Math.fround;
const HALF = 20;
const PILLARS = [
  { x: 5, z: 5, r: 1.5 },
  { x: -6, z: 3, r: 1 },
  { x: 2, z: -7, r: 2 },
];

export const playerSim = defineSimulation<PlayerState, PlayerInput>({
  tickRate: 60,
  step(s, input, dt) {
    const c = Math.cos(input.yaw);
    const sn = Math.sin(input.yaw);
    const ix = input.moveX / 127;
    const iz = input.moveZ / 127;
    const speed = input.sprint ? 7 : 4;
    const wantX = (ix * c - iz * sn) * speed;
    const wantZ = (ix * sn + iz * c) * speed;
    // Accelerate towards the wanted velocity (first-order response, 10/s).
    const k = Math.min(1, 10 * dt);
    let vx = f(s.vx + (wantX - s.vx) * k);
    let vz = f(s.vz + (wantZ - s.vz) * k);
    let x = f(s.x + vx * dt);
    let z = f(s.z + vz * dt);
    if (x > HALF || x < -HALF) {
      x = f(Math.max(-HALF, Math.min(HALF, x)));
      vx = 0;
    }
    if (z > HALF || z < -HALF) {
      z = f(Math.max(-HALF, Math.min(HALF, z)));
      vz = 0;
    }
    for (const p of PILLARS) {
      const dx = x - p.x;
      const dz = z - p.z;
      const d = Math.hypot(dx, dz);
      if (d < p.r && d > 0) {
        x = f(p.x + (dx / d) * p.r);
        z = f(p.z + (dz / d) * p.r);
        const vn = (vx * dx + vz * dz) / d;
        if (vn < 0) {
          vx = f(vx - (vn * dx) / d);
          vz = f(vz - (vn * dz) / d);
        }
      }
    }
    return { x, z, vx, vz, yaw: f(input.yaw) };
  },
});

export const neutralInput: PlayerInput = { moveX: 0, moveZ: 0, yaw: 0, sprint: false };

/** A seeded input stream: held for a few ticks at a time, like a person on a gamepad. */
export function inputStream(random: () => number): () => PlayerInput {
  let current = neutralInput;
  let hold = 0;
  return () => {
    if (hold-- <= 0) {
      hold = Math.floor(random() * 30);
      current = {
        moveX: Math.round((random() * 2 - 1) * 127),
        moveZ: Math.round((random() * 2 - 1) * 127),
        yaw: random() * Math.PI * 2,
        sprint: random() < 0.3,
      };
    }
    return current;
  };
}

/** Bitwise equality of the numeric fields (distinguishes -0 and 0, unlike ===). */
export function sameBits(a: PlayerState, b: PlayerState): boolean {
  const keys = ['x', 'z', 'vx', 'vz', 'yaw'] as const;
  const fa = new Float64Array(keys.map((k) => a[k]));
  const fb = new Float64Array(keys.map((k) => b[k]));
  const ua = new Uint8Array(fa.buffer);
  const ub = new Uint8Array(fb.buffer);
  return ua.every((v, i) => v === ub[i]);
}
