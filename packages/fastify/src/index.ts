/**
 * @quiver/fastify: mounts Quiver's WebTransport (HTTP/3 over UDP), WebSocket and HTTP (event stream and POST)
 * endpoints on a fastify app, runs
 * one session server on both, exports its metrics for Prometheus and answers `GET <path>/info` for browsers.
 */
import type { AddressInfo } from 'node:net';
import type { EnsureDevCertificateOptions } from '@quiver/devcert';
import {
  createSessionServer,
  type QuiverInfo,
  rttBucketsSeconds,
  type SessionServer,
  type SessionServerOptions,
  type SessionTracer,
} from '@quiver/session';
import { otelTracing } from '@quiver/session/otel';
import type { TransportListener, TransportStats } from '@quiver/transport';
import type { WebTransportListener, WebTransportListenerOptions } from '@quiver/webtransport';
import {
  createWebSocketListener,
  type WebSocketListener,
  type WebSocketListenerOptions,
} from '@quiver/websocket';
import type { FastifyBaseLogger, FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import {
  createHttpStreamListener,
  type HttpStreamListener,
  type HttpStreamListenerOptions,
} from '@quiver/http-stream';
import fp from 'fastify-plugin';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { certificatePin } from './certificate.js';
import { buildInfo, parsePublicUrl } from './info.js';

/** WebTransport (HTTP/3 over UDP) options of the plugin: the listener's, with the port, host and certificate. */
export interface QuiverWebTransportOptions
  extends Omit<WebTransportListenerOptions, 'port' | 'host' | 'cert' | 'key' | 'certPath' | 'keyPath'> {
  /** UDP port. Default: the same number as the app's HTTP(S) port, once it listens. */
  port?: number;
  /** Address to bind. Default: the address the app listens on. */
  host?: string;
  /**
   * PEM certificate and key. Without them a development certificate is used (`devcert`). A certificate browsers
   * cannot pin (not ECDSA P-256, or valid over 14 days: any CA-signed one) is advertised without hashes, so clients
   * validate it against their CAs; one line in the log says so.
   */
  cert?: string;
  /** PEM private key of `cert`. */
  key?: string;
  /**
   * Options of the development certificate (`@quiver/devcert`: ECDSA P-256, valid at most 14 days, accepted by
   * browsers through `serverCertificateHashes`). Used when `cert`/`key` are not given.
   */
  devcert?: EnsureDevCertificateOptions;
}

/** Options of the fastify plugin (`app.register(quiver, options)`). */
export interface QuiverPluginOptions {
  /** URL path of the endpoints. Default `/quiver`. */
  path?: string;
  /**
   * Where clients reach this server, e.g. `https://game.example.com` behind a reverse proxy: `<path>/info`
   * advertises `wss://game.example.com<path>` for WebSocket and `https://game.example.com:<UDP port><path>` for
   * WebTransport. Default: the `PUBLIC_URL` environment variable, else each request's Host header (with
   * `trustProxy`, X-Forwarded-Host and -Proto), else the address the app listens on.
   */
  publicUrl?: string;
  /** WebTransport over HTTP/3 (UDP); `false` to disable. Default enabled with a development certificate. */
  webtransport?: QuiverWebTransportOptions | false;
  /** WebSocket on the app's own HTTP server (upgrade requests on `path`); `false` to disable. Default true. */
  websocket?: boolean | Omit<WebSocketListenerOptions, 'server' | 'path' | 'port' | 'host' | 'tls'>;
  /**
   * The HTTP fallback (`@quiver/http-stream`: an event stream down, POSTs up) on the app's own server, on `path`
   * (requests whose query has `qh=`); `false` to disable. Default true.
   */
  http?: boolean | Omit<HttpStreamListenerOptions, 'server' | 'path' | 'port' | 'host' | 'tls'>;
  /** Options of the session server (authentication, limits, channels, ...). */
  session?: Omit<SessionServerOptions, 'listeners'>;
  /**
   * Tracing of sessions and messages. Default `otelTracing()` from `@quiver/session/otel` on the global
   * OpenTelemetry tracer provider: spans are recorded once the application registers an SDK (see
   * `startTracingFromEnv`), and each message costs one non-recording span until then. `false` turns it off;
   * `session.tracing`, when given, wins.
   */
  tracing?: SessionTracer | false;
  /**
   * Prometheus metrics at `path` (default `/metrics`), every name prefixed `quiver_`. `false` disables the route;
   * the registry is still built and exposed as `app.quiverMetrics`.
   */
  metrics?:
    | false
    | {
        /** Route of the Prometheus text format. Default `/metrics`. */
        path?: string;
        /** Registry to add the metrics to. Default a new one. */
        registry?: Registry;
      };
  /** `GET <path>/info` for browsers (WebTransport URL, port and certificate hash). Default true. */
  info?: boolean;
  /**
   * Deadlines the plugin sets on the app's HTTP server, so that a connection sending a partial request (a stalled
   * WebSocket upgrade, a slowloris) is freed in seconds rather than by Node's defaults (60 s for headers, checked
   * every 30 s). Given values are set as they are; defaults only ever tighten what the app already configured.
   */
  httpTimeouts?: QuiverHttpTimeouts;
}

/** Deadlines of the app's Node HTTP server, which bound how long a stalled client can hold a connection. */
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

/** The defaults of {@link QuiverHttpTimeouts}: 10 s for the head, 30 s for the request, checked every second. */
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

export type { QuiverInfo } from '@quiver/session';

/** What the plugin adds to the app besides `app.quiver` (the session server). */
export interface QuiverTransports {
  /** The WebTransport listener; `null` when disabled, before the app listens, or where QUIC cannot load. */
  webtransport: WebTransportListener | null;
  /** The WebSocket listener on the app's HTTP server; `null` when disabled. */
  websocket: WebSocketListener | null;
  /** The HTTP fallback listener (`@quiver/http-stream`) on the app's HTTP server; `null` when disabled. */
  http: HttpStreamListener | null;
  /** Resolves when every enabled transport listens (WebTransport starts once the app listens). */
  ready(): Promise<void>;
  /**
   * The configured public base URL (`publicUrl` option, else `PUBLIC_URL`), or `undefined`: then `info(request)`
   * names the host each request reached. Other processes that advertise this one's endpoints (the rooms plugin)
   * follow the same rule.
   */
  readonly publicUrl: URL | undefined;
  /**
   * Runs `task` when the app closes, before the session server closes its sessions (fastify runs `preClose` hooks
   * in registration order, and this plugin's comes first): the rooms plugin drains its rooms there, so that clients
   * get their room's own close code rather than the server's going-away.
   */
  beforeClose(task: () => Promise<void>): void;
  /**
   * What `GET <path>/info` answers: for `request`, the host it reached (unless `publicUrl` is set); without one,
   * `publicUrl` or the address the app listens on. Once the app listens, it waits for WebTransport to have started.
   */
  info(request?: Pick<FastifyRequest, 'host' | 'protocol'>): Promise<QuiverInfo>;
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
      for (const t of ['webtransport', 'websocket', 'http']) this.set({ transport: t }, 0);
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
  counterFrom(
    'quiver_trace_context_invalid_total',
    'Received trace contexts that were malformed and ignored (their messages were delivered)',
    [],
    () => [[{}, m.traceContextInvalid]],
  );
  const quality = {
    rtt: new Histogram({
      name: 'quiver_transport_rtt_seconds',
      help: 'Heartbeat round-trip times, by transport',
      labelNames: ['transport'],
      buckets: rttBucketsSeconds,
      registers: [registry],
    }),
    jitter: new Histogram({
      name: 'quiver_transport_jitter_seconds',
      help: "The session's RTT variation (RFC 6298 RTTVAR) at each heartbeat, by transport",
      labelNames: ['transport'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5],
      registers: [registry],
    }),
    loss: new Histogram({
      name: 'quiver_transport_loss_ratio',
      help: "The session's heartbeat loss (EWMA, 0..1) at each heartbeat, by transport; 0 where datagrams are reliable",
      labelNames: ['transport'],
      buckets: [0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1],
      registers: [registry],
    }),
  };
  m.qualityListeners.add((q) => {
    quality.rtt.observe({ transport: q.transport }, q.rttMs / 1000);
    quality.jitter.observe({ transport: q.transport }, q.jitterMs / 1000);
    quality.loss.observe({ transport: q.transport }, q.loss);
  });
  new Gauge({
    name: 'quiver_send_buffered_bytes',
    help: 'Bytes sessions hold for sending: queued plus in flight (the replay buffers), all sessions',
    registers: [registry],
    collect() {
      let n = 0;
      for (const s of server.sessions.values()) n += s.bufferedBytes;
      this.set(n);
    },
  });
  new Gauge({
    name: 'quiver_send_queue_messages',
    help: 'Reliable messages waiting to be sent (not yet in flight), all sessions',
    registers: [registry],
    collect() {
      let n = 0;
      for (const s of server.sessions.values()) n += s.queuedMessages;
      this.set(n);
    },
  });
  registerClientTelemetry(server, registry);
  registerTransportStats(server, registry);
  return registry;
}

/** Histograms of what clients report (`telemetry` client option), the reports' outcomes and the poor sessions. */
function registerClientTelemetry(server: SessionServer, registry: Registry): void {
  const m = server.metrics;
  const ms = [0.001, 0.0025, 0.005, 0.01, 0.016, 0.025, 0.033, 0.05, 0.1, 0.25, 0.5, 1];
  const histogram = (name: string, help: string, buckets: number[]) =>
    new Histogram({ name, help, labelNames: ['transport'], buckets, registers: [registry] });
  const h = {
    rtt: histogram(
      'quiver_client_rtt_seconds',
      'RTT as clients measure it, from their reports',
      rttBucketsSeconds,
    ),
    jitter: histogram('quiver_client_jitter_seconds', 'RTT variation as clients measure it', ms),
    loss: histogram(
      'quiver_client_loss_ratio',
      'Heartbeat loss as clients measure it (0..1)',
      [0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1],
    ),
    frame: histogram('quiver_client_frame_seconds', 'Frame time clients report', ms),
    interpolation: histogram(
      'quiver_client_interpolation_delay_seconds',
      'Interpolation delay clients report (how far behind the server the rendered state is)',
      [0.016, 0.033, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1],
    ),
  };
  m.clientQualityListeners.add((q, transport) => {
    h.rtt.observe({ transport }, q.rttMs / 1000);
    h.jitter.observe({ transport }, q.jitterMs / 1000);
    h.loss.observe({ transport }, q.loss);
    if (q.frameTimeMs !== undefined) h.frame.observe({ transport }, q.frameTimeMs / 1000);
    if (q.interpolationDelayMs !== undefined)
      h.interpolation.observe({ transport }, q.interpolationDelayMs / 1000);
  });
  new Counter({
    name: 'quiver_client_reports_total',
    help: 'Client telemetry reports, by outcome (accepted, invalid, rate-limited)',
    labelNames: ['outcome'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [outcome, n] of Object.entries(m.telemetry)) if (n > 0) this.inc({ outcome }, n);
    },
  });
  new Gauge({
    name: 'quiver_sessions_poor_quality',
    help: 'Sessions whose last client report was over the quality thresholds',
    registers: [registry],
    collect() {
      let n = 0;
      for (const s of server.sessions.values()) if (s.quality?.state === 'poor') n++;
      this.set(n);
    },
  });
}

