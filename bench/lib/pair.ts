/**
 * A server agent with every transport listening and a client agent, over a {@link Network}: what the transport
 * suites (setup, latency, throughput, load, browser) share.
 */
import { generateCertificate } from '@quiver/devcert';
import { SERVER_ADDR } from './link.js';
import type { Agent, AgentOptions, Network } from './network.js';
import type { Target } from './roles/clients.js';
import type { ServerOptions, ServerPorts, ServerSnapshot } from './roles/servers.js';

export const SERVERS = 'bench/lib/roles/servers.ts';
export const CLIENTS = 'bench/lib/roles/clients.ts';

export interface BenchCert {
  certPem: string;
  keyPem: string;
  hashHex: string;
  /** base64 SHA-256 of the SubjectPublicKeyInfo, for Chromium's --ignore-certificate-errors-spki-list. */
  spkiHashBase64: string;
}

let cert: Promise<BenchCert> | undefined;

/** One short-lived ECDSA certificate per bench run, valid for loopback and the link's server address. */
export function benchCert(): Promise<BenchCert> {
  cert ??= (async () => {
    const c = await generateCertificate({ hosts: ['localhost', '127.0.0.1', SERVER_ADDR], validityDays: 13 });
    const { X509Certificate, createHash } = await import('node:crypto');
    const x = new X509Certificate(c.certPem);
    const spki = x.publicKey.export({ type: 'spki', format: 'der' });
    return {
      certPem: c.certPem,
      keyPem: c.keyPem,
      hashHex: c.hashHex,
      spkiHashBase64: createHash('sha256').update(spki).digest('base64'),
    };
  })();
  return cert;
}

export interface Pair {
  server: Agent;
  client: Agent;
  target: Target;
  ports: ServerPorts;
  /** Server CPU, RSS and session counts; `collect` runs a full GC first. */
  snapshot(collect?: boolean): Promise<ServerSnapshot>;
  close(): Promise<void>;
}

export async function startPair(
  net: Network,
  opts: Partial<Pick<ServerOptions, 'idleTimeoutMs' | 'page' | 'engines'>> = {},
  agentOptions: AgentOptions = {},
): Promise<Pair> {
  const c = await benchCert();
  const server = await net.agent('server', agentOptions);
  const client = await net.agent('client', agentOptions);
  const ports = await server.call<ServerPorts>(SERVERS, 'startServers', {
    host: net.serverAddr,
    certPem: c.certPem,
    keyPem: c.keyPem,
    ...opts,
  } satisfies ServerOptions);
  return {
    server,
    client,
    ports,
    target: { host: net.serverAddr, ports, certHashHex: c.hashHex, certPem: c.certPem },
    snapshot: (collect = false) => server.call<ServerSnapshot>(SERVERS, 'snapshot', collect),
    async close() {
      await server.call(SERVERS, 'stopServers').catch(() => {});
      await Promise.all([client.close(), server.close()]);
    },
  };
}

/**
 * The target of `pair`'s WebTransport listener on QUIC engine `engine` (`ServerOptions.engines`): the pair's own
 * target, its `wt` port and error swapped for that engine's. No engine: the pair's target as it is.
 */
export function engineTarget(pair: Pair, engine: string | undefined): Target {
  if (!engine) return pair.target;
  const { wtByEngine, wtEngineErrors } = pair.ports;
  return {
    ...pair.target,
    ports: { ...pair.target.ports, wt: wtByEngine?.[engine], wtError: wtEngineErrors?.[engine] },
    wtEngine: engine,
  };
}

/** A numeric `--key value` option, or the default. */
export function numArg(args: Readonly<Record<string, string | boolean>>, key: string, dflt: number): number {
  const v = args[key];
  if (typeof v !== 'string') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new RangeError(`--${key} must be a number, got ${v}`);
  return n;
}

/** A list `--key a,b,c` option, or the default. */
export function listArg(
  args: Readonly<Record<string, string | boolean>>,
  key: string,
  dflt: number[],
): number[] {
  const v = args[key];
  if (typeof v !== 'string') return dflt;
  return v.split(',').map((x) => {
    const n = Number(x);
    if (!Number.isFinite(n)) throw new RangeError(`--${key} must be numbers separated by commas, got ${v}`);
    return n;
  });
}

export const RT_NOTE =
  'agents run under SCHED_RR priority 5 (as root; `--rt false` to turn off) so that a busy shared machine delays the measured processes less';

/** `--rt false` turns real-time scheduling of the agents off (see {@link AgentOptions.realtime}). */
export function realtimeArg(args: Readonly<Record<string, string | boolean>>): boolean {
  return args.rt !== 'false' && args.rt !== '0';
}
