/** The fastify plugin: one session server on WebTransport, WebSocket and HTTP, with metrics and `GET <path>/info`. */

import type { AddressInfo } from 'node:net';
import { createSessionServer } from '@quiver/session';
import { otelTracing } from '@quiver/session/otel';
import type { TransportListener } from '@quiver/transport';
import type { WebTransportListener } from '@quiver/webtransport';
import { createWebSocketListener, type WebSocketListener } from '@quiver/websocket';
import type { FastifyBaseLogger, FastifyInstance, FastifyPluginAsync } from 'fastify';
import { createHttpStreamListener, type HttpStreamListener } from '@quiver/http-stream';
import fp from 'fastify-plugin';
import { certificatePin } from './certificate.js';
import { buildInfo, parsePublicUrl } from './info.js';
import { applyHttpTimeouts } from './http-timeouts.js';
import { createPrometheusMetrics } from './metrics.js';
import type { QuiverPluginOptions, QuiverTransports } from './options.js';

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
