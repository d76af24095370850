export type { LinkCounters, LinkOptions, ResolvedLinkOptions } from './link.js';
export { Link, resolveLinkOptions } from './link.js';
export type {
  MemoryListener,
  MemoryListenerOptions,
  MemoryPair,
  MemoryTransportOptions,
} from './listener.js';
export {
  connectMemory,
  createMemoryListener,
  createMemoryPair,
  DEFAULT_DATAGRAM_RECEIVE_QUEUE,
  DEFAULT_DATAGRAM_SEND_BUFFER_BYTES,
  DEFAULT_HIGH_WATER_MARK,
  DEFAULT_MAX_DATAGRAM_SIZE,
  DEFAULT_MAX_INCOMING_STREAMS,
  DEFAULT_MAX_PENDING_REQUESTS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_STREAM_RECEIVE_WINDOW,
  memoryListenerCount,
} from './listener.js';
export type { MemorySessionLimits, TransportParams } from './session.js';
export { MAX_CLOSE_REASON_BYTES, MemorySession } from './session.js';
