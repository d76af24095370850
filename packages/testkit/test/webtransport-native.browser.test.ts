/**
 * The proxy's native path: Chromium's own `WebTransport` (HTTP/3 over real QUIC, certificate pinned by
 * `serverCertificateHashes`) against @quiver/webtransport's Node listener, under the transport conformance suite.
 */
import { ensureDevCertificate } from '@quiver/devcert';
import { runConformanceSuite } from '@quiver/transport/conformance';
import { createWebTransportListener } from '@quiver/webtransport';
import type { Page } from 'playwright-core';
import { type LaunchedChromium, launchChromium, openBrowserSession, type StaticServer, serveStatic } from '../src/index.js';

let browser: LaunchedChromium | undefined;
let server: StaticServer | undefined;
let page: Page | undefined;
let cert: Awaited<ReturnType<typeof ensureDevCertificate>>;

runConformanceSuite({
  name: 'webtransport, native WebTransport in Chromium through the page proxy',
  setup: async () => {
    cert = await ensureDevCertificate();
    server = await serveStatic();
    browser = await launchChromium();
    page = await browser.newPage(server.url);
  },
  teardown: async () => {
    await browser?.close();
    await server?.close();
  },
  listen: () => createWebTransportListener({ host: '127.0.0.1', port: 0, cert: cert.certPem, key: cert.keyPem }),
  connect: (listener, path, options) =>
    openBrowserSession(page!, {
      kind: 'webtransport',
      url: `https://127.0.0.1:${listener.address.port}${path}`,
      options: { ...options, serverCertificateHashes: [{ algorithm: 'sha-256', value: cert.hash }] },
    }),
  capabilities: { unreliableDatagrams: true, rejectStatusVisible: false, clientStats: false },
});
