/**
 * OpenTelemetry tracing of sessions, on `@opentelemetry/api` only: spans are recorded when the application
 * registers an SDK (or passes a `TracerProvider`). The sampler is asked once per session by default, so a message
 * of an unsampled session costs no SDK call (see {@link OtelTracingOptions.sampling}). This is a
 * separate entry (`@quiver/session/otel`) so that a browser client that does not trace never bundles the API.
 *
 * Span and attribute names follow OpenTelemetry's messaging semantic conventions (`send {destination}`,
 * `receive {destination}`, `process {destination}`, `messaging.*` attributes), the channel being the destination.
 */
import {
  type Attributes,
  type Context,
  context,
  INVALID_SPAN_CONTEXT,
  type Span,
  SpanKind,
  type SpanOptions,
  SpanStatusCode,
  type Tracer,
  type TracerProvider,
  TraceFlags,
  trace,
} from '@opentelemetry/api';
import {
  type EstablishTrace,
  isTraceContext,
  type SendTrace,
  type SessionTracer,
  TRACE_CONTEXT_BYTES,
  TRACE_CONTEXT_VERSION,
  type TraceSession,
} from './tracing.js';

/** A decoded trace context (W3C Trace Context §3.2), ids in lowercase hex as OpenTelemetry spells them. */
export interface TraceParent {
  /** 32 hex digits, not all zero (§3.2.2.3). */
  traceId: string;
  /** 16 hex digits, not all zero (§3.2.2.4). */
  spanId: string;
  /** trace-flags (§3.2.2.5): bit 0 is `sampled`. */
  flags: number;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

function hex(bytes: Uint8Array, from: number, to: number): string {
  let s = '';
  for (let i = from; i < to; i++) s += HEX[bytes[i]];
  return s;
}

function zero(bytes: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (bytes[i] !== 0) return false;
  return true;
}

/** Encodes a trace context for the envelope; `null` when the ids are not valid W3C ids. */
export function encodeTraceParent(tp: TraceParent): Uint8Array | null {
  if (!/^[0-9a-f]{32}$/.test(tp.traceId) || !/^[0-9a-f]{16}$/.test(tp.spanId)) return null;
  const out = new Uint8Array(TRACE_CONTEXT_BYTES);
  out[0] = TRACE_CONTEXT_VERSION;
  for (let i = 0; i < 16; i++) out[1 + i] = Number.parseInt(tp.traceId.slice(2 * i, 2 * i + 2), 16);
  for (let i = 0; i < 8; i++) out[17 + i] = Number.parseInt(tp.spanId.slice(2 * i, 2 * i + 2), 16);
  out[25] = tp.flags & 0xff;
  if (zero(out, 1, 17) || zero(out, 17, 25)) return null;
  return out;
}

/**
 * Decodes the envelope's trace context element. Anything but exactly {@link TRACE_CONTEXT_BYTES} bytes of version
 * `00` with non-zero ids is `null`: the receiver ignores it (and counts it), the message is still delivered.
 */
export function decodeTraceParent(value: unknown): TraceParent | null {
  if (!isTraceContext(value)) return null;
  return { traceId: hex(value, 1, 17), spanId: hex(value, 17, 25), flags: value[25] };
}

/** Options of {@link otelTracing}. */
export interface OtelTracingOptions {
  /** Where spans go. Default the global provider (`trace.getTracerProvider()`), a no-op until an SDK registers. */
  tracerProvider?: TracerProvider;
  /** The instrumentation scope's name. Default `@quiver/session`. */
  name?: string;
  /**
   * Where your sampler's root decision is taken for messages that have no sampled parent (no sampled span active
   * when sent, no sampled context carried in):
   * - `'session'` (default): once per session, at its establishment (`quiver.session.connect` / `accept`). A
   *   message of a sampled session gets its spans, each a root span your sampler decides again (so a ratio sampler
   *   keeps ratio² of such messages: sample whole sessions with a ratio, or decide per message with `'message'`);
   *   a message of an unsampled session gets none and costs the tracer no SDK call.
   * - `'message'`: every message asks your sampler, as most messaging instrumentations do; an unsampled message
   *   then still costs a non-recording span per end (about 1.6 µs per message in the `micro` bench's
   *   `tracing_unsampled_per_message_overhead`).
   *
   * Either way a message sent inside a sampled span (the application's own, or the handler of a traced message)
   * or carrying a sampled context is traced, so one trace follows it from client to server to other clients.
   */
  sampling?: 'session' | 'message';
}

/** Whether `ctx` holds a span whose context is sampled: such a parent makes a message traced whatever its session. */
function sampledIn(ctx: Context): boolean {
  const span = trace.getSpan(ctx);
  return span !== undefined && (span.spanContext().traceFlags & TraceFlags.SAMPLED) !== 0;
}

/** Longest attribute value taken from a name (message type, channel): names are the application's, but bounded. */
const MAX_NAME = 64;

function bounded(s: string | undefined): string {
  if (s === undefined) return '';
  return s.length > MAX_NAME ? s.slice(0, MAX_NAME) : s;
}

/**
 * The context of the handler running now. Handlers run synchronously inside the receive span; tracking it here
 * makes what they send join the trace without a context manager (the browser has none by default). When one is
 * registered, `context.active()` gives the same context. With `currentSpan` set, the handler's context is `current`
 * with that span in it, made only when a handler sends (see `receive` in {@link otelTracing}).
 */
let current: Context | undefined;
let currentSpan: Span | undefined;

function parentContext(): Context {
  const active = context.active();
  if (current === undefined) return active;
  // A span a context manager made active inside the handler (an application's own) is the nearer parent.
  if (active !== current && trace.getSpan(active)) return active;
  return currentSpan ? trace.setSpan(current, currentSpan) : current;
}

/**
 * Runs `fn` inside `span`, so that the messages it sends are children of the span; with or without a context
 * manager (see {@link otelTracing}). The room broadcast uses it for its fan-out span.
 */
export function withSpan<T>(span: Span, fn: () => T): T {
  const ctx = trace.setSpan(parentContext(), span);
  const before = current;
  const beforeSpan = currentSpan;
  current = ctx;
  currentSpan = undefined;
  try {
    return context.with(ctx, fn);
  } finally {
    current = before;
    currentSpan = beforeSpan;
  }
}

/** Starts a span whose parent is the handler or span running now (see {@link withSpan}). */
export function startSpan(tracer: Tracer, name: string, kind: SpanKind, attributes: Attributes): Span {
  return tracer.startSpan(name, { kind, attributes }, parentContext());
}

function messageAttributes(
  operation: string,
  channel: string,
  message: string,
  bytes: number,
  session: TraceSession,
): Attributes {
  const a: Attributes = {
    'messaging.system': 'quiver',
    'messaging.operation.type': operation,
    'messaging.operation.name': operation,
    'messaging.destination.name': bounded(channel),
    'messaging.message.body.size': bytes,
    'quiver.message.type': bounded(message),
  };
  const transport = session.transport();
  if (transport) a['network.protocol.name'] = transport;
  const id = session.sessionId();
  if (id) a['quiver.session.id'] = bounded(id);
  return a;
}

/** The span names of one channel (messaging conventions: `{operation} {destination}`). */
interface ChannelSpanNames {
  send: string;
  write: string;
  receive: string;
  process: string;
}

/**
 * Most channels whose span names are kept. Channels are the session's configuration, a handful; the bound only
 * keeps the table finite whatever names come by.
 */
const MAX_NAMED_CHANNELS = 256;

/** Span names per channel, made on first use: a message costs a map lookup, no string building. */
function spanNames(): (channel: string) => ChannelSpanNames {
  const names = new Map<string, ChannelSpanNames>();
  return (channel) => {
    let n = names.get(channel);
    if (n === undefined) {
      const c = bounded(channel);
      n = { send: `send ${c}`, write: `write ${c}`, receive: `receive ${c}`, process: `process ${c}` };
      if (names.size < MAX_NAMED_CHANNELS) names.set(channel, n);
    }
    return n;
  };
}

const SEND: SpanOptions = { kind: SpanKind.PRODUCER };
const RECEIVE: SpanOptions = { kind: SpanKind.CONSUMER };

function fail(span: Span, error: unknown): void {
  if (error instanceof Error) span.recordException(error);
  span.setStatus({
    code: SpanStatusCode.ERROR,
    message: bounded(error instanceof Error ? error.message : String(error)),
  });
}

const done = () => {};

/**
 * A {@link SessionTracer} on OpenTelemetry: pass it as the `tracing` option of `connect()` or
 * `createSessionServer()` (the fastify plugin does by default). Spans per message: `send {channel}` (producer)
 * with a `write {channel}` child while the transport takes it; on the receiving end `receive {channel}` (consumer,
 * child of the sender's span when its context travelled) and `process {channel}` around the handlers. Establishment:
 * `quiver.session.connect` (client; the transport race's attempts are its events) and `quiver.session.accept`.
 */
export function otelTracing(options: OtelTracingOptions = {}): SessionTracer {
  const provider = options.tracerProvider ?? trace.getTracerProvider();
  const tracer = provider.getTracer(options.name ?? '@quiver/session');
  const names = spanNames();
  const perSession = (options.sampling ?? 'session') === 'session';
  return {
    send(channel, message, bytes, session): SendTrace | undefined {
      const parent = parentContext();
      if (perSession && !session.sampled() && !sampledIn(parent)) return undefined;
      // Attributes are set once the span turns out to record: an unsampled message allocates nothing for them
      // (samplers here decide on the parent and the name, not on attributes).
      const n = names(channel);
      const span = tracer.startSpan(n.send, SEND, parent);
      const sc = span.spanContext();
      const sampled = (sc.traceFlags & TraceFlags.SAMPLED) !== 0;
      if (!span.isRecording()) {
        span.end();
        if (!sampled) return undefined;
      } else span.setAttributes(messageAttributes('send', channel, message, bytes, session));
      const wire = sampled
        ? (encodeTraceParent({ traceId: sc.traceId, spanId: sc.spanId, flags: sc.traceFlags }) ?? undefined)
        : undefined;
      return {
        wire,
        write(seq: number) {
          if (!span.isRecording()) return done;
          const w = tracer.startSpan(
            n.write,
            { kind: SpanKind.INTERNAL, attributes: { 'quiver.message.seq': seq } },
            trace.setSpan(parent, span),
          );
          return (error?: unknown) => {
            if (error !== undefined) fail(w, error);
            w.end();
            span.end();
          };
        },
        end(error?: string) {
          if (error !== undefined) fail(span, error);
          span.end();
        },
      };
    },

    receive<R>(
      channel: string,
      message: string,
      bytes: number,
      session: TraceSession,
      wire: Uint8Array | undefined,
      run: (message: string, payload: unknown) => R,
      payload: unknown,
    ): R {
      const parent = wire ? decodeTraceParent(wire) : null;
      // An unsampled session's message without a sampled context: the sampler said no to this session already.
      if (perSession && parent === null && !session.sampled()) return run(message, payload);
      let ctx = context.active();
      if (parent) {
        ctx = trace.setSpanContext(ctx, {
          traceId: parent.traceId,
          spanId: parent.spanId,
          traceFlags: parent.flags & TraceFlags.SAMPLED,
          isRemote: true,
        });
      }
      const n = names(channel);
      const recv = tracer.startSpan(n.receive, RECEIVE, ctx);
      if (!recv.isRecording()) {
        // The API's no-op tracer (no SDK registered): there is no context to give the handlers.
        if (recv.spanContext() === INVALID_SPAN_CONTEXT) return run(message, payload);
        // Unsampled: the span is still the parent of what the handlers send (parent-based samplers keep those
        // unsampled too), but its context is made only if they send, and it is not entered into the context
        // manager. A context and a context-manager scope per message would cost more than the rest of the
        // unsampled path, for a span nobody records; work a handler starts asynchronously sees the context that
        // was active around the receive instead.
        const before = current;
        const beforeSpan = currentSpan;
        current = ctx;
        currentSpan = recv;
        try {
          return run(message, payload);
        } finally {
          current = before;
          currentSpan = beforeSpan;
          recv.end();
        }
      }
      recv.setAttributes(messageAttributes('receive', channel, message, bytes, session));
      const rctx = trace.setSpan(ctx, recv);
      const proc = tracer.startSpan(
        n.process,
        {
          kind: SpanKind.INTERNAL,
          attributes: messageAttributes('process', channel, message, bytes, session),
        },
        rctx,
      );
      const pctx = trace.setSpan(rctx, proc);
      const before = current;
      const beforeSpan = currentSpan;
      current = pctx;
      currentSpan = undefined;
      try {
        return context.with(pctx, run, undefined, message, payload);
      } catch (err) {
        fail(proc, err);
        throw err;
      } finally {
        current = before;
        currentSpan = beforeSpan;
        proc.end();
        recv.end();
      }
    },

    establish(side, attributes): EstablishTrace {
      const span = tracer.startSpan(
        side === 'client' ? 'quiver.session.connect' : 'quiver.session.accept',
        { kind: side === 'client' ? SpanKind.CLIENT : SpanKind.SERVER, attributes },
        parentContext(),
      );
      return {
        sampled: (span.spanContext().traceFlags & TraceFlags.SAMPLED) !== 0,
        event: (name, a) => {
          span.addEvent(name, a);
        },
        attempts: (attempts) => {
          for (const a of attempts) {
            span.addEvent('quiver.transport.attempt', {
              'network.protocol.name': bounded(a.name),
              'quiver.transport.outcome': a.outcome,
              'quiver.transport.ms': a.ms,
              ...(a.error ? { 'error.type': a.error.slice(0, 120) } : {}),
            });
          }
        },
        end: (a, error) => {
          span.setAttributes(a);
          if (error !== undefined) fail(span, error);
          span.end();
        },
      };
    },
  };
}
