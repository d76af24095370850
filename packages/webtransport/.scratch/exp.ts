import { ensureDevCertificate } from '@quiver/devcert';
import { launchChromium, serveStatic } from '@quiver/testkit';
import { createWebTransportListener } from '@quiver/webtransport';
import { serveEcho } from '../examples/echo.js';

const cert = await ensureDevCertificate();
const listener = await createWebTransportListener({ host: '127.0.0.1', port: 0, cert: cert.certPem, key: cert.keyPem });
void (async () => {
  const reader = listener.incomingSessions.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    const sess = value.accept();
    if (process.env.SERVER !== 'tick') { serveEcho(sess); continue; }
    void (async () => {
      let hi = -1;
      const reader = sess.datagrams.readable.getReader();
      const writer = sess.datagrams.writable.getWriter();
      const snap = new Uint8Array(Number(process.env.SNAP ?? 600));
      const iv = setInterval(() => {
        new DataView(snap.buffer).setInt32(0, hi);
        writer.write(snap.slice()).catch(() => {});
      }, 33);
      for (;;) {
        const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true as const }));
        if (done || !value) break;
        const q = new DataView(value.buffer, value.byteOffset).getUint32(0);
        if (q > hi) hi = q;
      }
      clearInterval(iv);
    })();
  }
})();
const site = await serveStatic();
const browser = await launchChromium(process.env.NETLOG ? { args: [`--log-net-log=${process.env.NETLOG}`, '--net-log-capture-mode=Everything'] } : {});
const page = await browser.newPage(site.url);
const url = `https://127.0.0.1:${listener.address.port}/echo`;
const secs = Number(process.env.SECS ?? 15);
const mode = process.env.MODE ?? 'dgram';
const t0 = Date.now();
await page.evaluate(({ b, cw, per }) => { (globalThis as any).BUSY = b; (globalThis as any).CW = cw; (globalThis as any).PER = per; }, { b: Number(process.env.BUSY ?? 0), cw: !!process.env.CW, per: Number(process.env.PER ?? 1) });
const res = await page.evaluate(
  async ({ url, hash, secs, mode }) => {
    const wt = new WebTransport(url, { serverCertificateHashes: [{ algorithm: 'sha-256', value: new Uint8Array(hash) }] });
    await wt.ready;
    const sent = new Map<number, number>();
    const rtts: [number, number][] = [];
    const start = performance.now();
    const busy = Number(location.hash.slice(1) || 0);
    const BUSY = (globalThis as any).BUSY ?? 0;
    if (BUSY > 0) (0, eval)(`(() => { const f = () => { const t = performance.now(); while (performance.now() - t < ${BUSY}) {} requestAnimationFrame(f); }; requestAnimationFrame(f); })()`);
    const outstandingAt: number[] = [];
    const res: number[] = []; const dss: number[] = [];
    if (mode === 'dgram') {
      const w = ((globalThis as any).CW ? (wt.datagrams as any).createWritable() : wt.datagrams.writable).getWriter();
      const r = wt.datagrams.readable.getReader();
      void (async () => {
        for (;;) {
          const { value, done } = await r.read();
          if (done) return;
          const seq = new DataView(value.buffer, value.byteOffset).getInt32(0);
          const s = sent.get(seq);
          if (s !== undefined) { rtts.push([s - start, performance.now() - s]); }
          for (const k of [...sent.keys()]) if (k <= seq) sent.delete(k);
        }
      })();
      let seq = 0;
      let nextSec = 1000;
      while (performance.now() - start < secs * 1000) {
        const b = new Uint8Array(64);
        new DataView(b.buffer).setUint32(0, seq);
        sent.set(seq, performance.now());
        seq++;
        if ((globalThis as any).PER > 1) for (let k = 1; k < (globalThis as any).PER; k++) { const b2 = new Uint8Array(64); new DataView(b2.buffer).setUint32(0, 0xfffffff0); w.write(b2); }
        const tw = performance.now(); const ds = w.desiredSize;
        w.write(b).then(() => { res.push(performance.now() - tw); dss.push(ds); });
        await new Promise((r) => setTimeout(r, 16));
        if (performance.now() - start >= nextSec) { outstandingAt.push(sent.size); nextSec += 1000; }
      }
      await new Promise((r) => setTimeout(r, 2000));
      res.sort((a, b) => a - b);
      return { sentN: seq, lost: sent.size, outstandingAt, rtts, resolve: [res[res.length >> 1], res[Math.floor(res.length * 0.9)], res[res.length - 1]], minDesired: Math.min(...dss) };
    } else {
      const bidi = await wt.createBidirectionalStream();
      const w = bidi.writable.getWriter();
      const r = bidi.readable.getReader();
      let buf: number[] = [];
      void (async () => {
        for (;;) {
          const { value, done } = await r.read();
          if (done) return;
          for (const x of value) buf.push(x);
          while (buf.length >= 16) {
            const seq = (buf[0] << 24) | (buf[1] << 16) | (buf[2] << 8) | buf[3];
            buf = buf.slice(16);
            const s = sent.get(seq);
            if (s !== undefined) { rtts.push([s - start, performance.now() - s]); sent.delete(seq); }
          }
        }
      })();
      let seq = 0;
      let nextSec = 1000;
      while (performance.now() - start < secs * 1000) {
        const b = new Uint8Array(16);
        new DataView(b.buffer).setUint32(0, seq);
        sent.set(seq, performance.now());
        seq++;
        w.write(b);
        await new Promise((r) => setTimeout(r, 16));
        if (performance.now() - start >= nextSec) { outstandingAt.push(sent.size); nextSec += 1000; }
      }
      await new Promise((r) => setTimeout(r, 2000));
      return { sentN: seq, lost: sent.size, outstandingAt, rtts };
    }
  },
  { url, hash: [...cert.hash], secs, mode },
);
const bySec = new Map<number, number[]>();
for (const [t, r] of res.rtts) { const s = Math.floor(t / 1000); if (!bySec.has(s)) bySec.set(s, []); bySec.get(s)!.push(r); }
const med = (a: number[]) => { const b = [...a].sort((x, y) => x - y); return b[Math.floor(b.length / 2)]; };
console.log(JSON.stringify({ mode, sent: res.sentN, lost: res.lost, outstandingAt: res.outstandingAt, resolve: (res as any).resolve, minDesired: (res as any).minDesired }));
console.log('median rtt per second:', [...bySec.entries()].map(([s, a]) => `${s}:${med(a).toFixed(1)}`).join(' '));
const conns = (listener as any);
console.log('elapsed', Date.now() - t0);
await browser.close();
await site.close();
await listener.close();
process.exit(0);
