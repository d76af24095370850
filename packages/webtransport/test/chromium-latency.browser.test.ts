/**
 * Client-to-server queueing from headless Chromium's native `WebTransport` to the Node listener.
 *
 * The page sends a sequenced 64-byte datagram and a sequenced 2 KiB message on one long-lived bidirectional
 * stream at 60 Hz for 10 s; the echo server returns both. Once a second the page samples how far the echoes lag
 * behind what it sent: for datagrams the distance from the last sequence sent to the highest one echoed (lost
 * datagrams do not inflate it), for the stream the messages written but not yet echoed. A server whose ACKs are
 * late (Chromium's congestion controller and pacing then hold its packets back) or which extends flow-control
 * credit late (RFC 9000 §4.2: 1.2 MB here crosses the 1 MiB initial stream window, so MAX_STREAM_DATA must be
 * sent while the stream is in use) shows as a lag that grows second after second; a healthy one keeps it at a
 * few messages. The bound is a count, not a time: it holds on a loaded machine, the growing queue does not.
 */
import { launchChromium } from '@quiver/testkit';
import { describe, expect, it } from 'vitest';
import { useEchoRig } from './browser-echo.js';

/** Messages the echo may lag behind at a sample: about half a second at 60 Hz. */
const MAX_LAG = 30;

describe('Chromium WebTransport client-to-server queueing against the Node listener', () => {
  const rig = useEchoRig(launchChromium);

  it('keeps datagram and stream echoes from falling behind at 60 Hz for 10 s', async () => {
    const { listener, cert, page } = rig;
    const url = `https://127.0.0.1:${listener.address.port}/echo`;
    const r = await page.evaluate(
      async ({ url, hash }) => {
        const wt = new WebTransport(url, {
          serverCertificateHashes: [{ algorithm: 'sha-256', value: new Uint8Array(hash) }],
        });
        await wt.ready;
        const MSG = 2048;
        let dgSent = -1;
        let dgEchoHigh = -1;
        let dgEchoed = 0;
        let stSent = 0;
        let stEchoed = 0;
        let stIntact = true;

        const dw = wt.datagrams.writable.getWriter();
        const dr = wt.datagrams.readable.getReader();
        const readingDatagrams = (async () => {
          for (;;) {
            const { value, done } = await dr.read().catch(() => ({ value: undefined, done: true as const }));
            if (done || !value) return;
            const seq = new DataView(value.buffer, value.byteOffset, value.byteLength).getUint32(0);
            dgEchoed++;
            if (seq > dgEchoHigh) dgEchoHigh = seq;
          }
        })();

        const bidi = await wt.createBidirectionalStream();
        const sw = bidi.writable.getWriter();
        const sr = bidi.readable.getReader();
        const readingStream = (async () => {
          // Echoed bytes arrive in arbitrary chunks: count whole messages and check each carries its number.
          let pending = new Uint8Array(0);
          for (;;) {
            const { value, done } = await sr.read();
            if (done) return;
            const joined = new Uint8Array(pending.length + value.length);
            joined.set(pending);
            joined.set(value, pending.length);
            let off = 0;
            while (joined.length - off >= MSG) {
              const seq = new DataView(joined.buffer, off, 4).getUint32(0);
              if (seq !== stEchoed || joined[off + MSG - 1] !== (seq & 0xff)) stIntact = false;
              stEchoed++;
              off += MSG;
            }
            pending = joined.slice(off);
          }
        })();

        const samples: { dgLag: number; stLag: number }[] = [];
        const start = performance.now();
        let nextSample = start + 1000;
        let writeFailed = false;
        while (performance.now() - start < 10_000) {
          const d = new Uint8Array(64);
          new DataView(d.buffer).setUint32(0, ++dgSent);
          // Not awaited: a datagram the browser cannot send is dropped, it must not pace the sender.
          dw.write(d).catch(() => {});
          const m = new Uint8Array(MSG);
          new DataView(m.buffer).setUint32(0, stSent);
          m[MSG - 1] = stSent & 0xff;
          stSent++;
          sw.write(m).catch(() => {
            writeFailed = true;
          });
          await new Promise((res) => setTimeout(res, 16));
          if (performance.now() >= nextSample) {
            samples.push({ dgLag: dgSent - dgEchoHigh, stLag: stSent - stEchoed });
            nextSample += 1000;
          }
        }
        await sw.close();
        await readingStream;
        wt.close({ closeCode: 0, reason: 'done' });
        await wt.closed.catch(() => {});
        await readingDatagrams;
        return { samples, dgSent: dgSent + 1, dgEchoed, stSent, stEchoed, stIntact, writeFailed };
      },
      { url, hash: [...cert.hash] },
    );
    // Enough seconds were sampled for a growing queue to show.
    expect(r.samples.length).toBeGreaterThanOrEqual(8);
    const lags = r.samples.map((s) => Math.max(s.dgLag, s.stLag));
    expect(
      lags.every((l) => l <= MAX_LAG),
      `lag per second: ${JSON.stringify(r.samples)}`,
    ).toBe(true);
    // The reliable side: every message came back, in order and intact, and none was refused.
    expect(r.writeFailed).toBe(false);
    expect(r.stEchoed).toBe(r.stSent);
    expect(r.stIntact).toBe(true);
    // Datagrams are unreliable, but on loopback nearly all must come back.
    expect(r.dgEchoed).toBeGreaterThan(r.dgSent * 0.9);
    // Nothing Chromium sent was refused by the endpoint.
    expect(listener.counters.droppedMalformed).toBe(0);
  });
});
