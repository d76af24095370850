import { createHash } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type QuiverSession, QuiverTransportError } from '@quiver/transport';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BrowserSession,
  browserConnector,
  type LaunchedChromium,
  launchChromium,
  openBrowserSession,
  type StaticServer,
  serveStatic,
} from '../src/index.js';

const ECHO = { entry: join(import.meta.dirname, 'fixtures/echo-session.ts') };
const enc = new TextEncoder();
const dec = new TextDecoder();

async function readAll(readable: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const reader = readable.getReader();
  for (let r = await reader.read(); !r.done; r = await reader.read()) parts.push(r.value);
  return Buffer.concat(parts);
}

async function readN<T>(readable: ReadableStream<T>, n: number): Promise<T[]> {
  const reader = readable.getReader();
  const out: T[] = [];
  while (out.length < n) {
    const r = await reader.read();
    if (r.done) break;
    out.push(r.value);
  }
  reader.releaseLock();
  return out;
}

let browser: LaunchedChromium;
let server: StaticServer;
let page: Page;
const sessions: QuiverSession[] = [];

function echo(url = 'https://echo.test/'): BrowserSession {
  const s = openBrowserSession(page, { kind: 'module', url, module: ECHO });
  sessions.push(s);
  return s;
}

beforeAll(async () => {
  server = await serveStatic();
  browser = await launchChromium();
  page = await browser.newPage(server.url);
});

afterAll(async () => {
  for (const s of sessions) s.close();
  await browser?.close();
  await server?.close();
  expect(existsSync(browser.userDataDir)).toBe(false);
});

