/**
 * What the page and the Worker say to each other about one session, over that session's own `MessagePort` (one
 * `MessageChannel` per session, so a Worker can host several without multiplexing). Every value here survives
 * the structured clone algorithm (HTML §2.7); functions stay on their side and are asked for by message.
 */
import type { TransportAttempt } from '../fallback.js';
import type { ClientState } from '../client.js';
import type { DropInfo, DropReason, PeerStats } from '../peer-options.js';

/** The part of a `MessagePort` (or `Worker`) this module uses; structural so that Node typings need no DOM. */
export interface PortLike {
  postMessage(message: unknown, transfer?: unknown[]): void;
  addEventListener(type: 'message', listener: (ev: { data: unknown }) => void): void;
  removeEventListener(type: 'message', listener: (ev: { data: unknown }) => void): void;
  start?(): void;
  close?(): void;
}

/** A message type as it crosses: the name, and the fixed id and channel the handshake needs. */
export type WireType = [name: string, id: number | undefined, channel: string | undefined];

/** A transport candidate without its connector: the Worker looks the connector up by `name`. */
export interface WireCandidate {
  name: string;
  url?: string;
  options?: Record<string, unknown>;
  headStartMs?: number;
}

/** Where a session stands, as the Worker last saw it; the page answers synchronous reads from it. */
export interface Snapshot {
  state: ClientState;
  sessionId: string | undefined;
  transport: string | undefined;
  connected: boolean;
  recovered: boolean;
  reconnects: number;
  rtt: number;
  jitter: number;
  loss: number;
  minRtt: number;
  /** `serverTime() - clock.now()` in the Worker; the clocks are the same epoch clock on both sides. */
  clockOffset: number;
  clockError: number;
  bufferedBytes: number;
  stats: PeerStats;
  transportAttempts: TransportAttempt[];
}

/** Page to Worker (on the global scope): adopt a session's port and connect it. */
export interface AttachCommand {
  q: 'attach';
  port: PortLike;
  url: string;
  options: Record<string, unknown>;
  transports: WireCandidate[];
  messages: WireType[];
  /** Remembered transport winners by origin, from the page's storage (Workers have no `localStorage`). */
  remembered: Record<string, { name: string; at: number }>;
  /** The page calls its token function again for each reconnect: the Worker asks with `token`. */
  tokenFunction: boolean;
}

/** One queued send: type, payload, and the `send()` options. */
export type WireSend = [type: WireType, payload: unknown, channel: string | undefined, key: unknown];

/** Page to Worker, on the session's port. */
export type PageToWorker =
  | { q: 'send'; b: WireSend[] }
  | { q: 'close'; code: number; reason: string }
  | { q: 'drained'; id: number; bytes: number }
  | { q: 'token'; id: number; token?: string; error?: string };

/** An error as it crosses: enough to rebuild the typed error on the page. */
export interface WireError {
  name: string;
  message: string;
  /** `SessionError.kind`. */
  kind?: string;
  code?: number;
  status?: number;
  attempts?: TransportAttempt[];
}

/** Worker to page, on the session's port. Every message carries `at`, the Worker's clock when it was posted. */
export type WorkerToPage = { at: number; s: Snapshot } & (
  | { q: 'open'; recovered: boolean; transport: string; first: boolean }
  | { q: 'failed'; error: WireError }
  | { q: 'msgs'; b: [name: string, payload: unknown][] }
  | { q: 'reconnecting'; attempt: number; delayMs: number; code: number; reason: string }
  | { q: 'close'; code: number; reason: string }
  | { q: 'error'; error: WireError }
  | { q: 'drop'; reason: DropReason; info: DropInfo }
  | { q: 'drained'; id: number }
  | { q: 'token'; id: number }
  | { q: 'remember'; origin: string; winner: { name: string; at: number } }
  | { q: 'tick' }
);

export function toWireError(err: unknown): WireError {
  const e = err as Partial<WireError> & { closeCode?: number };
  const kind = typeof e?.kind === 'string' ? e.kind : undefined;
  return {
    name: typeof e?.name === 'string' ? e.name : 'Error',
    message: typeof e?.message === 'string' ? e.message : String(err),
    kind,
    code: typeof e?.code === 'number' ? e.code : typeof e?.closeCode === 'number' ? e.closeCode : undefined,
    status: typeof e?.status === 'number' ? e.status : undefined,
    attempts: Array.isArray(e?.attempts) ? e.attempts.map((a) => ({ ...a })) : undefined,
  };
}
