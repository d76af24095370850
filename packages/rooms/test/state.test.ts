/**
 * Room state on `@quiver/sync`: the room ticks its state, sends each client its own delta with interest, and the
 * client room decodes it, acknowledges it on its own and feeds `@quiver/predict` interpolation.
 */
import { InterpolationBuffer, SnapshotFeed } from '@quiver/predict';
import { defineComponent, defineSchema, type EntityValues, t } from '@quiver/sync';
import { describe, expect, it } from 'vitest';
import { Room, type RoomClient } from '../src/index.js';
import { memoryRooms, until, useCleanup } from './support.js';

useCleanup();

const Body = defineComponent({ pos: t.vec3({ min: -100, max: 100, precision: 1 / 64 }) });
const Tag = defineComponent({ name: t.string({ maxBytes: 16 }) });
const schema = defineSchema({ body: Body, tag: Tag }, { maxEntities: 64 });
type Values = EntityValues<typeof schema.components>;

class Field extends Room<unknown, { entity: number }> {
  secret = -1;
  steps = 0;
  override onCreate() {
    const state = this.setState({
      schema,
      patchIntervalMs: 20,
      // Nobody sees the secret entity.
      interest: () => ({ filter: (id) => id !== this.secret }),
    });
    this.secret = state.spawn({ tag: { name: 'treasure' } });
    this.setSimulationInterval(() => {
      if (++this.steps > 20) return; // then everything rests, so both ends converge
      for (const c of this.clients) {
        const p = state.getQuantised(c.data.entity)?.body?.pos ?? { x: 0, y: 0, z: 0 };
        state.set(c.data.entity, 'body', { pos: { x: p.x + 0.5, y: 0, z: p.z - 0.25 } });
      }
    }, 20);
  }
  override onJoin(client: RoomClient<{ entity: number }>) {
    client.data.entity = this.state!.spawn(
      { body: { pos: { x: 0, y: 0, z: 0 } }, tag: { name: client.id } },
      { owner: client.id },
    );
  }
  override onLeave(client: RoomClient<{ entity: number }>) {
    this.state!.despawn(client.data.entity);
  }
}

describe('room state', () => {
  it('sends each client its delta with interest, decodes on the client with events, acks, and feeds interpolation', async () => {
    const { rooms, joinRoom } = memoryRooms();
    rooms.define('field', Field);
    const a = await joinRoom('joinOrCreate', 'field', {}, { state: schema });
    const b = await joinRoom('joinOrCreate', 'field', {}, { state: schema });
    const room = rooms.getRoom(a.roomId) as Field;
    const events: string[] = [];
    a.state!.on('entered', ({ id }) => events.push(`entered ${id}`));
    a.state!.on('left', ({ id }) => events.push(`left ${id}`));
    const interpolator = new InterpolationBuffer();
    const feed = new SnapshotFeed<Values>(interpolator, {
      tickRate: 50,
      pose: (v) => v.body && { position: v.body.pos },
    });
    a.feed(feed);

    const [ca, cb] = room.clients;
    await until(() => room.steps > 25 && a.state!.tick === room.state!.currentTick, 'a caught up at rest');
    expect(a.state!.state()).toEqual(room.state!.quantisedStateFor(ca.id));
    expect(a.state!.get(room.secret)).toBeUndefined();
    const mine = a.state!.get(ca.data.entity)!;
    expect(mine.body!.pos.x).toBeGreaterThan(1); // it moved, and arrived where the server has it (state() above)
    expect(a.state!.get(cb.data.entity)?.tag?.name).toBe(cb.id);
    // Acknowledgements travelled on the room's own messages: deltas, not full snapshots, after the first.
    expect(room.state!.stats.acks).toBeGreaterThan(2);
    expect(room.state!.stats.fullPackets).toBeLessThan(room.state!.stats.packets / 2);
    expect(feed.stats.snapshots).toBeGreaterThan(2);

    await b.leave();
    await until(() => events.includes(`left ${cb.data.entity}`), 'b despawned at a');
    expect(a.state!.ids()).toEqual([ca.data.entity]);
  });
});
