/**
 * What the demo's server and browser share: the replicated schema, the messages and the player simulation.
 *
 * The player simulation is the one piece both ends run (the server authoritatively, the browser to predict its own
 * avatar), so it only uses + - * / and rounding, and rounds positions to the wire's quantisation step: the
 * predicted state for an input then equals, bit for bit, what the server sends back for it, and a correction only
 * happens when the server really disagreed (a lost input, a reset).
 */
import { defineInputCodec, defineSimulation, type InputOf } from '@quiver/predict';
import { defineMessage } from '@quiver/session';
import { message, request } from '@quiver/rooms/client';
import { defineComponent, defineSchema, t } from '@quiver/sync';

/** Half the side of the square arena (metres). */
export const ARENA = 10;
/** Server simulation and snapshot rate (Hz). */
export const TICK_RATE = 30;
export const MAX_BOTS = 32;
/** Walking speed of avatars (m/s). */
export const WALK_SPEED = 3;
/** Radius of an avatar's body for collisions (m). */
export const AVATAR_RADIUS = 0.3;
/** Quantisation step of positions on the wire (m), a power of two so that quantised values are exact doubles. */
export const POS_STEP = 1 / 512;
/** How far a hand or head may be from its avatar's origin (m); farther poses are clamped by the server. */
export const MAX_REACH = 2.5;

const worldVec = { min: -32, max: 32, precision: POS_STEP };

export const Body = defineComponent({
  pos: t.vec3(worldVec),
  rot: t.quat({ bits: 10 }),
});
export const Shape = defineComponent({
  kind: t.enum(['ball', 'box', 'avatar']),
  /** Radius of a ball, half the side of a box (m). */
  size: t.float({ min: 0, max: 2, precision: 1 / 128 }),
  /** Index into {@link PALETTE}. */
  color: t.int({ min: 0, max: 15 }),
});
const poseVec = { min: -32, max: 32, precision: 1 / 256 };
export const Avatar = defineComponent({
  head: t.vec3(poseVec),
  headRot: t.quat({ bits: 9 }),
  left: t.vec3(poseVec),
  leftRot: t.quat({ bits: 8 }),
  right: t.vec3(poseVec),
  rightRot: t.quat({ bits: 8 }),
  name: t.string({ maxBytes: 24 }),
  bot: t.bool(),
  /** The player's connection dropped; the server keeps the avatar while the session may still resume. */
  away: t.bool(),
  /** The last input of the owner the server applied: the ack its prediction reconciles against. */
  seq: t.int({ min: 0, max: 0xffffffff, ownerOnly: true }),
});

export const schema = defineSchema({ body: Body, shape: Shape, avatar: Avatar }, { maxEntities: 512 });

export const PALETTE = [
  0xef476f, 0xffd166, 0x06d6a0, 0x118ab2, 0xf78c6b, 0x8338ec, 0x3a86ff, 0xfb5607, 0x80ed99, 0xff006e,
  0xc0c0c0, 0x4cc9f0, 0xf15bb5, 0x9b5de5, 0x00bbf9, 0xfee440,
];

// --- Messages -------------------------------------------------------------------------------------------------

const isObject = (p: unknown): p is Record<string, unknown> => typeof p === 'object' && p !== null;
const isBytes = (v: unknown, max: number): v is Uint8Array => v instanceof Uint8Array && v.byteLength <= max;
/** Head, left hand, right hand: position (3) + orientation quaternion (4) each, relative to the avatar origin. */
export const POSE_LENGTH = 21;

/** Client -> server, once per client tick on datagrams: the sync ack, the redundant input packet, the XR pose. */
export interface ClientFrame {
  /** `SyncClient.createAck()` (4 bytes), absent before the first snapshot. */
  a?: Uint8Array;
  /** `InputSender.packet()`. */
  i?: Uint8Array;
  /** {@link POSE_LENGTH} numbers. */
  p?: number[];
}
export const Frame = defineMessage<ClientFrame>('frame', {
  channel: 'unreliable',
  validate: (p): p is ClientFrame =>
    isObject(p) &&
    (p.a === undefined || isBytes(p.a, 64)) &&
    (p.i === undefined || isBytes(p.i, 2048)) &&
    (p.p === undefined ||
      (Array.isArray(p.p) &&
        p.p.length === POSE_LENGTH &&
        p.p.every((n) => typeof n === 'number' && Number.isFinite(n)))),
});

/** Server -> client, every tick on datagrams: a `SyncServer.encodeFor()` packet. */
export const Snapshot = defineMessage<Uint8Array>('snap', { channel: 'unreliable' });

export interface WelcomeInfo {
  /** The arena room the page joined, and how many players it holds. */
  roomId: string;
  clients: number;
  /** The client's own avatar entity. */
  entity: number;
  tickRate: number;
  arena: number;
  bots: number;
  /** Where the avatar starts (the predictor's initial state). */
  x: number;
  z: number;
}
/** Client -> room after every join (and every seat taken back): its avatar and the world's parameters. */
export const Hello = request<Record<string, never>, WelcomeInfo>('hello');
/** Room -> everyone, when a player joined or left. */
export const RoomInfo = message<{ roomId: string; clients: number }>('room-info');
/** What the page matchmakes with (`joinOrCreate('arena', options)`). */
export interface ArenaOptions {
  name?: string;
}

