import type { MessageType } from '@quiver/session';
import type { StandardSchemaV1 } from '@standard-schema/spec';

/**
 * A room message: a session `MessageType` (it rides the session's channels) that may carry a Standard Schema
 * (zod, valibot, arktype, typebox, ... all implement `~standard`). The schema is checked by the room, not by the
 * session: an invalid payload is answered with a typed `validation` error and counted, and the session goes on.
 */
export interface RoomMessage<T = unknown> extends MessageType<T> {
  /** Checks (and may transform) the payload on arrival in the room; without it the payload is trusted as `T`. */
  readonly schema?: StandardSchemaV1<unknown, T>;
}

/** A request type: the payload `Req` travels to the room, whose handler returns `Res`. */
export interface RoomRequest<Req = unknown, Res = unknown> {
  /** Unique among the room's requests; `q.room.` is reserved. */
  readonly name: string;
  /** Tells a request from a message. */
  readonly kind: 'request';
  /** Checks the payload on arrival; a failing payload is answered `validation`. */
  readonly schema?: StandardSchemaV1<unknown, Req>;
  /** Phantom fields carrying the types; never set. */
  readonly __request?: Req;
  /** Phantom: the response type; never set. */
  readonly __response?: Res;
}

/** Options of {@link message} beyond its name. */
export interface MessageDefinitionOptions {
  /** The session channel (`reliable` by default; `unreliable` for datagrams). */
  channel?: string;
  /** A fixed compact id (1..65535), else one is assigned. */
  id?: number;
}

/**
 * `message<T>('chat')` (type only) or `message('chat', z.object({ text: z.string() }))` (type inferred from the
 * schema, checked on arrival).
 */
export function message<T>(name: string, options?: MessageDefinitionOptions): RoomMessage<T>;
export function message<S extends StandardSchemaV1>(
  name: string,
  schema: S,
  options?: MessageDefinitionOptions,
): RoomMessage<StandardSchemaV1.InferOutput<S>>;
export function message(
  name: string,
  a?: StandardSchemaV1 | MessageDefinitionOptions,
  b?: MessageDefinitionOptions,
): RoomMessage {
  const schema = isSchema(a) ? a : undefined;
  const opts = (isSchema(a) ? b : a) ?? {};
  checkName(name);
  if (opts.id !== undefined && (!Number.isInteger(opts.id) || opts.id < 1 || opts.id > 0xffff)) {
    throw new RangeError('message id must be an integer in 1..65535');
  }
  return Object.freeze({ name, id: opts.id, channel: opts.channel, schema });
}

/**
 * `request<Req, Res>('buy')` or `request<Res>()('buy', schema)`-style inference is awkward in TypeScript, so the
 * schema form takes the response type as its one explicit parameter: `request('buy', BuySchema).returns<Receipt>()`.
 */
export function request<Req, Res>(name: string): RoomRequest<Req, Res>;
export function request<S extends StandardSchemaV1>(
  name: string,
  schema: S,
): RoomRequest<StandardSchemaV1.InferOutput<S>, unknown> & {
  /** Fixes the response type: `request('buy', BuySchema).returns<Receipt>()`. */
  returns<Res>(): RoomRequest<StandardSchemaV1.InferOutput<S>, Res>;
};
export function request(name: string, schema?: StandardSchemaV1): RoomRequest {
  checkName(name);
  const r: RoomRequest & { returns?: () => RoomRequest } = { name, kind: 'request', schema };
  r.returns = () => Object.freeze({ name, kind: 'request' as const, schema });
  return Object.freeze(r);
}

/** The payload type of a room message. */
export type MessagePayload<M> = M extends RoomMessage<infer T> ? T : never;
/** The payload type of a request. */
export type RequestPayload<R> = R extends RoomRequest<infer Q, unknown> ? Q : never;
/** The response type of a request. */
export type ResponseOf<R> = R extends RoomRequest<unknown, infer S> ? S : never;

/** A payload that passed its schema (`value`, as the schema output it), or why it did not (`issues`). */
export type ValidationResult<T> =
  | {
      /** The payload passed. */
      ok: true;
      /** The schema's output. */
      value: T;
    }
  | {
      /** The payload failed. */
      ok: false;
      /** Why, at most 8 issues. */
      issues: ValidationIssue[];
    };
/** One reason a payload failed its schema; bounded in length, as it is sent to the client. */
export interface ValidationIssue {
  /** What is wrong (at most 200 characters). */
  message: string;
  /** Where in the payload (at most 8 segments); absent for the payload as a whole. */
  path?: (string | number)[];
}

/** Issues kept per rejected payload: bounded so a peer cannot make the answer grow with its input. */
const MAX_ISSUES = 8;

/**
 * Runs a Standard Schema (`~standard.validate`, Standard Schema v1). A synchronous validator answers synchronously,
 * so messages keep their order; an async one is awaited. A validator that throws counts as an invalid payload,
 * never as a crashed room.
 */
export function validate<T>(
  schema: StandardSchemaV1<unknown, T> | undefined,
  value: unknown,
): ValidationResult<T> | Promise<ValidationResult<T>> {
  if (!schema) return { ok: true, value: value as T };
  let result: StandardSchemaV1.Result<T> | Promise<StandardSchemaV1.Result<T>>;
  try {
    result = schema['~standard'].validate(value);
  } catch (err) {
    return thrown(err);
  }
  return result instanceof Promise ? result.then(toResult, thrown) : toResult(result);
}

function thrown(err: unknown): ValidationResult<never> {
  return {
    ok: false,
    issues: [{ message: `validator threw: ${String((err as Error)?.message ?? err).slice(0, 200)}` }],
  };
}

function toResult<T>(result: StandardSchemaV1.Result<T>): ValidationResult<T> {
  if (result.issues === undefined) return { ok: true, value: result.value };
  return {
    ok: false,
    issues: result.issues.slice(0, MAX_ISSUES).map((i) => ({
      message: String(i.message).slice(0, 200),
      path: i.path?.slice(0, 8).map((p) => {
        const k = typeof p === 'object' && p !== null ? p.key : p;
        return typeof k === 'number' ? k : String(k).slice(0, 64);
      }),
    })),
  };
}

function isSchema(v: unknown): v is StandardSchemaV1 {
  return typeof v === 'object' && v !== null && '~standard' in v;
}

function checkName(name: string): void {
  if (typeof name !== 'string' || name.length === 0 || name.startsWith('q.room.')) {
    throw new TypeError("message name must be a non-empty string not starting with 'q.room.'");
  }
}
