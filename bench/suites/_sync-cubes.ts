/**
 * A 3-D cube scene in the spirit of Glenn Fiedler's "901 cubes" (Networked Physics, Snapshot Compression): 900 cubes
 * dropped into piles under gravity, and a player cube driving through them, pushing them over. A small deterministic
 * rigid-body step of our own (no physics library): cubes collide as spheres of their half-edge (0.5 m) with
 * restitution, Coulomb friction at every contact (which is what sets them tumbling: friction torques the angular
 * velocity, and the orientation is integrated as a full quaternion), rolling resistance, and sleeping, so that a cube
 * at rest is exactly at rest. Same seed, same floating-point operations in the same order: the same run.
 */
import { createRng } from '@quiver/transport';

export const CUBE_HZ = 60;
const DT = 1 / CUBE_HZ;
const G = 9.81;
const R = 0.5;
/** Player cube: a kinematic body (pushes, is never pushed) of this contact radius. */
export const PLAYER_RADIUS = 1.5;
const RESTITUTION = 0.15;
const MU = 0.5;
const GROUND_MU = 0.6;
/** Per-step multiplier of angular velocity while touching the ground or another cube (rolling resistance). */
const ROLLING = 0.9;
const SLEEP_SPEED = 0.08;
const SLEEP_STEPS = 20;
/** Relative speed (m/s) at which a contact wakes a sleeping cube. */
const WAKE_SPEED = 0.3;
/** Half extent of the world in x and z (m). */
export const CUBE_WORLD = 32;
export const CUBE_HEIGHT = 16;

const GX = 2 * CUBE_WORLD;
const GY = CUBE_HEIGHT;
const GZ = 2 * CUBE_WORLD;

function cellIndex(x: number, y: number, z: number): number {
  const cx = Math.min(GX - 1, Math.max(0, Math.floor(x + CUBE_WORLD)));
  const cy = Math.min(GY - 1, Math.max(0, Math.floor(y)));
  const cz = Math.min(GZ - 1, Math.max(0, Math.floor(z + CUBE_WORLD)));
  return (cx * GY + cy) * GZ + cz;
}

export class CubeWorld {
  readonly n: number;
  readonly px: Float64Array;
  readonly py: Float64Array;
  readonly pz: Float64Array;
  readonly vx: Float64Array;
  readonly vy: Float64Array;
  readonly vz: Float64Array;
  readonly wx: Float64Array;
  readonly wy: Float64Array;
  readonly wz: Float64Array;
  /** Orientation quaternions (x, y, z, w). */
  readonly qx: Float64Array;
  readonly qy: Float64Array;
  readonly qz: Float64Array;
  readonly qw: Float64Array;
  readonly awake: Uint8Array;
  private readonly still: Uint16Array;
  /** Bodies that moved in the last step (their indices); the player (index n - 1) always moves. */
  readonly dirty: number[] = [];
  private readonly rand: () => number;
  private time = 0;
  /** Contact grid: 1 m cells over the world, bodies sorted by cell (counting sort), `cellStart` per cell. */
  private readonly cellStart = new Int32Array(GX * GY * GZ + 1);
  private readonly cellOf: Int32Array;
  private readonly sorted: Int32Array;

