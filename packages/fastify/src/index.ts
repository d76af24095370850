/**
 * @quiver/fastify: mounts Quiver's WebTransport (HTTP/3 over UDP) and WebSocket endpoints on a fastify app, runs
 * one session server on both, exports its metrics for Prometheus and answers `GET <path>/info` for browsers.
 */
import { createHash, X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { ensureDevCertificate, type EnsureDevCertificateOptions } from '@quiver/devcert';
import {
  createSessionServer,
  rttBucketsSeconds,
  type SessionServer,
  type SessionServerOptions,
} from '@quiver/session';
import type { TransportListener } from '@quiver/transport';
import {
  createWebTransportListener,
  type WebTransportListener,
  type WebTransportListenerOptions,
} from '@quiver/webtransport';
import {
  createWebSocketListener,
  type WebSocketListener,
  type WebSocketListenerOptions,
} from '@quiver/websocket';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export interface QuiverWebTransportOptions
  extends Omit<WebTransportListenerOptions, 'port' | 'host' | 'cert' | 'key' | 'certPath' | 'keyPath'> {
  /** UDP port. Default: the same number as the app's HTTP(S) port, once it listens. */
  port?: number;
  /** Address to bind. Default: the address the app listens on. */
  host?: string;
  /** PEM certificate and key. Without them a development certificate is used (`devcert`). */
  cert?: string;
  key?: string;
  /**
   * Options of the development certificate (`@quiver/devcert`: ECDSA P-256, valid at most 14 days, accepted by
   * browsers through `serverCertificateHashes`). Used when `cert`/`key` are not given.
   */
  devcert?: EnsureDevCertificateOptions;
}

export interface QuiverPluginOptions {
  /** URL path of the endpoints. Default `/quiver`. */
  path?: string;
  /** WebTransport over HTTP/3 (UDP); `false` to disable. Default enabled with a development certificate. */
  webtransport?: QuiverWebTransportOptions | false;
  /** WebSocket on the app's own HTTP server (upgrade requests on `path`); `false` to disable. Default true. */
  websocket?: boolean | Omit<WebSocketListenerOptions, 'server' | 'path' | 'port' | 'host' | 'tls'>;
  /** Options of the session server (authentication, limits, channels, ...). */
  session?: Omit<SessionServerOptions, 'listeners'>;
  /**
   * Prometheus metrics at `path` (default `/metrics`), every name prefixed `quiver_`. `false` disables the route;
   * the registry is still built and exposed as `app.quiverMetrics`.
   */
  metrics?: false | { path?: string; registry?: Registry };
  /** `GET <path>/info` for browsers (WebTransport URL, port and certificate hash). Default true. */
  info?: boolean;
  /**
   * Deadlines the plugin sets on the app's HTTP server, so that a connection sending a partial request (a stalled
   * WebSocket upgrade, a slowloris) is freed in seconds rather than by Node's defaults (60 s for headers, checked
   * every 30 s). Given values are set as they are; defaults only ever tighten what the app already configured.
   */
  http?: QuiverHttpTimeouts;
}

export interface QuiverHttpTimeouts {
  /** Node `server.headersTimeout`: the whole request head must arrive within this. Default 10 000 ms. */
  headersTimeoutMs?: number;
  /** Node `server.requestTimeout`: the whole request (head and body) must arrive within this. Default 30 000 ms. */
  requestTimeoutMs?: number;
  /**
   * Node `server.connectionsCheckingInterval`: how often the two deadlines above are checked, hence how late past
   * them a stalled connection may be freed. Read when the server starts listening. Default 1000 ms.
   */
  checkIntervalMs?: number;
}

export const HTTP_TIMEOUT_DEFAULTS: Required<QuiverHttpTimeouts> = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  checkIntervalMs: 1000,
};

/**
 * Applies {@link QuiverHttpTimeouts} to a Node HTTP server. The WebSocket upgrade is a plain HTTP request until its
 * head is complete, so these are its deadlines; once complete, the WebSocket listener's `requestTimeoutMs` (a
 * verdict) and `handshakeTimeoutMs` (the peer's SETTINGS) take over.
 */
export function applyHttpTimeouts(
  server: { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval?: number },
  options: QuiverHttpTimeouts = {},
): void {
  // 0 means "no limit" to Node: a default replaces it, and otherwise only a stricter value does.
  const tighten = (current: number | undefined, given: number | undefined, fallback: number) => {
    if (given !== undefined) {
      if (!Number.isSafeInteger(given) || given < 1)
        throw new RangeError(`HTTP timeouts must be >= 1 ms, got ${given}`);
      return given;
    }
    return current && current > 0 ? Math.min(current, fallback) : fallback;
  };
  const d = HTTP_TIMEOUT_DEFAULTS;
  server.requestTimeout = tighten(server.requestTimeout, options.requestTimeoutMs, d.requestTimeoutMs);
  // Node requires headersTimeout <= requestTimeout.
  server.headersTimeout = Math.min(
    tighten(server.headersTimeout, options.headersTimeoutMs, d.headersTimeoutMs),
    server.requestTimeout,
  );
  server.connectionsCheckingInterval = tighten(
    server.connectionsCheckingInterval,
    options.checkIntervalMs,
    d.checkIntervalMs,
  );
}

