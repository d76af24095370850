/**
 * `@quiver/sync` → `SnapshotFeed` → `InterpolationBuffer`: real sync snapshots (quantised, bit-packed, decoded by a
 * SyncClient) drive the interpolation of remote entities. This is the code of the sync README's client example.
 */
import { defineComponent, defineSchema, type EntityValues, SyncClient, SyncServer, t } from '@quiver/sync';
import { describe, expect, it } from 'vitest';
import {
  distance,
  InterpolationBuffer,
  quatAngle,
  quatFromAxisAngle,
  SnapshotFeed,
  type Vec3,
} from '../src/index.js';

const Transform = defineComponent({
  pos: t.vec3({ min: -512, max: 512, precision: 1 / 512 }),
  rot: t.quat({ bits: 12 }),
});
const Score = defineComponent({ points: t.int({ min: 0, max: 1000 }) });
const schema = defineSchema({ transform: Transform, score: Score }, { maxEntities: 64 });
type Values = EntityValues<typeof schema.components>;

const TICK_RATE = 60;
const TICK_MS = 1000 / TICK_RATE;

/** Ground truth of entity k at server time `ms`: a smooth circle, yaw following the heading. */
function truth(k: number, ms: number): { position: Vec3; yaw: number } {
  const a = (ms / 1000) * (0.8 + 0.2 * k) + k;
  return { position: { x: 10 * Math.cos(a) + k, y: 1, z: 10 * Math.sin(a) }, yaw: a };
}

describe('SnapshotFeed: sync snapshots into the interpolation buffer', () => {
  it('interpolates decoded sync snapshots on the server timeline, skipping entities without a pose', () => {
    const server = new SyncServer(schema);
    server.addClient('me');
    const client = new SyncClient(schema);
    const movers = [0, 1, 2].map(() => server.spawn({}));
    const scoreOnly = server.spawn({ score: { points: 7 } });

    // The README example.
    const interpolator = new InterpolationBuffer();
    const feed = new SnapshotFeed<Values>(interpolator, {
      tickRate: TICK_RATE,
      pose: (v) => v.transform && { position: v.transform.pos, rotation: v.transform.rot },
    });
    let localNow = 0;
    client.on('snapshot', (snap) => feed.push(snap, localNow));

    // Transit: 40 ms plus a repeatable jitter pattern of 0..12 ms; the local clock is offset by 5 s.
    const LOCAL_OFFSET = 5000;
    const inFlight: { at: number; bytes: Uint8Array }[] = [];
    let maxPosErr = 0;
    let maxRotErr = 0;
    let frames = 0;
    for (let tick = 1; tick <= 600; tick++) {
      for (const [k, id] of movers.entries()) {
        const p = truth(k, tick * TICK_MS);
        server.set(id, 'transform', { pos: p.position, rot: quatFromAxisAngle({ x: 0, y: 1, z: 0 }, p.yaw) });
      }
      expect(server.tick()).toBe(tick);
      inFlight.push({
        at: tick * TICK_MS + LOCAL_OFFSET + 40 + ((tick * 7) % 13),
        bytes: server.encodeFor('me'),
      });
      // One render frame per tick, at the local time the tick ends.
      localNow = tick * TICK_MS + LOCAL_OFFSET;
      inFlight.sort((a, b) => a.at - b.at);
      while (inFlight.length && inFlight[0].at <= localNow) {
        client.receive(inFlight.shift()!.bytes);
        server.receiveAck('me', client.createAck());
      }
      const renderTime = interpolator.update(localNow);
      if (renderTime === undefined || tick < 120) continue;
      for (const [k, id] of movers.entries()) {
        const pose = interpolator.sample(id);
        expect(pose, `entity ${id}`).toBeDefined();
        if (!pose) continue;
        // The render time is on the server's timeline (ticks × tickMs): compare with the truth at that time.
        const want = truth(k, renderTime);
        maxPosErr = Math.max(maxPosErr, distance(pose.position, want.position));
        maxRotErr = Math.max(
          maxRotErr,
          quatAngle(pose.rotation, quatFromAxisAngle({ x: 0, y: 1, z: 0 }, want.yaw)),
        );
        frames++;
      }
      // The render clock trails the newest server time by the adaptive delay, never more than ~150 ms here.
      expect(tick * TICK_MS - renderTime).toBeGreaterThan(0);
      expect(tick * TICK_MS - renderTime).toBeLessThan(150);
    }
    expect(frames).toBe(3 * 481);
    expect(feed.stats.snapshots).toBe(client.stats.applied);
    expect(feed.stats.snapshots).toBeGreaterThan(550);
    // The score-only entity has no pose: skipped on every snapshot, never a track in the buffer.
    expect(feed.stats.skipped).toBe(feed.stats.snapshots);
    expect([...interpolator.entityIds].sort()).toEqual([...movers].sort());
    expect(interpolator.sample(scoreOnly)).toBeUndefined();
    // Quantisation (1/512 m, 12-bit smallest-three) plus Hermite error on a 10 m circle at 60 Hz.
    expect(maxPosErr).toBeLessThan(0.01);
    expect(maxRotErr).toBeLessThan(0.01);
    expect(interpolator.stats.extrapolated).toBe(0);
  });

  it('maps ticks to server time and rejects a bad tick rate', () => {
    const feed = new SnapshotFeed<{ p: Vec3 }>(new InterpolationBuffer(), {
      tickRate: 20,
      pose: (v) => ({ position: v.p }),
    });
    expect(feed.serverTimeOf(3)).toBe(150);
    expect(() => new SnapshotFeed(new InterpolationBuffer(), { tickRate: 0, pose: () => undefined })).toThrow(
      RangeError,
    );
    // Poses are copied: the snapshot's objects may be recycled after the callback.
    const p = { x: 1, y: 2, z: 3 };
    feed.push({ tick: 1, ids: () => [9], get: () => ({ p }) }, 0);
    p.x = 100;
    feed.push({ tick: 2, ids: () => [9], get: () => ({ p: { x: 1, y: 2, z: 3 } }) }, 50);
    feed.buffer.update(1000);
    expect(feed.buffer.sample(9)?.position.x).toBeCloseTo(1, 9);
  });
});
