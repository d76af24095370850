/**
 * A candidate's own head start: the HTTP fallback goes third with a longer head start than WebSocket's, and a
 * remembered HTTP winner starts at once on the next connect.
 */
import { describe, expect, it } from 'vitest';
import {
  connect,
  createSessionServer,
  createWinnerMemory,
  ManualClock,
  type TransportCandidate,
} from '../src/index.js';
import { cleanups, settle, useCleanup } from './support/harness.js';
import { createMemoryNetwork, MemorySession } from './support/memory.js';

useCleanup();

/** An attempt that never becomes ready: UDP dropped, or a WebSocket upgrade a proxy holds. */
const blocked = (): MemorySession => {
  const s = new MemorySession({}, 1);
  cleanups.push(() => s.shutdown({}));
  return s;
};

describe('per-candidate head start', () => {
  it('starts the HTTP fallback its own head start after WebSocket, and remembers it', async () => {
    const net = createMemoryNetwork();
    const l = net.listen();
    const server = createSessionServer({ listeners: [l] });
    cleanups.push(async () => {
      await server.close();
      await l.close();
    });
    const clock = new ManualClock();
    const memory = createWinnerMemory(null);
    const startedAt: Record<string, number> = {};
    const track =
      (name: string, c: TransportCandidate['connector']): TransportCandidate['connector'] =>
      (url, o) => {
        startedAt[name] = clock.now();
        return c(url, o);
      };
    const candidates: TransportCandidate[] = [
      { name: 'webtransport', connector: track('webtransport', blocked) },
      { name: 'websocket', connector: track('websocket', blocked) },
      { name: 'http', connector: track('http', net.connect), headStartMs: 1000 },
    ];
    const run = async () => {
      const p = connect('https://game.test/q', {
        transports: candidates,
        fallback: { clock, headStartMs: 400, connectTimeoutMs: 5000, memory },
      });
      let done = false;
      void p.then(
        () => (done = true),
        () => (done = true),
      );
      for (let t = 0; t < 6000 && !done; t += 50) {
        await settle(5);
        clock.advance(50);
      }
      const s = await p;
      cleanups.push(() => s.close());
      return s;
    };
    const s = await run();
    expect(startedAt.websocket).toBe(400);
    expect(startedAt.http).toBe(1400);
    expect(s.transportAttempts.map((a) => [a.name, a.outcome])).toEqual([
      ['webtransport', 'lost-race'],
      ['websocket', 'lost-race'],
      ['http', 'won'],
    ]);
    // Next connect: the remembered HTTP winner starts at once, WebTransport alongside it.
    const t0 = clock.now();
    const again = await run();
    expect(startedAt.http).toBe(t0);
    expect(again.transportAttempts[0]).toMatchObject({ name: 'http', outcome: 'won' });
  });
});
