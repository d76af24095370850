/**
 * Regenerates `demo/screenshot.png` (the README's picture): the real demo server on free ports, headless Chromium,
 * a short walk so the own avatar is in view, then one screenshot of the page as it is.
 *
 *   npx tsx --conditions=quiver-source demo/scripts/readme-screenshot.ts
 *
 * `QUERY` adds demo URL options (e.g. `QUERY='&busy=50'` for a busy page), `OUT` writes elsewhere.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { launchChromium } from '@quiver/testkit';
import { DEMO_DIR } from '../src/server/build.js';
import { createDemoServer } from '../src/server/app.js';

const server = await createDemoServer({ host: '127.0.0.1', port: 0, webtransportPort: 0, bots: 8 });
const chromium = await launchChromium();
try {
  const page = await chromium.newPage();
  await page.setViewportSize({ width: 1280, height: 720 });
  await page.goto(
    `${server.url}?name=You${process.env.SCALE ? `&scale=${process.env.SCALE}` : ''}${process.env.QUERY ?? ''}`,
  );
  await page.waitForFunction(
    () =>
      (globalThis as { __quiverDemo?: { transport: string | null } }).__quiverDemo?.transport ===
      'webtransport',
    undefined,
    { timeout: 30_000 },
  );
  await page.locator('demo-scene canvas').click({ position: { x: 640, y: 500 } });
  await page.keyboard.down('KeyS');
  await page.waitForTimeout(1200);
  await page.keyboard.up('KeyS');
  // Let the sparklines fill a little.
  await page.waitForTimeout(Number(process.env.SETTLE_MS ?? 12_000));
  const out = process.env.OUT ?? join(DEMO_DIR, 'screenshot.png');
  await page.screenshot({ path: out });
  console.log(`${out}: ${(await stat(out)).size} bytes`);
} finally {
  await chromium.close();
  await server.close();
}
