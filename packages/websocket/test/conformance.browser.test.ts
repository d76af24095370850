/**
 * The transport conformance suite with the client in headless Chromium: the browser build of this package (over the
 * page's native WebSocket) driven through @quiver/testkit's page-backed session proxy, against the Node listener.
 */
import { join } from 'node:path';
import {
  type EvaluatingPage,
  type LaunchedChromium,
  launchChromium,
  openBrowserSession,
  type StaticServer,
  serveStatic,
} from '@quiver/testkit';
import { runConformanceSuite } from '@quiver/transport/conformance';
import { createWebSocketListener } from '../src/index.js';

const CLIENT = { entry: join(import.meta.dirname, 'fixtures/browser-client.ts') };

let browser: LaunchedChromium | undefined;
let server: StaticServer | undefined;
let page: EvaluatingPage | undefined;

runConformanceSuite({
  name: 'websocket, browser build in Chromium',
  setup: async () => {
    server = await serveStatic();
    browser = await launchChromium();
    page = await browser.newPage(server.url);
  },
  teardown: async () => {
    await browser?.close();
    await server?.close();
  },
  listen: () => createWebSocketListener({ host: '127.0.0.1', port: 0 }),
  connect: (listener, path, options) =>
    openBrowserSession(page!, {
      kind: 'module',
      // http: maps to ws: in the client, as a WebTransport-style URL would be given.
      url: `http://127.0.0.1:${listener.address.port}${path}`,
      options,
      module: CLIENT,
    }),
  // Browsers do not expose the HTTP status of a refused WebSocket upgrade (WHATWG WebSockets: only "error").
  capabilities: { unreliableDatagrams: false, rejectStatusVisible: false },
});
