import { rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export const DEMO_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const PUBLIC_DIR = join(DEMO_DIR, 'public');

/**
 * Bundles `src/client/main.ts` into `public/bundle.js` (esbuild, well under a second), so that `npm start` needs no
 * separate build step. Workspace packages come from source (`quiver-source`) with their browser entries. The file
 * is written under a temporary name and renamed, so a page loading while a second server builds never sees half
 * a bundle.
 */
export async function buildClient(
  options: { minify?: boolean } = {},
): Promise<{ bytes: number; ms: number }> {
  const started = performance.now();
  const tmp = join(PUBLIC_DIR, `.bundle-${process.pid}-${Date.now()}.js`);
  const result = await build({
    entryPoints: [join(DEMO_DIR, 'src', 'client', 'main.ts')],
    outfile: tmp,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    conditions: ['quiver-source', 'browser'],
    minify: options.minify ?? true,
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'silent',
    metafile: true,
  });
  try {
    await rename(tmp, join(PUBLIC_DIR, 'bundle.js'));
  } finally {
    await rm(tmp, { force: true });
  }
  const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
  return { bytes, ms: performance.now() - started };
}
