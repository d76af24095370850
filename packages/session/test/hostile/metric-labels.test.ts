/**
 * Defect 5 of issue 11: channel names chosen by a client's HELLO became Prometheus label values and were never
 * removed (750 series, a 154 KiB `/metrics` after a few hundred sessions). Labels now come only from the server's
 * configuration: a HELLO naming a channel the server does not define is refused (4404). Checked on what the
 * fastify plugin serves at /metrics.
 */
import quiver from '@quiver/fastify';
import { connectWebSocket } from '@quiver/websocket';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { CloseCode, connect, createRng, defineMessage, Kind, streamFrame } from '../../src/index.js';
import { cleanups, useCleanup } from '../support/harness.js';
import { rawClient } from '../support/raw.js';

useCleanup();

const Echo = defineMessage<string>('echo');

/** Prometheus series in an exposition: every line that is not a comment. */
function series(text: string): string[] {
  return text.split('\n').filter((l) => l.length > 0 && !l.startsWith('#'));
}

describe('hostile: channel names from clients as metric labels (defect 5)', () => {
  it('keeps /metrics bounded: hundreds of sessions announcing random channels add no series', async () => {
    const app = Fastify();
    await app.register(quiver, { path: '/q', webtransport: false, session: { messages: [Echo] } });
    app.quiver.on(Echo, (m, s) => s.send(Echo, m));
    await app.listen({ host: '127.0.0.1', port: 0 });
    cleanups.push(() => app.close());
    await app.quiverTransports.ready();
    const url = (await app.quiverTransports.info()).websocket!.url;
    const scrape = async () => (await app.inject({ method: 'GET', url: '/metrics' })).body;

    // A good client first, so every series a normal session creates exists already.
    const good = await connect(url, { connector: connectWebSocket, reconnect: false });
    const back = new Promise((r) => good.on(Echo, r));
    good.send(Echo, 'hi');
    await back;
    await good.close();
    const baseline = series(await scrape());

    const rng = createRng(11);
    const attackers = 300;
    const codes = new Map<number, number>();
    for (let i = 0; i < attackers; i++) {
      const name = `ch-${Math.floor(rng() * 1e9).toString(36)}`;
      const raw = await rawClient(connectWebSocket, url);
      raw.drainControl();
      await raw.frame([
        Kind.HELLO,
        { v: 1, messages: [['echo', 1]], channels: [[name, 1, 'reliable-ordered']] },
      ]);
      // What a session would send on that channel, had it been admitted.
      const w = (await raw.session.createUnidirectionalStream()).getWriter();
      for (const c of [
        ...streamFrame([Kind.OPEN, 1]),
        ...streamFrame([Kind.DATA, 1, 1, 0], Uint8Array.of(0xa1, 0x78)),
      ])
        await w.write(c).catch(() => {});
      const info = await raw.closed;
      codes.set(info.closeCode ?? 0, (codes.get(info.closeCode ?? 0) ?? 0) + 1);
    }
    expect([...codes]).toEqual([[CloseCode.UNKNOWN_MESSAGE, attackers]]);
    const text = await scrape();
    const after = series(text);
    expect(text).not.toMatch(/channel="ch-/);
    // The only new series count the refusals, under fixed names; their values grew, their number did not.
    const key = (l: string) => l.split(' ')[0];
    const added = after.filter((l) => !baseline.some((b) => key(b) === key(l)));
    expect(added.sort()).toEqual([
      `quiver_errors_total{kind="unknown-message"} ${attackers}`,
      `quiver_rejections_total{reason="unknown-message"} ${attackers}`,
    ]);
    expect(after.length).toBe(baseline.length + added.length);
    expect(app.quiver.sessions.size).toBe(0);
  });
});
