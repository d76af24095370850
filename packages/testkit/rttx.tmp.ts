import { spawn } from 'node:child_process';
import { launchChromium, serveStatic } from '@quiver/testkit';
const srv = spawn('npx', ['tsx', '--conditions=quiver-source', 'packages/webtransport/examples/echo-server.ts', '--port', '0'], { cwd: '/work/main', stdio: ['ignore', 'pipe', 'inherit'] });
const line: string = await new Promise((r) => srv.stdout!.once('data', (d) => r(String(d))));
const info = JSON.parse(line.split('\n')[0]);
const site = await serveStatic();
const browser = await launchChromium();
const page = await browser.newPage((site as { url: string }).url);
const res = await page.evaluate(async ({ url, hash }: { url: string; hash: string }) => {
  const bytes = new Uint8Array(hash.match(/../g)!.map((h) => parseInt(h, 16)));
  const wt = new WebTransport(url, { serverCertificateHashes: [{ algorithm: 'sha-256', value: bytes }] });
  await wt.ready;
  const w = wt.datagrams.writable.getWriter();
  const r = wt.datagrams.readable.getReader();
  const sent = new Map<number, number>();
  const rtts: number[] = [];
  (async () => { for (;;) { const { value, done } = await r.read(); if (done) return; const id = new DataView(value.buffer, value.byteOffset).getUint32(0); const t = sent.get(id); if (t !== undefined) rtts.push(performance.now() - t); } })();
  for (let i = 0; i < 600; i++) { const b = new Uint8Array(64); new DataView(b.buffer).setUint32(0, i); sent.set(i, performance.now()); await w.write(b); await new Promise((res) => setTimeout(res, 16)); }
  await new Promise((res) => setTimeout(res, 500));
  // stream echo RTT
  const s = await wt.createBidirectionalStream(); const sw = s.writable.getWriter(); const sr = s.readable.getReader();
  const srt: number[] = [];
  for (let i = 0; i < 100; i++) { const t = performance.now(); await sw.write(new Uint8Array(32)); let got = 0; while (got < 32) { const { value } = await sr.read(); got += value!.byteLength; } srt.push(performance.now() - t); await new Promise((res) => setTimeout(res, 16)); }
  wt.close();
  const q = (a: number[], p: number) => { const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
  return { dgN: rtts.length, dgP50: q(rtts, 0.5), dgP99: q(rtts, 0.99), first10: rtts.slice(0, 10).map(Math.round), last10: rtts.slice(-10).map(Math.round), stP50: q(srt, 0.5), stP99: q(srt, 0.99), stLast: srt.slice(-5).map(Math.round) };
}, { url: info.url, hash: info.certificateHash });
console.log(JSON.stringify(res));
await browser.close(); await (site as { close(): Promise<void> }).close(); srv.kill('SIGTERM');
