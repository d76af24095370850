/** The options of a WebSocket session, their defaults (README "Options") and their validation. */

import { type Clock, systemClock } from '@quiver/transport';
import { MIN_MESSAGE_SIZE } from './core.js';

/** Limits and timings of one session, on either side. Every field has a documented default (README "Options"). */
export interface WebSocketSessionOptions {
  /** Largest incoming WebSocket message, announced to the peer (ws `maxPayload`). Default 1 MiB. */
  maxMessageSize?: number;
  /** Bidirectional streams the peer may have open at once (MAX_STREAMS). Default 100. */
  maxIncomingBidirectionalStreams?: number;
  /** Unidirectional streams the peer may have open at once (MAX_STREAMS). Default 100. */
  maxIncomingUnidirectionalStreams?: number;
  /** Per-stream receive window in bytes (MAX_STREAM_DATA credit). Default 256 KiB. */
  streamWindow?: number;
  /** Largest datagram payload accepted, and sent. Default 1200, as QUIC's minimum datagram size allows. */
  maxDatagramSize?: number;
  /** Largest STREAM frame payload: the round-robin quantum. Default 16 KiB. */
  maxStreamFrameSize?: number;
  /** Largest outgoing message (also capped by the peer's max message size). Default 64 KiB. */
  maxOutgoingMessageSize?: number;
  /** Stream data is framed only while the socket's bufferedAmount is below this. Default 64 KiB. */
  sendHighWaterMark?: number;
  /** Outgoing datagrams are dropped (`congestion`) while bufferedAmount plus queued datagrams exceed this. Default 128 KiB. */
  datagramDropThreshold?: number;
  /** Incoming datagrams queued for the application before further ones drop (`receive-queue-full`). Default 128. */
  incomingDatagramQueue?: number;
  /** PING interval for RTT samples and keep-alive; 0 disables. Default 5000 ms. */
  pingIntervalMs?: number;
  /**
   * While datagrams are being sent, a PING goes out this often (unless one is unanswered) so that
   * `datagrams.sendEstimate()` sees queues beyond `bufferedAmount` (kernel buffers, the network). 0 disables.
   * Default 50 ms.
   */
  rttProbeIntervalMs?: number;
  /** The session fails when nothing arrives for this long; 0 disables. Default 30000 ms. */
  idleTimeoutMs?: number;
  /** Time for the socket to open and the peer's SETTINGS to arrive. Default 10000 ms. */
  handshakeTimeoutMs?: number;
  /** Time the WebSocket closing handshake may take before the socket is dropped. Default 2000 ms. */
  closeTimeoutMs?: number;
  /** Control frames (PONG answers) the peer's input may leave queued before EXCESSIVE_LOAD. Default 64 KiB. */
  maxQueuedControlBytes?: number;
  /**
   * Outgoing socket buffer (WebSocket `bufferedAmount`, which includes `ws`'s automatic pongs) beyond which the
   * session fails with EXCESSIVE_LOAD: a peer that sends but never reads cannot make us buffer more.
   * Default 1 MiB; at least `sendHighWaterMark + maxOutgoingMessageSize`.
   */
  maxBufferedAmount?: number;
  /** Time and timers (default the system clock); tests inject a ManualClock or a tracked clock. */
  clock?: Clock;
}

