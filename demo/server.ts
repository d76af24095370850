/**
 * `npm start`: builds the browser bundle, serves the demo and prints its URL. `PORT` (default 8080), `HOST`
 * (default localhost), `BOTS` (default 8) and `WT_PORT` (UDP port of WebTransport, default the HTTP port number)
 * come from the environment; `REDIS_URL` (`redis://host:port`) puts rooms on Redis so that several demo processes
 * share one room listing and matchmaking, and `PUBLIC_URL` is the base URL clients reach this process at.
 * OpenTelemetry tracing follows the standard environment (`OTEL_TRACES_EXPORTER=console|otlp`,
 * `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`); without it the SDK is not even loaded.
 */
import { startTracingFromEnv } from '@quiver/fastify';
import { createDemoServer } from './src/server/app.js';

const env = process.env;
const tracing = await startTracingFromEnv({ OTEL_SERVICE_NAME: 'quiver-demo', ...env });
const server = await createDemoServer({
  host: env.HOST ?? 'localhost',
  port: env.PORT ? Number(env.PORT) : 8080,
  webtransportPort: env.WT_PORT ? Number(env.WT_PORT) : undefined,
  bots: env.BOTS ? Number(env.BOTS) : 8,
  logger: { level: env.LOG_LEVEL ?? 'warn' },
  ...(env.REDIS_URL ? { redisUrl: env.REDIS_URL } : {}),
  ...(env.PUBLIC_URL ? { publicUrl: env.PUBLIC_URL } : {}),
});
const wtListener = server.app.quiverTransports.webtransport;
const wt = wtListener?.address;
console.log(`Quiver demo: ${server.url}`);
if (tracing) console.log(`  OpenTelemetry traces to ${tracing.exporters.join(', ')}`);
console.log(
  `  WebTransport on udp ${wt ? `${wt.host}:${wt.port} (QUIC engine: ${wtListener?.engine})` : '(off)'}, WebSocket and /metrics on port ${server.port}`,
);
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await server.close();
  await tracing?.shutdown();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
