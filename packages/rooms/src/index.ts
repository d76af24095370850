export {
  type RoomClientState,
  RoomClient,
  Room,
  type BroadcastOptions,
  type Cluster,
  type MessageHandler,
  type RemoteMessageHandler,
  type OptionsOf,
  type RequestContext,
  type RequestHandler,
  type RoomClass,
  fail,
} from './room.js';
export {
  createRoomServer,
  RoomServer,
  type RoomServerOptions,
  type RoomType,
  type RoomTypeOptions,
  roomType,
} from './server.js';
export { RoomClock } from './clock.js';
export { RoomError, RoomErrorCode, type RoomErrorCodeValue, type WireError } from './errors.js';
export {
  message,
  type MessageDefinitionOptions,
  type MessagePayload,
  request,
  type RequestPayload,
  type ResponseOf,
  type RoomMessage,
  type RoomRequest,
  validate,
  type ValidationIssue,
  type ValidationResult,
} from './messages.js';
export {
  type ConsumeOutcome,
  MemoryDriver,
  type NodeStatus,
  type MemoryDriverOptions,
  type ReserveOutcome,
  type RoomDriver,
  type RoomListing,
  type RoomQuery,
  type SeatRecord,
} from './driver.js';
export { MemoryPresence, type Presence } from './presence.js';
export { leastLoaded, type Placement } from './cluster.js';
export type { DrainOptions } from './node.js';
export { type MatchmakeMethod, matchmakeMethods, type SeatReservation } from './matchmaker.js';
export { createRoomMetrics, type RoomMetrics } from './metrics.js';
export { protocolMessages, RoomCloseCode } from './protocol.js';
export type { RoomState, RoomStateOptions } from './state.js';
