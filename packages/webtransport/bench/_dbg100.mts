import { ensureDevCertificate } from '@quiver/devcert';
import { launchChromium, launchFirefox, serveStatic } from '@quiver/testkit';
import { createWebTransportListener } from '@quiver/webtransport';
import { serveEcho } from '../examples/echo.ts';
import { WtConnection } from '../src/node/wt-connection.ts';
import { QuicConnection } from '../src/node/quic-connection.ts';
const log: string[] = []; const finlog: string[] = [];
const P: any = WtConnection.prototype;
const od = P.dispatch; P.dispatch = function (e: any) { if (e.streamId === 4 || e.type.startsWith('session')) log.push('ev ' + JSON.stringify({ ...e, data: e.data?.length, headers: undefined })); return od.call(this, e); };
const oa = P.apply; P.apply = function (cmds: any[]) { for (const c of cmds) if (c.streamId === 4) log.push('cmd ' + JSON.stringify({ ...c, data: c.data?.length, code: String(c.code) })); return oa.call(this, cmds); };
const Q: any = QuicConnection.prototype;
const osd = Q.onStreamData;

const c = await ensureDevCertificate();
const l = await createWebTransportListener({ cert: c.certPem, key: c.keyPem });
const sessions: any[] = [];
(async () => { const r = l.incomingSessions.getReader(); for (;;) { const { value, done } = await r.read(); if (done) return; const s = value.accept(); sessions.push(s);
  if (process.env.MODE === 'echo') serveEcho(s); else (async () => { const rr = s.incomingBidirectionalStreams.getReader(); for (;;) { const { value: bs, done } = await rr.read(); if (done) return; (async () => {
    const chunks: Uint8Array[] = []; const r2 = bs.readable.getReader(); for (;;) { const { value: v, done: d } = await r2.read(); if (d) break; chunks.push(v); }
    const w2 = bs.writable.getWriter(); const all = Buffer.concat(chunks);
    if (process.env.MODE === 'sepfin') { await w2.write(all); await new Promise(r => setTimeout(r, 20)); const q: any = (s as any).conn.quic; const sentBefore = q.endpoint.counters.packetsSent; const id = [...(s as any).streams.keys()].find((k: number) => (s as any).streams.get(k).writable === bs.writable); await w2.close(); let st = 'open'; try { q.conn.streamCapacity(id); } catch (e) { st = (e as Error).message; } finlog.push(`${id}:${q.endpoint.counters.packetsSent - sentBefore}:${st}`); }
    else { w2.write(all); await w2.close(); }
  })().catch(e => console.log('echo err', e.message)); } })(); } })();
const site = await serveStatic(); const b = process.env.FF ? await launchFirefox() : await launchChromium(); const page = await b.newPage(site.url);
for (let round = 0; round < Number(process.env.ROUNDS ?? 8); round++) {
  const res = page.evaluate(async ({ url, hash }) => {
    const wt = new WebTransport(url, { serverCertificateHashes: [{ algorithm: 'sha-256', value: new Uint8Array(hash) }] });
    await wt.ready;
    const done = new Array(100).fill(false); const stage = new Array(100).fill('');
    const to = new Promise(r => setTimeout(() => r('timeout'), 8000));
    const all = Promise.all(Array.from({ length: 100 }, async (_, i) => {
      stage[i] = 'creating';
      const s = await wt.createBidirectionalStream();
      stage[i] = 'writing';
      const data = new Uint8Array(1000 + i * 97).fill(i);
      const w = s.writable.getWriter(); const wp = (async () => { await w.write(data); await w.close(); })();
      stage[i] = 'reading'; let n = 0; const rd = s.readable.getReader(); for (;;) { const { value, done } = await rd.read(); if (done) break; n += value.length; stage[i] = 'reading ' + n; }
      stage[i] = 'wp ' + n; await wp; done[i] = true; return n;
    }));
    const r = await Promise.race([all, to]);
    const pending = done.map((d, i) => d ? -1 : i).filter(i => i >= 0);
    wt.close();
    return { r: r === 'timeout' ? 'timeout' : 'ok', pending, stages: pending.slice(0, 5).map(i => stage[i]) };
  }, { url: `https://127.0.0.1:${l.address.port}/echo`, hash: [...c.hash] });
  const out = await res;
  if (out.r !== 'timeout') log.length = 0;
  console.log('round', round, out.r, out.pending.length, out.pending.slice(0, 10));
  if (out.r === 'timeout') {
    const s = sessions[sessions.length - 1];
    const conn = s.conn; const q = conn.quic as any;
    console.log(log.slice(-40).join('\n'), out.stages); console.log('finlog', finlog.slice(0, 8), finlog.length);
    try { console.log('cap4', q.conn.streamCapacity(4)); } catch (e) { console.log('cap4 err', (e as Error).message); }
    console.log('stats', q.conn.stats().sent, q.conn.stats().recv, q.conn.pathStats()[0].cwnd, 'send now', q.conn.send(Buffer.alloc(1500)));
    console.log('server streams', s.streams.size, 'pendingSend', [...q.pendingSend], 'readPaused', [...q.readPaused], 'sends', q.sends.size);
    console.log('quic readable', [...q.conn.readable()], 'writable count', [...q.conn.writable()].length, 'stats', q.conn.stats().lost, 'timeout', q.conn.timeout());
    for (const [id, st] of s.streams) { if (id % 4 === 0) console.log('stream', id, (st as any).readDone, (st as any).writeDone, q.conn.streamFinished(id)); }
    break;
  }
}
await b.close(); await site.close(); await l.close();
