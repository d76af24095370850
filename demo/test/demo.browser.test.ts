/**
 * The demo as a new user meets it: the real server (fastify, WebTransport over UDP with a development certificate,
 * WebSocket, /metrics) in this process on OS-chosen ports, and headless Chromium loading the page over HTTP.
 */
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type LaunchedChromium, launchChromium } from '@quiver/testkit';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoServer, type DemoServer } from '../src/server/app.js';

const SHOTS = join(dirname(fileURLToPath(import.meta.url)), '..', 'screenshots');
const BOTS = 4;

let server: DemoServer;
let chromium: LaunchedChromium;

beforeAll(async () => {
  await mkdir(SHOTS, { recursive: true });
  server = await createDemoServer({ host: '127.0.0.1', port: 0, webtransportPort: 0, bots: BOTS });
  chromium = await launchChromium();
});

afterAll(async () => {
  await chromium?.close();
  await server?.close();
});

interface Watched {
  page: Page;
  errors: string[];
}

async function openDemo(browser: LaunchedChromium, query = ''): Promise<Watched> {
  const page = await browser.newPage();
  await page.setViewportSize({ width: 1280, height: 720 });
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  await page.goto(`${server.url}${query}`);
  return { page, errors };
}

/** Waits until the page is connected over `transport` and has its avatar and a first state. */
async function waitConnected(page: Page, transport: string): Promise<void> {
  await page.waitForFunction(
    (t) => {
      const d = (globalThis as { __quiverDemo?: { transport: string | null; welcome: unknown; entities(): unknown[] } })
        .__quiverDemo;
      return d?.transport === t && d.welcome !== null && d.entities().length > 0;
    },
    transport,
    { timeout: 30_000 },
  );
}

type Row = { id: number; kind: string; bot: boolean; x: number; z: number };
const entities = (page: Page) =>
  page.evaluate(() => (globalThis as unknown as { __quiverDemo: { entities(): Row[] } }).__quiverDemo.entities());
const overlay = (page: Page, key: string) =>
  page.evaluate(
    (k) => (globalThis as unknown as { __quiverDemo: { overlay(k: string): string | null } }).__quiverDemo.overlay(k),
    key,
  );

/** Bot positions change over time in the page's replicated state. */
async function expectBotsMoving(page: Page): Promise<void> {
  const before = (await entities(page)).filter((e) => e.bot);
  expect(before.length).toBeGreaterThan(0);
  await page.waitForFunction(
    (prev) => {
      const now = (globalThis as unknown as { __quiverDemo: { entities(): Row[] } }).__quiverDemo.entities();
      return prev.some((p) => {
        const e = now.find((n) => n.id === p.id);
        return e !== undefined && Math.hypot(e.x - p.x, e.z - p.z) > 0.05;
      });
    },
    before,
    { timeout: 20_000 },
  );
}

async function scrapeMetrics(): Promise<{ sessions: Record<string, number>; bytes: { in: number; out: number } }> {
  const text = await (await fetch(`${server.url}metrics`)).text();
  const sessions: Record<string, number> = {};
  for (const m of text.matchAll(/^quiver_sessions_active\{transport="([^"]+)"\} (\S+)$/gm)) sessions[m[1]] = Number(m[2]);
  const bytes = { in: 0, out: 0 };
  for (const m of text.matchAll(/^quiver_bytes_total\{([^}]*)\} (\S+)$/gm)) {
    const dir = /direction="(in|out)"/.exec(m[1])?.[1] as 'in' | 'out' | undefined;
    if (dir) bytes[dir] += Number(m[2]);
  }
  return { sessions, bytes };
}

/** The overlay's server line shows what /metrics says (it scrapes once a second; retried until they agree). */
async function expectOverlayMatchesMetrics(page: Page): Promise<Record<string, number>> {
  let last = '';
  for (let i = 0; i < 40; i++) {
    const metrics = await scrapeMetrics();
    const shown = {
      webtransport: Number(await overlay(page, 'server-webtransport')),
      websocket: Number(await overlay(page, 'server-websocket')),
    };
    if (shown.webtransport === (metrics.sessions.webtransport ?? 0) && shown.websocket === (metrics.sessions.websocket ?? 0))
      return metrics.sessions;
    last = `overlay ${JSON.stringify(shown)} /metrics ${JSON.stringify(metrics.sessions)}`;
    await page.waitForTimeout(250);
  }
  throw new Error(`the overlay never agreed with /metrics: ${last}`);
}

