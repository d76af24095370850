import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHROMIUM_PATH } from '@quiver/testkit';
import { REPO_ROOT } from './link.js';

/**
 * A wrapper script that starts Chromium through `ip netns exec` in namespace `ns`: Playwright talks to it over
 * inherited pipes, which survive the exec. The caller removes the returned file when done.
 */
export function chromiumInNamespace(ns: string): string {
  if (!/^[a-z0-9-]+$/.test(ns)) throw new Error(`unexpected namespace name ${ns}`);
  const dir = join(REPO_ROOT, 'scripts', '.build');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `chromium-in-${ns}.sh`);
  const bin = process.env.QUIVER_CHROMIUM ?? CHROMIUM_PATH;
  writeFileSync(file, `#!/bin/sh\nexec ip netns exec ${ns} ${bin} "$@"\n`);
  chmodSync(file, 0o755);
  return file;
}
