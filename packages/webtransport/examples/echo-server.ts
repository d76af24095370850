/**
 * WebTransport echo server: `npm run echo-server -- --port 0 [--host 127.0.0.1]`.
 * Prints one JSON line {"url","certificateHash","port"} once listening; exits cleanly on SIGINT/SIGTERM.
 */
import { parseArgs } from 'node:util';
import { ensureDevCertificate } from '@quiver/devcert';
import { createWebTransportListener } from '@quiver/webtransport';
import { serveEcho } from './echo.js';

const { values } = parseArgs({
  options: { port: { type: 'string', default: '0' }, host: { type: 'string', default: '127.0.0.1' } },
});
// ECDSA P-256, at most 14 days: what browsers pin with serverCertificateHashes (W3C WebTransport §6.2).
const cert = await ensureDevCertificate();
const listener = await createWebTransportListener({
  host: values.host,
  port: Number(values.port),
  cert: cert.certPem,
  key: cert.keyPem,
});
const host = listener.address.host.includes(':') ? `[${listener.address.host}]` : listener.address.host;
process.stdout.write(
  `${JSON.stringify({ url: `https://${host}:${listener.address.port}/echo`, certificateHash: cert.hashHex, port: listener.address.port })}\n`,
);

void (async () => {
  const reader = listener.incomingSessions.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    if (value.request.path !== '/echo') {
      value.reject(404);
      continue;
    }
    serveEcho(value.accept());
  }
})();

let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  listener.close({ closeCode: 0, reason: 'server shutting down' }).then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
