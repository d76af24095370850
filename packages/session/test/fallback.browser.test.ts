/**
 * Automatic fallback in real Chromium: the page runs the session client (bundled for browsers, native WebTransport
 * through `nativeWebTransportConnector`, WebSocket through @quiver/websocket's browser entry) against a Node session
 * server listening on both transports.
 */
import { createSocket, type Socket } from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { ensureDevCertificate } from '@quiver/devcert';
import {
  bundleForBrowser,
  launchChromium,
  launchFirefox,
  type StaticServer,
  serveStatic,
} from '@quiver/testkit';
import type { TransportListener } from '@quiver/transport';
import { createWebTransportListener } from '@quiver/webtransport';
import { createWebSocketListener } from '@quiver/websocket';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSessionServer, defineMessage, type SessionServer } from '../src/index.js';
import type { RunConfig } from './fixtures/browser-client.js';

const Chat = defineMessage<string>('chat');

let server: SessionServer;
let wt: TransportListener;
let ws: TransportListener;
let site: StaticServer;
let silent: Socket;
let cert: Awaited<ReturnType<typeof ensureDevCertificate>>;
interface Browser {
  newPage(url: string): Promise<{ evaluate(expression: string): Promise<unknown> }>;
  close(): Promise<void>;
}
const browsers: Browser[] = [];

beforeAll(async () => {
  cert = await ensureDevCertificate();
  wt = await createWebTransportListener({ host: '127.0.0.1', port: 0, cert: cert.certPem, key: cert.keyPem });
  ws = await createWebSocketListener({ host: '127.0.0.1', port: 0 });
  server = createSessionServer({ listeners: [wt, ws], messages: [Chat] });
  server.on(Chat, (m, s) => s.send(Chat, `echo over ${s.transport}: ${m}`));
  // A UDP port that swallows everything: what a network blocking QUIC looks like.
  silent = createSocket('udp4');
  await new Promise<void>((r) => silent.bind(0, '127.0.0.1', r));
  const code = await bundleForBrowser(
    fileURLToPath(new URL('./fixtures/browser-client.ts', import.meta.url)),
  );
  site = await serveStatic({ routes: { '/client.js': code } });
});

afterAll(async () => {
  for (const b of browsers) await b.close();
  await server?.close();
  await wt?.close();
  await ws?.close();
  await site?.close();
  silent?.close();
});

async function runInPage(launch: () => Promise<Browser>, cfgs: Partial<RunConfig>[]) {
  const browser = await launch();
  browsers.push(browser);
  const page = await browser.newPage(site.url);
  const results = [];
  for (const c of cfgs) {
    const cfg: RunConfig = {
      wtUrl: `https://127.0.0.1:${wt.address.port}/quiver`,
      wsUrl: `ws://127.0.0.1:${ws.address.port}/quiver`,
      hash: [...cert.hash],
      ...c,
    };
    // A string, not a function: vitest would rewrite a function's dynamic import for Node.
    results.push(
      await page.evaluate(
        `(async () => (await import('${site.url}client.js')).run(${JSON.stringify(cfg)}))()`,
      ),
    );
  }
  return results as {
    transport: string;
    attempts: { name: string; outcome: string }[];
    echo: string;
    remembered: string | null;
  }[];
}

describe('fallback in Chromium', () => {
  it('chooses WebTransport when it works', async () => {
    const [r] = await runInPage(launchChromium, [{}]);
    expect(r.transport).toBe('webtransport');
    expect(r.attempts).toEqual([
      { name: 'webtransport', outcome: 'won' },
      { name: 'websocket', outcome: 'skipped' },
    ]);
    expect(r.echo).toBe('echo over webtransport: from the page');
    expect(r.remembered).toBe('webtransport');
  });

  it('falls back to WebSocket at once where WebTransport does not exist', async () => {
    const [r] = await runInPage(launchChromium, [{ removeWebTransport: true }]);
    expect(r.transport).toBe('websocket');
    expect(r.attempts).toEqual([
      { name: 'webtransport', outcome: 'unsupported' },
      { name: 'websocket', outcome: 'won' },
    ]);
    expect(r.echo).toBe('echo over websocket: from the page');
  });

  it('falls back to WebSocket when the certificate check fails', async () => {
    const [r] = await runInPage(launchChromium, [{ hash: new Array(32).fill(7) }]);
    expect(r.transport).toBe('websocket');
    expect(r.attempts).toEqual([
      { name: 'webtransport', outcome: 'failed' },
      { name: 'websocket', outcome: 'won' },
    ]);
  });

  it('falls back after the head start when UDP is silently dropped, then starts with the remembered winner', async () => {
    const blockedUrl = `https://127.0.0.1:${silent.address().port}/quiver`;
    const [first, second] = await runInPage(launchChromium, [{ wtUrl: blockedUrl }, { wtUrl: blockedUrl }]);
    expect(first.transport).toBe('websocket');
    expect(first.attempts).toEqual([
      { name: 'webtransport', outcome: 'cancelled' },
      { name: 'websocket', outcome: 'won' },
    ]);
    expect(first.remembered).toBe('websocket');
    // localStorage remembered the winner for this origin: WebSocket goes first and WebTransport is not even tried.
    expect(second.attempts).toEqual([
      { name: 'websocket', outcome: 'won' },
      { name: 'webtransport', outcome: 'skipped' },
    ]);
  });
});

describe('fallback in Firefox', () => {
  it('chooses WebTransport when it works', async () => {
    const [r] = await runInPage(launchFirefox, [{}]);
    expect(r.transport).toBe('webtransport');
    expect(r.attempts).toEqual([
      { name: 'webtransport', outcome: 'won' },
      { name: 'websocket', outcome: 'skipped' },
    ]);
    expect(r.echo).toBe('echo over webtransport: from the page');
  });

  it('falls back after the head start when UDP is silently dropped', async () => {
    const [r] = await runInPage(launchFirefox, [
      { wtUrl: `https://127.0.0.1:${silent.address().port}/quiver` },
    ]);
    expect(r.transport).toBe('websocket');
    expect(r.attempts).toEqual([
      { name: 'webtransport', outcome: 'cancelled' },
      { name: 'websocket', outcome: 'won' },
    ]);
  });
});
