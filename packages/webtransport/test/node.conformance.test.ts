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
  // The suite's echo closes a stream when the peer's FIN arrives, after its own data may already have been
  // acknowledged; quiche 0.18 then loses a FIN sent alone (cloudflare/quiche issue 2525). Holding each write's last
  // byte up to 1 s lets the FIN ride on it even on a loaded machine (see SessionLimits.streamTailHoldMs).
  listen: () =>
    createWebTransportListener({
      host: '127.0.0.1',
      port: 0,
      cert: cert.certPem,
      key: cert.keyPem,
      sessionLimits: { streamTailHoldMs: 1000 },
      engine: 'quiche',
    }),
  connect: (listener, path, options) =>
    connectWebTransport(`https://127.0.0.1:${listener.address.port}${path}`, {
      ...options,
      engine: 'quiche',
      serverCertificateHashes: [{ algorithm: 'sha-256', value: cert.hash }],
    }),
  capabilities: { unreliableDatagrams: true },
});
