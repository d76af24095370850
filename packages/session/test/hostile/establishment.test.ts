/**
 * Defect 2 of issue 11: a HELLO with malformed tables (`messages: [1]`) was refused, but the session had already
 * been put in the server's map: it stayed "open" on a dead link, counted in `quiver_sessions_active` and against
 * `maxSessions`, and enough of them locked everyone out. Now nothing is admitted before the HELLO is validated.
 */
import { connectWebSocket, createWebSocketListener } from '@quiver/websocket';
import { describe, expect, it } from 'vitest';
import { CloseCode, connect, createSessionServer, defineMessage, Kind } from '../../src/index.js';
import { cleanups, until, useCleanup } from '../support/harness.js';
import { rawClient } from '../support/raw.js';

useCleanup();

const Echo = defineMessage<string>('echo');

const reliable = ['reliable', 1, 'reliable-ordered'];
/** HELLOs whose tables are malformed, each in its own way; every one must be refused and leave nothing. */
const malformed: Record<string, unknown>[] = [
  { v: 1, messages: [1], channels: [reliable] },
  { v: 1, messages: [['chat']], channels: [reliable] },
  { v: 1, messages: [[1, 'chat']], channels: [reliable] },
  { v: 1, messages: 'chat', channels: [reliable] },
  { v: 1, channels: [1] },
  { v: 1, channels: [['reliable', 1]] },
  { v: 1, channels: [['reliable', 1, 'teleport']] },
  { v: 1, channels: [reliable], acks: [7] },
  { v: 1, channels: [reliable], acks: [['reliable', -1]] },
  { v: 1, channels: [reliable], resume: 5 },
  { v: 1, channels: [['made-up-channel', 2, 'unreliable']] },
  { v: 1, channels: [['reliable', 1, 'unreliable']] },
];

describe('hostile: malformed HELLO tables (defect 2)', () => {
  it('admits nothing before validation: more refusals than maxSessions, then a good client still gets in', async () => {
    const listener = await createWebSocketListener({ host: '127.0.0.1', port: 0 });
    const maxSessions = 4;
    const server = createSessionServer({ listeners: [listener], messages: [Echo], maxSessions });
    cleanups.push(async () => {
      await server.close();
      await listener.close();
    });
    server.on(Echo, (m, s) => s.send(Echo, m));
    const url = `http://127.0.0.1:${listener.address.port}/q`;
    const activeBefore = Object.values(server.metrics.sessionsActive).reduce((a, b) => a + b, 0);
    const rounds = 3 * maxSessions;
    const codes: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const raw = await rawClient(connectWebSocket, url);
      await raw.frame([Kind.HELLO, malformed[i % malformed.length]]);
      const info = await raw.closed;
      codes.push(info.closeCode ?? 0);
      expect(server.sessions.size).toBe(0);
    }
    expect(rounds).toBeGreaterThan(maxSessions);
    for (const c of codes) expect([CloseCode.BAD_MESSAGE, CloseCode.UNKNOWN_MESSAGE]).toContain(c);
    const refused =
      (server.metrics.rejections.decode ?? 0) + (server.metrics.rejections['unknown-message'] ?? 0);
    expect(refused).toBe(rounds);
    expect(server.metrics.sessionsTotal).toBe(0);
    const active = () => Object.values(server.metrics.sessionsActive).reduce((a, b) => a + b, 0);
    expect(active()).toBe(activeBefore);

    const good = await connect(url, { connector: connectWebSocket, reconnect: false });
    cleanups.push(() => good.close());
    const back = new Promise((r) => good.on(Echo, r));
    good.send(Echo, 'hi');
    expect(await back).toBe('hi');
    expect(active()).toBe(activeBefore + 1);
    await good.close();
    await until(() => active() === activeBefore, 'the good session gone');
    expect(server.sessions.size).toBe(0);
  });
});
