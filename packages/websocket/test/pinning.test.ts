import { createHash, X509Certificate } from 'node:crypto';
import { afterEach, expect, it } from 'vitest';
import { connectWebSocket, type WebSocketSession } from '../src/index.js';
import { type EchoServer, startEchoServer } from './helpers.js';
import { makeSelfSignedCert } from './tls.js';

let server: EchoServer | undefined;
const clients: WebSocketSession[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) {
    c.close();
    await c.released;
  }
  await server?.close();
});

it('pins the server certificate by SHA-256 (serverCertificateHashes) in Node', async () => {
  const tls = makeSelfSignedCert();
  server = await startEchoServer({ tls });
  const hash = createHash('sha256').update(new X509Certificate(tls.cert).raw).digest();
  const url = `https://127.0.0.1:${server.listener.address.port}/pinned`;

  const good = connectWebSocket(url, { serverCertificateHashes: [{ algorithm: 'sha-256', value: hash }] });
  clients.push(good);
  await good.ready;
  expect(server.listener.stats.requests).toBe(1);

  const wrong = Uint8Array.from(hash);
  wrong[0] ^= 0xff;
  const bad = connectWebSocket(url, { serverCertificateHashes: [{ algorithm: 'sha-256', value: wrong }] });
  clients.push(bad);
  const err = await bad.ready.catch((e) => e);
  expect(String(err?.message)).toMatch(/does not match/);
  // The upgrade request (and its headers) never reached the server, even a while later.
  await new Promise((r) => setTimeout(r, 100));
  expect(server.listener.stats.requests).toBe(1);
});
