/**
 * The quinn engine's loader. The native addon (`native/quinn`, built offline from Debian's crates by
 * `npm run build:native`) is a first stage: it loads, reports its crates and runs a loopback self-test (quinn
 * server and client, ALPN h3, 0.5-RTT server connection, a datagram echoed), but does not carry connections for
 * the HTTP/3 glue yet. Until it says `engineReady`, the engine is reported as unavailable: listeners and clients
 * use quiche, and `engine: 'quinn'` fails with a clear error.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { QuicEngine } from './engine.js';

export interface QuinnAddon {
  /** JSON: addon and crate versions, `engineReady`. */
  info(): string;
  /** JSON: `handshakeMs`, `maxDatagramSize`, `serverHalfRtt`; throws when the loopback round fails. */
  selfTest(certPem: string, keyPem: string): string;
}

/** Where `npm run build:native` puts the addon. */
export const QUINN_ADDON_PATH = fileURLToPath(
  new URL('../../native/quinn/quiver_quinn.node', import.meta.url),
);

/** The built addon, or undefined when it was not built. */
export function loadQuinnAddon(): QuinnAddon | undefined {
  if (!existsSync(QUINN_ADDON_PATH)) return undefined;
  return createRequire(import.meta.url)(QUINN_ADDON_PATH) as QuinnAddon;
}

export async function loadQuinnEngine(): Promise<QuicEngine | undefined> {
  // The addon does not carry connections yet (its info() says engineReady: false): the engine is unavailable,
  // whether or not the addon was built. See the package README, "quinn engine".
  return undefined;
}
