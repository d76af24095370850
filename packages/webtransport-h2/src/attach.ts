import { type Clock, QuiverTransportError, type TimerHandle } from '@quiver/transport';
import { guardParser, type LibNativeSession, type LibWebTransport } from './lib.js';
import type { H2Session } from './session.js';

/**
 * Binds a client-side library `WebTransport` (the Node class, or the browser `WebTransportPonyfill`) to `session`,
 * with a connect timeout on `clock`. No runtime import of the library, so it bundles for browsers too.
 */
export function attachLibWebTransport(
  session: H2Session,
  lib: LibWebTransport,
  { clock, timeoutMs }: { clock: Clock; timeoutMs: number },
): void {
  // The library turns a refused CONNECT into 'Opening handshake failed.' and drops the status; catch the response
  // headers on the way in (its CONNECT stream is handed to setSessionObj before the response can arrive).
  let status: unknown;
  const si = lib.sessionint;
  const original = si?.setSessionObj;
  if (si && original) {
    si.setSessionObj = (object: LibNativeSession, reliable: boolean) => {
      // The library calls this right after building the native session and its parser, in the same synchronous
      // turn, so no server bytes can reach the parser before the guard (see guardParser in lib.ts).
      session.adoptParserGuard(guardParser(object));
      object?.stream?.once?.('response', (headers) => {
        status = headers[':status'];
      });
      original.call(si, object, reliable);
    };
  }
  const ready = lib.ready.then(
    () => undefined,
    (error: unknown) => {
      const base = error instanceof Error ? error.message : String(error);
      const message =
        status !== undefined && status !== 200 ? `${base} (HTTP status ${String(status)})` : base;
      throw new QuiverTransportError(message, { source: 'session' });
    },
  );
  session.bind({
    ...bindable(lib),
    ready,
    closed: lib.closed.catch((error: unknown) => ready.then(() => Promise.reject(error))),
  });
  let timer: TimerHandle | undefined = clock.setTimeout(() => {
    timer = undefined;
    session.fail(new QuiverTransportError(`connect timed out after ${timeoutMs} ms`, { source: 'session' }));
    // The library has no abort: close the session it may still establish.
    lib.ready.then(
      () => lib.close({ closeCode: 0, reason: '' }),
      () => {},
    );
  }, timeoutMs);
  const settle = () => {
    clock.clearTimeout(timer);
    timer = undefined;
  };
  ready.then(settle, settle);
}

/** The library's WebTransport as a plain object (its methods live on the prototype, so spreading loses them). */
function bindable(lib: LibWebTransport) {
  return {
    ready: lib.ready,
    closed: lib.closed,
    close: (info?: { closeCode: number; reason: string }) => lib.close(info),
    createBidirectionalStream: () => lib.createBidirectionalStream(),
    createUnidirectionalStream: () => lib.createUnidirectionalStream(),
    incomingBidirectionalStreams: lib.incomingBidirectionalStreams,
    incomingUnidirectionalStreams: lib.incomingUnidirectionalStreams,
    datagrams: lib.datagrams,
    sessionint: lib.sessionint,
  };
}
