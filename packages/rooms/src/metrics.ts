/**
 * Plain-data counters of the rooms layer (the fastify plugin exports them to Prometheus). Every label comes from
 * server configuration: error codes from `RoomErrorCode` (`application` for codes a handler chose), room and
 * message names from the room types the server defined.
 */
export interface RoomMetrics {
  /** Rooms created, by room type. */
  roomsCreated: Record<string, number>;
  /** Rooms disposed, by room type. */
  roomsDisposed: Record<string, number>;
  /** Clients that joined a room (after `onJoin`), by room type. */
  joins: Record<string, number>;
  /** Clients that left a room, by room type. */
  leaves: Record<string, number>;
  /** Seats taken back: session resumed, or `reconnect(token)`. */
  reconnects: Record<string, number>;
  /** Room messages and requests handled, by room type. */
  messages: Record<string, number>;
  /** Requests whose payload passed validation and reached a handler, by room type. */
  requests: Record<string, number>;
  /** Messages to clients without a session (left, or held for reconnection), by room type. */
  undelivered: Record<string, number>;
  /** Errors by code (what the client was told, or what a hook threw). */
  errors: Record<string, number>;
  /** Payloads refused by a schema, by message name. */
  invalid: Record<string, number>;
  /** Seats reserved by matchmaking on this process, used or not. */
  seatsReserved: number;
}

/** Every counter at zero. */
export function createRoomMetrics(): RoomMetrics {
  return {
    roomsCreated: {},
    roomsDisposed: {},
    joins: {},
    leaves: {},
    reconnects: {},
    messages: {},
    requests: {},
    undelivered: {},
    errors: {},
    invalid: {},
    seatsReserved: 0,
  };
}

export function bump(table: Record<string, number>, label: string, n = 1): void {
  table[label] = (table[label] ?? 0) + n;
}