  constructor(seed: number, cubes = 900, piles = 9) {
    this.n = cubes + 1;
    const n = this.n;
    this.rand = createRng(seed).next;
    this.px = new Float64Array(n);
    this.py = new Float64Array(n);
    this.pz = new Float64Array(n);
    this.vx = new Float64Array(n);
    this.vy = new Float64Array(n);
    this.vz = new Float64Array(n);
    this.wx = new Float64Array(n);
    this.wy = new Float64Array(n);
    this.wz = new Float64Array(n);
    this.qx = new Float64Array(n);
    this.qy = new Float64Array(n);
    this.qz = new Float64Array(n);
    this.qw = new Float64Array(n).fill(1);
    this.awake = new Uint8Array(n).fill(1);
    this.still = new Uint16Array(n);
    this.cellOf = new Int32Array(n);
    this.sorted = new Int32Array(n);
    // Square pyramids of 6 layers (36 + 25 + 16 + 9 + 4 + 1 = 91 cubes, each layer in the hollows of the one below)
    // on a 3 x 3 grid of centres; the rest scattered over the ground. Every cube randomly turned.
    const side = Math.ceil(Math.sqrt(piles));
    let i = 0;
    for (let pile = 0; pile < piles; pile++) {
      const cx = ((pile % side) - (side - 1) / 2) * 16;
      const cz = (Math.floor(pile / side) - (side - 1) / 2) * 12;
      for (let layer = 0; layer < 6; layer++) {
        const m = 6 - layer;
        for (let a = 0; a < m && i < cubes; a++)
          for (let b = 0; b < m && i < cubes; b++, i++) {
            this.px[i] = cx + a - (m - 1) / 2 + (this.rand() - 0.5) * 0.02;
            this.pz[i] = cz + b - (m - 1) / 2 + (this.rand() - 0.5) * 0.02;
            this.py[i] = R + layer * 0.72;
            // Stacked at rest: asleep until something hits the pile (or its support goes).
            this.awake[i] = 0;
          }
      }
    }
    for (; i < cubes; i++) {
      this.px[i] = (this.rand() - 0.5) * 2 * (CUBE_WORLD - 2);
      this.pz[i] = (this.rand() - 0.5) * 2 * (CUBE_WORLD - 2);
      this.py[i] = R + this.rand() * 3;
    }
    for (let k = 0; k < cubes; k++)
      this.setEuler(k, this.rand() * Math.PI * 2, this.rand() * Math.PI * 2, this.rand() * Math.PI * 2);
    this.playerAt(0);
  }

  private setEuler(i: number, a: number, b: number, c: number): void {
    const [x, y, z, w] = quatMul(
      [Math.sin(a / 2), 0, 0, Math.cos(a / 2)],
      quatMul([0, Math.sin(b / 2), 0, Math.cos(b / 2)], [0, 0, Math.sin(c / 2), Math.cos(c / 2)]),
    );
    this.qx[i] = x;
    this.qy[i] = y;
    this.qz[i] = z;
    this.qw[i] = w;
  }

  /** The player drives a figure-eight through the piles at about 5 m/s, turning to face where it goes. */
  private playerAt(time: number): void {
    const p = this.n - 1;
    const nx = Math.sin(time * 0.12) * 22;
    const nz = Math.sin(time * 0.24) * 16;
    if (time > 0) {
      this.vx[p] = (nx - this.px[p]) / DT;
      this.vz[p] = (nz - this.pz[p]) / DT;
      this.setEuler(p, 0, Math.atan2(this.vx[p], this.vz[p]), 0);
    }
    this.px[p] = nx;
    this.py[p] = PLAYER_RADIUS;
    this.pz[p] = nz;
  }

  private buildGrid(): void {
    const { cellStart, cellOf, sorted } = this;
    cellStart.fill(0);
    for (let i = 0; i < this.n; i++) {
      const c = cellIndex(this.px[i], this.py[i], this.pz[i]);
      cellOf[i] = c;
      cellStart[c + 1]++;
    }
    for (let c = 0; c < cellStart.length - 1; c++) cellStart[c + 1] += cellStart[c];
    const fill = cellStart.slice(0, cellStart.length - 1);
    for (let i = 0; i < this.n; i++) sorted[fill[cellOf[i]]++] = i;
  }

  /** Steps without moving the player (letting dropped piles settle before a run). */
  settle(steps: number): void {
    for (let i = 0; i < steps; i++) this.step(false);
  }

