export {
  awaitJoined,
  ClientRoom,
  type JoinOptions,
  joinWithSeat,
  type RequestOptions,
  type SnapshotSink,
} from './room.js';
export {
  type MatchmakeResponse,
  RoomsClient,
  type RoomsClientOptions,
  type SessionEndpoints,
} from './client.js';
export { RoomError, RoomErrorCode, type RoomErrorCodeValue } from '../errors.js';
export {
  message,
  type MessagePayload,
  request,
  type RequestPayload,
  type ResponseOf,
  type RoomMessage,
  type RoomRequest,
} from '../messages.js';
export type { RoomListing } from '../driver.js';
