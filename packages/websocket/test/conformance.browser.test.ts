/**
 * The transport conformance suite with the client in headless Chromium: the browser build of this package (over the
 * page's native WebSocket) driven through @quiver/testkit's page-backed session proxy, against the Node listener.
 * (The Firefox run of the same suite lives in packages/testkit/test.)
 */
import { join } from 'node:path';
import { browserHarness, launchChromium } from '@quiver/testkit';
import { runConformanceSuite } from '@quiver/transport/conformance';
import { createWebSocketListener } from '../src/index.js';

runConformanceSuite({
  name: 'websocket, browser build in Chromium',
  listen: () => createWebSocketListener({ host: '127.0.0.1', port: 0 }),
  // The page connects to http://127.0.0.1:<port><path>: http: maps to ws: in the client, as a WebTransport-style
  // URL would be given.
  ...browserHarness({
    launch: launchChromium,
    module: { entry: join(import.meta.dirname, 'fixtures/browser-client.ts') },
  }),
  // Browsers do not expose the HTTP status of a refused WebSocket upgrade (WHATWG WebSockets: only "error").
  capabilities: { unreliableDatagrams: false, rejectStatusVisible: false },
});
