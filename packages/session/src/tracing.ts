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
const TRACE_CONTEXT_VERSION = 0;

/** The header flag (beside `FLAG_RAW`) saying the element after the flags is a trace context. */
export const FLAG_TRACE = 2;

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
  if (!(value instanceof Uint8Array) || value.length !== TRACE_CONTEXT_BYTES) return null;
  if (value[0] !== TRACE_CONTEXT_VERSION) return null;
  if (zero(value, 1, 17) || zero(value, 17, 25)) return null;
  return { traceId: hex(value, 1, 17), spanId: hex(value, 17, 25), flags: value[25] };
}

/** What a span of a message is about. Values are bounded by the tracer (names from the message tables). */
export interface MessageTraceInfo {
  /** The message type's name. */
  message: string;
  /** The channel's name (a messaging destination). */
  channel: string;
  /** Encoded payload bytes. */
  bytes: number;
  /** The transport carrying the session, when connected. */
  transport: string | undefined;
  /** The server's id for the session, once known. */
  sessionId: string | undefined;
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
  /** An event on the span: a transport attempt of the race, the handshake. */
  event(name: string, attributes: Record<string, string | number | boolean>): void;
  end(attributes: Record<string, string | number | boolean>, error?: unknown): void;
}

/** What the session layer calls when tracing; `@quiver/session/otel` implements it on OpenTelemetry. */
export interface SessionTracer {
  /** A message is sent; undefined when nothing records or propagates it. */
  send(info: MessageTraceInfo): SendTrace | undefined;
  /**
   * A message arrived, carrying `parent` when its sender's span was sampled. `run` delivers it to the handlers and
   * must be called once, synchronously, inside the receive span, so that what the handlers send joins the trace.
   */
  receive(info: MessageTraceInfo, parent: TraceParent | undefined, run: () => void): void;
  /** A session is being established (`client`: connect and race; `server`: accept and handshake). */
  establish(side: 'client' | 'server', attributes: Record<string, string | number | boolean>): EstablishTrace;
}
