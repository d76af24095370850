import { rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export const DEMO_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const PUBLIC_DIR = join(DEMO_DIR, 'public');

/**
 * Bundles `src/client/main.ts` into `public/bundle.js` and `src/client/net-worker.ts` into `public/net-worker.js` (esbuild, well under a second), so that `npm start` needs no
 * separate build step. Workspace packages come from source (`quiver-source`) with their browser entries. The file
 * is written under a temporary name and renamed, so a page loading while a second server builds never sees half
 * a bundle.
 */
export async function buildClient(
  options: { minify?: boolean } = {},
): Promise<{ bytes: number; ms: number }> {
  const started = performance.now();
  let bytes = 0;
  // The page, and the dedicated Worker that runs its session (`net-worker.ts`, see DemoSettings.worker).
  for (const [entry, out] of [
    ['main.ts', 'bundle.js'],
    ['net-worker.ts', 'net-worker.js'],
  ]) {
    const tmp = join(PUBLIC_DIR, `.${out}-${process.pid}-${Date.now()}.js`);
    const result = await build({
      entryPoints: [join(DEMO_DIR, 'src', 'client', entry)],
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
      await rename(tmp, join(PUBLIC_DIR, out));
    } finally {
      await rm(tmp, { force: true });
    }
    if (out === 'bundle.js') bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
  }
  return { bytes, ms: performance.now() - started };
}
