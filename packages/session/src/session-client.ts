import type { ClientEvents, ClientState, CloseEventInfo } from './client.js';
import type { TransportAttempt } from './fallback.js';
import type { MessageType } from './messages.js';
import type { Handler, PeerStats, SendOptions } from './peer-options.js';

/**
 * What an application (and `@quiver/rooms/client`) uses of a client session, whichever thread runs it: the
 * `ClientSession` of `connect()` on the calling thread, or the `WorkerClientSession` of `@quiver/session/worker`,
 * whose session runs in a dedicated Worker and answers these reads from its last report.
 */
export interface SessionClient {
  /** Where the session is in its lifecycle. */
  readonly state: ClientState;
  /** The server's id for this session. */
  readonly sessionId: string | undefined;
  /** The transport carrying the session now, or undefined while disconnected. */
  readonly transport: string | undefined;
  /** True while a transport connection carries the session. */
  readonly connected: boolean;
  /** Whether the last (re)connect resumed the previous session. */
  readonly recovered: boolean;
  /** How the last connect went, transport by transport. */
  readonly transportAttempts: readonly TransportAttempt[];
  /** Smoothed RTT in ms (RFC 6298); 0 before the first sample. */
  readonly rtt: number;
  /** RTTVAR in ms (RFC 6298). */
  readonly jitter: number;
  /** Fraction of heartbeat probes lost (EWMA). */
  readonly loss: number;
  /** Smallest RTT sample in ms; 0 before the first sample. */
  readonly minRtt: number;
  /** Bytes held for sending: queued plus in flight. */
  readonly bufferedBytes: number;
  /** Counters since the session was created. */
  readonly stats: PeerStats;
  /** Bound on the error of `serverTime()` in ms. */
  readonly clockError: number;
  /** The server's clock now (epoch milliseconds), from the heartbeat exchange with the smallest RTT. */
  serverTime(): number;
  /** Registers a message handler or a lifecycle handler; returns a function that removes it. */
  on<T>(type: MessageType<T>, handler: Handler<T, SessionClient>): () => void;
  on<E extends keyof ClientEvents>(event: E, handler: ClientEvents[E]): () => void;
  /** Sends a message (see `ClientSession.send`). */
  send<T>(type: MessageType<T>, payload: T, options?: SendOptions): boolean;
  /** Resolves once `bufferedBytes` is at or below `bytes` (default 0). */
  drained(bytes?: number): Promise<void>;
  /** Closes for good. */
  close(code?: number, reason?: string): Promise<void>;
  /** Resolves once closed for good. */
  readonly closed: Promise<CloseEventInfo>;
}
