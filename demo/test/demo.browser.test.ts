/**
 * The demo as a new user meets it: the real server (fastify, WebTransport over UDP with a development certificate,
 * WebSocket, /metrics) in this process on OS-chosen ports, and headless Chromium loading the page over HTTP.
 */
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type LaunchedChromium, launchChromium, launchFirefox } from '@quiver/testkit';
import type { Page } from 'playwright-core';
import { RoomsClient } from '@quiver/rooms/client';
import { connectWebSocket } from '@quiver/websocket';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoServer, type DemoServer } from '../src/server/app.js';
import { World } from '../src/server/world.js';
import { Frame, Hello, messages, POSE_LENGTH } from '../src/shared/protocol.js';

const SHOTS = join(dirname(fileURLToPath(import.meta.url)), '..', 'screenshots');
const BOTS = 4;

const UNLIMITED = { maxSessionsPerIp: 1000, sessionsPerMinutePerIp: 100_000 };
let server: DemoServer;
let chromium: LaunchedChromium;

beforeAll(async () => {
  await mkdir(SHOTS, { recursive: true });
  // Every test here opens pages from 127.0.0.1: the per-address limits (tested in limits.test.ts) are lifted so
  // that the file's many sessions are not refused as one abusive address.
  server = await createDemoServer({
    host: '127.0.0.1',
    port: 0,
    webtransportPort: 0,
    bots: BOTS,
    ...UNLIMITED,
  });
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
      const d = (
        globalThis as { __quiverDemo?: { transport: string | null; welcome: unknown; entities(): unknown[] } }
      ).__quiverDemo;
      return d?.transport === t && d.welcome !== null && d.entities().length > 0;
    },
    transport,
    { timeout: 30_000 },
  );
}

type Row = { id: number; kind: string; bot: boolean; x: number; z: number };
const entities = (page: Page) =>
  page.evaluate(() =>
    (globalThis as unknown as { __quiverDemo: { entities(): Row[] } }).__quiverDemo.entities(),
  );