describe('demo scene in Chromium', () => {
  it('connects over WebTransport, shows bots moving, and its overlay agrees with /metrics', async () => {
    const { page, errors } = await openDemo(chromium);
    await waitConnected(page, 'webtransport');
    expect(await overlay(page, 'transport')).toBe('webtransport');
    expect(await overlay(page, 'why')).toMatch(/^auto: webtransport won/);
    const rows = await entities(page);
    expect(rows.filter((e) => e.bot)).toHaveLength(BOTS);
    expect(rows.filter((e) => e.kind === 'ball' || e.kind === 'box').length).toBe(server.world.things.length);
    await expectBotsMoving(page);
    await page.waitForFunction(
      () => (globalThis as unknown as { __quiverDemo: { framesRendered: number } }).__quiverDemo.framesRendered > 2,
    );

    const sessions = await expectOverlayMatchesMetrics(page);
    expect(sessions.webtransport).toBeGreaterThanOrEqual(1);
    // Payload bytes: the page's counters and the server's are the same measure. Only this page has talked to
    // the server so far, so the server cannot have received more than the page sent (read after the scrape), nor
    // sent less than the page received (read before it).
    const readBytes = () =>
      page.evaluate(() => (globalThis as unknown as { __quiverDemo: { bytes: { in: number; out: number } } }).__quiverDemo.bytes);
    const before = await readBytes();
    const metrics = await scrapeMetrics();
    const after = await readBytes();
    expect(before.in).toBeGreaterThan(0);
    expect(metrics.bytes.in).toBeLessThanOrEqual(after.out);
    expect(metrics.bytes.in).toBeGreaterThan(0);
    expect(metrics.bytes.out).toBeGreaterThanOrEqual(before.in);

    await page.screenshot({ path: join(SHOTS, 'webtransport.png') });
    expect(errors).toEqual([]);
    await page.close();
  });

  it('walks the own avatar with the keyboard; the server agrees with the prediction', async () => {
    const { page, errors } = await openDemo(chromium);
    await waitConnected(page, 'webtransport');
    const own = await page.evaluate(
      () => (globalThis as unknown as { __quiverDemo: { welcome: { entity: number; x: number; z: number } } }).__quiverDemo.welcome,
    );
    await page.locator('demo-scene canvas').click();
    await page.keyboard.down('KeyW');
    await page.waitForFunction(
      ([id, x, z]) => {
        const e = (globalThis as unknown as { __quiverDemo: { entities(): Row[] } }).__quiverDemo
          .entities()
          .find((r) => r.id === id);
        return e !== undefined && Math.hypot(e.x - x, e.z - z) > 1;
      },
      [own.entity, own.x, own.z],
      { timeout: 20_000 },
    );
    await page.keyboard.up('KeyW');
    const server_ = server.world.avatars.get(own.entity);
    expect(server_).toBeDefined();
    expect(Math.hypot(server_!.x - own.x, server_!.z - own.z)).toBeGreaterThan(1);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('changes the number of bots on the server from the toggle', async () => {
    const { page, errors } = await openDemo(chromium);
    await waitConnected(page, 'webtransport');
    const setBots = (n: number) =>
      page.locator('demo-controls #bots').evaluate((el, v) => {
        const input = el as HTMLInputElement;
        input.value = String(v);
        input.dispatchEvent(new Event('change', { bubbles: true }));
      }, n);
    const botsInPage = (n: number) =>
      page.waitForFunction(
        (want) =>
          (globalThis as unknown as { __quiverDemo: { entities(): Row[] } }).__quiverDemo.entities().filter((e) => e.bot)
            .length === want,
        n,
        { timeout: 20_000 },
      );
    await setBots(2);
    await botsInPage(2);
    expect(server.world.botCount).toBe(2);
    await setBots(BOTS);
    await botsInPage(BOTS);
    expect(server.world.botCount).toBe(BOTS);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('emulated latency shows in the measured RTT and the scene stays live', async () => {
    const { page, errors } = await openDemo(chromium, '?latency=100');
    await waitConnected(page, 'webtransport');
    // 100 ms each way sits under the session layer, so every heartbeat takes at least 200 ms.
    await page.waitForFunction(
      () => (globalThis as unknown as { __quiverDemo: { figures: { rttMs: number } } }).__quiverDemo.figures.rttMs >= 200,
      undefined,
      { timeout: 30_000 },
    );
    await expectBotsMoving(page);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('reconnects over WebSocket when the transport toggle says so', async () => {
    const { page, errors } = await openDemo(chromium);
    await waitConnected(page, 'webtransport');
    await page.locator('demo-controls #transport').selectOption('websocket');
    await waitConnected(page, 'websocket');
    expect(await overlay(page, 'transport')).toBe('websocket');
    expect(await overlay(page, 'why')).toMatch(/^forced websocket: websocket won/);
    await expectBotsMoving(page);
    const sessions = await expectOverlayMatchesMetrics(page);
    expect(sessions.websocket).toBeGreaterThanOrEqual(1);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('works with WebSocket forced by ?transport=websocket', async () => {
    const { page, errors } = await openDemo(chromium, '?transport=websocket');
    await waitConnected(page, 'websocket');
    await expectBotsMoving(page);
    await page.screenshot({ path: join(SHOTS, 'websocket.png') });
    expect(errors).toEqual([]);
    await page.close();
  });

  it('falls back to WebSocket when QUIC is disabled in the browser', async () => {
    const noQuic = await launchChromium({ disableQuic: true });
    try {
      const { page, errors } = await openDemo(noQuic);
      await waitConnected(page, 'websocket');
      const attempts = await page.evaluate(
        () => (globalThis as unknown as { __quiverDemo: { attempts: { name: string; outcome: string }[] } }).__quiverDemo.attempts,
      );
      expect(attempts[0]).toMatchObject({ name: 'webtransport' });
      expect(['failed', 'timeout', 'cancelled']).toContain(attempts[0].outcome);
      expect(attempts.find((a) => a.outcome === 'won')?.name).toBe('websocket');
      expect(await overlay(page, 'why')).toMatch(/webtransport .*websocket won/);
      await expectBotsMoving(page);
      await page.screenshot({ path: join(SHOTS, 'no-quic.png') });
      expect(errors).toEqual([]);
      await page.close();
    } finally {
      await noQuic.close();
    }
  });
});