export interface QuiverInfo {
  path: string;
  webtransport: {
    url: string;
    port: number;
    certificateHashes: { algorithm: 'sha-256'; value: string }[];
  } | null;
  websocket: { url: string } | null;
}

/** What the plugin adds to the app besides `app.quiver` (the session server). */
export interface QuiverTransports {
  webtransport: WebTransportListener | null;
  websocket: WebSocketListener | null;
  /** Resolves when every enabled transport listens (WebTransport starts once the app listens). */
  ready(): Promise<void>;
  /** What `GET <path>/info` answers. */
  info(): Promise<QuiverInfo>;
  /**
   * Closes and re-opens the transport listeners on the same ports. Sessions lose their transport and resume on the
   * new one (`recovered: true`): the session server and its replay buffers survive.
   */
  restart(): Promise<void>;
}

declare module 'fastify' {
  interface FastifyInstance {
    quiver: SessionServer;
    quiverTransports: QuiverTransports;
    quiverMetrics: Registry;
  }
}

/** Builds prom-client metrics that read the session server's plain-data metrics when scraped. */
export function createPrometheusMetrics(server: SessionServer, registry = new Registry()): Registry {
  const m = server.metrics;
  const counterFrom = (
    name: string,
    help: string,
    labelNames: string[],
    read: () => [Record<string, string>, number][],
  ) =>
    new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        // Counters are kept by the session server; the scrape copies them (reset + inc keeps prom-client's type).
        this.reset();
        for (const [labels, value] of read()) if (value > 0) this.inc(labels, value);
      },
    });
  new Gauge({
    name: 'quiver_sessions_active',
    help: 'Sessions with a connected transport, by transport',
    labelNames: ['transport'],
    registers: [registry],
    collect() {
      this.reset();
      for (const t of ['webtransport', 'websocket']) this.set({ transport: t }, 0);
      for (const [transport, n] of Object.entries(m.sessionsActive)) this.set({ transport }, n);
    },
  });
  new Gauge({
    name: 'quiver_sessions_disconnected',
    help: 'Sessions whose transport dropped, waiting for a resume',
    registers: [registry],
    collect() {
      this.set(m.sessionsDisconnected);
    },
  });
  new Gauge({
    name: 'quiver_handshakes_pending',
    help: 'Connections past the request checks whose HELLO is not yet validated (pre-authentication slots held)',
    registers: [registry],
    collect() {
      this.set(server.handshakesPending);
    },
  });
  const byDirection = (rec: { in: Record<string, number>; out: Record<string, number> }) =>
    (['in', 'out'] as const).flatMap((direction) =>
      Object.entries(rec[direction]).map(
        ([channel, v]) => [{ channel, direction }, v] as [Record<string, string>, number],
      ),
    );
  counterFrom('quiver_messages_total', 'Messages by channel and direction', ['channel', 'direction'], () =>
    byDirection(m.messages),
  );
  counterFrom('quiver_bytes_total', 'Payload bytes by channel and direction', ['channel', 'direction'], () =>
    byDirection(m.bytes),
  );
  counterFrom('quiver_drops_total', 'Messages dropped by the session layer, by reason', ['reason'], () =>
    Object.entries(m.drops).map(([reason, v]) => [{ reason }, v]),
  );
  counterFrom('quiver_reconnects_total', 'Resume attempts (reconnects carrying a resume token)', [], () => [
    [{}, m.reconnects],
  ]);
  counterFrom('quiver_recoveries_total', 'Reconnects that resumed their session without loss', [], () => [
    [{}, m.recoveries],
  ]);
  counterFrom('quiver_sessions_total', 'Sessions created', [], () => [[{}, m.sessionsTotal]]);
  counterFrom(
    'quiver_rejections_total',
    'Refused session requests and handshakes, by reason',
    ['reason'],
    () => Object.entries(m.rejections).map(([reason, v]) => [{ reason }, v]),
  );
  counterFrom('quiver_errors_total', 'Errors reported to onError, by kind', ['kind'], () =>
    Object.entries(m.errors).map(([kind, v]) => [{ kind }, v]),
  );
  const rtt = new Histogram({
    name: 'quiver_rtt_seconds',
    help: 'Heartbeat round-trip times measured by the server',
    buckets: rttBucketsSeconds,
    registers: [registry],
  });
  m.rttListeners.add((ms) => rtt.observe(ms / 1000));
  return registry;
}

