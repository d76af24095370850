/**
 * The browser carrier (fetch-streamed event stream, fetch POSTs) run in Node, whose `fetch` is the WHATWG one: the
 * platform-independent half of the browser client checked without a browser (the browser runs are in
 * conformance.browser.test.ts). Node's fetch keeps its connections alive in a shared pool, so the suite's
 * active-handle comparison is off here; timers are still checked.
 */
import { trackTimers } from '@quiver/transport';
import { runConformanceSuite } from '@quiver/transport/conformance';
import { BrowserCarrier } from '../src/browser-carrier.js';
import { connectWithCarrier, createHttpStreamListener } from '../src/index.js';

const clock = trackTimers();
runConformanceSuite({
  name: 'http-stream (browser carrier on Node fetch)',
  listen: () => createHttpStreamListener({ host: '127.0.0.1', port: 0, clock }),
  connect: (listener, path, options) =>
    connectWithCarrier(
      () => new BrowserCarrier('fetch'),
      `http://127.0.0.1:${listener.address.port}${path}`,
      {
        ...options,
        clock,
      },
    ),
  checkActiveResources: false,
  // `closed` resolves before the client's last POST (its CLOSE) is answered; its close timer goes with that answer.
  leakCheck: async () => {
    for (let i = 0; i < 40 && clock.pending > 0; i++) await new Promise((r) => setTimeout(r, 50));
    if (clock.pending > 0) throw new Error(`${clock.pending} session timers still pending after close`);
  },
});
