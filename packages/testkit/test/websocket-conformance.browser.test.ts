/**
 * The transport conformance suite with the client in Firefox: @quiver/websocket's browser client (over the page's
 * native WebSocket) driven through the page-backed session proxy over Puppeteer and WebDriver BiDi, against the
 * Node WebSocket listener. (The Chromium/Playwright run of the same suite lives in packages/websocket/test.)
 */
import { join } from 'node:path';
import { runConformanceSuite } from '@quiver/transport/conformance';
import { createWebSocketListener } from '@quiver/websocket';
import {
  type EvaluatingPage,
  launchFirefox,
  openBrowserSession,
  type StaticServer,
  serveStatic,
} from '../src/index.js';

const CLIENT = { entry: join(import.meta.dirname, 'fixtures/websocket-client.ts') };

function suite(
  name: string,
  launch: () => Promise<{ newPage(url: string): Promise<EvaluatingPage>; close(): Promise<void> }>,
) {
  let browser: Awaited<ReturnType<typeof launch>> | undefined;
  let server: StaticServer | undefined;
  let page: EvaluatingPage | undefined;
  runConformanceSuite({
    name: `websocket, client in ${name} through the page proxy`,
    setup: async () => {
      server = await serveStatic();
      browser = await launch();
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
        url: `http://127.0.0.1:${listener.address.port}${path}`,
        options,
        module: CLIENT,
      }),
    // Browsers do not expose the HTTP status of a refused WebSocket upgrade.
    capabilities: { unreliableDatagrams: false, rejectStatusVisible: false },
  });
}

suite('Firefox', launchFirefox);
