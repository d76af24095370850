/**
 * The session in a dedicated Worker (`@quiver/session/worker` + `/worker-host`) in real Chromium and Firefox,
 * against a Node session server on WebTransport and WebSocket: the race (and its fallback) runs in the Worker,
 * messages cross in both directions, and the Worker keeps the session alive while the page's main thread is blocked.
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
import type { WorkerRunConfig } from './fixtures/worker-client.js';

const Chat = defineMessage<string>('chat');
const Bytes = defineMessage<Uint8Array>('bytes', { channel: 'unreliable' });

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
  server = createSessionServer({ listeners: [wt, ws], messages: [Chat, Bytes] });
  server.on(Chat, (m, s) => s.send(Chat, `echo over ${s.transport}: ${m}`));
  server.on(Bytes, (b, s) =>
    s.send(
      Bytes,
      Uint8Array.from(b, (x) => x * 10),
    ),
  );
  // A UDP port that swallows everything: WebTransport pointed at it never answers.
  silent = createSocket('udp4');
  await new Promise<void>((r) => silent.bind(0, '127.0.0.1', r));
  const bundle = (name: string) =>
    bundleForBrowser(fileURLToPath(new URL(`./fixtures/${name}.ts`, import.meta.url)));
  site = await serveStatic({
    routes: { '/client.js': await bundle('worker-client'), '/worker.js': await bundle('worker-host') },
  });
});

afterAll(async () => {
  for (const b of browsers) await b.close();
  await server?.close();
  await wt?.close();
  await ws?.close();
  await site?.close();
  silent?.close();
});

type Result = {
  transport: string;
  attempts: { name: string; outcome: string }[];
  echo: string;
  bytes: number[];
  latestChat: string;
  rtt: number;
  clockError: number;
  serverTimeMinusNow: number;
  pingsBefore: number;
  pingsAfter: number;
  mainThreadDelayMax: number;
  mainThreadDelaySamples: number;
  remembered: string | null;
  webtransportError: string | null;
  stateBeforeClose: string;
  stateAfterClose: string;
};

async function runInPage(launch: () => Promise<Browser>, cfg: Partial<WorkerRunConfig>): Promise<Result> {
  const browser = await launch();
  browsers.push(browser);
  const page = await browser.newPage(site.url);
  const full: WorkerRunConfig = {
    workerUrl: `${site.url}worker.js`,
    wtUrl: `https://127.0.0.1:${wt.address.port}/quiver`,
    wsUrl: `ws://127.0.0.1:${ws.address.port}/quiver`,
    hash: [...cert.hash],
    ...cfg,
  };
  // A string, not a function: vitest would rewrite a function's dynamic import for Node.
  return (await page.evaluate(
    `(async () => (await import('${site.url}client.js')).run(${JSON.stringify(full)}))()`,
  )) as Result;
}

function expectWorking(r: Result, transport: string) {
  expect(r.transport).toBe(transport);
  expect(r.echo).toBe(`echo over ${transport}: from the page`);
  expect(r.latestChat).toBe(r.echo);
  // A byte payload crossed both ways (transferred from the Worker) and is still a Uint8Array on the page.
  expect(r.bytes).toEqual([10, 20, 30, 1]);
  expect(r.clockError).toBeLessThan(Number.POSITIVE_INFINITY);
  expect(Number.isFinite(r.serverTimeMinusNow)).toBe(true);
  expect(r.mainThreadDelaySamples).toBeGreaterThan(0);
  expect(r.stateBeforeClose).toBe('open');
  expect(r.stateAfterClose).toBe('closed');
}

for (const [browserName, launch] of [
  ['Chromium', launchChromium],
  ['Firefox', launchFirefox],
] as const) {
  describe(`session in a Worker, ${browserName}`, () => {
    it('connects over WebTransport from the Worker even where the page has no WebTransport', async () => {
      const r = await runInPage(launch, { removeWebTransportFromPage: true });
      expectWorking(r, 'webtransport');
      expect(r.attempts).toEqual([
        { name: 'webtransport', outcome: 'won' },
        { name: 'websocket', outcome: 'skipped' },
      ]);
      expect(r.remembered).toBe('webtransport');
    });

    it('keeps pinging while the page main thread is blocked, and reports how long the page kept it waiting', async () => {
      const r = await runInPage(launch, { blockMs: 1000 });
      expectWorking(r, 'webtransport');
      // Heartbeats every 100 ms went on in the Worker during the 1 s block.
      expect(r.pingsAfter - r.pingsBefore).toBeGreaterThanOrEqual(3);
      // Reports posted during the block waited for the main thread.
      expect(r.mainThreadDelayMax).toBeGreaterThanOrEqual(500);
    });

    it('falls back to WebSocket when WebTransport points at a port that never answers', async () => {
      const r = await runInPage(launch, { wtUrl: `https://127.0.0.1:${silent.address().port}/quiver` });
      expectWorking(r, 'websocket');
      expect(r.attempts).toEqual([
        { name: 'webtransport', outcome: 'lost-race' },
        { name: 'websocket', outcome: 'won' },
      ]);
      expect(r.webtransportError).toMatch(/^no response within \d+ ms; websocket won$/);
      // The Worker's race wrote its winner into the page's localStorage.
      expect(r.remembered).toBe('websocket');
    });
  });
}
