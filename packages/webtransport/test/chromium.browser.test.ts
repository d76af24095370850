/**
 * Headless Chromium's native `WebTransport` (HTTP/3 over real QUIC, certificate pinned with
 * `serverCertificateHashes`) against the Node listener: a direct echo run in the page, pooled sessions on one
 * connection, then the shared conformance suite driven through @quiver/testkit's page-backed session proxy.
 */
import { type DevCertificate, ensureDevCertificate } from '@quiver/devcert';
import { runConformanceSuite } from '@quiver/transport/conformance';
import {
  type EvaluatingPage,
  type LaunchedChromium,
  launchChromium,
  openBrowserSession,
  type StaticServer,
  serveStatic,
} from '@quiver/testkit';
import type { WebTransportListener } from '@quiver/webtransport';
import { createWebTransportListener } from '@quiver/webtransport';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveEcho } from '../examples/echo.js';

async function waitFor(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond() && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
}

describe('Chromium native WebTransport against the Node listener', () => {
  let cert: DevCertificate;
  let site: StaticServer;
  let browser: LaunchedChromium;
  let listener: WebTransportListener;
  let page: Awaited<ReturnType<LaunchedChromium['newPage']>>;
  const requests: { path: string; origin: string | undefined }[] = [];

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
        else serveEcho(value.accept());
      }
    })();
    site = await serveStatic();
    browser = await launchChromium();
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
        await bw.write(enc.encode('chromium'));
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
    expect(result.bidiEcho).toBe('hello chromium');
    expect(result.uniEcho).toBe('one-way');
    expect(result.received).toBe(2 * 1024 * 1024);
    expect(result.intact).toBe(true);
    expect(result.datagram).toMatch(/^dg-\d+$/);
    expect(result.maxDatagramSize).toBeGreaterThan(1000);
    expect(result.closed).toEqual({ closeCode: 3003, reason: 'done here' });
    expect(requests.at(-1)).toEqual({ path: '/echo', origin: site.origin });
    // Chromium keeps the connection open after the session: the server closes it.
    await waitFor(() => listener.connectionCount === 0);
    expect(listener.connectionCount).toBe(0);
  });

  it('runs pooled sessions on one connection and sees the rejection of another', async () => {
    const before = listener.counters.connectionsAccepted;
    const base = `https://127.0.0.1:${listener.address.port}`;
    const result = await page.evaluate(
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
    await waitFor(() => listener.connectionCount === 0);
    expect(listener.connectionCount).toBe(0);
  });
});

let confCert: DevCertificate;
let confSite: StaticServer | undefined;
let confBrowser: LaunchedChromium | undefined;
let confPage: EvaluatingPage | undefined;

runConformanceSuite({
  name: 'webtransport, Chromium native WebTransport through the page proxy',
  setup: async () => {
    confCert = await ensureDevCertificate();
    confSite = await serveStatic();
    confBrowser = await launchChromium();
    confPage = await confBrowser.newPage(confSite.url);
  },
  teardown: async () => {
    await confBrowser?.close();
    await confSite?.close();
  },
  // The suite's echo closes a stream when the page's FIN arrives, which Chromium sends apart from the data, up to
  // ~200 ms later on a loaded machine. quiche 0.18 loses a FIN written alone after the data left, so the listener
  // holds each write's last byte up to 1 s for the FIN to ride on (see SessionLimits.streamTailHoldMs).
  listen: () =>
    createWebTransportListener({
      host: '127.0.0.1',
      port: 0,
      cert: confCert.certPem,
      key: confCert.keyPem,
      sessionLimits: { streamTailHoldMs: 1000 },
    }),
  connect: (listener, path, options) =>
    openBrowserSession(confPage!, {
      kind: 'webtransport',
      url: `https://127.0.0.1:${listener.address.port}${path}`,
      options: { ...options, serverCertificateHashes: [{ algorithm: 'sha-256', value: confCert.hash }] },
    }),
  // W3C WebTransport exposes neither the HTTP status of a refusal nor byte counters in every browser.
  capabilities: { unreliableDatagrams: true, rejectStatusVisible: false, clientStats: false },
});
