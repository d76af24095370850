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
 * All 24 cases pass on both engines (package README, "Browsers"); the direct Firefox checks (client reset code,
 * server STOP_SENDING code, close codes, refusal) are in `firefox.browser.test.ts`.
 */
import { type DevCertificate, ensureDevCertificate } from '@quiver/devcert';
import {
  type EvaluatingPage,
  type LaunchedFirefox,
  launchFirefox,
  openBrowserSession,
  type StaticServer,
  serveStatic,
} from '@quiver/testkit';
import { runConformanceSuite } from '@quiver/transport/conformance';
import { availableEngines, createWebTransportListener } from '@quiver/webtransport';

for (const engine of await availableEngines()) {
  let cert: DevCertificate;
  let site: StaticServer | undefined;
  let browser: LaunchedFirefox | undefined;
  let page: EvaluatingPage | undefined;

  runConformanceSuite({
    name: `webtransport (${engine}), Firefox native WebTransport through the page proxy`,
    setup: async () => {
      cert = await ensureDevCertificate();
      site = await serveStatic();
      browser = await launchFirefox();
      page = await browser.newPage(site.url);
    },
    teardown: async () => {
      await browser?.close();
      await site?.close();
    },
    // As in the Chromium suite: the echo closes a stream when the page's FIN arrives, which through the page proxy
    // comes one round trip after the data, so the echo's close comes in a later turn than its last write. quiche
    // 0.18 loses a FIN written alone after the data was acknowledged, so the listener holds each write's last byte
    // until the echo closes or writes again, with no timer, and the FIN rides on it (SessionLimits.streamTailHoldMs,
    // package README "a late FIN"). The quinn engine tracks a lone FIN itself and ignores the option. Server writes
    // in the suite are followed by a close, a reset or more writes; the 'ack' of the reset and STOP_SENDING checks
    // is not, and those checks read only its first byte.
    listen: () =>
      createWebTransportListener({
        host: '127.0.0.1',
        port: 0,
        cert: cert.certPem,
        key: cert.keyPem,
        engine,
        sessionLimits: { streamTailHoldMs: Number.POSITIVE_INFINITY },
      }),
    connect: (listener, path, options) =>
      openBrowserSession(page!, {
        kind: 'webtransport',
        url: `https://127.0.0.1:${listener.address.port}${path}`,
        options: { ...options, serverCertificateHashes: [{ algorithm: 'sha-256', value: cert.hash }] },
      }),
    // As for Chromium, plus what Firefox ESR 153 itself does not do (see the file header).
    capabilities: {
      unreliableDatagrams: true,
      rejectStatusVisible: false,
      clientStats: false,
      resetCodesVisibleToReader: false,
      cancelSendsStopSending: false,
    },
  });
}
