/**
 * The shared conformance suite driven from headless Firefox ESR's native `WebTransport` (through @quiver/testkit's
 * page-backed session proxy, over WebDriver BiDi) against the Node listener, on every QUIC engine this
 * installation has.
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
