/**
 * Entry of a bench agent: a Node child that runs measurement code in a network namespace (`ip netns exec`), or
 * directly on loopback. Node cannot enter a namespace itself (no setns), so the bench process orchestrates
 * agents over the IPC channel: each message names a module under bench/ and an exported function to call;
 * modules keep their state between calls (a server started by one call is stopped by another).
 * The agent exits when the channel closes, so a dead parent never leaves agents behind.
 */
import { isAbsolute, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO_ROOT } from './link.js';

interface Call {
  id: number;
  module: string;
  fn: string;
  args: unknown[];
}

process.on('message', (m: Call) => {
  void (async () => {
    try {
      const path = isAbsolute(m.module) ? m.module : join(REPO_ROOT, m.module);
      const mod = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
      const f = mod[m.fn];
      if (typeof f !== 'function') throw new Error(`${m.module} has no function ${m.fn}`);
      const result = await (f as (...a: unknown[]) => unknown)(...m.args);
      process.send?.({ id: m.id, ok: true, result });
    } catch (e) {
      process.send?.({ id: m.id, ok: false, error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
    }
  })();
});
process.on('disconnect', () => process.exit(0));
process.send?.({ id: 0, ok: true, result: 'ready' });
