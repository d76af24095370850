/** `@quiver/session/worker-host`: runs in the dedicated Worker, hosting the sessions of `@quiver/session/worker`. */
export { hostSessions, type WorkerHostOptions } from '../worker/host.js';
export type { PortLike } from '../worker/protocol.js';
