import { runConformanceSuite } from '@quiver/transport/conformance';
import { connectWebSocket, createWebSocketListener } from '../src/index.js';
import { makeSelfSignedCert } from './tls.js';

runConformanceSuite({
  name: 'websocket (Node client, ws://)',
  listen: () => createWebSocketListener({ host: '127.0.0.1', port: 0 }),
  connect: (listener, path, options) =>
    connectWebSocket(`ws://127.0.0.1:${listener.address.port}${path}`, { ...options }),
});

let tls: { cert: string; key: string } | undefined;

runConformanceSuite({
  name: 'websocket (Node client, wss://)',
  setup: () => {
    tls = makeSelfSignedCert();
  },
  listen: () => createWebSocketListener({ host: '127.0.0.1', port: 0, tls }),
  // https: URLs map to wss:, as a WebTransport URL would be used unchanged.
  connect: (listener, path, options) =>
    connectWebSocket(`https://127.0.0.1:${listener.address.port}${path}`, {
      ...options,
      tls: { ca: tls!.cert },
    }),
});
