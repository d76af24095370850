/**
 * The conformance suite from Chromium over HTTP/2 (TLS to the standalone listener, the certificate allowed by its
 * SPKI hash), where the browser build streams its upstream as one `fetch` request body (`duplex: 'half'`). The
 * check after the suite shows that the uploads were opened and carried the traffic rather than POSTs. Over
 * HTTP/1.1 (conformance.browser.test.ts) Chromium refuses such a request and the same client keeps to POSTs.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { type DevCertificate, generateCertificate } from '@quiver/devcert';
import { browserHarness, launchChromium } from '@quiver/testkit';
import { runConformanceSuite } from '@quiver/transport/conformance';
import { afterAll, describe, expect, it } from 'vitest';
import type { HttpStreamListenerStats } from '../src/index.js';
import { statsListener } from './fixtures/stats-listener.js';

let cert: DevCertificate | undefined;
const stats: HttpStreamListenerStats[] = [];

function spkiHash(c: DevCertificate): string {
  const spki = new X509Certificate(c.certPem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

describe('upload stream from Chromium over HTTP/2', () => {
  runConformanceSuite({
    name: 'http-stream, browser build in Chromium over HTTP/2 (upload stream)',
    listen: () =>
      statsListener({ host: '127.0.0.1', port: 0, tls: { cert: cert!.certPem, key: cert!.keyPem } }, stats),
    ...browserHarness({
      launch: async () => {
        cert = await generateCertificate();
        return launchChromium({ args: [`--ignore-certificate-errors-spki-list=${spkiHash(cert)}`] });
      },
      module: { entry: join(import.meta.dirname, 'fixtures/browser-client.ts') },
      url: (listener, path) => `https://127.0.0.1:${listener.address.port}${path}`,
    }),
    capabilities: { unreliableDatagrams: false },
  });

  afterAll(() => {
    const sum = (k: keyof HttpStreamListenerStats) => stats.reduce((a, s) => a + s[k], 0);
    expect(sum('uploads')).toBeGreaterThan(10);
    expect(sum('uploadsRefused')).toBe(0);
    // The page is served from another origin: a streaming body is never a CORS simple request.
    expect(sum('preflights')).toBeGreaterThan(0);
    // POSTs only carry acknowledgements until an upload is confirmed, and whatever a session sends before its
    // upload opens; the suite's bulk transfers went on uploads.
    expect(sum('posts')).toBeLessThan(sum('uploads') * 8);
  });
  it('placeholder so that afterAll runs after the suite', () => {});
});
