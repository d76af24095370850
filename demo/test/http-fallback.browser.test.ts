/**
 * The demo where only plain HTTP gets through: WebTransport is pointed at a UDP port that swallows every packet (as
 * a network that drops UDP), and the page is loaded through a small HTTP/1.1 proxy that refuses WebSocket upgrades
 * (as a corporate proxy) and passes everything else through as it comes. Chromium and Firefox must end on the HTTP
 * transport with the scene playing (bots moving in the replicated state), after WebTransport and WebSocket lost.
 */
import dgram from 'node:dgram';
import { once } from 'node:events';
import { launchChromium, launchFirefox, startTestProxy, type TestProxy } from '@quiver/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoServer, type DemoServer } from '../src/server/app.js';

type Row = { id: number; bot: boolean; x: number; z: number };
type Attempt = { name: string; outcome: string };

/** What both Playwright's and Puppeteer's pages offer. */
interface AnyPage {
  goto(url: string): Promise<unknown>;
  evaluate<R>(fn: () => R): Promise<R>;
  close(): Promise<void>;
}

let server: DemoServer;
let proxy: TestProxy;
let blackhole: dgram.Socket;

beforeAll(async () => {
  server = await createDemoServer({
    host: '127.0.0.1',
    port: 0,
    webtransportPort: 0,
    bots: 3,
    // Per-address limits have their own test (limits.test.ts); every page here comes from 127.0.0.1.
    maxSessionsPerIp: 1000,
    sessionsPerMinutePerIp: 100_000,
  });
  blackhole = dgram.createSocket('udp4');
  blackhole.on('message', () => {
    // Dropped, as a firewall that blocks UDP drops QUIC's Initial packets.
  });
  blackhole.bind(0, '127.0.0.1');
  await once(blackhole, 'listening');
  const deadPort = blackhole.address().port;
  proxy = await startTestProxy({
    target: { host: '127.0.0.1', port: server.port },
    refuseUpgrades: true,
    // The page learns the WebTransport endpoint from /quiver/info and from each matchmaking answer (`session`).
    rewriteJson: {
      paths: ['/quiver/info', '/quiver/matchmake/'],
      map: (answer) => {
        const a = answer as { session?: unknown };
        const i = (a.session ?? a) as { webtransport?: { url: string; port: number } | null };
        if (i.webtransport) {
          const u = new URL(i.webtransport.url);
          u.port = String(deadPort);
          i.webtransport = { ...i.webtransport, url: u.toString(), port: deadPort };
        }
        return answer;
      },
    },
  });
});

afterAll(async () => {
  await proxy?.close();
  blackhole?.close();
  await server?.close();
});

async function playsOverHttp(page: AnyPage): Promise<Attempt[]> {
  await page.goto(`http://127.0.0.1:${proxy.address.port}/`);
  const poll = async <T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 40_000): Promise<T> => {
    const t0 = Date.now();
    for (;;) {
      const v = await fn();
      if (v !== undefined) return v;
      if (Date.now() - t0 > timeoutMs) {
        // What the page holds and what the server dropped: a timeout here has said "stale" drops once already.
        const m = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
        const drops = m
          .split('\n')
          .filter((l) => /drop|rtt_ms_sum|rtt_ms_count/.test(l) && !l.startsWith('#'));
        throw new Error(
          `timed out waiting for ${what}; the page shows ${JSON.stringify(await state())} ${drops.join(' | ')}`,
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  const state = () =>
    page.evaluate(() => {
      const d = (globalThis as unknown as { __quiverDemo?: Record<string, unknown> }).__quiverDemo;
      return d
        ? {
            status: d.status,
            transport: d.transport,
            welcome: d.welcome !== null,
            counters: d.counters,
            figures: d.figures,
            bytes: d.bytes,
          }
        : null;
    });
  const demo = () =>
    page.evaluate(() => {
      const d = (
        globalThis as unknown as {
          __quiverDemo?: { transport: string | null; entities(): Row[]; attempts: Attempt[] };
        }
      ).__quiverDemo;
      return d
        ? { transport: d.transport, bots: d.entities().filter((e) => e.bot), attempts: d.attempts }
        : null;
    });
  const first = await poll('the HTTP transport with bots', async () => {
    const d = await demo();
    return d?.transport === 'http' && d.bots.length > 0 ? d : undefined;
  });
  // The scene plays: some bot moves in the replicated state.
  await poll('a bot to move', async () => {
    const d = await demo();
    const moved = d?.bots.some((b) => {
      const p = first.bots.find((x) => x.id === b.id);
      return p !== undefined && Math.hypot(b.x - p.x, b.z - p.z) > 0.05;
    });
    return moved ? true : undefined;
  });
  return first.attempts;
}

function expectOnlyHttpWorked(attempts: Attempt[]): void {
  const outcome = Object.fromEntries(attempts.map((a) => [a.name, a.outcome]));
  expect(outcome.http).toBe('won');
  expect(['failed', 'lost-race', 'timeout']).toContain(outcome.webtransport);
  expect(outcome.websocket).toBe('failed');
  expect(proxy.stats.refusedUpgrades).toBeGreaterThan(0);
}

describe('demo with UDP dropped and WebSocket refused', () => {
  it('Chromium ends on the HTTP transport with the scene playing', async () => {
    const chromium = await launchChromium();
    try {
      const page = await chromium.newPage();
      expectOnlyHttpWorked(await playsOverHttp(page as unknown as AnyPage));
      await page.close();
    } finally {
      await chromium.close();
    }
  });

  it('Firefox ends on the HTTP transport with the scene playing', async () => {
    const firefox = await launchFirefox();
    try {
      const page = await firefox.newPage();
      expectOnlyHttpWorked(await playsOverHttp(page as unknown as AnyPage));
      await page.close();
    } finally {
      await firefox.close();
    }
  });
});
