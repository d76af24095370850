/**
 * Plain-data counters of the rooms layer (the fastify plugin exports them to Prometheus). Every label comes from
 * server configuration: error codes from `RoomErrorCode` (`application` for codes a handler chose), room and
 * message names from the room types the server defined.
 */
export interface RoomMetrics {
  roomsCreated: Record<string, number>;
  roomsDisposed: Record<string, number>;
  joins: Record<string, number>;
  leaves: Record<string, number>;
  /** Seats taken back: session resumed, or `reconnect(token)`. */
  reconnects: Record<string, number>;
  /** Room messages and requests handled, by room type. */
  messages: Record<string, number>;
  requests: Record<string, number>;
  /** Messages to clients without a session (left, or held for reconnection), by room type. */
  undelivered: Record<string, number>;
  /** Errors by code (what the client was told, or what a hook threw). */
  errors: Record<string, number>;
  /** Payloads refused by a schema, by message name. */
  invalid: Record<string, number>;
  seatsReserved: number;
}

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