/** The defaults of {@link WebSocketSessionOptions} (README "Options"). */
export const DEFAULTS = {
  /** Largest incoming WebSocket message, announced to the peer (ws `maxPayload`). See {@link WebSocketSessionOptions.maxMessageSize}. */
  maxMessageSize: 1024 * 1024,
  /** Bidirectional streams the peer may have open at once (MAX_STREAMS). See {@link WebSocketSessionOptions.maxIncomingBidirectionalStreams}. */
  maxIncomingBidirectionalStreams: 100,
  /** Unidirectional streams the peer may have open at once (MAX_STREAMS). See {@link WebSocketSessionOptions.maxIncomingUnidirectionalStreams}. */
  maxIncomingUnidirectionalStreams: 100,
  /** Per-stream receive window in bytes (MAX_STREAM_DATA credit). See {@link WebSocketSessionOptions.streamWindow}. */
  streamWindow: 256 * 1024,
  /** Largest datagram payload accepted, and sent. See {@link WebSocketSessionOptions.maxDatagramSize}. */
  maxDatagramSize: 1200,
  /** Largest STREAM frame payload: the round-robin quantum. See {@link WebSocketSessionOptions.maxStreamFrameSize}. */
  maxStreamFrameSize: 16 * 1024,
  /** Largest outgoing message (also capped by the peer's max message size). See {@link WebSocketSessionOptions.maxOutgoingMessageSize}. */
  maxOutgoingMessageSize: 64 * 1024,
  /** Stream data is framed only while the socket's bufferedAmount is below this. See {@link WebSocketSessionOptions.sendHighWaterMark}. */
  sendHighWaterMark: 64 * 1024,
  /** Outgoing datagrams are dropped (`congestion`) while bufferedAmount plus queued datagrams exceed this. See {@link WebSocketSessionOptions.datagramDropThreshold}. */
  datagramDropThreshold: 128 * 1024,
  /** Incoming datagrams queued for the application before further ones drop (`receive-queue-full`). See {@link WebSocketSessionOptions.incomingDatagramQueue}. */
  incomingDatagramQueue: 128,
  /** PING interval for RTT samples and keep-alive; 0 disables. See {@link WebSocketSessionOptions.pingIntervalMs}. */
  pingIntervalMs: 5000,
  /** PING cadence while datagrams are sent, for the send estimate; 0 disables. See {@link WebSocketSessionOptions.rttProbeIntervalMs}. */
  rttProbeIntervalMs: 50,
  /** The session fails when nothing arrives for this long; 0 disables. See {@link WebSocketSessionOptions.idleTimeoutMs}. */
  idleTimeoutMs: 30_000,
  /** Time for the socket to open and the peer's SETTINGS to arrive. See {@link WebSocketSessionOptions.handshakeTimeoutMs}. */
  handshakeTimeoutMs: 10_000,
  /** Time the WebSocket closing handshake may take before the socket is dropped. See {@link WebSocketSessionOptions.closeTimeoutMs}. */
  closeTimeoutMs: 2000,
  /** Control frames (PONG answers) the peer's input may leave queued before EXCESSIVE_LOAD. See {@link WebSocketSessionOptions.maxQueuedControlBytes}. */
  maxQueuedControlBytes: 64 * 1024,
  /** Outgoing socket buffer (WebSocket `bufferedAmount`, which includes `ws`'s automatic pongs) beyond which the session fails with EXCESSIVE_LOAD: a peer that sends but never reads cannot make us buffer more. at least `sendHighWaterMark + maxOutgoingMessageSize`. See {@link WebSocketSessionOptions.maxBufferedAmount}. */
  maxBufferedAmount: 1024 * 1024,
} as const;

export type Resolved = Required<Omit<WebSocketSessionOptions, 'clock'>> & { clock: Clock };

export function resolveOptions(options: WebSocketSessionOptions = {}): Resolved {
  const o = { ...DEFAULTS, clock: systemClock } as Resolved;
  for (const [k, v] of Object.entries(options)) if (v !== undefined) (o as Record<string, unknown>)[k] = v;
  const int = (name: keyof typeof DEFAULTS, min: number) => {
    const v = o[name];
    if (!Number.isSafeInteger(v) || v < min)
      throw new RangeError(`${name} must be an integer >= ${min}, got ${v}`);
  };
  int('maxMessageSize', MIN_MESSAGE_SIZE);
  int('maxIncomingBidirectionalStreams', 0);
  int('maxIncomingUnidirectionalStreams', 0);
  int('streamWindow', 1);
  int('maxDatagramSize', 0);
  int('maxStreamFrameSize', 1);
  int('maxOutgoingMessageSize', MIN_MESSAGE_SIZE);
  int('sendHighWaterMark', 0);
  int('datagramDropThreshold', 0);
  int('incomingDatagramQueue', 0);
  int('pingIntervalMs', 0);
  int('rttProbeIntervalMs', 0);
  int('idleTimeoutMs', 0);
  int('handshakeTimeoutMs', 1);
  int('closeTimeoutMs', 0);
  int('maxQueuedControlBytes', 0);
  int('maxBufferedAmount', o.sendHighWaterMark + o.maxOutgoingMessageSize);
  if (o.maxDatagramSize > o.maxMessageSize - 16) {
    throw new RangeError(
      `maxDatagramSize ${o.maxDatagramSize} does not fit in maxMessageSize ${o.maxMessageSize}`,
    );
  }
  return o;
}
