import { ensureDevCertificate } from '@quiver/devcert';
import { createWebTransportListener } from '@quiver/webtransport';
import { launchFirefox, serveStatic } from './src/index.js';
const cert = await ensureDevCertificate();
const l = await createWebTransportListener({ host: '127.0.0.1', port: 0, cert: cert.certPem, key: cert.keyPem });
(async () => { const r = l.incomingSessions.getReader(); for (;;) { const { value, done } = await r.read(); if (done) break; const s = value.accept();
  (async () => { const ir = s.incomingBidirectionalStreams.getReader(); for (;;) { const { value: st, done } = await ir.read(); if (done) break;
    const w = st.writable.getWriter(); let n = 0;
    for (;;) { try { await w.write(new Uint8Array(1024)); n++; } catch (e) { console.log('server write failed after', n, e); break; } await new Promise(r => setTimeout(r, 5)); if (n > 600) { console.log('no stop after 600'); break; } }
  } })().catch(e => console.log('acc err', e)); } })();
const site = await serveStatic();
const b = await launchFirefox();
const page = await b.newPage(site.url);
const res = await page.evaluate(`(async () => {
  const wt = new WebTransport('https://127.0.0.1:${l.address.port}/x', { serverCertificateHashes: [{ algorithm: 'sha-256', value: new Uint8Array(${JSON.stringify([...cert.hash])}) }] });
  await wt.ready;
  const s = await wt.createBidirectionalStream();
  const w = s.writable.getWriter(); await w.write(new Uint8Array(1));
  const r = s.readable.getReader(); await r.read();
  const out = [];
  try { await r.cancel(new WebTransportError({ message: 'stop', streamErrorCode: 9 })); out.push('cancel ok'); } catch (e) { out.push('cancel failed ' + e); }
  await new Promise(r => setTimeout(r, 5000));
  wt.close();
  return out;
})()`);
console.log(res);
await b.close(); await site.close(); await l.close();
