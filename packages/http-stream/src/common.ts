/** Exports shared by the Node and browser entries. */
export type {
  EventStreamHandle,
  EventStreamHandlers,
  HttpCarrier,
  UploadEnd,
  UploadHandle,
} from './carrier.js';
export {
  CLIENT_DEFAULTS,
  connectWithCarrier,
  type HttpStreamConnectOptions,
  type HttpStreamSession,
  toHttpUrl,
} from './client.js';
export { ClientTunnel } from './client-tunnel.js';
export { type HttpTunnelOptions, SESSION_DEFAULTS, TUNNEL_DEFAULTS } from './options.js';
export { type BatchResult, TunnelCore, type TunnelLimits, type TunnelStats } from './tunnel.js';
export {
  decodeTunnelFrames,
  EventStreamParser,
  encodeEvent,
  encodeTunnelFrames,
  fromBase64,
  HttpErrorCode,
  httpViolation,
  type TunnelFrame,
  TunnelFrameReader,
  TunnelFrameType,
  toBase64,
} from './wire.js';
