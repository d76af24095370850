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
const blocked = (): MemorySession => {
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

async function race(
  candidates: TransportCandidate[],
  clock: ManualClock,
  memory = createWinnerMemory(null),
  rememberWinnerMs?: number,
) {
  let session: ClientSession | undefined;
  let error: unknown;
  const p = connect('https://game.test/q', {
    transports: candidates,
    fallback: { clock, headStartMs: 400, connectTimeoutMs: 5000, memory, rememberWinnerMs },
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
    // Blocked is told apart from refused: an explicit outcome and why, not a bare cancellation.
    expect([wt.name, wt.outcome]).toEqual(['webtransport', 'lost-race']);
    expect(wt.error).toBe(`no response within ${wt.ms} ms; websocket won`);
    expect([ws.name, ws.outcome]).toEqual(['websocket', 'won']);
    expect(wt.ms).toBeGreaterThanOrEqual(400);
    // Remembered with the time it won (the race's clock started at 0, WebTransport first).
    expect(memory.get('https://game.test')).toEqual({ name: 'websocket', at: wt.ms });
    // The next connect to the same origin starts with the winner without a head start, and WebTransport (still
    // blocked) is raced alongside it rather than skipped: it loses again, recorded.
    const again = await race(candidates, clock, memory);
    expect(again.session!.transportAttempts.map((a) => [a.name, a.outcome])).toEqual([
      ['websocket', 'won'],
      ['webtransport', 'lost-race'],
    ]);
    const [ws2, wt2] = again.session!.transportAttempts;
    expect(wt2.ms).toBe(ws2.ms);
    expect(wt2.ms).toBeLessThan(400);
    expect(wt2.error).toMatch(/^no response within \d+ ms; websocket won$/);
  });

  it('a remembered fallback expires after rememberWinnerMs: the preferred order and head start come back', async () => {
    const { slow } = world();
    const clock = new ManualClock();
    const memory = createWinnerMemory(null);
    const candidates = [
      { name: 'webtransport', connector: blocked },
      { name: 'websocket', connector: slow.connect },
    ];
    await race(candidates, clock, memory, 60_000);
    expect(memory.get('https://game.test')?.name).toBe('websocket');
    clock.advance(59_000);
    const fresh = await race(candidates, clock, memory, 60_000);
    expect(fresh.session!.transportAttempts.map((a) => a.name)).toEqual(['websocket', 'webtransport']);
    clock.advance(60_000);
    const expired = await race(candidates, clock, memory, 60_000);
    const [wt, ws] = expired.session!.transportAttempts;
    expect([wt.name, wt.outcome]).toEqual(['webtransport', 'lost-race']);
    expect([ws.name, ws.outcome]).toEqual(['websocket', 'won']);
    expect(wt.ms).toBeGreaterThanOrEqual(400);
  });

  it('gets WebTransport back once the network lets it through: the lost race is followed and remembered', async () => {
    const { fast, slow } = world();
    const clock = new ManualClock();
    const memory = createWinnerMemory(null);
    memory.set('https://game.test', { name: 'websocket', at: clock.now() });
    // WebTransport answers, but only after WebSocket has already won this connect.
    const late: MemorySession[] = [];
    const slowWebTransport = () => {
      const s = blocked();
      late.push(s);
      return s;
    };
    const first = await race(
      [
        { name: 'webtransport', connector: slowWebTransport },
        { name: 'websocket', connector: slow.connect },
      ],
      clock,
      memory,
    );
    expect(first.session!.transport).toBe('memory');
    expect(first.session!.transportAttempts.map((a) => [a.name, a.outcome])).toEqual([
      ['websocket', 'won'],
      ['webtransport', 'lost-race'],
    ]);
    expect(late).toHaveLength(1);
    expect(memory.get('https://game.test')?.name).toBe('websocket');
    late[0].markReady();
    await settle(5);
    // Not used for this session (closed), but remembered: the next connect starts with WebTransport.
    // Closed by the race as unused: a plain close (code 0, no reason), not an error.
    expect(await late[0].closed).toEqual({ closeCode: 0, reason: '' });
    expect(memory.get('https://game.test')).toEqual({ name: 'webtransport', at: clock.now() });
    expect(first.session!.transportAttempts[1].outcome).toBe('lost-race');
    const second = await race(
      [
        { name: 'webtransport', connector: fast.connect },
        { name: 'websocket', connector: slow.connect },
      ],
      clock,
      memory,
    );
    expect(second.session!.transportAttempts.map((a) => [a.name, a.outcome])).toEqual([
      ['webtransport', 'won'],
      ['websocket', 'skipped'],
    ]);
  });

  it('stores winners with their time, and ignores entries without one (written by older versions)', () => {
    const items = new Map<string, string>();
    const storage = {
      getItem: (k: string) => items.get(k) ?? null,
      setItem: (k: string, v: string) => {
        items.set(k, v);
      },
    };
    createWinnerMemory(storage).set('https://a.test', { name: 'websocket', at: 1234 });
    expect(JSON.parse(items.get('quiver:transport:https://a.test')!)).toEqual({
      name: 'websocket',
      at: 1234,
    });
    // A new page (fresh in-memory map) reads it back from storage.
    expect(createWinnerMemory(storage).get('https://a.test')).toEqual({ name: 'websocket', at: 1234 });
    items.set('quiver:transport:https://b.test', 'websocket');
    expect(createWinnerMemory(storage).get('https://b.test')).toBeUndefined();
    items.set('quiver:transport:https://c.test', '{"name":"websocket"}');
    expect(createWinnerMemory(storage).get('https://c.test')).toBeUndefined();
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
    expect(attempts).toEqual([
      { name: 'webtransport', outcome: 'failed', error: 'connection refused', ms: 0 },
      { name: 'websocket', outcome: 'timeout', error: 'no connection within 5000 ms', ms: 5000 },
    ]);
    expect((error as ConnectError).message).toBe(
      'could not connect to https://game.test/q: webtransport failed (connection refused), websocket timeout (no connection within 5000 ms)',
    );
  });
});
