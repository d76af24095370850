import type { QuiverSession } from '@quiver/transport';
import { describe, expect, it } from 'vitest';
import {
  type ClientSession,
  ConnectError,
  connect,
  createSessionServer,
  createWinnerMemory,
  ManualClock,
  nativeWebTransportConnector,
  type TransportCandidate,
} from '../src/index.js';
import { cleanups, settle, useCleanup } from './support/harness.js';
import { createMemoryNetwork, MemorySession } from './support/memory.js';

useCleanup();

/** What a network that silently drops UDP looks like to a client: an attempt that never becomes ready. */
const blocked = (): QuiverSession => {
  const s = new MemorySession({}, 1);
  cleanups.push(() => s.shutdown({}));
  return s;
};

function world() {
  const fast = createMemoryNetwork();
  const slow = createMemoryNetwork();
  const l1 = fast.listen();
  const l2 = slow.listen();
  const server = createSessionServer({ listeners: [l1, l2] });
  cleanups.push(async () => {
    await server.close();
    await l1.close();
    await l2.close();
  });
  return { fast, slow, server };
}

async function race(candidates: TransportCandidate[], clock: ManualClock, memory = createWinnerMemory(null)) {
  let session: ClientSession | undefined;
  let error: unknown;
  const p = connect('https://game.test/q', {
    transports: candidates,
    fallback: { clock, headStartMs: 400, connectTimeoutMs: 5000, memory },
  }).then(
    (s) => {
      session = s;
      cleanups.push(() => s.close());
    },
    (e) => {
      error = e;
    },
  );
  for (let t = 0; t < 6000 && !session && !error; t += 50) {
    await settle(5);
    clock.advance(50);
  }
  await p;
  return { session, error };
}

describe('automatic fallback', () => {
  it('uses WebTransport when it works; WebSocket is never started', async () => {
    const { fast, slow } = world();
    const clock = new ManualClock();
    const { session } = await race(
      [
        { name: 'webtransport', connector: fast.connect },
        { name: 'websocket', connector: slow.connect },
      ],
      clock,
    );
    expect(session!.transportAttempts.map((a) => [a.name, a.outcome])).toEqual([
      ['webtransport', 'won'],
      ['websocket', 'skipped'],
    ]);
  });

  it('falls back to WebSocket after the head start when WebTransport is blocked, and remembers it', async () => {
    const { slow } = world();
    const clock = new ManualClock();
    const memory = createWinnerMemory(null);
    const candidates = [
      { name: 'webtransport', connector: blocked },
      { name: 'websocket', connector: slow.connect },
    ];
    const { session } = await race(candidates, clock, memory);
    const [wt, ws] = session!.transportAttempts;
    expect([wt.name, wt.outcome]).toEqual(['webtransport', 'cancelled']);
    expect([ws.name, ws.outcome]).toEqual(['websocket', 'won']);
    expect(wt.ms).toBeGreaterThanOrEqual(400);
    expect(memory.get('https://game.test')).toBe('websocket');
    // The next connect to the same origin starts with the winner; WebTransport is not even started.
    const again = await race(candidates, clock, memory);
    expect(again.session!.transportAttempts.map((a) => [a.name, a.outcome])).toEqual([
      ['websocket', 'won'],
      ['webtransport', 'skipped'],
    ]);
  });

  it('falls back at once when WebTransport is unsupported (no WebTransport global in Node)', async () => {
    const { slow } = world();
    expect(typeof (globalThis as { WebTransport?: unknown }).WebTransport).toBe('undefined');
    const clock = new ManualClock();
    const { session } = await race(
      [
        { name: 'webtransport', connector: nativeWebTransportConnector },
        { name: 'websocket', connector: slow.connect },
      ],
      clock,
    );
    const [wt, ws] = session!.transportAttempts;
    expect(wt.outcome).toBe('unsupported');
    expect(ws.outcome).toBe('won');
    expect(ws.ms).toBe(0);
  });

  it('falls back when WebTransport fails (refused), and times out blocked attempts', async () => {
    const refused = createMemoryNetwork(); // nobody listens: the attempt fails
    const clock = new ManualClock();
    const { error } = await race(
      [
        { name: 'webtransport', connector: refused.connect },
        { name: 'websocket', connector: blocked },
      ],
      clock,
    );
    expect(error).toBeInstanceOf(ConnectError);
    const attempts = (error as ConnectError).attempts;
    expect(attempts.map((a) => [a.name, a.outcome])).toEqual([
      ['webtransport', 'failed'],
      ['websocket', 'timeout'],
    ]);
  });
});
