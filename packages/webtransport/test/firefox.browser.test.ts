/**
 * Headless Firefox ESR's native `WebTransport` (over WebDriver BiDi with puppeteer-core) against the Node
 * listener, on every available engine: the echo run, and direct checks of what the conformance suite
 * (`firefox-conformance.browser.test.ts`) cannot see through its capabilities: a client reset code reaching the
 * server, a server STOP_SENDING code reaching the page, close codes both ways and a refusal.
 *
 * Firefox 153 itself fails two things (the suite runs with `resetCodesVisibleToReader` and
 * `cancelSendsStopSending` off there): a read of a stream the server reset rejects with a plain `TypeError`
 * without `streamErrorCode`, and `readable.cancel()` sends no STOP_SENDING (the server's writes keep succeeding;
 * neither engine ever reports the stream stopped).
 */
import { launchFirefox } from '@quiver/testkit';
import type { QuiverSession } from '@quiver/transport';
import { QuiverTransportError } from '@quiver/transport';
import { availableEngines } from '@quiver/webtransport';
import { describe, expect, it } from 'vitest';
import { echoRunInPage, expectEchoRun, useEchoRig, waitFor } from './browser-echo.js';

// Every engine this installation has (both where `npm run build:native` ran, as in CI).
describe.each(await availableEngines())(
  'Firefox native WebTransport against the Node listener (%s)',
  (engine) => {
    const manual: QuiverSession[] = [];
    const rig = useEchoRig(
      launchFirefox,
      (incoming) => {
        if (incoming.request.path !== '/manual') return false;
        manual.push(incoming.accept());
        return true;
      },
      engine,
    );

    it('echoes bidi and uni streams and datagrams, and closes with a code and reason', async () => {
      const url = `https://127.0.0.1:${rig.listener.address.port}/echo`;
      const result = await rig.page.evaluate(echoRunInPage, {
        url,
        hash: [...rig.cert.hash],
        word: 'firefox',
      });
      await expectEchoRun(rig, result, 'firefox');
    });

    it('carries a client reset code to the server and a server STOP_SENDING code to the page', async () => {
      const { listener, cert, page } = rig;
      const url = `https://127.0.0.1:${listener.address.port}/manual`;
      const pageResult = page.evaluate(
        async ({ url, hash }) => {
          const wt = new WebTransport(url, {
            serverCertificateHashes: [{ algorithm: 'sha-256', value: new Uint8Array(hash) }],
          });
          await wt.ready;
          // Stream 1: written, then aborted with 42 (RESET_STREAM).
          const a = await wt.createBidirectionalStream();
          const aw = a.writable.getWriter();
          await aw.write(new Uint8Array([1]));
          await new Promise((r) => setTimeout(r, 100));
          // Firefox 153 takes the W3C init dictionary as the only argument.
          await aw.abort(new WebTransportError({ message: 'bye', streamErrorCode: 42 } as unknown as string));
          // Stream 2: the server stops it with 9: our writes must fail with that code. Firefox errors the stream
          // with a generic AbortError when STOP_SENDING lands while a write is in flight, so the page writes again
          // only after a pause in which the server (which stops the stream as soon as it sees it) has done so.
          const b = await wt.createBidirectionalStream();
          const bw = b.writable.getWriter();
          await bw.write(new Uint8Array([2]));
          await new Promise((r) => setTimeout(r, 500));
          let stopCode: number | null | undefined;
          let stopError = '';
          for (let i = 0; i < 500 && stopCode === undefined && stopError === ''; i++) {
            try {
              await bw.write(new Uint8Array([2]));
              await new Promise((r) => setTimeout(r, 20));
            } catch (e) {
              stopCode = (e as WebTransportError).streamErrorCode;
              stopError = `${(e as Error).name}: ${(e as Error).message}`;
            }
          }
          wt.close({ closeCode: 1, reason: 'x' });
          return { stopCode, stopError };
        },
        { url, hash: [...cert.hash] },
      );
      await waitFor(() => manual.length > 0);
      const srv = manual[manual.length - 1];
      const incoming = srv.incomingBidirectionalStreams.getReader();
      const { value: a } = await incoming.read();
      const ar = a!.readable.getReader();
      await ar.read();
      const resetErr = await ar.read().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(resetErr).toBeInstanceOf(QuiverTransportError);
      expect((resetErr as QuiverTransportError).streamErrorCode).toBe(42);
      const { value: b } = await incoming.read();
      await b!.readable.cancel(new QuiverTransportError('stop', { streamErrorCode: 9 }));
      const r = await pageResult;
      expect(r.stopCode, r.stopError || 'no write failed').toBe(9);
    });

    it('closes from the server with a code and reason, and refuses with a status', async () => {
      const { listener, cert, page } = rig;
      const url = `https://127.0.0.1:${listener.address.port}/manual`;
      const closed = page.evaluate(
        async ({ url, hash, forbidden }) => {
          const opts = { serverCertificateHashes: [{ algorithm: 'sha-256', value: new Uint8Array(hash) }] };
          const refused = await new WebTransport(forbidden, opts).ready.then(
            () => 'opened',
            (e: Error) => e.name,
          );
          const wt = new WebTransport(url, opts);
          await wt.ready;
          return { refused, closed: await wt.closed };
        },
        { url, hash: [...cert.hash], forbidden: `https://127.0.0.1:${listener.address.port}/forbidden` },
      );
      const count = manual.length;
      await waitFor(() => manual.length > count);
      manual[manual.length - 1].close({ closeCode: 77, reason: 'server closing' });
      expect(await closed).toEqual({
        refused: 'WebTransportError',
        closed: { closeCode: 77, reason: 'server closing' },
      });
      await waitFor(() => listener.connectionCount === 0);
      expect(listener.connectionCount).toBe(0);
    });
  },
);
