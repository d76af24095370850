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

type Page = Awaited<ReturnType<Browser['newPage']>>;

/** Runs the client in one page once per config; a function in the list runs (in Node) between two runs. */
async function runInPage(
  launch: () => Promise<Browser>,
  cfgs: (Partial<RunConfig> | ((page: Page) => Promise<void>))[],
) {
  const browser = await launch();
  browsers.push(browser);
  const page = await browser.newPage(site.url);
  const results = [];
  for (const c of cfgs) {
    if (typeof c === 'function') {
      await c(page);
      continue;
    }
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
    webtransportError: string | null;
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
      { name: 'webtransport', outcome: 'lost-race' },
      { name: 'websocket', outcome: 'won' },
    ]);
    expect(first.webtransportError).toMatch(/^no response within \d+ ms; websocket won$/);
    expect(first.remembered).toBe('websocket');
    // localStorage remembered the winner for this origin: WebSocket goes first without a head start, and the
    // preferred WebTransport is raced alongside it (still blocked, so it loses again, recorded).
    expect(second.attempts).toEqual([
      { name: 'websocket', outcome: 'won' },
      { name: 'webtransport', outcome: 'lost-race' },
    ]);
    expect(second.webtransportError).toMatch(/^no response within \d+ ms; websocket won$/);
  });
});

describe('fallback in Chromium when the network unblocks', () => {
  it('gets WebTransport back on the same origin: raced alongside the remembered WebSocket, then first again', async () => {
    // One UDP port that first swallows everything, then (same port, same origin) answers WebTransport.
    const hole = createSocket('udp4');
    await new Promise<void>((r) => hole.bind(0, '127.0.0.1', r));
    const port = hole.address().port;
    const wtUrl = `https://127.0.0.1:${port}/quiver`;
    let wt2: TransportListener | undefined;
    const rememberedIn = async (page: Page) =>
      page.evaluate(
        `(JSON.parse(localStorage.getItem('quiver:transport:https://127.0.0.1:${port}') ?? 'null') ?? {}).name`,
      );
    try {
      const [blocked, unblocked, after] = await runInPage(launchChromium, [
        { wtUrl },
        async () => {
          hole.close();
          wt2 = await createWebTransportListener({
            host: '127.0.0.1',
            port,
            cert: cert.certPem,
            key: cert.keyPem,
          });
          server.addListener(wt2);
        },
        { wtUrl },
        async (page) => {
          // The race may have been won by either; a WebTransport that lost is followed and remembered once ready.
          for (let i = 0; i < 200 && (await rememberedIn(page)) !== 'webtransport'; i++) {
            await new Promise((r) => setTimeout(r, 25));
          }
        },
        { wtUrl },
      ]);
      expect(blocked.attempts).toEqual([
        { name: 'webtransport', outcome: 'lost-race' },
        { name: 'websocket', outcome: 'won' },
      ]);
      expect(blocked.remembered).toBe('websocket');
      // Either WebSocket is still remembered, goes first and WebTransport is raced alongside it (and wins, or loses
      // and is followed), or the first run's WebTransport attempt, still followed, already got through once the
      // port answered. Either way WebTransport is tried, never skipped.
      const tried = unblocked.attempts.find((a) => a.name === 'webtransport');
      expect(['won', 'lost-race']).toContain(tried?.outcome);
      if (unblocked.attempts[0].name === 'websocket') {
        expect(unblocked.attempts.map((a) => a.outcome).sort()).toEqual(['lost-race', 'won']);
      }
      expect(after.attempts).toEqual([
        { name: 'webtransport', outcome: 'won' },
        { name: 'websocket', outcome: 'skipped' },
      ]);
      expect(after.echo).toBe('echo over webtransport: from the page');
    } finally {
      if (wt2) {
        server.removeListener(wt2);
        await wt2.close();
      } else {
        try {
          hole.close();
        } catch {
          // closed in the step already
        }
      }
    }
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
      { name: 'webtransport', outcome: 'lost-race' },
      { name: 'websocket', outcome: 'won' },
    ]);
    expect(r.webtransportError).toMatch(/^no response within \d+ ms; websocket won$/);
  });
});
