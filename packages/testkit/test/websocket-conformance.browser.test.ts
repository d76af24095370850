/**
 * The transport conformance suite with the client in Firefox: @quiver/websocket's browser client (over the page's
 * native WebSocket) driven through the page-backed session proxy over Puppeteer and WebDriver BiDi, against the
 * Node WebSocket listener. (The Chromium/Playwright run of the same suite lives in packages/websocket/test.)
 */
import { join } from 'node:path';
import { runConformanceSuite } from '@quiver/transport/conformance';
import { createWebSocketListener } from '@quiver/websocket';
import { browserHarness, launchFirefox } from '../src/index.js';

runConformanceSuite({
  name: 'websocket, client in Firefox through the page proxy',
  listen: () => createWebSocketListener({ host: '127.0.0.1', port: 0 }),
  ...browserHarness({
    launch: launchFirefox,
    module: { entry: join(import.meta.dirname, 'fixtures/websocket-client.ts') },
  }),
  // Browsers do not expose the HTTP status of a refused WebSocket upgrade.
  capabilities: { unreliableDatagrams: false, rejectStatusVisible: false },
});
