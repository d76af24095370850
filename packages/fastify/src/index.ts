/**
 * @quiver/fastify: mounts Quiver's WebTransport (HTTP/3 over UDP), WebSocket and HTTP (event stream and POST)
 * endpoints on a fastify app, runs
 * one session server on both, exports its metrics for Prometheus and answers `GET <path>/info` for browsers.
 */

export type { QuiverInfo } from '@quiver/session';
export { applyHttpTimeouts, HTTP_TIMEOUT_DEFAULTS, type QuiverHttpTimeouts } from './http-timeouts.js';
export { createPrometheusMetrics } from './metrics.js';
export type { QuiverPluginOptions, QuiverTransports, QuiverWebTransportOptions } from './options.js';
export { startTracingFromEnv, type TracingHandle } from './otel-env.js';
export { quiver, quiver as default } from './plugin.js';
