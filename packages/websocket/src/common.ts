/** Exports shared by the Node and browser entries. */
export {
  closeReasonFor,
  parseCloseReason,
  WsErrorCode,
  wsCloseCodeFor,
  wsErrorName,
} from './codes.js';
export { type CoreEvents, type CoreOptions, type CoreStats, SessionCore, type WireSettings } from './core.js';
export { DEFAULTS, type WebSocketSessionOptions } from './options.js';
export { WebSocketSession } from './session.js';
export { SUBPROTOCOL, type SocketAdapter, type SocketHandlers } from './socket.js';
export {
  ByteReader,
  ByteWriter,
  decodeFrames,
  encodeFrames,
  type Frame,
  FrameType,
  MAX_CLOSE_REASON_BYTES,
  SettingId,
} from './wire.js';
