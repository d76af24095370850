/**
 * The quinn engine: quinn-proto 0.9 (Rust) in a native addon built offline from Debian's crates by
 * `npm run build:native` (`native/quinn`). UDP I/O (recvmmsg/sendmmsg, GSO), timers and pacing run on the
 * addon's own thread per endpoint; JavaScript receives batches of events ({@link QuinnEndpoint}) and acts on
 * connections through synchronous calls ({@link QuinnConnection}). Without the addon the engine is unavailable
 * and the adapter runs on quiche.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type {
  EngineClientOptions,
  EngineServerOptions,
  EngineTransportOptions,
  QuicEngine,
} from './engine.js';
import type { QuinnAddon } from './quinn-endpoint.js';
import { QuinnConnection } from './quinn-connection.js';
import { QuinnEndpoint } from './quinn-endpoint.js';

export type { QuinnAddon };

/** Where `npm run build:native` puts the addon. */
export const QUINN_ADDON_PATH = fileURLToPath(
  new URL('../../native/quinn/quiver_quinn.node', import.meta.url),
);

/** The built addon, or undefined when it was not built. */
export function loadQuinnAddon(): QuinnAddon | undefined {
  if (!existsSync(QUINN_ADDON_PATH)) return undefined;
  return createRequire(import.meta.url)(QUINN_ADDON_PATH) as QuinnAddon;
}

/**
 * Connections one quinn listener keeps at once, handshakes included; Initials beyond it are refused by
 * quinn-proto (CONNECTION_REFUSED) before any state is kept. The listener's own `maxConnections` applies too.
 */
const MAX_ENDPOINT_CONNECTIONS = 65_536;

const CC = { cubic: 0, reno: 1, bbr: 2 } as const;

/** quinn-proto bounds its datagram queues in bytes, the options count datagrams: full-size ones. */
const datagramSendBytes = (t: EngineTransportOptions): number => t.datagramSendQueue * t.maxUdpPayloadSize;

/** The transport settings as the addon takes them (native/quinn/src/api.rs `Params`). */
function params(t: EngineTransportOptions, socketBufferBytes: number): Float64Array {
  return Float64Array.from([
    t.idleTimeoutMs,
    t.connectionWindowBytes,
    t.streamWindowBytes,
    t.maxBidiStreams,
    t.maxUniStreams,
    t.datagramRecvQueue * t.maxUdpPayloadSize,
    datagramSendBytes(t),
    t.maxUdpPayloadSize,
    CC[t.congestionControl],
    socketBufferBytes,
    MAX_ENDPOINT_CONNECTIONS,
  ]);
}

/** (u32 little-endian length, bytes) per stream, as `createServer` takes it. */
function framePreamble(streams: readonly Uint8Array[]): Uint8Array {
  const out = Buffer.alloc(streams.reduce((n, s) => n + 4 + s.length, 0));
  let o = 0;
  for (const s of streams) {
    o = out.writeUInt32LE(s.length, o);
    out.set(s, o);
    o += s.length;
  }
  return out;
}

const text = (v: string | Uint8Array): string =>
  typeof v === 'string' ? v : Buffer.from(v).toString('utf8');

function makeEngine(addon: QuinnAddon): QuicEngine {
  return {
    name: 'quinn',

    async listen(o: EngineServerOptions) {
      const preamble = o.halfRttStreams ?? [];
      const ep = new QuinnEndpoint(
        addon,
        true,
        o.streamHighWaterMark,
        preamble,
        datagramSendBytes(o.transport),
      );
      ep.handle = addon.createServer(
        o.host,
        o.port,
        params(o.transport, o.socketBufferBytes),
        text(o.cert),
        text(o.key),
        preamble.length > 0 ? framePreamble(preamble) : null,
        ep.onEvents,
      );
      ep.onNew = (conn) => o.accept(conn);
      const address = ep.local;
      let last: Record<string, number> = {};
      const read = (): Record<string, number> => {
        const c = ep.handle >= 0 ? addon.counters(ep.handle) : null;
        if (c) last = JSON.parse(c) as Record<string, number>;
        return last;
      };
      return {
        address,
        get counters() {
          const n = read();
          return {
            ...n,
            // quinn-proto refuses beyond its own limit; the listener refuses beyond maxConnections.
            droppedRefused: (n.droppedRefused ?? 0) + ep.refused,
            strayEvents: ep.strayEvents,
          };
        },
        close: async () => {
          read();
          await ep.close();
        },
      };
    },

    async connect(o: EngineClientOptions) {
      const v6 = o.remote.host.includes(':');
      const ep = new QuinnEndpoint(addon, false, o.streamHighWaterMark, [], datagramSendBytes(o.transport));
      ep.handle = addon.createClient(
        v6 ? '::' : '0.0.0.0',
        params(o.transport, o.socketBufferBytes),
        o.ca === undefined ? null : text(o.ca),
        o.verifyPeer,
        o.serverName === null,
        ep.onEvents,
      );
      let id: number;
      try {
        // rustls wants a name even for an IP literal (it is sent as no SNI, RFC 6066 §3).
        id = addon.connect(ep.handle, o.remote.host, o.remote.port, o.serverName ?? o.remote.host);
      } catch (e) {
        await ep.close();
        throw e;
      }
      const conn = new QuinnConnection(ep, id, o.remote, o.streamHighWaterMark);
      ep.connections.set(id, conn);
      // The first flight leaves once the caller has set the handler (this turn).
      ep.kickSoon();
      return {
        conn,
        release: async () => {
          if (ep.connections.size === 0) await ep.close();
        },
      };
    },
  };
}

let engine: QuicEngine | undefined;

export async function loadQuinnEngine(): Promise<QuicEngine | undefined> {
  if (engine) return engine;
  const addon = loadQuinnAddon();
  if (!addon || typeof addon.createServer !== 'function') return undefined;
  engine = makeEngine(addon);
  return engine;
}
