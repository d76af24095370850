export type { WebTransportClientCounters, WebTransportConnectOptions } from './client.js';
export { connectWebTransport, webTransportClientCounters } from './client.js';
export type { QuicTransportOptions } from './config.js';
export { defaultQuicTransportOptions } from './config.js';
export type {
  WebTransportListener,
  WebTransportListenerCounters,
  WebTransportListenerOptions,
} from './server.js';
export { createWebTransportListener } from './server.js';
export { quicBindingError } from './quiche.js';
export type { SessionLimits } from './session.js';
export { defaultSessionLimits, WtSession as WebTransportSession } from './session.js';
export type { EngineName } from './engine.js';
export { availableEngines } from './engine.js';
