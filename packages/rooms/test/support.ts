import { connect, createSessionServer, type ClientSession, type SessionServerOptions } from '@quiver/session';
import { connectMemory, createMemoryListener } from '@quiver/transport';
import { afterEach } from 'vitest';
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
  const listener = createMemoryListener({ name });
  const sessions = createSessionServer({ listeners: [listener], ...sessionOptions });
  const rooms = new RoomServer({ sessions, ...roomOptions });
  cleanups.push(async () => {
    await rooms.close();
    await sessions.close();
    await listener.close();
  });
  const clientSession = async (opts: Parameters<typeof connect>[1] = {}): Promise<ClientSession> => {
    const s = await connect(`memory://${name}/quiver`, { connector: connectMemory, ...opts });
    cleanups.push(() => s.close());
    return s;
  };
  /** Matchmakes on the server and joins over a fresh session. */
  const joinRoom = async (
    method: 'joinOrCreate' | 'create' | 'join',
    type: string,
    options: Record<string, unknown> = {},
    join: JoinOptions = {},
  ) => {
    const r = await rooms[method](type, options);
    const s = await clientSession();
    return joinWithSeat(s, r.seat, join);
  };
  return { name, listener, sessions, rooms, clientSession, joinRoom };
}

/** Polls `cond` on real time; fails after 10 s. */
export function until(cond: () => boolean, what = 'condition'): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = () => {
      if (cond()) resolve();
      else if (Date.now() - started > 10_000) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(tick, 2);
    };
    tick();
  });
}
