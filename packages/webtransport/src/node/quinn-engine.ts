/**
 * The quinn engine's loader. The native addon (`native/quinn`, built offline from Debian's crates by
 * `npm run build:native`) is not a complete engine yet: until it is, this reports the engine as unavailable, so
 * the listener and the client use quiche and `engine: 'quinn'` fails with a clear error.
 */
import type { QuicEngine } from './engine.js';

export async function loadQuinnEngine(): Promise<QuicEngine | undefined> {
  return undefined;
}
