/**
 * The persisted offline queue: reliable messages sent while the transport is down survive a "page reload" (a new
 * client on the same storage) and reach the server on its first connect; bounds drop the oldest, counted.
 */
import { connectMemory, createMemoryListener, type MemoryListener } from '@quiver/transport';
import { describe, expect, it } from 'vitest';
import { connect, createSessionServer, defineMessage, PersistedQueue } from '../src/index.js';
import { cleanups, until, useCleanup } from './support/harness.js';

useCleanup();

const N = defineMessage<{ n: number; tag: string }>('n');
const Pos = defineMessage<number>('pos', { channel: 'unreliable' });
let seq = 0;

/** `Storage` as browsers define it (the part the queue uses), over a Map: what `localStorage` is for one origin. */
function memoryStorage() {
  const m = new Map<string, string>();
  return {
    getItem: (k: string) => m.get(k) ?? null,
    setItem: (k: string, v: string) => void m.set(k, v),
    removeItem: (k: string) => void m.delete(k),
    map: m,
  };
}

async function world() {
  const name = `offline-${process.pid}-${++seq}`;
  const state: { listener: MemoryListener | null } = { listener: createMemoryListener({ name }) };
  const server = createSessionServer({ listeners: [state.listener!], messages: [N, Pos] });
  cleanups.push(async () => {
    await server.close();
    await state.listener?.close();
  });
  const seen: { n: number; tag: string }[] = [];
  server.on(N, (m) => seen.push(m));
  return { name, server, state, seen };
}

describe('persisted offline queue', () => {
  it('sends what a previous page queued while offline on the next page first connect', async () => {
    const { name, server, state, seen } = await world();
    const storage = memoryStorage();
    // Each page builds its own store over the same storage, as a reloaded page does.
    const persistQueue = () => new PersistedQueue({ key: 'game:alice', messages: [N], storage });
    const page1 = await connect(`memory://${name}/q`, {
      connector: connectMemory,
      messages: [N, Pos],
      reconnect: { initialMs: 5, maxMs: 20, seed: 1 },
      persistQueue: persistQueue(),
    });
    page1.send(N, { n: 0, tag: 'online' });
    await until(() => seen.length === 1);
    await state.listener!.close();
    state.listener = null;
    await until(() => page1.state === 'reconnecting');
    page1.send(N, { n: 1, tag: 'offline' });
    page1.send(N, { n: 2, tag: 'offline' });
    page1.send(Pos, 9); // unreliable: never persisted
    expect(JSON.parse(storage.map.get('game:alice')!)).toHaveLength(2);
    // The page goes away before the network comes back.
    await page1.close();
    state.listener = createMemoryListener({ name });
    server.addListener(state.listener);
    const page2 = await connect(`memory://${name}/q`, {
      connector: connectMemory,
      messages: [N, Pos],
      persistQueue: persistQueue(),
    });
    cleanups.push(() => page2.close());
    await until(() => seen.length === 3);
    expect(seen.slice(1)).toEqual([
      { n: 1, tag: 'offline' },
      { n: 2, tag: 'offline' },
    ]);
    expect(storage.map.has('game:alice')).toBe(false);
  });

  it('is cleared once a reconnect carried the queue; bounded, dropping the oldest, counted', async () => {
    const { name, server, state, seen } = await world();
    const storage = memoryStorage();
    const c = await connect(`memory://${name}/q`, {
      connector: connectMemory,
      messages: [N],
      reconnect: { initialMs: 5, maxMs: 20, seed: 2 },
      persistQueue: new PersistedQueue({ key: 'k', messages: [N], storage, maxMessages: 2 }),
    });
    cleanups.push(() => c.close());
    await state.listener!.close();
    state.listener = null;
    await until(() => c.state === 'reconnecting');
    for (let n = 1; n <= 5; n++) c.send(N, { n, tag: 'x' });
    expect(JSON.parse(storage.map.get('k')!).length).toBe(2);
    expect(c.persistedQueue!.dropped).toBe(3);
    state.listener = createMemoryListener({ name });
    server.addListener(state.listener);
    // The session's own queue (bounded by the channel's maxQueuedMessages) carries all five on reconnect.
    await until(() => seen.length === 5);
    expect(storage.map.has('k')).toBe(false);
  });
});
