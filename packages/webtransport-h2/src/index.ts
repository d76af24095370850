export {
  connectH2WebTransport,
  DEFAULT_CONNECT_TIMEOUT_MS,
  type H2WebTransportConnectOptions,
} from './client.js';
export {
  createH2WebTransportListener,
  DEFAULT_MAX_PENDING_REQUESTS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  type H2WebTransportListener,
  type H2WebTransportListenerOptions,
} from './server.js';
export {
  DEFAULT_CLOSE_GRACE_MS,
  DEFAULT_INCOMING_DATAGRAM_HWM,
  DEFAULT_OUTGOING_DATAGRAM_HWM,
  H2_PROTOCOL_ERROR,
  H2Session,
  type H2SessionOptions,
  LIBRARY_MAX_DATAGRAM_SIZE,
  translateError,
  truncateReason,
} from './session.js';
