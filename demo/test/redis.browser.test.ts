/**
 * The demo on Redis, as `REDIS_URL=... PORT=... npm start` twice gives it: two demo servers on one real
 * redis-server, each opening its own arena room. Both list both rooms, and two Chromium pages, one loaded from each
 * server, matchmake into the same arena over WebTransport (the second page's seat is on the other process, whose
 * endpoints and certificate hash the reservation names).
 */
import { type RedisServer, startRedis } from '@quiver/redis/testing';
import { type LaunchedChromium, launchChromium } from '@quiver/testkit';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoServer, type DemoServer } from '../src/server/app.js';

const UNLIMITED = { maxSessionsPerIp: 1000, sessionsPerMinutePerIp: 100_000 };
let redis: RedisServer;
let servers: DemoServer[] = [];
let chromium: LaunchedChromium;

beforeAll(async () => {
  redis = await startRedis();
  for (let i = 0; i < 2; i++) {
    servers.push(
      await createDemoServer({
        host: '127.0.0.1',
        port: 0,
        webtransportPort: 0,
        bots: 2,
        redisUrl: redis.url,
        build: i === 0,
        ...UNLIMITED,
      }),
    );
  }
  chromium = await launchChromium();
});

afterAll(async () => {
  await chromium?.close();
  for (const s of servers) await s.close();
  servers = [];
  await redis?.stop();
});

const overlay = (page: Page, key: string) =>
  page.evaluate(
    (k) =>
      (globalThis as unknown as { __quiverDemo: { overlay(k: string): string | null } }).__quiverDemo.overlay(
        k,
      ),
    key,
  );

async function roomIds(s: DemoServer): Promise<string[]> {
  const res = await fetch(`${s.url}quiver/rooms?name=arena`);
  return ((await res.json()) as { rooms: { id: string }[] }).rooms.map((r) => r.id).sort();
}

describe('the demo on two processes and Redis', () => {
  it('one listing on both, and two browsers sent to different processes play in the same arena', async () => {
    const [a, b] = servers as [DemoServer, DemoServer];
    const arenas = [a, b].map((s) => s.app.rooms.localRooms[0]!.roomId).sort();
    expect(await roomIds(a)).toEqual(arenas);
    expect(await roomIds(b)).toEqual(arenas);

    const pages: Page[] = [];
    for (const s of [a, b]) {
      const page = await chromium.newPage();
      await page.goto(s.url);
      pages.push(page);
      // One after the other: the second page's matchmaking sees the first's seat and picks its (fuller) arena.
      await expect.poll(() => overlay(page, 'room'), { timeout: 30_000 }).toMatch(/^[0-9a-f]+$/);
    }
    const [pa, pb] = pages as [Page, Page];
    const room = await overlay(pa, 'room');
    expect(await overlay(pb, 'room')).toBe(room);
    expect(await overlay(pa, 'transport')).toBe('webtransport');
    expect(await overlay(pb, 'transport')).toBe('webtransport');
    // The arena's process counts both clients, whichever process each page was loaded from.
    const host = [a, b].find((s) => s.app.rooms.getRoom(room ?? ''))!;
    await expect.poll(() => host.app.rooms.getRoom(room ?? '')?.clients.length).toBe(2);
    await expect.poll(() => overlay(pb, 'room-clients')).toBe('2');
    for (const p of pages) await p.close();
  });
});