describe('page-backed session proxy (module kind, in-page echo session)', () => {
  it('opens, reports transport and reliability, echoes a bidirectional stream and its FIN', async () => {
    const s = echo();
    await s.ready;
    expect(s.transport).toBe('echo');
    expect(s.reliability).toBe('reliable-only');
    expect(s.datagrams.maxDatagramSize).toBe(1200);
    const bidi = await s.createBidirectionalStream();
    const w = bidi.writable.getWriter();
    await w.write(enc.encode('hello '));
    await w.write(enc.encode('quiver'));
    await w.close();
    expect(dec.decode(await readAll(bidi.readable))).toBe('hello quiver');
  });

  it('carries 16 MB in 64 KiB chunks intact in both directions', async () => {
    const s = echo();
    await s.ready;
    const bidi = await s.createBidirectionalStream();
    const chunk = 64 * 1024;
    const total = 16 * 1024 * 1024;
    const sent = createHash('sha256');
    const started = performance.now();
    const writing = (async () => {
      const w = bidi.writable.getWriter();
      for (let off = 0; off < total; off += chunk) {
        const c = new Uint8Array(chunk);
        for (let i = 0; i < chunk; i += 251) c[i] = (off / chunk + i) & 0xff;
        sent.update(c);
        await w.write(c);
      }
      await w.close();
    })();
    const got = createHash('sha256');
    let n = 0;
    const reader = bidi.readable.getReader();
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      got.update(r.value);
      n += r.value.byteLength;
    }
    await writing;
    const ms = performance.now() - started;
    expect(n).toBe(total);
    expect(got.digest('hex')).toBe(sent.digest('hex'));
    console.log(
      `16 MB echo through the proxy: ${ms.toFixed(0)} ms (${((2 * total) / 1e6 / (ms / 1e3)).toFixed(1)} MB/s both ways)`,
    );
  });

  it('abort(reason) resets the stream with its streamErrorCode, seen on the read side as QuiverTransportError', async () => {
    const s = echo();
    await s.ready;
    const bidi = await s.createBidirectionalStream();
    const w = bidi.writable.getWriter();
    await w.write(enc.encode('x'));
    const reader = bidi.readable.getReader();
    expect(dec.decode((await reader.read()).value)).toBe('x');
    await w.abort(new QuiverTransportError('bye', { streamErrorCode: 42 }));
    const err = await reader.read().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(QuiverTransportError);
    expect(err).toMatchObject({ source: 'stream', streamErrorCode: 42, name: 'WebTransportError' });
  });

  it('cancel(reason) on the readable errors the peer writable with its code, without another write', async () => {
    const s = echo();
    await s.ready;
    const bidi = await s.createBidirectionalStream();
    const w = bidi.writable.getWriter();
    await bidi.readable.cancel(new QuiverTransportError('enough', { streamErrorCode: 7 }));
    const err = await w.closed.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(QuiverTransportError);
    expect(err).toMatchObject({ source: 'stream', streamErrorCode: 7 });
    await expect(w.write(enc.encode('more'))).rejects.toMatchObject({ streamErrorCode: 7 });
  });

  it("without a module error class, reasons are the browser's WebTransportError (octet codes: 300 clamps to 255)", async () => {
    const s = openBrowserSession(page, {
      kind: 'module',
      url: 'https://echo.test/',
      module: { entry: join(import.meta.dirname, 'fixtures/echo-native-errors.ts') },
    });
    sessions.push(s);
    await s.ready;
    for (const [code, seen] of [
      [42, 42],
      [300, 255],
    ]) {
      const bidi = await s.createBidirectionalStream();
      await bidi.writable.abort(new QuiverTransportError('native', { streamErrorCode: code }));
      await expect(bidi.readable.getReader().read()).rejects.toMatchObject({
        source: 'stream',
        streamErrorCode: seen,
      });
    }
    const bidi = await s.createBidirectionalStream();
    const w = bidi.writable.getWriter();
    await bidi.readable.cancel(new QuiverTransportError('native', { streamErrorCode: 9 }));
    await expect(w.closed).rejects.toMatchObject({ source: 'stream', streamErrorCode: 9 });
  });

  it('unidirectional streams arrive on incomingUnidirectionalStreams with FIN', async () => {
    const s = echo();
    await s.ready;
    const outs = await Promise.all([s.createUnidirectionalStream(), s.createUnidirectionalStream()]);
    await Promise.all(
      outs.map(async (o, i) => {
        const w = o.getWriter();
        await w.write(enc.encode(`uni ${i}`));
        await w.close();
      }),
    );
    const incoming = await readN(s.incomingUnidirectionalStreams, 2);
    const texts = await Promise.all(incoming.map(async (r) => dec.decode(await readAll(r))));
    expect(texts.sort()).toEqual(['uni 0', 'uni 1']);
  });

  it('incoming bidirectional streams are pushed to Node and are usable both ways', async () => {
    const s = echo();
    await s.ready;
    const dw = s.datagrams.writable.getWriter();
    await dw.write(enc.encode('open-bidi'));
    await dw.write(enc.encode('open-bidi'));
    dw.releaseLock();
    const streams = await readN(s.incomingBidirectionalStreams, 2);
    expect(streams).toHaveLength(2);
    for (const [i, st] of streams.entries()) {
      const w = st.writable.getWriter();
      await w.write(enc.encode(`in ${i}`));
      await w.close();
      expect(dec.decode(await readAll(st.readable))).toBe(`in ${i}`);
    }
  });

  it('datagrams are echoed, too-large ones dropped and counted in getStats', async () => {
    const s = echo();
    await s.ready;
    const w = s.datagrams.writable.getWriter();
    for (let i = 0; i < 20; i++) await w.write(enc.encode(`dg ${i}`));
    await w.write(new Uint8Array(s.datagrams.maxDatagramSize + 1));
    const got = await readN(s.datagrams.readable, 20);
    expect(got.map((d) => dec.decode(d))).toEqual(Array.from({ length: 20 }, (_, i) => `dg ${i}`));
    expect(got[0]).toBeInstanceOf(Uint8Array);
    const stats = await s.getStats();
    expect(stats.datagrams.sent).toBe(20);
    expect(stats.datagrams.received).toBe(20);
    expect(stats.datagrams.droppedOutgoing['too-large']).toBe(1);
    expect(stats.bytesSent).toBeGreaterThanOrEqual(0);
  });

  it('close(info) resolves closed with it and ends streams with a session error', async () => {
    const s = echo();
    await s.ready;
    const bidi = await s.createBidirectionalStream();
    const reader = bidi.readable.getReader();
    const pendingRead = reader.read().then(
      () => undefined,
      (e: unknown) => e,
    );
    s.close({ closeCode: 7, reason: 'done' });
    await expect(s.closed).resolves.toEqual({ closeCode: 7, reason: 'done' });
    expect(await pendingRead).toMatchObject({ source: 'session' });
    const incoming = s.incomingBidirectionalStreams.getReader();
    expect((await incoming.read()).done).toBe(true);
    await expect(s.createBidirectionalStream()).rejects.toBeInstanceOf(QuiverTransportError);
  });

  it('a close by the peer resolves closed with the peer code and reason', async () => {
    const s = echo();
    await s.ready;
    const w = s.datagrams.writable.getWriter();
    await w.write(enc.encode('close:9:peer says bye'));
    await expect(s.closed).resolves.toEqual({ closeCode: 9, reason: 'peer says bye' });
  });

  it('a failed establishment rejects ready and closed with a session QuiverTransportError', async () => {
    const s = echo('https://fail.test/');
    await expect(s.ready).rejects.toMatchObject({ source: 'session', message: 'connection refused' });
    await expect(s.closed).rejects.toBeInstanceOf(QuiverTransportError);
  });

  it('browserConnector gives a Connector (sync, like every transport)', async () => {
    const connect = browserConnector(page, { kind: 'module', module: ECHO });
    const s = connect('https://echo.test/');
    sessions.push(s);
    await s.ready;
    expect(s.transport).toBe('echo');
    s.close();
    await expect(s.closed).resolves.toEqual({ closeCode: 0, reason: '' });
  });

  it('a missing export or module is a rejected ready, not a hang', async () => {
    const s = openBrowserSession(page, {
      kind: 'module',
      url: 'https://x/',
      module: ECHO,
      exportName: 'nope',
    });
    await expect(s.ready).rejects.toThrow(/nope/);
    await expect(s.closed).rejects.toThrow(/nope/);
  });
});

