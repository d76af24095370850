/**
 * `@quiver/session/worker`: the page side of a client session that runs in a dedicated Worker (README "Off the
 * main thread"). A separate entry point, so that the main-thread browser client's bundle does not grow.
 */
export { connect, WorkerClientSession, type WorkerConnectOptions } from './client.js';
export { MainThreadDelay } from './main-thread-delay.js';
export type { PortLike } from './protocol.js';
export type { SessionClient } from '../session-client.js';
