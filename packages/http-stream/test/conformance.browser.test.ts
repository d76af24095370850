/**
 * The transport conformance suite with the client in headless Chromium and in Firefox: the browser build of this
 * package (fetch-streamed event stream down, fetch POSTs up) driven through @quiver/testkit's page-backed session
 * proxy, against the Node listener. The page is served from another port, so every request is cross-origin and
 * must work without a CORS preflight.
 */
import { join } from 'node:path';
import { browserHarness, launchChromium, launchFirefox } from '@quiver/testkit';
import { runConformanceSuite } from '@quiver/transport/conformance';
import { createHttpStreamListener } from '../src/index.js';

const module = { entry: join(import.meta.dirname, 'fixtures/browser-client.ts') };

for (const [name, launch] of [
  ['Chromium', launchChromium],
  ['Firefox', launchFirefox],
] as const) {
  runConformanceSuite({
    name: `http-stream, browser build in ${name}`,
    listen: () => createHttpStreamListener({ host: '127.0.0.1', port: 0 }),
    ...browserHarness({ launch, module }),
    capabilities: { unreliableDatagrams: false },
  });
}

runConformanceSuite({
  name: 'http-stream, browser build in Chromium, EventSource downstream',
  listen: () => createHttpStreamListener({ host: '127.0.0.1', port: 0 }),
  ...browserHarness({
    launch: launchChromium,
    module: { entry: join(import.meta.dirname, 'fixtures/browser-eventsource-client.ts') },
  }),
  // EventSource reports a refused request as a bare `error` event, without its status.
  capabilities: { unreliableDatagrams: false, rejectStatusVisible: false },
});