describe('page-backed session proxy (native WebTransport)', () => {
  it('native WebTransport to a port where nothing listens: ready and closed reject with a session error', async () => {
    // A UDP port that was just free: QUIC packets get ICMP port unreachable.
    const sock = createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    const port = sock.address().port;
    await new Promise<void>((r) => sock.close(() => r()));
    const s = openBrowserSession(page, {
      kind: 'webtransport',
      url: `https://127.0.0.1:${port}/echo`,
      options: {
        serverCertificateHashes: [{ algorithm: 'sha-256', value: new Uint8Array(32) }],
        connectTimeoutMs: 10_000,
      },
    });
    sessions.push(s);
    expect(s.transport).toBe('webtransport');
    const err = await s.ready.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(QuiverTransportError);
    expect(err).toMatchObject({ source: 'session' });
    await expect(s.closed).rejects.toBeInstanceOf(QuiverTransportError);
  });
});

describe('cleanup', () => {
  it('a closed page fails the session and its streams instead of hanging', async () => {
    const p2 = await browser.newPage(server.url);
    const s = openBrowserSession(p2, { kind: 'module', url: 'https://echo.test/', module: ECHO });
    await s.ready;
    const bidi = await s.createBidirectionalStream();
    const reader = bidi.readable.getReader();
    const pendingRead = reader.read().then(
      () => undefined,
      (e: unknown) => e,
    );
    await p2.close();
    await expect(s.closed).rejects.toMatchObject({ source: 'session' });
    expect(await pendingRead).toBeInstanceOf(QuiverTransportError);
    await expect(s.createUnidirectionalStream()).rejects.toBeInstanceOf(QuiverTransportError);
  });
});
