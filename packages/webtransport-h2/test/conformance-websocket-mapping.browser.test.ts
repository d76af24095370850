/**
 * The conformance suite with the library's WebSocket mapping as the client: its browser `WebTransportPonyfill` in
 * headless Chromium (through @quiver/testkit's page-backed session proxy) against this package's Node listener, which
 * takes the mapped sessions on the same port (HTTP/1.1 Upgrade with `Sec-WebSocket-Protocol: webtransport_<v>`).
 *
 * An evaluation, as conformance.test.ts: KNOWN_LIBRARY_FAILURES are skipped with the reason; see README.md.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { type DevCertificate, generateCertificate } from '@quiver/devcert';
import {
  type EvaluatingPage,
  type LaunchedChromium,
  launchChromium,
  openBrowserSession,
  type StaticServer,
  serveStatic,
} from '@quiver/testkit';
import { runConformanceSuite } from '@quiver/transport/conformance';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createH2WebTransportListener } from '../src/index.js';

const CLIENT = { entry: join(import.meta.dirname, 'fixtures/ponyfill-client.ts') };

const KNOWN_LIBRARY_FAILURES: Record<string, string> = {
  // Client -> server bytes go missing on one stream: 4 MiB sent, FIN delivered, 45 000 to 50 000 bytes short and the
  // SHA-256 differs (two runs: 4 145 030 and 4 149 266 bytes arrived). Server -> client 4 MiB arrives intact, and the
  // same adapter moves 16 MiB each way intact over HTTP/2 (conformance.test.ts), so the loss is between the
  // ponyfill's sender and the library's Node WebSocketParser, which skips the last fragment of a fragmented binary
  // message (websocketparser.js clears `lastopcode` on FIN before testing for a binary continuation; reproduced in
  // test/limitations.test.ts).
  'transfers 4194304 bytes each way on one stream with matching SHA-256':
    'client -> server data loss in the WebSocket mapping',
  // lib/stream.js clamps reset and STOP_SENDING codes to 0..255, as over HTTP/2.
  'resets a stream server to client: the client read rejects with the code':
    'stream error codes above 255 are sent as 255 (lib/stream.js clamps)',
  // lib/http2/browser/browserparser.js readUint32 builds the WT_CLOSE_SESSION code with `<<` on JS numbers, a signed
  // 32-bit operation: 0xfffffffe arrives as -2.
  'closes the session from the server with a code and reason seen by both ends':
    'close codes >= 2^31 arrive negative in the browser (signed readUint32)',
};

beforeEach((ctx) => {
  if (ctx.task.name in KNOWN_LIBRARY_FAILURES) ctx.skip();
});

let cert: DevCertificate | undefined;
let browser: LaunchedChromium | undefined;
let server: StaticServer | undefined;
let page: EvaluatingPage | undefined;

/** base64 SHA-256 of the certificate's SubjectPublicKeyInfo, for --ignore-certificate-errors-spki-list. */
function spkiHash(c: DevCertificate): string {
  const spki = new X509Certificate(c.certPem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

runConformanceSuite({
  name: 'http2-webtransport WebSocket mapping (library ponyfill in Chromium)',
  setup: async () => {
    cert = await generateCertificate();
    server = await serveStatic();
    // WebSockets cannot pin by serverCertificateHashes; Chromium's SPKI allow-list pins this one certificate.
    browser = await launchChromium({ args: [`--ignore-certificate-errors-spki-list=${spkiHash(cert)}`] });
    page = await browser.newPage(server.url);
  },
  teardown: async () => {
    await browser?.close();
    await server?.close();
  },
  listen: () => createH2WebTransportListener({ cert: cert!.certPem, key: cert!.keyPem }),
  connect: (listener, path, options) =>
    openBrowserSession(page!, {
      kind: 'module',
      url: `https://127.0.0.1:${listener.address.port}${path}`,
      options,
      module: CLIENT,
    }),
  // The library answers a refused HTTP/1.1 Upgrade by destroying the socket, and browsers expose no status anyway.
  capabilities: { unreliableDatagrams: false, rejectStatusVisible: false },
  bulkBytes: 4 * 1024 * 1024,
});

/** The browser-side library limitations, asserted as they are (1.6.8); a fixing release turns this red. */
describe('WebSocket mapping limitations (asserted as they are, 1.6.8)', () => {
  let c: DevCertificate | undefined;
  let b: LaunchedChromium | undefined;
  let st: StaticServer | undefined;
  let p: EvaluatingPage | undefined;
  beforeAll(async () => {
    c = await generateCertificate();
    st = await serveStatic();
    b = await launchChromium({ args: [`--ignore-certificate-errors-spki-list=${spkiHash(c)}`] });
    p = await b.newPage(st.url);
  }, 120_000);
  afterAll(async () => {
    await b?.close();
    await st?.close();
  }, 120_000);

  it('delivers a server close code >= 2^31 to the browser as a negative number (signed readUint32)', async () => {
    const listener = await createH2WebTransportListener({ cert: c!.certPem, key: c!.keyPem });
    try {
      const reader = listener.incomingSessions.getReader();
      const client = await openBrowserSession(p!, {
        kind: 'module',
        url: `https://127.0.0.1:${listener.address.port}/x`,
        module: CLIENT,
      });
      const server = (await reader.read()).value!.accept();
      await Promise.all([client.ready, server.ready]);
      server.close({ closeCode: 0xfffffffe, reason: 'big' });
      expect((await client.closed).closeCode).toBe(-2);
      expect(await server.closed).toEqual({ closeCode: 0xfffffffe, reason: 'big' });
      reader.releaseLock();
    } finally {
      await listener.close();
    }
  }, 60_000);
});
