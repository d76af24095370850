export { PendingHandshakes, type PreAuthOptions } from './admission.js';
export type { SessionClient } from './session-client.js';
export {
  type ClientEvents,
  type ClientOptions,
  ClientSession,
  type ClientState,
  type CloseEventInfo,
  connect,
  type OpenInfo,
  type ReconnectingInfo,
  type ReconnectOptions,
} from './client.js';
export {
  type Clock,
  createRng,
  ManualClock,
  type Rng,
  randomToken,
  systemClock,
  type TimerHandle,
} from './clock.js';
export {
  bundleFrame,
  datagramFrame,
  decodeValue,
  encodeValue,
  ExtData,
  FrameReader,
  Kind,
  parseBody,
  streamFrame,
  unbundle,
} from './codec.js';
export {
  CloseCode,
  type CloseCodeValue,
  ConnectError,
  DecodeError,
  HandshakeTimeoutError,
  isFinalCloseCode,
  MessageTooLargeError,
  NotAuthenticatedError,
  QueueFullError,
  RateLimitError,
  ServerBusyError,
  SessionClosedError,
  SessionError,
  UnknownMessageError,
  ValidationError,
} from './errors.js';
export {
  type BackoffOptions,
  backoffDelay,
  ClockSync,
  LossEstimator,
  RttEstimator,
  TokenBucket,
} from './estimators.js';
export {
  type AttemptOutcome,
  createWinnerMemory,
  defaultWinnerMemory,
  type FallbackOptions,
  raceTransports,
  type RememberedWinner,
  type TransportAttempt,
  type TransportCandidate,
  type WinnerMemory,
  type WinnerStorage,
} from './fallback.js';
export {
  type DeliveryMode,
  defineMessage,
  MessageRegistry,
  type MessageOptions,
  type MessageType,
  type PayloadOf,
  type QoS,
} from './messages.js';
export { type InfoConnectors, type QuiverInfo, transportsFromInfo } from './info.js';
export {
  createMetrics,
  type Histogram,
  type QualitySample,
  rttBucketsSeconds,
  type SessionMetrics,
} from './metrics.js';
export { nativeWebTransportConnector, wrapNativeWebTransport } from './native.js';
export {
  type ChannelOptions,
  defaultChannels,
  type DropInfo,
  type DropReason,
  type Handler,
  type HeartbeatOptions,
  type PeerOptions,
  type PeerStats,
  type SendOptions,
} from './peer.js';
export { Reassembler, type ReassemblyOptions, ReceiveTracker } from './reassembly.js';
export {
  AuthRejection,
  type AuthResult,
  createSessionServer,
  type ReceivedMessage,
  reject,
  ServerSession,
  type ServerSessionEvents,
  type LogFields,
  type ServerSessionState,
  type SessionCloseInfo,
  type SessionData,
  type SessionDisconnectInfo,
  type SessionResumeInfo,
  SessionServer,
  type SessionServerEvents,
  type SessionLogger,
  type SessionServerOptions,
} from './server.js';
export {
  PERSIST_DEFAULTS,
  PersistedQueue,
  type PersistQueueOptions,
  type QueueStorage,
} from './offline-queue.js';
export {
  type EstablishTrace,
  FLAG_TRACE,
  isTraceContext,
  type SendTrace,
  type SessionTracer,
  type TraceSession,
  TRACE_CONTEXT_BYTES,
  type TransportAttemptInfo,
} from './tracing.js';
export {
  type ClientQuality,
  type ClientTelemetry,
  clientTelemetry,
  parseTelemetry,
  type QualityOptions,
  TelemetryMessage,
  type TelemetryOptions,
  type TelemetryReport,
  type TelemetrySource,
} from './telemetry.js';
