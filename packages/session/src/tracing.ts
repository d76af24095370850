/**
 * Tracing hooks of the session layer. The session core knows nothing of OpenTelemetry: it calls a
 * {@link SessionTracer} when one is given (`PeerOptions.tracing`), so a client that does not trace carries neither
 * the OpenTelemetry API in its bundle nor any cost beyond one property test per message. `@quiver/session/otel`
 * implements it on `@opentelemetry/api`.
 *
 * On the wire the trace context travels in the message envelope only when the sender's span is sampled: the
 * header's flags get {@link FLAG_TRACE} and the element right after the flags is the context as
 * {@link TRACE_CONTEXT_BYTES} bytes. An unsampled message is byte for byte what it was before tracing existed.
 */

/**
 * Bytes of a trace context in the envelope: the four fields of W3C Trace Context's `traceparent` header (§3.2:
 * version, trace-id, parent-id, trace-flags) in binary, 1 + 16 + 8 + 1. `tracestate` is not carried: its size is
 * the vendor's, and a game message must have a fixed bound on what tracing adds.
 */
export const TRACE_CONTEXT_BYTES = 26;

/** The W3C Trace Context version this envelope carries (§3.2.2.1: `00`). */
export const TRACE_CONTEXT_VERSION = 0;

/** The header flag (beside `FLAG_RAW`) saying the element after the flags is a trace context. */
export const FLAG_TRACE = 2;

/**
 * Whether `value` is an envelope trace context: exactly {@link TRACE_CONTEXT_BYTES} bytes of version `00` with
 * non-zero trace-id and parent-id (§3.2.2.3, §3.2.2.4). Anything else is ignored (and counted) by the receiver; the
 * message is still delivered. `@quiver/session/otel` decodes the ids.
 */
export function isTraceContext(value: unknown): value is Uint8Array {
  if (
    !(value instanceof Uint8Array) ||
    value.length !== TRACE_CONTEXT_BYTES ||
    value[0] !== TRACE_CONTEXT_VERSION
  )
    return false;
  let trace = 0;
  let span = 0;
  for (let i = 1; i < 17; i++) trace |= value[i];
  for (let i = 17; i < 25; i++) span |= value[i];
  return trace !== 0 && span !== 0;
}

/**
 * The session a traced message belongs to: one object per session, read by the tracer only when a span records, so
 * that a message that is not recorded costs no object for its description.
 */
export interface TraceSession {
  /** The transport carrying the session, when connected. */
  transport(): string | undefined;
  /** The server's id for the session, once known. */
  sessionId(): string | undefined;
  /**
   * Whether the span of the session's latest establishment was sampled ({@link EstablishTrace.sampled}): the
   * tracer's per-session sampling decision, read for every message, so it is a field, not a computation.
   */
  sampled(): boolean;
}

/** The span of one message being sent. */
export interface SendTrace {
  /** The context to put in the envelope, or undefined when the span is not sampled (then nothing is added). */
  readonly wire: Uint8Array | undefined;
  /** The message is handed to the transport; returns what to call once the transport took it. */
  write(seq: number): (error?: unknown) => void;
  /** The message will not be written (dropped, or the session ended). */
  end(error?: string): void;
}

/** A session's establishment (the client's connect, the server's accept). */
export interface EstablishTrace {
  /**
   * Whether the establishment's span is sampled. The session keeps it until its next establishment (a resume) and
   * gives it to the tracer with every message ({@link TraceSession.sampled}).
   */
  readonly sampled: boolean;
  /** An event on the span: the handshake. */
  event(name: string, attributes: Record<string, string | number | boolean>): void;
  /** The transport race's attempts, in race order (one event each). */
  attempts(attempts: readonly TransportAttemptInfo[]): void;
  end(attributes: Record<string, string | number | boolean>, error?: unknown): void;
}

/** One transport's attempt in the race (`TransportAttempt`). */
export interface TransportAttemptInfo {
  name: string;
  outcome: string;
  ms: number;
  error?: string;
}

/**
 * What the session layer calls when tracing; `@quiver/session/otel` implements it on OpenTelemetry. Both message
 * hooks take their description as arguments (channel and message type names from the message tables, encoded
 * payload bytes) rather than as an object: they run for every message, traced or not.
 */
export interface SessionTracer {
  /** A message is sent; undefined when nothing records or propagates it. */
  send(channel: string, message: string, bytes: number, session: TraceSession): SendTrace | undefined;
  /**
   * A message arrived, carrying `parent` (a valid envelope context, see {@link isTraceContext}) when its sender's
   * span was sampled. The tracer calls `run(message, payload)` once, synchronously, inside the receive span (so
   * that what the handlers send joins the trace) and returns what it returned.
   */
  receive<R>(
    channel: string,
    message: string,
    bytes: number,
    session: TraceSession,
    parent: Uint8Array | undefined,
    run: (message: string, payload: unknown) => R,
    payload: unknown,
  ): R;
  /** A session is being established (`client`: connect and race; `server`: accept and handshake). */
  establish(side: 'client' | 'server', attributes: Record<string, string | number | boolean>): EstablishTrace;
}