/** What one scrape reads of the live sessions' transports (`getStats()` through the transport interface). */
interface TransportSnapshot {
  transport: string;
  stats: TransportStats;
}

/**
 * Gauges and scrape-time histograms of the transports' own figures: QUIC loss, retransmissions, congestion window
 * and delivery rate (what pacing follows), transport-level datagram drops. They sum or describe the sessions live at
 * the scrape (a session's counters leave with it), so they are gauges, not counters.
 */
function registerTransportStats(server: SessionServer, registry: Registry): void {
  let cached: { at: number; snapshot: Promise<TransportSnapshot[]> } | undefined;
  // One round of getStats() per scrape, shared by the metrics below (a scrape collects them within milliseconds).
  const snapshot = (): Promise<TransportSnapshot[]> => {
    const now = Date.now();
    if (cached && now - cached.at < 1000) return cached.snapshot;
    const known = new Set(['webtransport', 'websocket', 'http', 'memory']);
    const reads: Promise<TransportSnapshot | undefined>[] = [];
    for (const s of server.sessions.values()) {
      const p = s.transportStats();
      const transport = s.transport && known.has(s.transport) ? s.transport : 'unknown';
      if (p)
        reads.push(
          p.then(
            (stats) => ({ transport, stats }),
            () => undefined,
          ),
        );
    }
    const all = Promise.all(reads).then((r) => r.filter((x): x is TransportSnapshot => x !== undefined));
    cached = { at: now, snapshot: all };
    return all;
  };
  const sumGauge = (name: string, help: string, read: (s: TransportStats) => number | undefined) =>
    new Gauge({
      name,
      help,
      labelNames: ['transport'],
      registers: [registry],
      async collect() {
        this.reset();
        // The plugin's transports always have a series (0 without sessions), as quiver_sessions_active does.
        const sums = new Map<string, number>([
          ['webtransport', 0],
          ['websocket', 0],
          ['http', 0],
        ]);
        for (const { transport, stats } of await snapshot()) {
          const v = read(stats);
          if (v !== undefined) sums.set(transport, (sums.get(transport) ?? 0) + v);
        }
        for (const [transport, v] of sums) this.set({ transport }, v);
      },
    });
  sumGauge(
    'quiver_transport_packets_sent',
    'Packets (QUIC) or frames sent by the transports of the live sessions',
    (s) => s.packetsSent,
  );
  sumGauge(
    'quiver_transport_packets_lost',
    'Packets the transports of the live sessions detected as lost (QUIC loss detection; 0 for TCP-based ones)',
    (s) => s.packetsLost,
  );
  sumGauge(
    'quiver_transport_packets_retransmitted',
    'Packets retransmitted by the transports of the live sessions (QUIC only)',
    (s) => s.packetsRetransmitted,
  );
  const perSession = (
    name: string,
    help: string,
    buckets: number[],
    read: (s: TransportStats) => number | undefined,
  ) =>
    new Histogram({
      name,
      help,
      labelNames: ['transport'],
      buckets,
      registers: [registry],
      async collect() {
        this.reset();
        for (const { transport, stats } of await snapshot()) {
          const v = read(stats);
          if (v !== undefined && v > 0) this.observe({ transport }, v);
        }
      },
    });
  const kib = [16, 32, 64, 128, 256, 512, 1024, 4096].map((k) => k * 1024);
  perSession(
    'quiver_transport_congestion_window_bytes',
    "Congestion window of each live session's QUIC connection at the scrape",
    kib,
    (s) => s.congestionWindow,
  );
  perSession(
    'quiver_transport_delivery_rate_bytes_per_second',
    "Delivery rate estimate (what pacing follows) of each live session's QUIC connection at the scrape",
    [8, 32, 128, 512, 2048, 8192].map((k) => k * 1024),
    (s) => s.deliveryRate,
  );
  new Gauge({
    name: 'quiver_transport_datagrams_dropped',
    help: 'Datagrams the transports of the live sessions dropped before the wire or the application, by direction and reason',
    labelNames: ['transport', 'direction', 'reason'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const { transport, stats } of await snapshot()) {
        for (const [direction, table] of [
          ['outgoing', stats.datagrams.droppedOutgoing],
          ['incoming', stats.datagrams.droppedIncoming],
        ] as const) {
          for (const [reason, n] of Object.entries(table)) {
            if (n) this.inc({ transport, direction, reason }, n);
          }
        }
      }
    },
  });
}

