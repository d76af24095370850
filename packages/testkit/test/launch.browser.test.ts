import { existsSync } from 'node:fs';
import { expect, it } from 'vitest';
import { launchChromium } from '../src/index.js';

async function commandLine(disableQuic: boolean): Promise<{ text: string; dir: string }> {
  const browser = await launchChromium({ disableQuic });
  try {
    expect(existsSync(browser.userDataDir)).toBe(true);
    const page = await browser.newPage('chrome://version');
    const text = (await page.evaluate('document.body.innerText')) as string;
    return { text, dir: browser.userDataDir };
  } finally {
    await browser.close();
  }
}

it('launchChromium never disables QUIC unless asked, uses a fresh profile and removes it at close', async () => {
  const normal = await commandLine(false);
  expect(normal.text).toContain('--no-sandbox');
  expect(normal.text).toContain(normal.dir);
  expect(normal.text).not.toContain('--disable-quic');
  expect(existsSync(normal.dir)).toBe(false);

  const noQuic = await commandLine(true);
  expect(noQuic.text).toContain('--disable-quic');
  expect(noQuic.dir).not.toBe(normal.dir);
  expect(existsSync(noQuic.dir)).toBe(false);
});
