import { trackTimers } from '@quiver/transport';
import { runConformanceSuite } from '@quiver/transport/conformance';
import { connectWebSocket, createWebSocketListener } from '../src/index.js';
import { makeSelfSignedCert } from './tls.js';

/** Every timer of every session on both ends goes through this clock, so the leak test can count them. */
function timerLeakCheck(clock: ReturnType<typeof trackTimers>) {
  return () => {
    if (clock.pending > 0) throw new Error(`${clock.pending} session timers still pending after close`);
  };
}

const plainClock = trackTimers();
runConformanceSuite({
  name: 'websocket (Node client, ws://)',
  listen: () => createWebSocketListener({ host: '127.0.0.1', port: 0, clock: plainClock }),
  connect: (listener, path, options) =>
    connectWebSocket(`ws://127.0.0.1:${listener.address.port}${path}`, { ...options, clock: plainClock }),
  leakCheck: timerLeakCheck(plainClock),
});

let tls: { cert: string; key: string } | undefined;
const tlsClock = trackTimers();
runConformanceSuite({
  name: 'websocket (Node client, wss://)',
  setup: () => {
    tls = makeSelfSignedCert();
  },
  listen: () => createWebSocketListener({ host: '127.0.0.1', port: 0, tls, clock: tlsClock }),
  // https: URLs map to wss:, as a WebTransport URL would be used unchanged.
  connect: (listener, path, options) =>
    connectWebSocket(`https://127.0.0.1:${listener.address.port}${path}`, {
      ...options,
      tls: { ca: tls!.cert },
      clock: tlsClock,
    }),
  leakCheck: timerLeakCheck(tlsClock),
});