/** `@quiver/webtransport`, or `null` (with one warning) where its native QUIC binding cannot load. */
async function loadWebTransport(log: FastifyBaseLogger) {
  let problem: unknown;
  try {
    const mod = await import('@quiver/webtransport');
    problem = mod.quicBindingError();
    if (!problem) return mod;
  } catch (err) {
    problem = err;
  }
  log.warn(
    { transport: 'webtransport', err: problem },
    'WebTransport is off because the QUIC binding cannot load here; serving WebSocket only',
  );
  return null;
}

const plugin: FastifyPluginAsync<QuiverPluginOptions> = async (app: FastifyInstance, options) => {
  const path = options.path ?? '/quiver';
  applyHttpTimeouts(app.server, options.httpTimeouts);
  const publicUrl = parsePublicUrl(options.publicUrl ?? process.env.PUBLIC_URL);
  const tracing = options.tracing === false ? undefined : (options.tracing ?? otelTracing());
  const server = createSessionServer({ path, tracing, ...options.session });
  // Records keep their fields (sessionId, transport, user, code, reason) as pino fields, tagged `quiver`.
  const log = app.log.child({ component: 'quiver' });
  server.logger = {
    debug: (fields, msg) => log.debug(fields, msg),
    info: (fields, msg) => log.info(fields, msg),
    warn: (fields, msg) => log.warn(fields, msg),
  };
  const registry = createPrometheusMetrics(
    server,
    options.metrics === false ? undefined : options.metrics?.registry,
  );

  let wtOptions = options.webtransport === false ? null : (options.webtransport ?? {});
  const wsOptions =
    options.websocket === false
      ? null
      : options.websocket === true || !options.websocket
        ? {}
        : options.websocket;
  const httpOptions =
    options.http === false ? null : options.http === true || !options.http ? {} : options.http;
  // The QUIC binding is native and prebuilt for some platforms only, and `@quiver/devcert` pulls in
  // reflect-metadata: both are loaded only when WebTransport is on, and devcert only without a certificate.
  const webtransport = wtOptions ? await loadWebTransport(log) : null;
  if (!webtransport) wtOptions = null;
  let cert: { certPem: string; keyPem: string; hash: Uint8Array | null } | null = null;
  if (wtOptions) {
    if (wtOptions.cert && wtOptions.key) {
      const pin = certificatePin(wtOptions.cert);
      cert = { certPem: wtOptions.cert, keyPem: wtOptions.key, hash: pin.hash };
      if (pin.reason) {
        log.info(
          { transport: 'webtransport', reason: pin.reason },
          'WebTransport certificate hashes not advertised (browsers cannot pin this certificate): clients validate it against their CAs',
        );
      }
    } else {
      const { ensureDevCertificate } = await import('@quiver/devcert');
      const dev = await ensureDevCertificate(wtOptions.devcert);
      cert = dev;
      log.info(
        { transport: 'webtransport', notAfter: dev.notAfter.toISOString() },
        'WebTransport uses a development certificate (pass webtransport.cert/key in production)',
      );
    }
  }

  let ws: WebSocketListener | null = null;
  let httpListener: HttpStreamListener | null = null;
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
    if (!wtOptions || !cert || !webtransport) return;
    const { port: _p, host: _h, cert: _c, key: _k, devcert: _d, ...rest } = wtOptions;
    wt = await webtransport.createWebTransportListener({
      ...rest,
      host: wtHost,
      port: wtPort,
      cert: cert.certPem,
      key: cert.keyPem,
    });
    wtPort = wt.address.port;
    server.addListener(wt as TransportListener);
  };

  const openHttp = async () => {
    httpListener = await createHttpStreamListener({ ...(httpOptions ?? {}), server: app.server, path });
    server.addListener(httpListener as TransportListener);
  };

  if (wsOptions) await openWebSocket();
  if (httpOptions) {
    await openHttp();
    // Tunnel requests (`?qh=` on `path`) are taken before routing, with the raw request body unread.
    app.addHook('onRequest', async (req, reply) => {
      if (httpListener?.handle(req.raw, reply.raw)) {
        reply.hijack();
        return reply;
      }
    });
  }

  app.addHook('onListen', async () => {
    try {
      const addr = app.server.address() as AddressInfo | null;
      if (wtOptions) {
        wtHost = wtOptions.host ?? addr?.address ?? '127.0.0.1';
        wtPort = wtOptions.port ?? addr?.port ?? 0;
        await openWebTransport();
        log.info(
          { transport: 'webtransport', engine: wt?.engine, host: wtHost, port: wtPort, path },
          'WebTransport listening',
        );
      }
      resolveReady();
    } catch (err) {
      log.error({ err }, 'could not start WebTransport');
      rejectReady(err);
    }
  });
  if (!wtOptions) resolveReady();

  const beforeClose: (() => Promise<void>)[] = [];
  const transports: QuiverTransports = {
    get webtransport() {
      return wt;
    },
    get websocket() {
      return ws;
    },
    get http() {
      return httpListener;
    },
    ready: () => readyPromise,
    publicUrl,
    beforeClose(task) {
      beforeClose.push(task);
    },
    async info(request) {
      // WebTransport starts after listen: an answer before it is up would leave it out (a room reservation made
      // right after listen, say). Before listen (e.g. `inject`) it cannot have started: answer with what exists.
      if (app.server.listening) await readyPromise.catch(() => {});
      return buildInfo(
        {
          path,
          publicUrl,
          address: app.server.address() as AddressInfo | null,
          https: !!app.initialConfig.https,
          webtransport: wt ? { port: wtPort, hash: cert?.hash ?? null } : null,
          websocket: ws !== null,
          http: httpListener !== null,
        },
        request,
      );
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
      const oldHttp = httpListener;
      if (oldHttp) {
        server.removeListener(oldHttp);
        await oldHttp.close();
        await openHttp();
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
    app.get(`${path === '/' ? '' : path}/info`, async (request, reply) => {
      // The answer follows the request's Host and the listeners' ports: never from a shared cache.
      reply.header('cache-control', 'no-store');
      return transports.info(request);
    });
  }

  // Sessions are told to go away (4503) before fastify closes its HTTP server, so that WebSocket sessions do not
  // hold the close up; then the listeners release their sockets.
  app.addHook('preClose', async () => {
    closing = true;
    for (const task of beforeClose.splice(0)) await task();
    await server.close();
    await Promise.all([ws?.close(), wt?.close(), httpListener?.close()]);
  });
};

/** The fastify plugin: `app.register(quiver, { path: '/quiver', session: { authenticate } })`. */
export const quiver = fp(plugin, { fastify: '5.x', name: '@quiver/fastify' });
export default quiver;

export { startTracingFromEnv, type TracingHandle } from './otel-env.js';
