/**
 * The shared conformance suite driven from headless Firefox ESR's native `WebTransport` (through @quiver/testkit's
 * page-backed session proxy, over WebDriver BiDi) against the Node listener, on every QUIC engine this
 * installation has (quinn and quiche where `npm run build:native` ran, as in CI; quiche alone otherwise).
 *
 * Firefox ESR 153 itself fails two things the suite checks, so their capabilities are off and the suite checks
 * what Firefox does instead:
 * - `resetCodesVisibleToReader: false`: a read of a stream the server reset rejects with a plain
 *   `TypeError: Error in input stream`, no `source`, no `streamErrorCode`. The read must still reject.
 * - `cancelSendsStopSending: false`: `readable.cancel(reason)` sends no STOP_SENDING (neither engine ever sees the
 *   stream stopped; the same case passes from Chromium and from the Node client). The server's writes and FIN
 *   must then complete, and the stream's other half and the session must keep working.
 * - `clientCloseInfoWithDataInFlight: false`: in one run of 16 on quiche beside two CPU hogs, "closes from the
 *   client while data is in flight" saw Firefox's connection close (H3_NO_ERROR) at the server without the
 *   session's close capsule (Firefox closes the connection right after its session). The server's `closed` must
 *   still settle.
 * Every other case runs in full on both engines (runs per engine in the package README, "Browsers"). The direct Firefox checks
 * (client reset code, server STOP_SENDING code, close codes, refusal) are in `firefox.browser.test.ts`.
 */
import { launchFirefox } from '@quiver/testkit';
import { runConformanceSuite } from '@quiver/transport/conformance';
import { availableEngines } from '@quiver/webtransport';
import { nativeWebTransportHarness } from './browser-conformance.js';

for (const engine of await availableEngines()) {
  runConformanceSuite(
    nativeWebTransportHarness({
      name: `webtransport (${engine}), Firefox native WebTransport through the page proxy`,
      launch: launchFirefox,
      engine,
      // As for Chromium (no refusal status, no native byte counters), plus what Firefox itself does not do (above).
      capabilities: {
        unreliableDatagrams: true,
        rejectStatusVisible: false,
        clientStats: false,
        resetCodesVisibleToReader: false,
        cancelSendsStopSending: false,
        clientCloseInfoWithDataInFlight: false,
      },
    }),
  );
}
