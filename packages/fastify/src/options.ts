/** The plugin's options and what it adds to the fastify app (`app.quiver`, `app.quiverTransports`, `app.quiverMetrics`). */

import type { EnsureDevCertificateOptions } from '@quiver/devcert';
import type { QuiverInfo, SessionServer, SessionServerOptions, SessionTracer } from '@quiver/session';
import type { HttpStreamListener, HttpStreamListenerOptions } from '@quiver/http-stream';
import type { WebTransportListener, WebTransportListenerOptions } from '@quiver/webtransport';
import type { WebSocketListener, WebSocketListenerOptions } from '@quiver/websocket';
import type { FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import type { QuiverHttpTimeouts } from './http-timeouts.js';

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
