/**
 * Headless Firefox ESR's native `WebTransport` (over WebDriver BiDi with puppeteer-core) against the Node
 * listener.
 *
 * The shared conformance suite is not run here: it passes in Firefox 153 except two cases that Firefox itself
 * fails (23 of 25 when last run, see the package README): a read of a stream the server reset rejects with a
 * plain `TypeError` without `streamErrorCode`, and `readable.cancel()` sends no STOP_SENDING (the server's
 * writes keep succeeding; quiche never reports the stream stopped). The suite has no capability to skip them,
 * so the cases that work are checked directly below.
 */
import { type DevCertificate, ensureDevCertificate } from '@quiver/devcert';
import type { QuiverSession } from '@quiver/transport';
import { QuiverTransportError } from '@quiver/transport';
import { type LaunchedFirefox, launchFirefox, type StaticServer, serveStatic } from '@quiver/testkit';
import type { WebTransportListener } from '@quiver/webtransport';
import { createWebTransportListener } from '@quiver/webtransport';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveEcho } from '../examples/echo.js';

async function waitFor(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond() && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
}

describe('Firefox native WebTransport against the Node listener', () => {
  let cert: DevCertificate;
  let site: StaticServer;
  let browser: LaunchedFirefox;
  let listener: WebTransportListener;
  let page: Awaited<ReturnType<LaunchedFirefox['newPage']>>;
  const requests: { path: string; origin: string | undefined }[] = [];
  const manual: QuiverSession[] = [];

  beforeAll(async () => {
    cert = await ensureDevCertificate();
    listener = await createWebTransportListener({
      host: '127.0.0.1',
      port: 0,
      cert: cert.certPem,
      key: cert.keyPem,
    });
    void (async () => {
      const reader = listener.incomingSessions.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        requests.push({ path: value.request.path, origin: value.request.origin });
        if (value.request.path === '/forbidden') value.reject(403);
        else if (value.request.path === '/manual') manual.push(value.accept());
        else serveEcho(value.accept());
      }
    })();
    site = await serveStatic();
    browser = await launchFirefox();
    page = await browser.newPage(site.url);
  });

  afterAll(async () => {
    await browser?.close();
    await site?.close();
    await listener?.close();
  });

  it('echoes bidi and uni streams and datagrams, and closes with a code and reason', async () => {
    const url = `https://127.0.0.1:${listener.address.port}/echo`;
    const result = await page.evaluate(
      async ({ url, hash }) => {
        const enc = new TextEncoder();
        const dec = new TextDecoder();
        const readAll = async (r: ReadableStream<Uint8Array>) => {
          let s = '';
          const reader = r.getReader();
          for (;;) {
            const { value, done } = await reader.read();
            if (done) return s;
            s += dec.decode(value, { stream: true });
          }
        };
        const wt = new WebTransport(url, {
          serverCertificateHashes: [{ algorithm: 'sha-256', value: new Uint8Array(hash) }],
        });
        await wt.ready;
        const bidi = await wt.createBidirectionalStream();
        const bw = bidi.writable.getWriter();
        await bw.write(enc.encode('hello '));
        await bw.write(enc.encode('firefox'));
        await bw.close();
        const bidiEcho = await readAll(bidi.readable);

        const uni = await wt.createUnidirectionalStream();
        const uw = uni.getWriter();
        await uw.write(enc.encode('one-way'));
        await uw.close();
        const incoming = await wt.incomingUnidirectionalStreams.getReader().read();
        const uniEcho = await readAll(incoming.value as ReadableStream<Uint8Array>);

        // A big stream proves flow control and many packets both ways.
        const big = await wt.createBidirectionalStream();
        const size = 2 * 1024 * 1024;
        const chunk = new Uint8Array(64 * 1024);
        for (let i = 0; i < chunk.length; i++) chunk[i] = i & 0xff;
        const writing = (async () => {
          const w = big.writable.getWriter();
          for (let off = 0; off < size; off += chunk.length) await w.write(chunk);
          await w.close();
        })();
        let received = 0;
        let intact = true;
        const br = big.readable.getReader();
        for (;;) {
          const { value, done } = await br.read();
          if (done) break;
          for (let i = 0; i < value.length; i++) if (value[i] !== ((received + i) & 0xff)) intact = false;
          received += value.length;
        }
        await writing;

        const dw = wt.datagrams.writable.getWriter();
        const dr = wt.datagrams.readable.getReader();
        let datagram = '';
        for (let i = 0; i < 20 && !datagram; i++) {
          await dw.write(enc.encode(`dg-${i}`));
          const r = await Promise.race([
            dr.read(),
            new Promise<null>((res) => setTimeout(() => res(null), 200)),
          ]);
          if (r && !r.done) datagram = dec.decode(r.value);
        }
        const maxDatagramSize = wt.datagrams.maxDatagramSize;
        wt.close({ closeCode: 3003, reason: 'done here' });
        const closed = await wt.closed;
        return { bidiEcho, uniEcho, received, intact, datagram, maxDatagramSize, closed };
      },
      { url, hash: [...cert.hash] },
    );
    expect(result.bidiEcho).toBe('hello firefox');
    expect(result.uniEcho).toBe('one-way');
    expect(result.received).toBe(2 * 1024 * 1024);
    expect(result.intact).toBe(true);
    expect(result.datagram).toMatch(/^dg-\d+$/);
    expect(result.maxDatagramSize).toBeGreaterThan(1000);
    expect(result.closed).toEqual({ closeCode: 3003, reason: 'done here' });
    expect(requests.at(-1)).toEqual({ path: '/echo', origin: site.origin });
    // Firefox keeps the connection open after the session: the server closes it.
    await waitFor(() => listener.connectionCount === 0);
    expect(listener.connectionCount).toBe(0);
  });

  it('carries a client reset code to the server and a server STOP_SENDING code to the page', async () => {
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
        // Stream 2: the server stops it with 9: our writes must fail with that code.
        const b = await wt.createBidirectionalStream();
        const bw = b.writable.getWriter();
        let stopCode: number | null | undefined;
        let stopError = '';
        for (let i = 0; i < 500 && stopCode === undefined; i++) {
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
});
