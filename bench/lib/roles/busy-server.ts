/**
 * The browser-busy suite's server agent: an HTTPS server for the page and its bundles, and a session server on
 * WebTransport that echoes probes and records when each input arrives (epoch ms, the same clock as the page's).
 */
import https from 'node:https';
import { createSessionServer, type SessionServer } from '@quiver/session';
import type { TransportListener } from '@quiver/transport';
import { createWebTransportListener } from '@quiver/webtransport';
import { DgramEcho, Input, MESSAGES, ReliableEcho } from '../busy/messages.js';

export interface BusyServerOptions {
  host: string;
  certPem: string;
  keyPem: string;
  /** Path to body: `/` (the page), `/page.js`, `/worker.js`. */
  files: Record<string, string>;
}

let server: SessionServer | undefined;
let wt: TransportListener | undefined;
let site: https.Server | undefined;
/** Input latencies (arrival minus the page's send time) by mode, 0 main, 1 worker. */
const inputs: [number[], number[]] = [[], []];

export async function startBusyServer(o: BusyServerOptions): Promise<{ https: number; wt: number }> {
  wt = await createWebTransportListener({ host: o.host, port: 0, cert: o.certPem, key: o.keyPem });
  server = createSessionServer({ listeners: [wt], messages: MESSAGES });
  // Stamped with the arrival here, so the page can split each round trip into its way up and its way down.
  server.on(DgramEcho, (p, s) => s.send(DgramEcho, { ...p, a: performance.timeOrigin + performance.now() }));
  server.on(ReliableEcho, (p, s) =>
    s.send(ReliableEcho, { ...p, a: performance.timeOrigin + performance.now() }),
  );
  server.on(Input, (p) => inputs[p.m === 1 ? 1 : 0].push(performance.timeOrigin + performance.now() - p.t));
  site = https.createServer({ cert: o.certPem, key: o.keyPem }, (req, res) => {
    const body = o.files[(req.url ?? '/').split('?')[0]];
    if (body === undefined) {
      res.writeHead(404).end();
      return;
    }
    const type = req.url === '/' ? 'text/html; charset=utf-8' : 'text/javascript; charset=utf-8';
    res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' }).end(body);
  });
  const s = site;
  await new Promise<void>((r) => s.listen(0, o.host, r));
  return { https: (s.address() as { port: number }).port, wt: wt.address.port };
}

/** The input latencies recorded for `mode` since the last call. */
export function takeInputs(mode: 0 | 1): number[] {
  const out = inputs[mode];
  inputs[mode] = [];
  return out;
}

export async function stopBusyServer(): Promise<void> {
  await server?.close();
  await wt?.close();
  site?.closeAllConnections();
  await new Promise<void>((r) => (site ? site.close(() => r()) : r()));
}
