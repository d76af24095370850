export type {
  ConnectOptions,
  Connector,
  DatagramDropReason,
  DatagramSendEstimate,
  DatagramStats,
  IncomingSession,
  QuiverBidirectionalStream,
  QuiverDatagramDuplexStream,
  QuiverSession,
  SessionRequest,
  TransportListener,
  TransportName,
  TransportReliability,
  TransportStats,
  WebTransportCloseInfo,
  WebTransportLike,
} from './types.js';
export {
  ProtocolViolationError,
  QuiverTransportError,
  SessionRejectedError,
  streamErrorCodeOf,
} from './errors.js';
export type { Clock, Rng, TimerHandle, TrackedClock } from './clock.js';
export { createRng, ManualClock, systemClock, trackTimers } from './clock.js';
export type { Timed } from './heap.js';
export { TimeHeap } from './heap.js';
export * from './memory/index.js';
export { PendingRequest, PendingRequests, requestHeaders, type VerdictStats } from './pending.js';
export { SendDelayEstimator } from './send-estimate.js';
export {
  decodeVarint,
  decodeVarintBig,
  encodeVarint,
  MAX_VARINT,
  VarintRangeError,
  varintLength,
  varintLengthFromFirstByte,
  writeVarintAt,
} from './varint.js';
