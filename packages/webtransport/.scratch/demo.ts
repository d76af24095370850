import { launchChromium } from '@quiver/testkit';
import { createDemoServer } from '../../../demo/src/server/app.js';
const server = await createDemoServer({ host: '127.0.0.1', port: 0, webtransportPort: 0, bots: 4 });
const chromium = await launchChromium();
const page = await chromium.newPage();
await page.setViewportSize({ width: 640, height: 360 });
await page.goto(`${server.url}?transport=webtransport`);
await page.waitForFunction(() => (globalThis as any).__quiverDemo?.transport === 'webtransport' && (globalThis as any).__quiverDemo.welcome !== null, undefined, { timeout: 30000 });
const wt: any = server.app.quiverTransports.webtransport;
const out: string[] = [];
for (let i = 0; i < Number(process.env.SECS ?? 15); i++) {
  await new Promise((r) => setTimeout(r, 1000));
  const rtt = await page.evaluate(() => (globalThis as any).__quiverDemo.overlay('rttMs'));
  const c = wt.counters ?? {};
  out.push(`${i}:${rtt} in=${c.packetsReceived} out=${c.packetsSent}`);
  console.log(out[out.length - 1]);
}
await chromium.close();
await server.close();
process.exit(0);
