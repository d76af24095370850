import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runExample } from './run-example.js';

const file = fileURLToPath(new URL('../rooms-quickstart.ts', import.meta.url));

describe('rooms quick start', () => {
  it('the README snippet (examples/rooms-quickstart.ts) runs as is: matchmaking, messages, a request', async () => {
    const { out, code } = await runExample(file);
    expect(out).toContain('alice asks where she is: {"x":1,"y":0}');
    expect(out).toMatch(/bob sees \{"name":"alice","x":1,"y":0\} in room [0-9a-f]+ \(same: true\)/);
    expect(out).toContain('over webtransport');
    expect(code).toBe(0);
  });

  it('README.md shows it exactly as examples/rooms-quickstart.ts', async () => {
    const text = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
    expect(text).toContain('```ts\n' + (await readFile(file, 'utf8')) + '```');
  });
});
