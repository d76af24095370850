import { defineConfig } from 'vitest/config';

// Sources are resolved through the `quiver-source` export condition, so tests run on src/ without a build.
const resolve = { conditions: ['quiver-source', 'module', 'node', 'import', 'default'] };
const ssr = { resolve: { conditions: ['quiver-source', 'node', 'import', 'default'] } };

export default defineConfig({
  resolve,
  ssr,
  test: {
    projects: [
      {
        resolve,
        ssr,
        test: {
          name: 'unit',
          include: [
            'packages/*/test/**/*.test.ts',
            'examples/test/**/*.test.ts',
            'bench/test/**/*.test.ts',
            'scripts/test/**/*.test.ts',
          ],
          exclude: ['**/*.browser.test.ts', '**/node_modules/**'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          pool: 'forks',
        },
      },
      {
        resolve,
        ssr,
        test: {
          name: 'browser',
          include: ['packages/*/test/**/*.browser.test.ts', 'demo/test/**/*.browser.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          pool: 'forks',
          fileParallelism: false,
        },
      },
    ],
  },
});
