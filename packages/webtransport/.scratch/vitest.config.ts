import { defineConfig } from 'vitest/config';
const resolve = { conditions: ['quiver-source', 'module', 'node', 'import', 'default'] };
export default defineConfig({ resolve, ssr: { resolve: { conditions: ['quiver-source', 'node', 'import', 'default'] } }, test: { include: ['packages/webtransport/.scratch/*.test.ts'], testTimeout: 120000, hookTimeout: 120000, pool: 'forks', root: '/work/main' } });
