/**
 * The persisted offline queue in real Chromium and Firefox, with the browsers' own `localStorage`: a page connected
 * over the HTTP fallback loses its server, sends reliable messages while nothing is reachable, and is reloaded; the
 * next page's `connect()` delivers them to the real server (back on the same port) exactly once, in order, and when
 * the bound was exceeded the oldest were dropped, counted.
 */
import { fileURLToPath } from 'node:url';
import { createHttpStreamListener, type HttpStreamListener } from '@quiver/http-stream';
import {
  bundleForBrowser,
  launchChromium,
  launchFirefox,
  type StaticServer,
  serveStatic,
} from '@quiver/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSessionServer, defineMessage, type SessionServer } from '../src/index.js';
import type { PageConfig } from './fixtures/offline-queue-client.js';

const N = defineMessage<{ n: number; page: number }>('n');
const Done = defineMessage<number>('done');

let server: SessionServer;
let listener: HttpStreamListener | undefined;
let port: number;
let site: StaticServer;
const seen: { n: number; page: number }[] = [];
const done: number[] = [];
const closers: (() => Promise<void>)[] = [];

async function listen(): Promise<void> {
  listener = await createHttpStreamListener({ host: '127.0.0.1', port, path: '/quiver' });
  server.addListener(listener);
}

beforeAll(async () => {
  server = createSessionServer({ listeners: [], messages: [N, Done] });
  server.on(N, (m) => seen.push(m));
  server.on(Done, (m) => done.push(m));
  port = 0;
  await listen();
  port = listener!.address.port;
  const code = await bundleForBrowser(
    fileURLToPath(new URL('./fixtures/offline-queue-client.ts', import.meta.url)),
  );
  site = await serveStatic({ routes: { '/client.js': code } });
});

afterAll(async () => {
  for (const c of closers) await c();
  await server?.close();
  await listener?.close();
  await site?.close();
});

interface Page {
  evaluate(expression: string): Promise<unknown>;
  reload(): Promise<unknown>;
}

/** Calls an export of the page module (a string, not a function: vitest would rewrite a function's import). */
function call<T>(page: Page, fn: string, ...args: unknown[]): Promise<T> {
  const list = args.map((a) => JSON.stringify(a)).join(', ');
  return page.evaluate(`(async () => (await import('${site.url}client.js')).${fn}(${list}))()`) as Promise<T>;
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Page 1 connects, the server goes away, page 1 sends `count` messages and reloads, the server comes back, page 2
 * connects. Returns what each step reported and what the server received from the offline sends.
 */
async function reloadWhileOffline(
  launch: () => Promise<{ newPage(url: string): Promise<unknown>; close(): Promise<void> }>,
  cfg: Omit<PageConfig, 'url'>,
  count: number,
) {
  const browser = await launch();
  closers.push(() => browser.close());
  const page = (await browser.newPage(site.url)) as Page;
  const pageCfg: PageConfig = { url: `http://127.0.0.1:${port}/quiver`, ...cfg };
  seen.length = 0;
  done.length = 0;
  const opened = await call<{ transport: string; stored: string | null }>(page, 'open', pageCfg);
  expect(opened).toEqual({ transport: 'http', stored: null });
  await until(() => seen.length === 1, 'the online message');
  // No server reachable: the listener is gone and its port refuses connections.
  await listener!.close();
  listener = undefined;
  const offline = await call<{ state: string; accepted: number; stored: number; dropped: number }>(
    page,
    'sendOffline',
    pageCfg,
    count,
  );
  await page.reload();
  await listen();
  const flushed = await call<{
    storedBefore: number;
    storedAfter: string | null;
    dropped: number;
    transport: string;
  }>(page, 'reconnectAndFlush', pageCfg);
  // The marker goes out after the restored messages on the same reliable channel: once it is in, so are they.
  await until(() => done.length === 1, 'the marker sent after the restored messages');
  // Exactly once without waiting on a timer: a duplicate would have to arrive before the marker that follows it.
  const received = seen.slice(1);
  await browser.close();
  return { offline, flushed, received };
}

for (const [name, launch] of [
  ['Chromium', launchChromium],
  ['Firefox', launchFirefox],
] as const) {
  describe(`persisted offline queue in ${name}`, () => {
    it('delivers what a page sent while offline on the reloaded page first connect, once, in order', async () => {
      const key = `game:${name}:all`;
      const { offline, flushed, received } = await reloadWhileOffline(launch, { key }, 5);
      expect(offline).toEqual({ state: 'reconnecting', accepted: 5, stored: 5, dropped: 0 });
      expect(flushed).toEqual({ storedBefore: 5, storedAfter: null, dropped: 0, transport: 'http' });
      expect(received).toEqual([1, 2, 3, 4, 5].map((n) => ({ n, page: 1 })));
      expect(done).toEqual([2]);
    });

    it('keeps the newest within maxMessages and counts the rest as dropped', async () => {
      const key = `game:${name}:bounded`;
      const { offline, flushed, received } = await reloadWhileOffline(launch, { key, maxMessages: 3 }, 8);
      expect(offline).toEqual({ state: 'reconnecting', accepted: 8, stored: 3, dropped: 5 });
      expect(flushed).toEqual({ storedBefore: 3, storedAfter: null, dropped: 0, transport: 'http' });
      expect(received).toEqual([6, 7, 8].map((n) => ({ n, page: 1 })));
      expect(offline.dropped + received.length).toBe(8);
    });
  });
}
