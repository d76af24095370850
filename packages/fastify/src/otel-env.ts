/**
 * Starts OpenTelemetry tracing from the standard environment variables, loading the SDK only when they ask for it:
 * an app started without them imports nothing of the SDK and pays nothing.
 */

/** What {@link startTracingFromEnv} started: flush and stop it before the process exits. */
export interface TracingHandle {
  /** The exporters in use (`console`, `otlp`). */
  readonly exporters: string[];
  /** Exports what is buffered and stops the SDK. */
  shutdown(): Promise<void>;
}

/** The exporters this reads from `OTEL_TRACES_EXPORTER`; others are refused with an error naming them. */
const SUPPORTED = ['console', 'otlp', 'none'];

/**
 * Registers a global tracer provider, an AsyncLocalStorage context manager and the W3C propagators when
 * `OTEL_TRACES_EXPORTER` lists `console` and/or `otlp` (unset or `none`: nothing, returns null). Reads, as the
 * OpenTelemetry SDK specification defines them:
 * - `OTEL_TRACES_EXPORTER`: comma-separated `console` (spans printed to stdout as they end), `otlp` (OTLP over
 *   HTTP/protobuf-JSON, batched), `none`.
 * - `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` and `OTEL_EXPORTER_OTLP_HEADERS`: read by
 *   the OTLP exporter itself (default `http://localhost:4318`).
 * - `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`: the resource (default service name `quiver`).
 * - `OTEL_SDK_DISABLED=true`: nothing is started.
 * Needs `@opentelemetry/sdk-trace`, `@opentelemetry/context-async-hooks`, `@opentelemetry/resources`,
 * `@opentelemetry/core` and, for `otlp`, `@opentelemetry/exporter-trace-otlp-http` (optional peer dependencies).
 */
export async function startTracingFromEnv(
  env: Record<string, string | undefined> = process.env,
): Promise<TracingHandle | null> {
  if (env.OTEL_SDK_DISABLED === 'true') return null;
  const names = (env.OTEL_TRACES_EXPORTER ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const unknown = names.filter((n) => !SUPPORTED.includes(n));
  if (unknown.length > 0) {
    throw new Error(`OTEL_TRACES_EXPORTER: unsupported ${unknown.join(', ')} (use ${SUPPORTED.join(', ')})`);
  }
  const exporters = names.filter((n) => n !== 'none');
  if (exporters.length === 0) return null;
  const [api, sdk, hooks, resources, core] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/context-async-hooks'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/core'),
  ]);
  const spanProcessors = [];
  for (const name of exporters) {
    if (name === 'console') {
      spanProcessors.push(new sdk.SimpleSpanProcessor({ exporter: new sdk.ConsoleSpanExporter() }));
    } else {
      const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
      spanProcessors.push(new sdk.BatchSpanProcessor({ exporter: new OTLPTraceExporter() }));
    }
  }
  const detected = resources.detectResources({ detectors: [resources.envDetector] });
  const resource = resources
    .resourceFromAttributes({ 'service.name': env.OTEL_SERVICE_NAME ?? 'quiver' })
    .merge(detected);
  const provider = new sdk.TracerProvider({ resource, spanProcessors });
  api.context.setGlobalContextManager(new hooks.AsyncLocalStorageContextManager().enable());
  api.propagation.setGlobalPropagator(
    new core.CompositePropagator({
      propagators: [new core.W3CTraceContextPropagator(), new core.W3CBaggagePropagator()],
    }),
  );
  api.trace.setGlobalTracerProvider(provider);
  return {
    exporters,
    shutdown: () => provider.shutdown(),
  };
}
