/**
 * Repro for the Chromium "closes from the server while data is in flight" flake: N sessions in one page, each
 * writing continuously on a bidi stream that the server echoes; the server closes the session with a code once
 * it has echoed enough. Counts how often the page's `closed` resolves with the code vs. rejects.
 *   npx tsx --conditions=quiver-source scripts/close-race.ts [n] [quinn|quiche]
 */
import { createServer } from 'node:http';
import { ensureDevCertificate } from '@quiver/devcert';
import { launchChromium } from '@quiver/testkit';
import { createWebTransportListener, type EngineName } from '@quiver/webtransport';

const n = Number(process.argv[2] ?? 20);
const engine = (process.argv[3] ?? 'quinn') as EngineName;
const cert = await ensureDevCertificate();
const listener = await createWebTransportListener({
  cert: cert.certPem,
  key: cert.keyPem,
  engine,
  host: '127.0.0.1',
  port: 0,
});
void (async () => {
  for await (const inc of listener.incomingSessions) {
    const s = inc.accept();
    s.closed.catch(() => {});
    void (async () => {
      const r = s.incomingBidirectionalStreams.getReader();
      const { value: st } = await r.read();
      if (!st) return;
      const rd = st.readable.getReader();
      const w = st.writable.getWriter();
      let got = 0;
      try {
        for (;;) {
          const { value, done } = await rd.read();
          if (done) break;
          await w.write(value);
          got += value.byteLength;
          if (got >= 4 * 65536) {
            s.close({ closeCode: 9, reason: 'server closed mid-flight' });
            break;
          }
        }
      } catch {}
    })().catch(() => {});
  }
})();
const http = createServer((_req, res) => res.end('<!doctype html><title>race</title>'));
await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
const httpPort = (http.address() as { port: number }).port;
const chromium = await launchChromium();
const page = await chromium.newPage(`http://127.0.0.1:${httpPort}/`);
const hash = Array.from(cert.hash);
const results: string[] = [];
for (let i = 0; i < n; i++) {
  const r = await page.evaluate(
    async ({ port, h }: { port: number; h: number[] }) => {
      const wt = new WebTransport(`https://127.0.0.1:${port}/race`, {
        serverCertificateHashes: [{ algorithm: 'sha-256', value: new Uint8Array(h) }],
      });
      await wt.ready;
      const s = await wt.createBidirectionalStream();
      const w = s.writable.getWriter();
      const rd = s.readable.getReader();
      const chunk = new Uint8Array(65536);
      void (async () => {
        for (;;) await w.write(chunk);
      })().catch(() => {});
      void (async () => {
        for (;;) {
          const x = await rd.read();
          if (x.done) break;
        }
      })().catch(() => {});
      return wt.closed.then(
        (info) => `ok ${info.closeCode}`,
        (e: Error) => `rejected ${e.message}`,
      );
    },
    { port: listener.address.port, h: hash },
  );
  results.push(r);
  process.stdout.write(`${r === 'ok 9' ? '.' : 'X'}`);
}
console.log();
const bad = results.filter((r) => r !== 'ok 9');
console.log(`engine ${engine}: ${bad.length} of ${n} not ok:`, [...new Set(bad)]);
await chromium.close();
await listener.close();
http.close();
