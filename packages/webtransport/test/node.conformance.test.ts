/** The shared transport conformance suite against the Node listener and the Node client over real QUIC. */
import { type DevCertificate, ensureDevCertificate } from '@quiver/devcert';
import { runConformanceSuite } from '@quiver/transport/conformance';
import { connectWebTransport, createWebTransportListener } from '@quiver/webtransport';

let cert: DevCertificate;

runConformanceSuite({
  name: 'webtransport (Node client, quiche)',
  setup: async () => {
    cert = await ensureDevCertificate();
  },
  listen: () =>
    createWebTransportListener({ host: '127.0.0.1', port: 0, cert: cert.certPem, key: cert.keyPem }),
  connect: (listener, path, options) =>
    connectWebTransport(`https://127.0.0.1:${listener.address.port}${path}`, {
      ...options,
      serverCertificateHashes: [{ algorithm: 'sha-256', value: cert.hash }],
    }),
  capabilities: { unreliableDatagrams: true },
});
