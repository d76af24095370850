/**
 * What the browser tests of the Node listener share: a listener serving the echo example behind a page in a
 * launched browser (on a given QUIC engine), and the echo run that the page makes with its native `WebTransport` (certificate pinned with
 * `serverCertificateHashes`) with the checks on its result. Not a test file itself.
 */
import { type DevCertificate, ensureDevCertificate } from '@quiver/devcert';
import { type StaticServer, serveStatic } from '@quiver/testkit';
import type { IncomingSession } from '@quiver/transport';
import type { EngineName, WebTransportListener } from '@quiver/webtransport';
import { createWebTransportListener } from '@quiver/webtransport';
import { afterAll, beforeAll, expect } from 'vitest';
import { serveEcho } from '../examples/echo.js';

/**
 * How long a test waits for the listener to drop a connection whose sessions ended: the close waits for the
 * sessions' closes to be delivered (`closeDeliveryTimeoutMs`), then the closing period after our CONNECTION_CLOSE
 * lasts three PTOs (RFC 9000 §10.2), which the RTT samples of a loaded machine stretch to seconds (CI once saw
 * more than 5 s). A bound on an event, not a speed: the connection must end, however late.
 */
export const CONNECTION_END_MS = 30_000;

export async function waitFor(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond() && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
}

/** The part of `launchChromium` / `launchFirefox` results the rig needs, keeping each browser's own page type. */
export interface EchoRigBrowser<P> {
  newPage(url: string): Promise<P>;
  close(): Promise<void>;
}

export interface EchoRig<P> {
  cert: DevCertificate;
  site: StaticServer;
  listener: WebTransportListener;
  page: P;
  /** Every session request the listener saw, in order. */
  readonly requests: { path: string; origin: string | undefined }[];
}

/**
 * Registers `beforeAll`/`afterAll` in the calling `describe` for a listener on 127.0.0.1 port 0 that refuses
 * `/forbidden` with 403 and echoes every other path (unless `route` takes the request first, returning true),
 * a static page server and a page in the browser `launch` starts. The fields are set once `beforeAll` has run.
 */
export function useEchoRig<P>(
  launch: () => Promise<EchoRigBrowser<P>>,
  route?: (incoming: IncomingSession) => boolean,
  /** The listener's QUIC engine; default: the default engine. */
  engine?: EngineName,
): EchoRig<P> {
  const rig = { requests: [] } as unknown as EchoRig<P>;
  let browser: EchoRigBrowser<P> | undefined;
  beforeAll(async () => {
    rig.cert = await ensureDevCertificate();
    rig.listener = await createWebTransportListener({
      host: '127.0.0.1',
      port: 0,
      cert: rig.cert.certPem,
      key: rig.cert.keyPem,
      engine,
    });
    const listener = rig.listener;
    void (async () => {
      const reader = listener.incomingSessions.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        rig.requests.push({ path: value.request.path, origin: value.request.origin });
        if (value.request.path === '/forbidden') value.reject(403);
        else if (!route?.(value)) serveEcho(value.accept());
      }
    })();
    rig.site = await serveStatic();
    browser = await launch();
    rig.page = await browser.newPage(rig.site.url);
  });
  afterAll(async () => {
    await browser?.close();
    await rig.site?.close();
    await rig.listener?.close();
  });
  return rig;
}

export interface EchoRunResult {
  bidiEcho: string;
  uniEcho: string;
  received: number;
  intact: boolean;
  datagram: string;
  maxDatagramSize: number;
  closed: WebTransportCloseInfo;
}

/**
 * Runs in the page (`page.evaluate(echoRunInPage, { url, hash, word })`), so it must reference nothing outside
 * itself: a bidi echo of `hello <word>`, a uni echo, a 2 MiB bidi echo, a datagram echo, then a close with a code.
 */
export async function echoRunInPage({
  url,
  hash,
  word,
}: {
  url: string;
  hash: number[];
  word: string;
}): Promise<EchoRunResult> {
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
  await bw.write(enc.encode(word));
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
    const r = await Promise.race([dr.read(), new Promise<null>((res) => setTimeout(() => res(null), 200))]);
    if (r && !r.done) datagram = dec.decode(r.value);
  }
  const maxDatagramSize = wt.datagrams.maxDatagramSize;
  wt.close({ closeCode: 3003, reason: 'done here' });
  const closed = await wt.closed;
  return { bidiEcho, uniEcho, received, intact, datagram, maxDatagramSize, closed };
}

/** The checks on an {@link echoRunInPage} result for `word`, then that the server closed the connection. */
export async function expectEchoRun<P>(rig: EchoRig<P>, result: EchoRunResult, word: string): Promise<void> {
  expect(result.bidiEcho).toBe(`hello ${word}`);
  expect(result.uniEcho).toBe('one-way');
  expect(result.received).toBe(2 * 1024 * 1024);
  expect(result.intact).toBe(true);
  expect(result.datagram).toMatch(/^dg-\d+$/);
  expect(result.maxDatagramSize).toBeGreaterThan(1000);
  expect(result.closed).toEqual({ closeCode: 3003, reason: 'done here' });
  expect(rig.requests.at(-1)).toEqual({ path: '/echo', origin: rig.site.origin });
  // Chromium and Firefox both keep the connection open after the session: the server closes it.
  await waitFor(() => rig.listener.connectionCount === 0, CONNECTION_END_MS);
  expect(rig.listener.connectionCount).toBe(0);
}
