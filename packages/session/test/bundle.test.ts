import { fileURLToPath } from 'node:url';
import { bundleForBrowser } from '@quiver/testkit';
import { describe, expect, it } from 'vitest';

describe('browser bundle', () => {
  it('bundles for the browser platform with no Node built-ins (client and server alike)', async () => {
    // esbuild's browser platform fails on any `node:` import, so bundling at all proves the point.
    const code = await bundleForBrowser(fileURLToPath(new URL('../src/index.ts', import.meta.url)), {
      sourcemap: false,
    });
    expect(code).toContain('wrapNativeWebTransport');
    expect(code).not.toMatch(/from\s*["']node:/);
    expect(code).not.toMatch(/require\(["']/);
  });
});
