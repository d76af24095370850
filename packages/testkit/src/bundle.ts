import { build } from 'esbuild';

export interface BundleOptions {
  /** `esm` (default) for `import()` in the page, `iife` for a classic script. */
  format?: 'esm' | 'iife';
  /** Inline source map, so that page errors point at the sources. Default true. */
  sourcemap?: boolean;
  /** esbuild `define`. */
  define?: Record<string, string>;
  /** Minify (default false). */
  minify?: boolean;
}

/**
 * Bundles `entry` (and everything it imports, workspace packages through their `quiver-source` condition) into one
 * browser module.
 */
export async function bundleForBrowser(entry: string, opts: BundleOptions = {}): Promise<string> {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: opts.format ?? 'esm',
    platform: 'browser',
    target: 'es2022',
    conditions: ['quiver-source', 'browser'],
    sourcemap: opts.sourcemap === false ? false : 'inline',
    minify: opts.minify ?? false,
    define: opts.define,
    logLevel: 'silent',
  });
  const out = result.outputFiles[0];
  if (!out) throw new Error(`esbuild produced nothing for ${entry}`);
  return out.text;
}

const cache = new Map<string, Promise<string>>();

/** `bundleForBrowser`, memoised per entry and format for the life of the process (sources do not change in a run). */
export function bundleForBrowserCached(entry: string, opts: BundleOptions = {}): Promise<string> {
  const key = `${opts.format ?? 'esm'}\0${entry}`;
  let p = cache.get(key);
  if (!p) {
    p = bundleForBrowser(entry, opts);
    p.catch(() => cache.delete(key));
    cache.set(key, p);
  }
  return p;
}
