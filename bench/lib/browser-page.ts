/**
 * The page the browser suite loads from the server agent (HTTPS, same origin as the WSS endpoint). Plain
 * JavaScript in a string: Playwright's evaluate of functions compiled by tsx would carry esbuild helpers that do
 * not exist in the page. Probes use the layout of roles/wire.ts; times are the page's performance.now(), so only
 * round trips are measured here (the server's one-way figures are on another clock and ignored).
 */
export const BROWSER_PAGE = `<!doctype html>
<meta charset="utf-8"><title>quiver bench</title>
<script>
'use strict';
const HEADER = 16;
function probe(tag, seq, size) {
  const b = new Uint8Array(Math.max(HEADER, size));
  const v = new DataView(b.buffer);
  b[0] = tag; b[1] = 0; v.setUint16(2, b.length); v.setUint32(4, seq >>> 0); v.setFloat64(8, performance.now());
  return b;
}
function head(b, o) {
  const v = new DataView(b.buffer, b.byteOffset + o, HEADER);
  return { tag: b[o], len: v.getUint16(2), seq: v.getUint32(4), t: v.getFloat64(8) };
}
function deframer(on) {
  let buf = new Uint8Array(0);
  return (chunk) => {
    let b = chunk;
    if (buf.length) { b = new Uint8Array(buf.length + chunk.length); b.set(buf); b.set(chunk, buf.length); }
    let off = 0;
    while (b.length - off >= HEADER) {
      const len = (b[off + 2] << 8) | b[off + 3];
      if (b.length - off < len) break;
      on(b.subarray(off, off + len)); off += len;
    }
    buf = b.slice(off);
  };
}
function hashOf(hex) {
  const v = new Uint8Array(hex.length / 2);
  for (let i = 0; i < v.length; i++) v[i] = parseInt(hex.substr(i * 2, 2), 16);
  return [{ algorithm: 'sha-256', value: v }];
}
const timeout = (ms, what) => new Promise((_, rej) => setTimeout(() => rej(new Error(what + ' timed out')), ms));

// kind 'wt': new WebTransport, a bidirectional stream requested at once, one probe written at once.
// kind 'wss': new WebSocket, one probe sent on open.
async function setupOnce(kind, url, hashHex) {
  const t0 = performance.now();
  if (kind === 'wt') {
    const wt = new WebTransport(url, { serverCertificateHashes: hashOf(hashHex) });
    try {
      const readyP = wt.ready.then(() => performance.now() - t0);
      const echoP = (async () => {
        const s = await wt.createBidirectionalStream();
        const w = s.writable.getWriter();
        w.write(probe(200, 0, 32));
        const r = s.readable.getReader();
        let got = 0;
        while (got < 32) { const { value, done } = await r.read(); if (done) throw new Error('stream ended'); got += value.length; }
        return performance.now() - t0;
      })();
      const [readyMs, echoMs] = await Promise.race([Promise.all([readyP, echoP]), timeout(20000, 'wt setup')]);
      return { readyMs, echoMs };
    } finally {
      try { wt.close(); } catch {}
      await Promise.race([wt.closed.catch(() => {}), new Promise((r) => setTimeout(r, 2000))]);
    }
  }
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  try {
    const readyP = new Promise((res, rej) => { ws.onopen = () => res(performance.now() - t0); ws.onerror = () => rej(new Error('websocket error')); });
    const echoP = new Promise((res) => { ws.onmessage = () => res(performance.now() - t0); });
    readyP.then(() => ws.send(probe(200, 0, 32)), () => {});
    const [readyMs, echoMs] = await Promise.race([Promise.all([readyP, echoP]), timeout(20000, 'wss setup')]);
    return { readyMs, echoMs };
  } finally {
    await new Promise((r) => { if (ws.readyState === 3) return r(); ws.onclose = () => r(); ws.close(); setTimeout(r, 2000); });
  }
}

async function openChannel(c, deliver) {
  if (c.kind === 'wt-datagram') {
    const wt = new WebTransport(c.url, { serverCertificateHashes: hashOf(c.hashHex) });
    await Promise.race([wt.ready, timeout(20000, 'wt ready')]);
    const w = wt.datagrams.writable.getWriter();
    (async () => { const r = wt.datagrams.readable.getReader(); for (;;) { const { value, done } = await r.read(); if (done) break; deliver(value); } })().catch(() => {});
    return { send: (m) => { w.write(m).catch(() => {}); }, close: async () => { try { wt.close(); } catch {} } };
  }
  if (c.kind === 'wt-stream') {
    const wt = new WebTransport(c.url, { serverCertificateHashes: hashOf(c.hashHex) });
    await Promise.race([wt.ready, timeout(20000, 'wt ready')]);
    const s = await wt.createBidirectionalStream();
    const w = s.writable.getWriter();
    const d = deframer(deliver);
    (async () => { const r = s.readable.getReader(); for (;;) { const { value, done } = await r.read(); if (done) break; d(value); } })().catch(() => {});
    return { send: (m) => { w.write(m).catch(() => {}); }, close: async () => { try { wt.close(); } catch {} } };
  }
  const ws = new WebSocket(c.url);
  ws.binaryType = 'arraybuffer';
  await Promise.race([new Promise((res, rej) => { ws.onopen = res; ws.onerror = () => rej(new Error('websocket error')); }), timeout(20000, 'wss open')]);
  ws.onmessage = (e) => deliver(new Uint8Array(e.data));
  return { send: (m) => ws.send(m), close: async () => ws.close() };
}

window.bench = {
  async setup(kind, url, hashHex, count) {
    const samples = []; let failures = 0; let firstError;
    for (let i = 0; i < count; i++) {
      try { samples.push(await setupOnce(kind, url, hashHex)); }
      catch (e) { failures++; firstError = firstError || String(e && e.message || e); }
      await new Promise((r) => setTimeout(r, 20));
    }
    return { samples, failures, firstError };
  },
  // channels: [{ kind, url, hashHex, tag }]
  async latency(channels, hz, durationMs, size, graceMs) {
    // arrivals: flat [receivedAt, sentAt] pairs of echoes on the page clock, for round-trip state staleness.
    const out = channels.map((c) => ({ kind: c.kind, tag: c.tag, sent: 0, received: 0, rttMs: [], arrivals: [], firstSentAt: undefined, lastSentAt: undefined, error: undefined }));
    const open = [];
    for (const [i, c] of channels.entries()) {
      try {
        open.push(await openChannel(c, (m) => { const h = head(m, 0); if (h.tag !== c.tag) return; const now = performance.now(); out[i].received++; out[i].rttMs.push(now - h.t); out[i].arrivals.push(now, h.t); }));
      } catch (e) { out[i].error = String(e && e.message || e); open.push(undefined); }
    }
    const start = performance.now();
    let seq = 0;
    await new Promise((resolve) => {
      const tick = () => {
        const now = performance.now();
        if (now - start >= durationMs) return resolve();
        for (const [i, ch] of open.entries()) { if (!ch) continue; ch.send(probe(channels[i].tag, seq, size)); out[i].firstSentAt ??= now; out[i].lastSentAt = now; out[i].sent++; }
        seq++;
        setTimeout(tick, Math.max(0, start + seq * (1000 / hz) - performance.now()));
      };
      tick();
    });
    await new Promise((r) => setTimeout(r, graceMs));
    for (const ch of open) if (ch) await ch.close();
    return out;
  },
};
document.title = 'ready';
</script>`;
