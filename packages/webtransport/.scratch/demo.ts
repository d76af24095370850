import { launchChromium } from '@quiver/testkit';
import { createDemoServer } from '../../../demo/src/server/app.js';
import { QuicConnection } from '../src/node/quic-connection.js';
const srvLog = new Map<string, number>();
const P = QuicConnection.prototype as any;
const origRD = P.readDatagrams;
P.readDatagrams = function (this: any) {
  const h = this.handler;
  if (h && !h.__w) { const o = h.onDatagram.bind(h); h.onDatagram = (d: Uint8Array) => { srvLog.set(Buffer.from(d.subarray(1)).toString('hex'), Date.now()); o(d); }; h.__w = 1; }
  return origRD.call(this);
};
const server = await createDemoServer({ host: '127.0.0.1', port: 0, webtransportPort: 0, bots: 4 });
const chromium = await launchChromium({ args: ['--log-net-log=/tmp/o/netlog.json', '--net-log-capture-mode=Everything'] });
const page = await chromium.newPage();
await page.setViewportSize({ width: 640, height: 360 });
await page.addInitScript(`(() => {
  const N = globalThis.WebTransport;
  globalThis.WebTransport = function (u, i) { const w = new N(u, i); globalThis.__wt = w;
    const log = (globalThis.__dlog = []);
    const wr = w.datagrams.writable; const gw = wr.getWriter.bind(wr);
    Object.defineProperty(w.datagrams, 'writable', { get: () => ({ getWriter: () => { const x = gw(); const ow = x.write.bind(x); x.write = (c) => { const e = [Array.from(c, (b) => b.toString(16).padStart(2, '0')).join(''), Date.now(), x.desiredSize, 0]; log.push(e); const p = ow(c); p.then(() => { e[3] = Date.now(); }, () => { e[3] = -1; }); return p; }; return x; } }) });
    return w; };
  globalThis.WebTransport.prototype = N.prototype;
})()`);
await page.goto(`${server.url}?transport=webtransport`);
await page.waitForFunction(() => (globalThis as any).__quiverDemo?.transport === 'webtransport' && (globalThis as any).__quiverDemo.welcome !== null, undefined, { timeout: 30000 });
const wt: any = server.app.quiverTransports.webtransport;
const out: string[] = [];
for (let i = 0; i < Number(process.env.SECS ?? 15); i++) {
  await new Promise((r) => setTimeout(r, 1000));
  const rtt = await page.evaluate(async () => { const g = globalThis as any; const s: any = undefined; return g.__quiverDemo.overlay('rttMs') + ' ' + JSON.stringify({ srtt: s?.smoothedRtt, min: s?.minRtt, ps: s?.packetsSent, pl: s?.packetsLost, d: s?.datagrams, c: g.__quiverDemo.counters }); });
  const c = wt.counters ?? {};
  const conns = [...(wt.endpoint?.connections ?? [])];
  const st = conns.map((q: any) => { const s = q.conn.stats(); const p = q.conn.pathStats()[0]; return `recv=${s.recv} sent=${s.sent} lost=${s.lost} retrans=${s.retrans} rtt=${p?.rtt} cwnd=${p?.cwnd} dgIn=${q.counters.datagramsReceived} dgOut=${q.counters.datagramsSent} rerr=${q.counters.recvErrors}`; });
  out.push(`${i}:${rtt} in=${c.packetsReceived} out=${c.packetsSent} ${st.join(' | ')}`);
  console.log(out[out.length - 1]);
}
const plog: [string, number][] = await page.evaluate(() => (globalThis as any).__dlog);
const lat: [number, number][] = [];
let missing = 0;
for (const [h, t] of plog) { const a = srvLog.get(h); if (a === undefined) missing++; else lat.push([t, a - t]); }
const t00 = plog[0]?.[1] ?? 0;
const bys = new Map<number, number[]>();
for (const [t, l] of lat) { const k = Math.floor((t - t00) / 1000); if (!bys.has(k)) bys.set(k, []); bys.get(k)!.push(l); }
const md = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
(await import('node:fs')).writeFileSync('/tmp/o/times.json', JSON.stringify({ plog: plog.map(([h, t, ds, tr]: any) => [h.length / 2, t, srvLog.get(h) ?? null, ds, tr]) }));
console.log('page->server one-way per second (median/max/count):', [...bys].map(([k, a]) => `${k}:${md(a)}/${Math.max(...a)}/${a.length}`).join(' '), 'missing', missing, 'written', plog.length);
await chromium.close();
await server.close();
process.exit(0);
