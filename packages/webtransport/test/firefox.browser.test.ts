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

async function readAllBytes(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const part of stream) parts.push(part);
  return Buffer.concat(parts);
}
import { CONNECTION_END_MS, echoRunInPage, expectEchoRun, useEchoRig, waitFor } from './browser-echo.js';

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
          // with a generic AbortError (no code) when STOP_SENDING lands while a write is in flight, so no write may
          // be in flight then: the page says when its first write is done (a unidirectional stream "go"), the
          // server stops the stream only then and says so ("stopped", on a stream of its own), and only then does
          // the page write again.
          const b = await wt.createBidirectionalStream();
          const bw = b.writable.getWriter();
          await bw.write(new Uint8Array([2]));
          const go = (await wt.createUnidirectionalStream()).getWriter();
          await go.write(new TextEncoder().encode('go'));
          await go.close();
          const { value: note } = await wt.incomingUnidirectionalStreams.getReader().read();
          const noteReader = (note as ReadableStream<Uint8Array>).getReader();
          let said = '';
          for (;;) {
            const { value, done } = await noteReader.read();
            if (done) break;
            said += new TextDecoder().decode(value);
          }
          let stopCode: number | null | undefined;
          let stopError = '';
          // QUIC does not order frames across streams: should "stopped" overtake the STOP_SENDING, the first
          // writes still succeed, one at a time, until it lands.
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
          return { said, stopCode, stopError };
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
      // The page's first write on stream 2 is done once its "go" arrives; no write is in flight now.
      const { value: go } = await srv.incomingUnidirectionalStreams.getReader().read();
      expect(new TextDecoder().decode(await readAllBytes(go!))).toBe('go');
      await b!.readable.cancel(new QuiverTransportError('stop', { streamErrorCode: 9 }));
      const note = (await srv.createUnidirectionalStream()).getWriter();
      await note.write(new TextEncoder().encode('stopped'));
      await note.close();
      const r = await pageResult;
      expect(r.said).toBe('stopped');
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
      await waitFor(() => listener.connectionCount === 0, CONNECTION_END_MS);
      expect(listener.connectionCount).toBe(0);
    });
  },
);