const overlay = (page: Page, key: string) =>
  page.evaluate(
    (k) =>
      (globalThis as unknown as { __quiverDemo: { overlay(k: string): string | null } }).__quiverDemo.overlay(
        k,
      ),
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

async function scrapeMetrics(): Promise<{
  sessions: Record<string, number>;
  bytes: { in: number; out: number };
}> {
  const text = await (await fetch(`${server.url}metrics`)).text();
  const sessions: Record<string, number> = {};
  for (const m of text.matchAll(/^quiver_sessions_active\{transport="([^"]+)"\} (\S+)$/gm))
    sessions[m[1]] = Number(m[2]);
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
    if (
      shown.webtransport === (metrics.sessions.webtransport ?? 0) &&
      shown.websocket === (metrics.sessions.websocket ?? 0)
    )
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
    // The session runs in the Worker by default (`?worker=0`, the toggle, put it on the main thread).
    expect(await overlay(page, 'session-thread')).toBe('a Worker');
    // The page matchmade into the one arena room; the overlay names it and counts its clients.
    const arena = server.app.rooms.localRooms[0];
    expect(server.app.rooms.localRooms.map((r) => r.roomName)).toEqual(['arena']);
    await expect.poll(() => overlay(page, 'room')).toBe(arena.roomId);
    await expect.poll(() => overlay(page, 'room-clients')).toBe(String(arena.clients.length));
    expect(arena.clients.length).toBeGreaterThanOrEqual(1);
    const rows = await entities(page);
    expect(rows.filter((e) => e.bot)).toHaveLength(BOTS);
    expect(rows.filter((e) => e.kind === 'ball' || e.kind === 'box').length).toBe(server.world.things.length);
    await expectBotsMoving(page);
    await page.waitForFunction(
      () =>
        (globalThis as unknown as { __quiverDemo: { framesRendered: number } }).__quiverDemo.framesRendered >
        2,
    );

    const sessions = await expectOverlayMatchesMetrics(page);
    expect(sessions.webtransport).toBeGreaterThanOrEqual(1);
    // Payload bytes: the page's counters and the server's are the same measure. Only this page has talked to
    // the server so far, so the server cannot have received more than the page sent (read after the scrape), nor
    // sent less than the page received (read before it).
    const readBytes = () =>
      page.evaluate(
        () =>
          (globalThis as unknown as { __quiverDemo: { bytes: { in: number; out: number } } }).__quiverDemo
            .bytes,
      );
    const before = await readBytes();
    const metrics = await scrapeMetrics();
    // The session runs in a Worker: the page's counters are its last report, so take one newer than the scrape.
    await page.evaluate(() =>
      (globalThis as unknown as { __quiverDemo: { fresh(): Promise<void> } }).__quiverDemo.fresh(),
    );
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
      () =>
        (globalThis as unknown as { __quiverDemo: { welcome: { entity: number; x: number; z: number } } })
          .__quiverDemo.welcome,
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
    const avatar = server.world.avatars.get(own.entity);
    expect(avatar).toBeDefined();
    expect(Math.hypot(avatar!.x - own.x, avatar!.z - own.z)).toBeGreaterThan(1);
    // The simulation is deterministic and quantised like the wire: the server disagrees with the page's
    // prediction only where it had to invent or drop an input (every copy lost, a full queue, a restart).
    const predictor = await page.evaluate(
      () =>
        (
          globalThis as unknown as {
            __quiverDemo: { client: { predictor: { stats: { inputs: number; mispredictions: number } } } };
          }
        ).__quiverDemo.client.predictor.stats,
    );
    const status = (await (await fetch(`${server.url}demo/status`)).json()) as Record<string, number>;
    expect(predictor.inputs).toBeGreaterThan(10);
    expect(predictor.mispredictions).toBeLessThanOrEqual(
      status.inputsFilled + status.inputsDropped + status.inputResets,
    );
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
          (globalThis as unknown as { __quiverDemo: { entities(): Row[] } }).__quiverDemo
            .entities()
            .filter((e) => e.bot).length === want,
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

  it('emulated latency shows in the measured RTT, emulated loss is counted, and the scene stays live', async () => {
    const { page, errors } = await openDemo(chromium, '?latency=100&loss=10');
    await waitConnected(page, 'webtransport');
    // 100 ms each way sits under the session layer, so every heartbeat takes at least 200 ms.
    await page.waitForFunction(
      () =>
        (globalThis as unknown as { __quiverDemo: { figures: { rttMs: number } } }).__quiverDemo.figures
          .rttMs >= 200,
      undefined,
      { timeout: 30_000 },
    );
    await page.waitForFunction(
      () => {
        const d = (
          globalThis as unknown as {
            __quiverDemo: { client: { shaperStats: { droppedIn: number; droppedOut: number } } };
          }
        ).__quiverDemo;
        return d.client.shaperStats.droppedIn > 0 && d.client.shaperStats.droppedOut > 0;
      },
      undefined,
      { timeout: 30_000 },
    );
    await expectBotsMoving(page);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('turns prediction and interpolation off and on from the toggles while the scene keeps running', async () => {
    const { page, errors } = await openDemo(chromium);
    await waitConnected(page, 'webtransport');
    const settings = () =>
      page.evaluate(() => {
        const s = (
          globalThis as unknown as {
            __quiverDemo: { settings: { prediction: boolean; interpolation: boolean } };
          }
        ).__quiverDemo.settings;
        return { prediction: s.prediction, interpolation: s.interpolation };
      });
    const frames = () =>
      page.evaluate(
        () =>
          (globalThis as unknown as { __quiverDemo: { framesRendered: number } }).__quiverDemo.framesRendered,
      );
    await page.locator('demo-controls #prediction').uncheck();
    await page.locator('demo-controls #interpolation').uncheck();
    expect(await settings()).toEqual({ prediction: false, interpolation: false });
    const before = await frames();
    await expectBotsMoving(page);
    await page.waitForFunction(
      (n) =>
        (globalThis as unknown as { __quiverDemo: { framesRendered: number } }).__quiverDemo.framesRendered >
        n + 2,
      before,
    );
    await page.locator('demo-controls #prediction').check();
    await page.locator('demo-controls #interpolation').check();
    expect(await settings()).toEqual({ prediction: true, interpolation: true });
    await expectBotsMoving(page);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('moves the session between a Worker and the main thread from the toggle, on a busy page', async () => {
    const { page, errors } = await openDemo(chromium, '?busy=50');
    await waitConnected(page, 'webtransport');
    expect(await overlay(page, 'session-thread')).toBe('a Worker');
    // Messages from the Worker wait for the blocked main thread, and the overlay says how long.
    await page.waitForFunction(
      () =>
        (globalThis as unknown as { __quiverDemo: { figures: { waitMs: number } } }).__quiverDemo.figures
          .waitMs > 0,
      undefined,
      { timeout: 30_000 },
    );
    await page.locator('demo-controls #worker').uncheck();
    await expect.poll(() => overlay(page, 'session-thread')).toBe('the main thread');
    await waitConnected(page, 'webtransport');
    await expectBotsMoving(page);
    await page.locator('demo-controls #worker').check();
    await expect.poll(() => overlay(page, 'session-thread')).toBe('a Worker');
    await waitConnected(page, 'webtransport');
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

  // Chromium 156 still opens WebTransport sessions with --disable-quic (the switch only stops QUIC for HTTP
  // requests), so that switch cannot make the fallback happen; these two cases make WebTransport really fail.
  it('falls back to WebSocket in a browser without WebTransport', async () => {
    const bare = await launchChromium();
    try {
      // As in a browser that does not implement it: the constructor is absent before any page script runs.
      await bare.context.addInitScript(() => {
        delete (globalThis as { WebTransport?: unknown }).WebTransport;
      });
      // The init script runs in pages, not in Workers: the session stays on the page's main thread here (the
      // Worker's own fallback is covered by packages/session/test/worker.browser.test.ts).
      const { page, errors } = await openDemo(bare, '?worker=0');
      await waitConnected(page, 'websocket');
      const attempts = await page.evaluate(
        () =>
          (globalThis as unknown as { __quiverDemo: { attempts: { name: string; outcome: string }[] } })
            .__quiverDemo.attempts,
      );
      // The HTTP fallback is third in the race, a second behind WebSocket: skipped when WebSocket connects within
      // its head start, a lost race on a machine slow enough that it had started.
      expect(attempts.map((a) => [a.name, a.outcome]).slice(0, 2)).toEqual([
        ['webtransport', 'unsupported'],
        ['websocket', 'won'],
      ]);
      expect(attempts.map((a) => a.name)).toEqual(['webtransport', 'websocket', 'http']);
      expect(['skipped', 'lost-race']).toContain(attempts[2].outcome);
      expect(await overlay(page, 'why')).toMatch(/^auto: webtransport unsupported .*websocket won/);
      await expectBotsMoving(page);
      expect(errors).toEqual([]);
      await page.close();
    } finally {
      await bare.close();
    }
  });

  it('falls back to WebSocket when the server cannot be reached over UDP (QUIC blocked)', async () => {
    const blocked = await createDemoServer({
      host: '127.0.0.1',
      port: 0,
      webtransportPort: 0,
      bots: 2,
      build: false,
      ...UNLIMITED,
    });
    const noQuic = await launchChromium({ disableQuic: true });
    try {
      // The page still learns the WebTransport URL and certificate hash, but nothing answers on that UDP port any
      // more: the QUIC handshake fails as it does behind a firewall that drops UDP.
      await blocked.app.quiverTransports.webtransport!.close();
      const page = await noQuic.newPage();
      await page.setViewportSize({ width: 1280, height: 720 });
      const errors: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
      await page.goto(blocked.url);
      await waitConnected(page, 'websocket');
      const attempts = await page.evaluate(
        () =>
          (globalThis as unknown as { __quiverDemo: { attempts: { name: string; outcome: string }[] } })
            .__quiverDemo.attempts,
      );
      expect(attempts[0]).toMatchObject({ name: 'webtransport' });
      expect(['failed', 'timeout', 'lost-race']).toContain(attempts[0].outcome);
      expect(attempts.find((a) => a.outcome === 'won')?.name).toBe('websocket');
      await expectBotsMoving(page);
      await page.screenshot({ path: join(SHOTS, 'quic-blocked.png') });
      // Chromium reports the refused QUIC handshake itself; nothing else may be logged.
      expect(errors.filter((e) => !/WebTransport|QUIC|ERR_/i.test(e))).toEqual([]);
      await page.close();
    } finally {
      await noQuic.close();
      await blocked.close();
    }
  });
});

describe('demo scene in Firefox', () => {
  it('connects over WebTransport and replicates the bots (headless Firefox has no WebGL: no view, no errors)', async () => {
    const firefox = await launchFirefox();
    try {
      const page = await firefox.newPage();
      const errors: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      page.on('pageerror', (e) => errors.push(`pageerror: ${String(e)}`));
      await page.goto(server.url);
      await page.waitForFunction(
        () => {
          const d = (
            globalThis as unknown as { __quiverDemo?: { transport: string | null; entities(): Row[] } }
          ).__quiverDemo;
          return d?.transport === 'webtransport' && d.entities().some((e) => e.bot);
        },
        { timeout: 30_000 },
      );
      const before = await page.evaluate(() =>
        (globalThis as unknown as { __quiverDemo: { entities(): Row[] } }).__quiverDemo
          .entities()
          .filter((e) => e.bot),
      );
      await page.waitForFunction(
        (prev: Row[]) => {
          const now = (
            globalThis as unknown as { __quiverDemo: { entities(): Row[] } }
          ).__quiverDemo.entities();
          return prev.some((p) => {
            const e = now.find((n) => n.id === p.id);
            return e !== undefined && Math.hypot(e.x - p.x, e.z - p.z) > 0.05;
          });
        },
        { timeout: 20_000 },
        before,
      );
      expect(errors).toEqual([]);
      await page.close();
    } finally {
      await firefox.close();
    }
  });
});

describe('demo server without a browser', () => {
  it('counts bad input packets and acks, and closes only a session that sends an invalid message', async () => {
    // A client matchmakes into the arena like the page does, over WebSocket.
    const rooms = new RoomsClient({
      endpoint: server.url.replace(/\/$/, ''),
      connectors: { websocket: connectWebSocket },
      session: { messages, reconnect: false },
    });
    const a = await rooms.joinOrCreate('arena', { name: 'tester' });
    const b = await rooms.joinOrCreate('arena', { name: 'bystander' });
    expect(b.roomId).toBe(a.roomId);
    try {
      await a.request(Hello, {});
      const rejectedBefore = (await (await fetch(`${server.url}demo/status`)).json()) as Record<
        string,
        number
      >;
      // Well-formed messages carrying garbage: an input packet announcing 200 inputs, an ack of nothing.
      a.send(Frame, { i: new Uint8Array([1, 0, 0, 0, 200, 9, 9]), a: new Uint8Array([1, 2, 3]) });
      await expect
        .poll(
          async () =>
            ((await (await fetch(`${server.url}demo/status`)).json()) as Record<string, number>)
              .inputsRejected,
        )
        .toBe(rejectedBefore.inputsRejected + 1);
      const status = (await (await fetch(`${server.url}demo/status`)).json()) as Record<string, number>;
      expect(status.acksRejected).toBe(rejectedBefore.acksRejected + 1);
      expect(a.session.state).toBe('open');
      // A pose of the wrong length fails the message's validation: that session alone is closed (4422).
      a.send(Frame, { p: new Array(POSE_LENGTH - 1).fill(0) });
      expect((await a.session.closed).code).toBe(4422);
      expect(b.session.state).toBe('open');
      expect(server.world.avatars.size).toBeGreaterThan(BOTS);
    } finally {
      await a.leave();
      await b.leave();
    }
  });

  it('runs the same world from the same seed, and its bots push the objects', () => {
    const run = () => {
      const w = new World({ seed: 42, bots: 3 });
      let next = 1000;
      w.reconcileBots(
        () => next++,
        () => {},
      );
      const start = w.things.map((t) => ({ ...t.pos }));
      for (let i = 0; i < 30 * 20; i++) w.step();
      return { w, start };
    };
    const one = run();
    const two = run();
    expect(one.w.things.map((t) => t.pos)).toEqual(two.w.things.map((t) => t.pos));
    const moved = one.w.things.filter(
      (t, i) => Math.hypot(t.pos.x - one.start[i].x, t.pos.z - one.start[i].z) > 0.5,
    );
    expect(moved.length).toBeGreaterThan(0);
    for (const t of one.w.things) {
      expect(Math.abs(t.pos.x)).toBeLessThanOrEqual(10 - t.size + 1e-9);
      expect(Math.abs(t.pos.z)).toBeLessThanOrEqual(10 - t.size + 1e-9);
    }
  });
});