  step(drive = true): void {
    const p = this.n - 1;
    if (drive) {
      this.time += DT;
      this.playerAt(this.time);
    }
    const { px, py, pz, vx, vy, vz, wx, wy, wz, awake } = this;
    const moved = new Uint8Array(this.n);
    moved[p] = drive ? 1 : 0;
    // Integrate awake cubes: gravity, position, orientation (q += 0.5 * (0, w) * q * dt, renormalised).
    for (let i = 0; i < p; i++) {
      if (!awake[i]) continue;
      vy[i] -= G * DT;
      px[i] += vx[i] * DT;
      py[i] += vy[i] * DT;
      pz[i] += vz[i] * DT;
      this.integrateRotation(i);
      moved[i] = 1;
    }
    // Contacts: a grid of 1 m cells; the player reaches further.
    this.buildGrid();
    const { cellStart, sorted } = this;
    for (let iter = 0; iter < 2; iter++)
      for (let i = 0; i < this.n; i++) {
        if (!awake[i] && i !== p) continue;
        const reach = i === p ? Math.ceil(PLAYER_RADIUS + R) : 1;
        const cx = Math.floor(px[i] + CUBE_WORLD);
        const cy = Math.floor(py[i]);
        const cz = Math.floor(pz[i] + CUBE_WORLD);
        for (let x = Math.max(0, cx - reach); x <= Math.min(GX - 1, cx + reach); x++)
          for (let y = Math.max(0, cy - reach); y <= Math.min(GY - 1, cy + reach); y++) {
            const row = (x * GY + y) * GZ;
            const from = cellStart[row + Math.max(0, cz - reach)];
            const to = cellStart[row + Math.min(GZ - 1, cz + reach) + 1];
            for (let k = from; k < to; k++) {
              const j = sorted[k];
              if (j === i || j === p) continue;
              // Each awake pair once (the lower index handles it); sleeping cubes are handled by the awake one.
              if (awake[j] && i !== p && j < i) continue;
              if (this.contact(i, j, i === p)) moved[j] = 1;
            }
          }
      }
    // Ground, friction, sleep.
    this.dirty.length = 0;
    if (moved[p]) this.dirty.push(p);
    for (let i = 0; i < p; i++) {
      if (!awake[i]) continue;
      if (py[i] < R) {
        py[i] = R;
        if (vy[i] < 0) vy[i] = -vy[i] * RESTITUTION;
        if (vy[i] < 0.3) vy[i] = 0;
        this.friction(i, 0, 1, 0, GROUND_MU * G * DT, true);
        wx[i] *= ROLLING;
        wy[i] *= ROLLING;
        wz[i] *= ROLLING;
      }
      px[i] = Math.max(-CUBE_WORLD + R, Math.min(CUBE_WORLD - R, px[i]));
      pz[i] = Math.max(-CUBE_WORLD + R, Math.min(CUBE_WORLD - R, pz[i]));
      const speed = Math.hypot(vx[i], vy[i], vz[i]) + R * Math.hypot(wx[i], wy[i], wz[i]);
      if (speed < SLEEP_SPEED) {
        if (++this.still[i] >= SLEEP_STEPS) {
          awake[i] = 0;
          vx[i] = vy[i] = vz[i] = wx[i] = wy[i] = wz[i] = 0;
        }
      } else this.still[i] = 0;
      if (moved[i]) this.dirty.push(i);
    }
    for (let i = 0; i < p; i++) if (moved[i] && !awake[i]) this.dirty.push(i);
  }

  private integrateRotation(i: number): void {
    const ax = this.wx[i];
    const ay = this.wy[i];
    const az = this.wz[i];
    if (ax === 0 && ay === 0 && az === 0) return;
    const { qx, qy, qz, qw } = this;
    const x = qx[i];
    const y = qy[i];
    const z = qz[i];
    const w = qw[i];
    const h = 0.5 * DT;
    const nx = x + h * (ax * w + ay * z - az * y);
    const ny = y + h * (ay * w + az * x - ax * z);
    const nz = z + h * (az * w + ax * y - ay * x);
    const nw = w - h * (ax * x + ay * y + az * z);
    const len = Math.hypot(nx, ny, nz, nw);
    qx[i] = nx / len;
    qy[i] = ny / len;
    qz[i] = nz / len;
    qw[i] = nw / len;
  }

  /**
   * Resolves the contact between i and j (i may be the kinematic player). Returns whether j was touched. Unit masses;
   * a sleeping cube hit hard enough wakes up, one hit gently stays put and acts as a fixed obstacle.
   */
  private contact(i: number, j: number, player: boolean): boolean {
    const { px, py, pz, vx, vy, vz, awake } = this;
    const ex = px[j] - px[i];
    const ey = py[j] - py[i];
    const ez = pz[j] - pz[i];
    const minD = player ? PLAYER_RADIUS + R : 2 * R;
    const d2 = ex * ex + ey * ey + ez * ez;
    if (d2 >= minD * minD || d2 === 0) return false;
    const d = Math.sqrt(d2);
    const nx = ex / d;
    const ny = ey / d;
    const nz = ez / d;
    const rel = (vx[i] - vx[j]) * nx + (vy[i] - vy[j]) * ny + (vz[i] - vz[j]) * nz;
    // A sleeping cube resting on a moving one wakes (and falls when its support goes); one hit gently stays put.
    if (!awake[j] && !player && rel < WAKE_SPEED && py[j] <= py[i] + 0.2) {
      // A resting cube is an obstacle for a gently moving one: only i is pushed back.
      if (awake[i]) this.separate(i, -nx, -ny, -nz, minD - d, rel, false);
      return false;
    }
    if (!awake[j]) {
      awake[j] = 1;
      this.still[j] = 0;
    }
    if (player) {
      this.separate(j, nx, ny, nz, minD - d, rel, true);
      return true;
    }
    const overlap = (minD - d) / 2;
    px[i] -= nx * overlap;
    py[i] -= ny * overlap;
    pz[i] -= nz * overlap;
    px[j] += nx * overlap;
    py[j] += ny * overlap;
    pz[j] += nz * overlap;
    if (rel > 0) {
      const jn = ((1 + RESTITUTION) * rel) / 2;
      vx[i] -= nx * jn;
      vy[i] -= ny * jn;
      vz[i] -= nz * jn;
      vx[j] += nx * jn;
      vy[j] += ny * jn;
      vz[j] += nz * jn;
      this.friction(i, -nx, -ny, -nz, MU * jn, false);
      this.friction(j, nx, ny, nz, MU * jn, false);
    }
    return true;
  }

