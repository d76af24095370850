/**
 * Headless Chromium's native `WebTransport` (HTTP/3 over real QUIC, certificate pinned with
 * `serverCertificateHashes`) against the Node listener: a direct echo run in the page, pooled sessions on one
 * connection, then the shared conformance suite driven through @quiver/testkit's page-backed session proxy.
 */
import { launchChromium } from '@quiver/testkit';
import { runConformanceSuite } from '@quiver/transport/conformance';
import { availableEngines } from '@quiver/webtransport';
import { describe, expect, it } from 'vitest';
import { nativeWebTransportHarness } from './browser-conformance.js';
import { CONNECTION_END_MS, echoRunInPage, expectEchoRun, useEchoRig, waitFor } from './browser-echo.js';

// Every engine this installation has (both where `npm run build:native` ran, as in CI); the conformance suite
// below runs on the default one.
describe.each(await availableEngines())(
  'Chromium native WebTransport against the Node listener (%s)',
  (engine) => {
    const rig = useEchoRig(launchChromium, undefined, engine);

    it('echoes bidi and uni streams and datagrams, and closes with a code and reason', async () => {
      const url = `https://127.0.0.1:${rig.listener.address.port}/echo`;
      const result = await rig.page.evaluate(echoRunInPage, {
        url,
        hash: [...rig.cert.hash],
        word: 'chromium',
      });
      await expectEchoRun(rig, result, 'chromium');
    });

    it('runs pooled sessions on one connection and sees the rejection of another', async () => {
      const { listener, cert } = rig;
      const before = listener.counters.connectionsAccepted;
      const base = `https://127.0.0.1:${listener.address.port}`;
      const result = await rig.page.evaluate(
        async ({ base, hash }) => {
          const opts = {
            allowPooling: true,
            serverCertificateHashes: [{ algorithm: 'sha-256', value: new Uint8Array(hash) }],
          } as WebTransportOptions;
          const a = new WebTransport(`${base}/echo?n=1`, opts);
          await a.ready;
          const b = new WebTransport(`${base}/echo?n=2`, opts);
          await b.ready;
          const echo = async (wt: WebTransport, text: string) => {
            const s = await wt.createBidirectionalStream();
            const w = s.writable.getWriter();
            await w.write(new TextEncoder().encode(text));
            await w.close();
            const r = s.readable.getReader();
            let out = '';
            for (;;) {
              const { value, done } = await r.read();
              if (done) return out;
              out += new TextDecoder().decode(value);
            }
          };
          const [ea, eb] = await Promise.all([echo(a, 'first'), echo(b, 'second')]);
          const rejected = new WebTransport(`${base}/forbidden`, opts);
          const refusal = await rejected.ready.then(
            () => 'opened',
            (e: Error) => e.name,
          );
          a.close();
          b.close();
          await Promise.all([a.closed, b.closed]);
          return { ea, eb, refusal };
        },
        { base, hash: [...cert.hash] },
      );
      expect(result).toEqual({ ea: 'first', eb: 'second', refusal: 'WebTransportError' });
      // Chromium may or may not pool; either way every session ran, and the connections end with the sessions.
      expect(listener.counters.connectionsAccepted - before).toBeGreaterThanOrEqual(1);
      await waitFor(() => listener.connectionCount === 0, CONNECTION_END_MS);
      expect(listener.connectionCount).toBe(0);
    });
  },
);

runConformanceSuite(
  nativeWebTransportHarness({
    name: 'webtransport, Chromium native WebTransport through the page proxy',
    launch: launchChromium,
    // W3C WebTransport exposes neither the HTTP status of a refusal nor byte counters in every browser. Chromium may
    // report a server's close with data in flight as "Connection lost" (see the capability; scripts/close-race.ts
    // counts how often).
    capabilities: {
      unreliableDatagrams: true,
      rejectStatusVisible: false,
      clientStats: false,
      serverCloseInfoWithDataInFlight: false,
    },
  }),
);
