/**
 * Typed room errors. One class, a closed set of codes: the code travels to the client (`q.room.error`,
 * `q.room.res`) and is the metrics label, so labels never come from a peer.
 */
export const RoomErrorCode = {
  /** No room type of that name is defined. */
  UNKNOWN_ROOM_TYPE: 'unknown-room-type',
  /** No room with that id (never existed, or disposed). */
  ROOM_NOT_FOUND: 'room-not-found',
  /** The room has `maxClients` seats taken or reserved. */
  ROOM_FULL: 'room-full',
  /** The room is locked (`lock()`), or private and asked for by name. */
  ROOM_LOCKED: 'room-locked',
  /** The room was disposed between the reservation and the join. */
  ROOM_DISPOSED: 'room-disposed',
  /** `joinOrCreate`/`join` found no room to join and `join` does not create. */
  NO_ROOM_AVAILABLE: 'no-room-available',
  /** `onCreate` threw: the room was never listed. */
  CREATE_FAILED: 'create-failed',
  /** The seat token is unknown or for another room. */
  SEAT_INVALID: 'seat-invalid',
  /** The seat token was already used for a join. */
  SEAT_USED: 'seat-used',
  /** The seat reservation expired before the join. */
  SEAT_EXPIRED: 'seat-expired',
  /** The reconnection token is unknown or its window has passed. */
  RECONNECT_EXPIRED: 'reconnect-expired',
  /** `onAuth` refused the client (or threw). */
  AUTH_FAILED: 'auth-failed',
  /** `onJoin` threw: the seat is released. */
  JOIN_FAILED: 'join-failed',
  /** A payload did not pass the message's schema. */
  VALIDATION: 'validation',
  /** A request named no handler in this room. */
  NO_HANDLER: 'no-handler',
  /** A handler threw something other than a `RoomError`. */
  HANDLER_ERROR: 'handler-error',
  /** A request got no response within `timeoutMs`. */
  TIMEOUT: 'timeout',
  /** The client left (or was removed) with requests pending, or the request was aborted. */
  LEFT: 'left',
  /** A malformed rooms-protocol frame (not a room message). */
  BAD_REQUEST: 'bad-request',
  /** Too many requests in flight for one client (`maxPendingRequests`). */
  TOO_MANY_REQUESTS: 'too-many-requests',
  /** The matchmaking request itself failed (HTTP error, no route). */
  MATCHMAKE_FAILED: 'matchmake-failed',
  /** The node hosting the room is gone (crashed, or unreachable past its heartbeat): the room no longer exists. */
  NODE_LOST: 'node-lost',
  /** The node asked to host a new room did not answer (it died, or is not listening for other nodes). */
  NODE_UNREACHABLE: 'node-unreachable',
  /** The node is draining (`RoomServer.drain`): it creates no new rooms. */
  NODE_DRAINING: 'node-draining',
} as const;
/** One of the {@link RoomErrorCode} values. */
export type RoomErrorCodeValue = (typeof RoomErrorCode)[keyof typeof RoomErrorCode];

const codes = new Set<string>(Object.values(RoomErrorCode));

/** Every failure the rooms layer reports, on the server and (decoded from the wire) on the client. */
export class RoomError extends Error {
  /** Always `RoomError`, also after crossing the wire. */
  override readonly name = 'RoomError';
  constructor(
    /** A {@link RoomErrorCode}, or an application's own code (`fail('not-your-turn')`). */
    readonly code: RoomErrorCodeValue | (string & {}),
    message: string = code,
    /** Application data a handler attached (sent to the client as is), or the schema issues for `validation`. */
    readonly data?: unknown,
  ) {
    super(message);
  }

  /** The wire form: `{ code, message, data? }`. */
  toWire(): WireError {
    return this.data === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, data: this.data };
  }

  /** Rebuilds an error from the wire, tolerating anything a peer sends. */
  static fromWire(value: unknown): RoomError {
    const v = (value && typeof value === 'object' ? value : {}) as Record<string, unknown>;
    const code = typeof v.code === 'string' ? v.code.slice(0, 64) : RoomErrorCode.BAD_REQUEST;
    const message = typeof v.message === 'string' ? v.message.slice(0, 500) : code;
    return new RoomError(code, message, v.data);
  }
}

/** A {@link RoomError} as it travels in `q.room.error` and `q.room.res`. */
export interface WireError {
  /** The error code (at most 64 characters kept when decoded). */
  code: string;
  /** Human-readable detail (at most 500 characters kept when decoded). */
  message: string;
  /** Application data, or the schema issues of a `validation` error. */
  data?: unknown;
}

/** A metrics label for an error: its code when it is one of ours, `application` for codes a handler chose. */
export function errorLabel(err: RoomError): string {
  return codes.has(err.code) ? err.code : 'application';
}
