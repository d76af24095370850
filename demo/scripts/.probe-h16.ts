// Opens one page of a running demo (URL in argv) in headless Chromium for a few seconds (notes for issue 16).
import { launchChromium } from '@quiver/testkit';

const url = process.argv[2];
const chromium = await launchChromium();
try {
  const page = await chromium.newPage();
  await page.goto(`${url}?name=Probe`);
  await page.waitForFunction(
    () => (globalThis as { __quiverDemo?: { transport: string | null } }).__quiverDemo?.transport != null,
    undefined,
    { timeout: 30_000 },
  );
  console.log('page transport:', await page.evaluate(() => (globalThis as { __quiverDemo?: { transport: string | null } }).__quiverDemo?.transport));
  await page.locator('demo-scene canvas').click({ position: { x: 400, y: 300 } });
  await page.keyboard.down('KeyW');
  await page.waitForTimeout(1500);
  await page.keyboard.up('KeyW');
  await page.waitForTimeout(2000);
} finally {
  await chromium.close();
}
