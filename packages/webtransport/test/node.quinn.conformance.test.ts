/**
 * The shared transport conformance suite against the Node listener and the Node client, both on the quinn
 * engine (native addon, `npm run build:native`). Skipped when the addon was not built.
 */
import { type DevCertificate, ensureDevCertificate } from '@quiver/devcert';
import { runConformanceSuite } from '@quiver/transport/conformance';
import { describe, it } from 'vitest';
import { availableEngines, connectWebTransport, createWebTransportListener } from '@quiver/webtransport';

let cert: DevCertificate;
const quinn = (await availableEngines()).includes('quinn');

if (!quinn)
  describe.skip('transport conformance: webtransport (Node client, quinn)', () => {
    it('needs the quinn addon (npm run build:native)', () => {});
  });
else
  runConformanceSuite({
    name: 'webtransport (Node client, quinn)',
    setup: async () => {
      cert = await ensureDevCertificate();
    },
    listen: () =>
      createWebTransportListener({
        host: '127.0.0.1',
        port: 0,
        cert: cert.certPem,
        key: cert.keyPem,
        engine: 'quinn',
      }),
    connect: (listener, path, options) =>
      connectWebTransport(`https://127.0.0.1:${listener.address.port}${path}`, {
        ...options,
        engine: 'quinn',
        serverCertificateHashes: [{ algorithm: 'sha-256', value: cert.hash }],
      }),
    capabilities: { unreliableDatagrams: true },
  });
