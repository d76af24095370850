import type { ConnectOptions } from '@quiver/transport';
import { QuiverTransportError } from '@quiver/transport';
import type { WebSocketSessionOptions } from './options.js';
import { WebSocketSession } from './session.js';
import { SUBPROTOCOL, type SocketAdapter } from './socket.js';

/** Client options: the common {@link ConnectOptions} plus the session limits. */
export interface WebSocketConnectOptions extends ConnectOptions, WebSocketSessionOptions {}

/** Creates the platform socket for a `ws:`/`wss:` URL. */
export type SocketFactory<O extends WebSocketConnectOptions> = (
  url: string,
  protocols: string[],
  options: O,
) => SocketAdapter;

/**
 * Maps `https:`/`http:` to `wss:`/`ws:` (the URL a WebTransport client would use works unchanged) and accepts
 * `wss:`/`ws:` as they are.
 */
export function toWebSocketUrl(url: string): string {
  const u = new URL(url);
  if (u.protocol === 'https:') u.protocol = 'wss:';
  else if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol !== 'ws:' && u.protocol !== 'wss:') {
    throw new TypeError(`unsupported URL scheme ${u.protocol} (use https:, http:, wss: or ws:)`);
  }
  u.hash = '';
  return u.toString();
}

/** The platform-independent client: a session bound to whatever socket `factory` makes. */
export function connectWith<O extends WebSocketConnectOptions>(
  factory: SocketFactory<O>,
  url: string,
  options: O = {} as O,
): WebSocketSession {
  const session = new WebSocketSession('client', {
    ...options,
    handshakeTimeoutMs: options.connectTimeoutMs ?? options.handshakeTimeoutMs,
  });
  const signal = options.signal;
  if (signal?.aborted) {
    session.fail(new QuiverTransportError('connect aborted', { source: 'session' }));
    return session;
  }
  let adapter: SocketAdapter;
  try {
    adapter = factory(toWebSocketUrl(url), [SUBPROTOCOL], options);
  } catch (e) {
    session.fail(new QuiverTransportError(e instanceof Error ? e.message : String(e), { source: 'session' }));
    return session;
  }
  session.attach(adapter);
  if (signal) {
    const onAbort = () => session.fail(new QuiverTransportError('connect aborted', { source: 'session' }));
    signal.addEventListener('abort', onAbort, { once: true });
    // Abort only concerns establishment (as for fetch): once ready, or once closed, the listener goes.
    const drop = () => signal.removeEventListener('abort', onAbort);
    session.ready.then(drop, drop);
  }
  return session;
}