function hostForUrl(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

const plugin: FastifyPluginAsync<QuiverPluginOptions> = async (app: FastifyInstance, options) => {
  const path = options.path ?? '/quiver';
  applyHttpTimeouts(app.server, options.http);
  const server = createSessionServer({ path, ...options.session });
  server.logger = {
    debug: (msg) => app.log.debug(`quiver: ${msg}`),
    info: (msg) => app.log.info(`quiver: ${msg}`),
    warn: (msg) => app.log.warn(`quiver: ${msg}`),
  };
  const registry = createPrometheusMetrics(
    server,
    options.metrics === false ? undefined : options.metrics?.registry,
  );

  const wtOptions = options.webtransport === false ? null : (options.webtransport ?? {});
  const wsOptions =
    options.websocket === false
      ? null
      : options.websocket === true || !options.websocket
        ? {}
        : options.websocket;
  let cert: { certPem: string; keyPem: string; hash: Uint8Array } | null = null;
  if (wtOptions) {
    if (wtOptions.cert && wtOptions.key) {
      // W3C WebTransport §6.2 serverCertificateHashes: SHA-256 of the DER certificate.
      const der = new X509Certificate(wtOptions.cert).raw;
      cert = {
        certPem: wtOptions.cert,
        keyPem: wtOptions.key,
        hash: new Uint8Array(createHash('sha256').update(der).digest()),
      };
    } else {
      cert = await ensureDevCertificate(wtOptions.devcert);
      app.log.info(
        'quiver: WebTransport uses a development certificate (pass webtransport.cert/key in production)',
      );
    }
  }

  let ws: WebSocketListener | null = null;
  let wt: WebTransportListener | null = null;
  let wtPort = 0;
  let wtHost = '127.0.0.1';
  let closing = false;
  let resolveReady!: () => void;
  let rejectReady!: (err: unknown) => void;
  const readyPromise = new Promise<void>((res, rej) => {
    resolveReady = res;
    rejectReady = rej;
  });
  readyPromise.catch(() => {});

  const openWebSocket = async () => {
    ws = await createWebSocketListener({ ...(wsOptions ?? {}), server: app.server, path });
    server.addListener(ws as TransportListener);
  };
  const openWebTransport = async () => {
    if (!wtOptions || !cert) return;
    const { port: _p, host: _h, cert: _c, key: _k, devcert: _d, ...rest } = wtOptions;
    wt = await createWebTransportListener({
      ...rest,
      host: wtHost,
      port: wtPort,
      cert: cert.certPem,
      key: cert.keyPem,
    });
    wtPort = wt.address.port;
    server.addListener(wt as TransportListener);
  };

  if (wsOptions) await openWebSocket();

  app.addHook('onListen', async () => {
    try {
      const addr = app.server.address() as AddressInfo | null;
      if (wtOptions) {
        wtHost = wtOptions.host ?? addr?.address ?? '127.0.0.1';
        wtPort = wtOptions.port ?? addr?.port ?? 0;
        await openWebTransport();
        app.log.info(`quiver: WebTransport on udp://${hostForUrl(wtHost)}:${wtPort}${path}`);
      }
      resolveReady();
    } catch (err) {
      app.log.error({ err }, 'quiver: could not start WebTransport');
      rejectReady(err);
    }
  });
  if (!wtOptions) resolveReady();

  const transports: QuiverTransports = {
    get webtransport() {
      return wt;
    },
    get websocket() {
      return ws;
    },
    ready: () => readyPromise,
    async info() {
      const addr = app.server.address() as AddressInfo | null;
      const httpHost = hostForUrl(addr?.address ?? '127.0.0.1');
      const scheme = app.initialConfig.https ? 'wss' : 'ws';
      return {
        path,
        webtransport: wt
          ? {
              url: `https://${hostForUrl(wtHost)}:${wtPort}${path}`,
              port: wtPort,
              certificateHashes: cert
                ? [{ algorithm: 'sha-256', value: Buffer.from(cert.hash).toString('base64') }]
                : [],
            }
          : null,
        websocket: ws && addr ? { url: `${scheme}://${httpHost}:${addr.port}${path}` } : null,
      };
    },
    async restart() {
      if (closing) return;
      const oldWs = ws;
      const oldWt = wt;
      if (oldWs) {
        server.removeListener(oldWs);
        await oldWs.close();
        await openWebSocket();
      }
      if (oldWt) {
        server.removeListener(oldWt);
        await oldWt.close();
        await openWebTransport();
      }
    },
  };

  app.decorate('quiver', server);
  app.decorate('quiverTransports', transports);
  app.decorate('quiverMetrics', registry);

  if (options.metrics !== false) {
    app.get(options.metrics?.path ?? '/metrics', async (_req, reply) => {
      reply.header('content-type', registry.contentType);
      return registry.metrics();
    });
  }
  if (options.info !== false) {
    app.get(`${path === '/' ? '' : path}/info`, async () => {
      // Before listen (e.g. `inject`) WebTransport cannot have started: answer with what exists.
      if (app.server.listening) await readyPromise.catch(() => {});
      return transports.info();
    });
  }

  // Sessions are told to go away (4503) before fastify closes its HTTP server, so that WebSocket sessions do not
  // hold the close up; then the listeners release their sockets.
  app.addHook('preClose', async () => {
    closing = true;
    await server.close();
    await Promise.all([ws?.close(), wt?.close()]);
  });
};

/** The fastify plugin: `app.register(quiver, { path: '/quiver', session: { authenticate } })`. */
export const quiver = fp(plugin, { fastify: '5.x', name: '@quiver/fastify' });
export default quiver;
