/**
 * Chromium's net-log of one WebTransport session against a listener on the given engine, reduced to the events
 * that show when the extended CONNECT leaves relative to the client's handshake and the server's SETTINGS.
 *
 *   npx tsx --conditions=quiver-source scripts/quinn-netlog.ts [quinn|quiche] [out.json]
 *
 * Prints one line per event (ms since the QUIC session started, event name, phase) and writes the raw net-log.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { ensureDevCertificate } from '@quiver/devcert';
import { launchChromium } from '@quiver/testkit';
import { createWebTransportListener, type EngineName } from '@quiver/webtransport';

const engine = (process.argv[2] ?? 'quinn') as EngineName;
const out = process.argv[3] ?? `/tmp/quiver-netlog-${engine}.json`;
const cert = await ensureDevCertificate();
const listener = await createWebTransportListener({ cert: cert.certPem, key: cert.keyPem, engine });
void (async () => {
  for await (const inc of listener.incomingSessions) inc.accept();
})();
const http = createServer((_req, res) => res.end('<!doctype html><title>netlog</title>'));
await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
const httpPort = (http.address() as { port: number }).port;
const chromium = await launchChromium({
  args: [`--log-net-log=${out}`, '--net-log-capture-mode=Everything'],
});
const page = await chromium.newPage(`http://127.0.0.1:${httpPort}/`);
const hash = Array.from(cert.hash);
const readyMs = await page.evaluate(
  async ({ port, h }: { port: number; h: number[] }) => {
    const t0 = performance.now();
    const wt = new WebTransport(`https://127.0.0.1:${port}/netlog`, {
      serverCertificateHashes: [{ algorithm: 'sha-256', value: new Uint8Array(h) }],
    });
    await wt.ready;
    const ms = performance.now() - t0;
    wt.close();
    return ms;
  },
  { port: listener.address.port, h: hash },
);
await chromium.close();
await listener.close();
http.close();

interface NetLog {
  constants: { logEventTypes: Record<string, number>; logEventPhase: Record<string, number> };
  events: {
    type: number;
    time: string;
    phase: number;
    source: { id: number; type: number };
    params?: unknown;
  }[];
}
const log = JSON.parse(readFileSync(out, 'utf8')) as NetLog;
const names = new Map(Object.entries(log.constants.logEventTypes).map(([k, v]) => [v, k]));
const phases = new Map(Object.entries(log.constants.logEventPhase).map(([k, v]) => [v, k]));
const interesting =
  /CRYPTO_FRAME|HANDSHAKE_DONE|STREAM_FRAME_SENT$|STREAM_FRAME_RECEIVED$|PACKET_SENT$|PACKET_RECEIVED$|SESSION_READY/;
// Chromium logs the QUIC session's events under the WebTransport client's source.
const first = log.events.find((e) => names.get(e.type) === 'QUIC_SESSION_CRYPTO_FRAME_SENT');
const start = first ? Number(first.time) : 0;
console.log(`engine ${engine}: page saw ready after ${readyMs.toFixed(1)} ms; net-log ${out}`);
for (const e of log.events) {
  const name = names.get(e.type) ?? String(e.type);
  if (!first || e.source.id !== first.source.id || !interesting.test(name)) continue;
  const p = e.params ? JSON.stringify(e.params).slice(0, 140) : '';
  console.log(
    `${(Number(e.time) - start).toString().padStart(5)} ms  ${name} ${phases.get(e.phase) ?? ''} ${p}`,
  );
}