  /** Moves body k by `depth` along n and removes its approach speed `rel` (the other side does not move). */
  private separate(
    k: number,
    nx: number,
    ny: number,
    nz: number,
    depth: number,
    rel: number,
    hard: boolean,
  ): void {
    const { px, py, pz, vx, vy, vz } = this;
    px[k] += nx * depth;
    py[k] += ny * depth;
    pz[k] += nz * depth;
    if (rel > 0) {
      const jn = (1 + RESTITUTION) * rel;
      vx[k] += nx * jn;
      vy[k] += ny * jn;
      vz[k] += nz * jn;
      this.friction(k, nx, ny, nz, MU * jn, false);
      if (hard) {
        // The player's bumper throws cubes up a little and sets them spinning (seeded).
        vy[k] += 0.5 * rel;
        this.wx[k] += (this.rand() - 0.5) * rel * 2;
        this.wz[k] += (this.rand() - 0.5) * rel * 2;
      }
    }
  }

  /**
   * Coulomb friction at the contact point of body k whose surface normal (towards the body's centre) is n: the
   * tangential velocity of the contact point is reduced by an impulse of at most `maxImpulse`, which also torques the
   * body (solid sphere: I = 2/5 m r^2), so sliding turns into tumbling.
   */
  private friction(k: number, nx: number, ny: number, nz: number, maxImpulse: number, ground: boolean): void {
    const { vx, vy, vz, wx, wy, wz } = this;
    // Contact point relative to the centre: r = -R n.
    const rx = -R * nx;
    const ry = -R * ny;
    const rz = -R * nz;
    // Velocity of the contact point: v + w x r.
    const cx = vx[k] + (wy[k] * rz - wz[k] * ry);
    const cy = vy[k] + (wz[k] * rx - wx[k] * rz);
    const cz = vz[k] + (wx[k] * ry - wy[k] * rx);
    const vn = cx * nx + cy * ny + cz * nz;
    const tx = cx - vn * nx;
    const ty = cy - vn * ny;
    const tz = cz - vn * nz;
    const vt = Math.hypot(tx, ty, tz);
    if (vt < 1e-9) return;
    // Impulse that stops the slip (effective mass 1 / (1 + R^2 / I) = 2/7 for a solid sphere of unit mass).
    const stop = (2 / 7) * vt;
    const j = Math.min(stop, maxImpulse) * (ground ? 1 : 0.5);
    const ux = -tx / vt;
    const uy = -ty / vt;
    const uz = -tz / vt;
    vx[k] += ux * j;
    vy[k] += uy * j;
    vz[k] += uz * j;
    // dw = I^-1 (r x J), I = 0.4 R^2.
    const inv = 1 / (0.4 * R * R);
    wx[k] += inv * (ry * uz - rz * uy) * j;
    wy[k] += inv * (rz * ux - rx * uz) * j;
    wz[k] += inv * (rx * uy - ry * ux) * j;
  }
}

export function quatMul(a: readonly number[], b: readonly number[]): [number, number, number, number] {
  const [ax, ay, az, aw] = a;
  const [bx, by, bz, bw] = b;
  return [
    aw * bx + ax * bw + ay * bz - az * by,
    aw * by - ax * bz + ay * bw + az * bx,
    aw * bz + ax * by - ay * bx + az * bw,
    aw * bw - ax * bx - ay * by - az * bz,
  ];
}
