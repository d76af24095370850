/**
 * The rooms protocol, carried as session messages on the reliable channel (except state and acks, which are
 * datagrams). One session is one seat in one room: the client connects, sends `join` with its seat token, and
 * everything after that belongs to that room, so room messages need no room id on the wire.
 */
import { defineMessage } from '@quiver/session';
import type { WireError } from './errors.js';

export interface JoinFrame {
  /** The seat token from matchmaking. */
  seat?: string;
  /** Or a reconnection token: takes back a seat the room holds (a session that could not be resumed). */
  reconnect?: string;
}
export interface JoinedFrame {
  roomId: string;
  roomName: string;
  clientId: string;
  /** For `client.reconnect(token)` after the session itself could not be resumed. */
  reconnectToken: string;
  /** Whether this join took back a seat held for reconnection. */
  reconnected: boolean;
  /** The sync schema hash, when the room has state. */
  stateHash?: number;
}
export interface RequestFrame {
  /** Request id, chosen by the client, unique among its pending requests. */
  i: number;
  n: string;
  p?: unknown;
}
export type ResponseFrame = { i: number; v?: unknown } | { i: number; e: WireError };
export interface ErrorFrame {
  error: WireError;
  /** The message it is about, if any. */
  message?: string;
}
export interface LeftFrame {
  code: number;
  reason: string;
}

export const JoinMsg = defineMessage<JoinFrame>('q.room.join');
export const JoinedMsg = defineMessage<JoinedFrame>('q.room.joined');
export const LeaveMsg = defineMessage<Record<string, never>>('q.room.leave');
export const LeftMsg = defineMessage<LeftFrame>('q.room.left');
export const RequestMsg = defineMessage<RequestFrame>('q.room.req');
/** A client gives up on a request (`i`: its id); the handler's signal aborts. */
export const CancelMsg = defineMessage<{
  /** The request id. */
  i: number;
}>('q.room.cancel');
export const ResponseMsg = defineMessage<ResponseFrame>('q.room.res');
export const ErrorMsg = defineMessage<ErrorFrame>('q.room.error');
/** Sync packets (raw bytes), datagrams: a lost one is superseded by the next tick's delta. */
export const StateMsg = defineMessage<Uint8Array>('q.room.state', { channel: 'unreliable' });
/** Sync acknowledgements (raw bytes), datagrams. */
export const AckMsg = defineMessage<Uint8Array>('q.room.ack', { channel: 'unreliable' });

/** Every protocol message, for `messages` options (ids announced at the handshake). */
export const protocolMessages = [
  JoinMsg,
  JoinedMsg,
  LeaveMsg,
  LeftMsg,
  RequestMsg,
  CancelMsg,
  ResponseMsg,
  ErrorMsg,
  StateMsg,
  AckMsg,
];

/** Close codes a room puts on a session (application range, see `CloseCode` of `@quiver/session`). */
export const RoomCloseCode = {
  /** The client left on purpose (`room.leave()`): consented. */
  LEFT: 4000,
  /** The join was refused (seat, auth, full, ...): the `q.room.error` frame before it says why. */
  JOIN_REFUSED: 4403,
  /** The room was disposed or the client removed by the room (`client.leave()`). */
  REMOVED: 4001,
  /**
   * The room's node is draining (`RoomServer.drain`): the room is gone, and the client should matchmake again (the
   * `RoomsClient` does so by itself unless `rematchmake: false`).
   */
  MOVED: 4307,
} as const;
