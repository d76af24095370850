import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { QuiverTransportError } from '@quiver/transport';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  type LaunchedFirefox,
  launchFirefox,
  openBrowserSession,
  type StaticServer,
  serveStatic,
} from '../src/index.js';

const ECHO = { entry: join(import.meta.dirname, 'fixtures/echo-session.ts') };
const enc = new TextEncoder();
const dec = new TextDecoder();

let firefox: LaunchedFirefox;
let server: StaticServer;

beforeAll(async () => {
  server = await serveStatic();
  firefox = await launchFirefox();
});

afterAll(async () => {
  await firefox?.close();
  await server?.close();
  expect(existsSync(firefox.userDataDir)).toBe(false);
});

it('Firefox over WebDriver BiDi: a secure context with native WebTransport', async () => {
  const page = await firefox.newPage(server.url);
  expect(firefox.version).toMatch(/firefox/i);
  expect(await page.evaluate('[isSecureContext, typeof WebTransport, typeof WebTransportError]')).toEqual([
    true,
    'function',
    'function',
  ]);
  await page.close();
});

it('the session proxy works in Firefox too (streams, reset codes, datagrams, close)', async () => {
  const page = await firefox.newPage(server.url);
  const s = openBrowserSession(page, { kind: 'module', url: 'https://echo.test/', module: ECHO });
  await s.ready;
  expect(s.transport).toBe('echo');

  const bidi = await s.createBidirectionalStream();
  const w = bidi.writable.getWriter();
  await w.write(enc.encode('fire'));
  await w.write(enc.encode('fox'));
  await w.close();
  const parts: Uint8Array[] = [];
  const reader = bidi.readable.getReader();
  for (let r = await reader.read(); !r.done; r = await reader.read()) parts.push(r.value);
  expect(dec.decode(Buffer.concat(parts))).toBe('firefox');

  const reset = await s.createBidirectionalStream();
  const rw = reset.writable.getWriter();
  await rw.abort(new QuiverTransportError('x', { streamErrorCode: 1234 }));
  await expect(reset.readable.getReader().read()).rejects.toMatchObject({
    streamErrorCode: 1234,
    source: 'stream',
  });

  const dw = s.datagrams.writable.getWriter();
  await dw.write(enc.encode('ping'));
  const dr = s.datagrams.readable.getReader();
  expect(dec.decode((await dr.read()).value)).toBe('ping');

  s.close({ closeCode: 3, reason: 'ff' });
  await expect(s.closed).resolves.toEqual({ closeCode: 3, reason: 'ff' });
  await page.close();
});
