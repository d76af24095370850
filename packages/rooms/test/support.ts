import { connect, createSessionServer, type ClientSession, type SessionServerOptions } from '@quiver/session';
import { connectMemory, createMemoryListener, type MemoryListener } from '@quiver/transport';
import type { ComponentMap } from '@quiver/sync';
import { afterEach, vi } from 'vitest';
import { RoomServer, type RoomServerOptions } from '../src/index.js';
import { type JoinOptions, joinWithSeat } from '../src/client/index.js';

export const cleanups: (() => Promise<void> | void)[] = [];

export function useCleanup(): void {
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });
}

let seq = 0;

/** A session server on the memory transport with a room server on it. */
export function memoryRooms(
  roomOptions: Omit<RoomServerOptions, 'sessions'> = {},
  sessionOptions: SessionServerOptions = {},
) {
  const name = `rooms-${process.pid}-${++seq}`;
  const state: { listener: MemoryListener | null } = { listener: createMemoryListener({ name }) };
  const listener = state.listener!;
  const sessions = createSessionServer({ listeners: [listener], ...sessionOptions });
  const rooms = new RoomServer({ sessions, ...roomOptions });
  cleanups.push(async () => {
    await rooms.close();
    await sessions.close();
    await state.listener?.close();
  });
  /** Closes the transport listener (every transport drops; sessions wait for a resume) and opens a new one later. */
  const restart = async (downMs = 0) => {
    await state.listener?.close();
    state.listener = null;
    if (downMs) await new Promise((r) => setTimeout(r, downMs));
    state.listener = createMemoryListener({ name });
    sessions.addListener(state.listener);
  };
  const clientSession = async (opts: Parameters<typeof connect>[1] = {}): Promise<ClientSession> => {
    const s = await connect(`memory://${name}/quiver`, { connector: connectMemory, ...opts });
    cleanups.push(() => s.close());
    return s;
  };
  /** Matchmakes on the server and joins over a fresh session. */
  const joinRoom = async <M extends ComponentMap = ComponentMap>(
    method: 'joinOrCreate' | 'create' | 'join',
    type: string,
    options: Record<string, unknown> = {},
    join: JoinOptions<M> = {},
  ) => {
    const r = await rooms[method](type, options);
    const s = await clientSession({ reconnect: { initialMs: 5, maxMs: 40, seed: 7 } });
    return joinWithSeat(s, r.seat, join);
  };
  return { name, listener, sessions, rooms, clientSession, joinRoom, restart };
}

/**
 * Waits for `cond` on real time (events, not sleeps); fails after 45 s naming `what`: a hang detector, generous so
 * that a loaded CI machine never fails a test that is merely slow.
 */
export function until(cond: () => boolean, what = 'condition'): Promise<void> {
  return vi.waitFor(
    () => {
      if (!cond()) throw new Error(`timed out waiting for ${what}`);
    },
    { timeout: 45_000, interval: 2 },
  );
}
