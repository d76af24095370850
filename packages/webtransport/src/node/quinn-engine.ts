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
  const clients = new ClientEndpoints(addon);
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
      const ep = clients.acquire(o);
      let id: number;
      try {
        // rustls wants a name even for an IP literal (it is sent as no SNI, RFC 6066 §3).
        id = addon.connect(ep.handle, o.remote.host, o.remote.port, o.serverName ?? o.remote.host);
      } catch (e) {
        clients.idle(ep);
        throw e;
      }
      const conn = new QuinnConnection(ep, id, o.remote, o.streamHighWaterMark);
      ep.connections.set(id, conn);
      // The first flight leaves once the caller has set the handler (this turn).
      ep.kickSoon();
      return {
        conn,
        release: async () => clients.idle(ep),
      };
    },
  };
}

/**
 * How long a shared client endpoint with no connection left is kept (its I/O thread, socket and receive buffers)
 * before it is closed: connections made one after another (a reconnecting client, the setup bench) reuse it
 * instead of paying a thread start and a 2 MiB buffer on their critical path. It holds no process open meanwhile.
 */
export const CLIENT_ENDPOINT_IDLE_MS = 2000;

/**
 * Client endpoints shared by every client connection of the process that has the same client configuration
 * (transport parameters, CA, verification mode; normally one): quinn's own model, one socket and one I/O
 * thread for many connections, told apart by connection id (RFC 9000 §5.1). Created at the first connection,
 * closed {@link CLIENT_ENDPOINT_IDLE_MS} after the last one is gone, and at process exit.
 *
 * Connection migration: all connections of a shared endpoint use its one socket, so a client-side move to a new
 * address (quinn's `Endpoint::rebind`) would move them all together, as quinn does; the quinn engine does not
 * migrate clients actively (that is the quiche engine's, `migration.ts`), and the server ignores moves
 * (`migration(false)`), so nothing here changes what a connection does when its path breaks.
 */
class ClientEndpoints {
  private readonly byKey = new Map<string, QuinnEndpoint>();
  private readonly keys = new Map<QuinnEndpoint, string>();
  private readonly timers = new Map<QuinnEndpoint, NodeJS.Timeout>();
  private exitHook = false;

  constructor(private readonly addon: QuinnAddon) {}

  /** The endpoint for this configuration, created if there is none; it holds the process while in use. */
  acquire(o: EngineClientOptions): QuinnEndpoint {
    const v6 = o.remote.host.includes(':');
    const p = params(o.transport, o.socketBufferBytes);
    const ca = o.ca === undefined ? null : text(o.ca);
    const ipLiteral = o.serverName === null;
    const key = JSON.stringify([v6, [...p], ca, o.verifyPeer, ipLiteral, o.streamHighWaterMark]);
    const found = this.byKey.get(key);
    if (found) {
      const t = this.timers.get(found);
      if (t) {
        clearTimeout(t);
        this.timers.delete(found);
        this.addon.holdsProcess(found.handle, true);
      }
      return found;
    }
    const ep = new QuinnEndpoint(
      this.addon,
      false,
      o.streamHighWaterMark,
      [],
      datagramSendBytes(o.transport),
    );
    ep.handle = this.addon.createClient(v6 ? '::' : '0.0.0.0', p, ca, o.verifyPeer, ipLiteral, ep.onEvents);
    ep.onRelease = () => this.idle(ep);
    this.byKey.set(key, ep);
    this.keys.set(ep, key);
    if (!this.exitHook) {
      this.exitHook = true;
      // Joins the I/O threads (each sends what is queued) rather than leaving them to the process teardown.
      process.once('exit', () => {
        for (const e of [...this.keys.keys()]) this.close(e);
      });
    }
    return ep;
  }

  /** Called when a connection is gone: with none left, the endpoint lets the process go and closes later. */
  idle(ep: QuinnEndpoint): void {
    if (ep.connections.size > 0 || this.timers.has(ep) || !this.keys.has(ep)) return;
    this.addon.holdsProcess(ep.handle, false);
    const t = setTimeout(() => this.close(ep), CLIENT_ENDPOINT_IDLE_MS);
    t.unref();
    this.timers.set(ep, t);
  }

  private close(ep: QuinnEndpoint): void {
    const t = this.timers.get(ep);
    if (t) clearTimeout(t);
    this.timers.delete(ep);
    const key = this.keys.get(ep);
    if (key !== undefined && this.byKey.get(key) === ep) this.byKey.delete(key);
    this.keys.delete(ep);
    void ep.close();
  }
}

let engine: QuicEngine | undefined;

export async function loadQuinnEngine(): Promise<QuicEngine | undefined> {
  if (engine) return engine;
  const addon = loadQuinnAddon();
  if (!addon || typeof addon.createServer !== 'function') return undefined;
  engine = makeEngine(addon);
  return engine;
}