/** Client -> server: how many bots the server should run (clamped to 0..{@link MAX_BOTS}). */
export const SetBots = defineMessage<{ count: number }>('set-bots', {
  validate: (p): p is { count: number } =>
    isObject(p) &&
    typeof p.count === 'number' &&
    Number.isInteger(p.count) &&
    p.count >= 0 &&
    p.count <= MAX_BOTS,
});
/** Server -> everyone, when the bot count changed. */
export const BotCount = defineMessage<{ count: number }>('bot-count');

export const messages = [Frame, Snapshot, SetBots, BotCount];

// --- Player simulation ------------------------------------------------------------------------------------------

/** Movement direction in world axes scaled to -127..127 (unit length = 127), and the view yaw for display. */
export const inputCodec = defineInputCodec({ mx: 'i8', mz: 'i8', yaw: 'i16' });
export type PlayerInput = InputOf<{ mx: 'i8'; mz: 'i8'; yaw: 'i16' }>;
export const NEUTRAL_INPUT: PlayerInput = { mx: 0, mz: 0, yaw: 0 };

export interface PlayerState {
  x: number;
  z: number;
}

export const quantisePos = (v: number): number => Math.round(v / POS_STEP) * POS_STEP;
const LIMIT = ARENA - AVATAR_RADIUS;

export const playerSim = defineSimulation<PlayerState, PlayerInput>({
  tickRate: TICK_RATE,
  step(state, input, dt) {
    let mx = input.mx / 127;
    let mz = input.mz / 127;
    const len2 = mx * mx + mz * mz;
    if (len2 > 1) {
      const len = Math.sqrt(len2);
      mx /= len;
      mz /= len;
    }
    const x = Math.min(LIMIT, Math.max(-LIMIT, state.x + mx * WALK_SPEED * dt));
    const z = Math.min(LIMIT, Math.max(-LIMIT, state.z + mz * WALK_SPEED * dt));
    return { x: quantisePos(x), z: quantisePos(z) };
  },
});

/** Yaw in radians from the input's i16. */
export const yawFromInput = (yaw: number): number => (yaw / 32768) * Math.PI;
export const yawToInput = (rad: number): number => {
  let a = rad % (2 * Math.PI);
  if (a > Math.PI) a -= 2 * Math.PI;
  if (a < -Math.PI) a += 2 * Math.PI;
  return Math.max(-32768, Math.min(32767, Math.round((a / Math.PI) * 32768)));
};

export interface Vec3 {
  x: number;
  y: number;
  z: number;
}
export interface Quat {
  x: number;
  y: number;
  z: number;
  w: number;
}
export interface Pose {
  head: Vec3;
  headRot: Quat;
  left: Vec3;
  leftRot: Quat;
  right: Vec3;
  rightRot: Quat;
}

export function encodePose(p: Pose): number[] {
  const out: number[] = [];
  for (const [v, q] of [
    [p.head, p.headRot],
    [p.left, p.leftRot],
    [p.right, p.rightRot],
  ] as [Vec3, Quat][])
    out.push(v.x, v.y, v.z, q.x, q.y, q.z, q.w);
  return out;
}

export function decodePose(a: readonly number[]): Pose {
  const v = (i: number): Vec3 => ({ x: a[i], y: a[i + 1], z: a[i + 2] });
  const q = (i: number): Quat => ({ x: a[i], y: a[i + 1], z: a[i + 2], w: a[i + 3] });
  return { head: v(0), headRot: q(3), left: v(7), leftRot: q(10), right: v(14), rightRot: q(17) };
}

/** Rotation about the vertical axis (three.js convention: yaw 0 looks down -z). */
export function yawQuat(yaw: number, pitch = 0): Quat {
  const cy = Math.cos(yaw / 2);
  const sy = Math.sin(yaw / 2);
  const cp = Math.cos(pitch / 2);
  const sp = Math.sin(pitch / 2);
  // q = yaw(Y) * pitch(X)
  return { x: cy * sp, y: sy * cp, z: -sy * sp, w: cy * cp };
}

/**
 * A desktop avatar's pose (no tracked hands): head at eye height looking along yaw/pitch, hands swinging with the
 * walk (`phase`, radians) or reaching forward when `reach` is 1. Offsets from the avatar origin, world axes.
 */
export function desktopPose(yaw: number, pitch: number, phase: number, walking: number, reach: number): Pose {
  const fx = -Math.sin(yaw);
  const fz = -Math.cos(yaw);
  const rx = Math.cos(yaw);
  const rz = -Math.sin(yaw);
  const swing = Math.sin(phase) * 0.22 * walking;
  const bob = Math.abs(Math.sin(phase)) * 0.03 * walking;
  const hand = (side: number, s: number): Vec3 => {
    const fwd = 0.12 + s * (1 - reach) + 0.38 * reach;
    const up = 0.95 + 0.2 * reach + Math.abs(s) * 0.1;
    const lat = side * (0.28 - 0.08 * reach);
    return { x: fx * fwd + rx * lat, y: up, z: fz * fwd + rz * lat };
  };
  const hq = yawQuat(yaw, -0.3 * reach);
  return {
    head: { x: 0, y: 1.62 + bob, z: 0 },
    headRot: yawQuat(yaw, pitch),
    left: hand(-1, swing),
    leftRot: hq,
    right: hand(1, -swing),
    rightRot: hq,
  };
}
