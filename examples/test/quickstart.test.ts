import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runExample } from './run-example.js';

const file = fileURLToPath(new URL('../quickstart.ts', import.meta.url));

describe('quick start', () => {
  it('the README snippet (examples/quickstart.ts) runs as is and shows messages flowing', async () => {
    const { out, code } = await runExample(file);
    expect(out).toContain('connected over webtransport');
    expect(out).toContain('chat from anonymous: hello, quiver');
    expect(out).toMatch(/pos echo: \d+,-\d+/);
    expect(out).toMatch(/rtt \d+\.\d+ ms/);
    expect(code).toBe(0);
  });
});

describe('README', () => {
  const example = readFile(file, 'utf8');
  for (const readme of ['README.md', 'packages/session/README.md']) {
    it(`${readme} shows the quick start exactly as examples/quickstart.ts`, async () => {
      const text = await readFile(new URL(`../../${readme}`, import.meta.url), 'utf8');
      expect(text).toContain('```ts\n' + (await example) + '```');
    });
  }
});
