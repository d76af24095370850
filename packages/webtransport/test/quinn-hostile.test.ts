/**
 * Hostile peers against the quinn engine's native code: malformed and Initial-looking garbage, a packet flood and
 * abandoned handshakes. The listener must not crash, must keep no state for garbage, must let abandoned handshakes
 * go at its idle timeout, must go on serving sessions, and must leave no thread, socket or handle behind once
 * closed. Skipped when the addon was not built (`npm run build:native`).
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { type DevCertificate, generateCertificate } from '@quiver/devcert';
import {
  availableEngines,
  connectWebTransport,
  createWebTransportListener,
  type WebTransportListener,
} from '@quiver/webtransport';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadQuinnAddon } from '../src/node/quinn-engine.js';

const quinn = (await availableEngines()).includes('quinn');

function threads(): number {
  const m = /^Threads:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : -1;
}

async function sendAll(port: number, packets: Uint8Array[]): Promise<void> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  for (let i = 0; i < packets.length; i++) {
    s.send(packets[i], port, '127.0.0.1');
    // Yield now and then so the socket's send queue drains.
    if (i % 256 === 255) await new Promise((r) => setImmediate(r));
  }
  await new Promise((r) => setTimeout(r, 50));
  await new Promise<void>((r) => s.close(() => r()));
}

/** An RFC 9000 §17.2.2 Initial header (QUIC v1) with a random DCID and undecryptable payload, padded to `len`. */
function fakeInitial(len: number): Uint8Array {
  const p = randomBytes(len);
  p[0] = 0xc3;
  p.writeUInt32BE(1, 1);
  p[5] = 8; // DCID length
  p[14] = 8; // SCID length
  p[23] = 0; // token length
  // Length varint (2 bytes) covering the rest.
  p.writeUInt16BE(0x4000 | (len - 26), 24);
  return p;
}

async function echoOnce(listener: WebTransportListener, cert: DevCertificate): Promise<string> {
  const s = connectWebTransport(`https://127.0.0.1:${listener.address.port}/echo`, {
    engine: 'quinn',
    serverCertificateHashes: [{ algorithm: 'sha-256', value: cert.hash }],
    connectTimeoutMs: 5000,
  });
  await s.ready;
  const w = s.datagrams.writable.getWriter();
  const r = s.datagrams.readable.getReader();
  await w.write(new TextEncoder().encode('still here'));
  const { value } = await r.read();
  s.close();
  await s.closed;
  return new TextDecoder().decode(value);
}

describe.skipIf(!quinn)('quinn engine under hostile input', () => {
  let cert: DevCertificate;
  let listener: WebTransportListener;
  let baseThreads: number;

  beforeAll(async () => {
    cert = await generateCertificate({ hosts: ['127.0.0.1'], validityDays: 10 });
    baseThreads = threads();
    listener = await createWebTransportListener({
      host: '127.0.0.1',
      cert: cert.certPem,
      key: cert.keyPem,
      engine: 'quinn',
      idleTimeoutMs: 1000,
    });
    void (async () => {
      for await (const inc of listener.incomingSessions) {
        const s = inc.accept();
        void (async () => {
          const r = s.datagrams.readable.getReader();
          const w = s.datagrams.writable.getWriter();
          for (;;) {
            const { value, done } = await r.read();
            if (done) break;
            await w.write(value);
          }
        })().catch(() => {});
      }
    })();
  });

  afterAll(async () => {
    await listener?.close();
  });

  it('drops malformed packets and Initial-looking garbage without keeping state', async () => {
    const before = listener.counters.packetsReceived;
    const packets: Uint8Array[] = [];
    for (let i = 0; i < 500; i++) packets.push(randomBytes(1 + (i % 1400)));
    for (let i = 0; i < 500; i++) packets.push(fakeInitial(1200 + (i % 200)));
    // Short-header packets for connection ids nobody issued.
    for (let i = 0; i < 500; i++) {
      const p = randomBytes(60);
      p[0] = 0x40 | (p[0] & 0x3f);
      packets.push(p);
    }
    packets.push(new Uint8Array(0));
    await sendAll(listener.address.port, packets);
    await expect
      .poll(() => listener.counters.packetsReceived - before, { timeout: 5000 })
      .toBeGreaterThan(1000);
    expect(listener.connectionCount).toBe(0);
    expect(await echoOnce(listener, cert)).toBe('still here');
  });

  it('survives a flood of 20 000 packets and serves a session after it', async () => {
    const before = listener.counters.packetsReceived;
    const junk = Array.from({ length: 20_000 }, (_, i) => (i % 2 ? fakeInitial(1200) : randomBytes(1200)));
    await sendAll(listener.address.port, junk);
    // Loopback may drop part of a flood in the kernel (socket buffer): what arrived was counted.
    await expect
      .poll(() => listener.counters.packetsReceived - before, { timeout: 10_000 })
      .toBeGreaterThan(1000);
    expect(listener.connectionCount).toBe(0);
    expect(await echoOnce(listener, cert)).toBe('still here');
  });

  it('lets abandoned handshakes go at the idle timeout', async () => {
    const addon = loadQuinnAddon()!;
    const params = Float64Array.from([1000, 1 << 20, 1 << 16, 16, 16, 65536, 65536, 1350, 0, 1 << 20, 64]);
    // 40 clients send their Initial and vanish (their sockets close before the handshake can complete).
    for (let i = 0; i < 40; i++) {
      const h = addon.createClient('0.0.0.0', params, null, false, true, () => {});
      addon.connect(h, '127.0.0.1', listener.address.port, '127.0.0.1');
      addon.kick(h);
      await new Promise((r) => setTimeout(r, 5));
      addon.closeEndpoint(h);
    }
    await expect.poll(() => listener.connectionCount, { timeout: 5000 }).toBeGreaterThan(0);
    // idleTimeoutMs 1000: the server forgets every one of them (RFC 9000 §10.1).
    await expect.poll(() => listener.connectionCount, { timeout: 10_000 }).toBe(0);
    expect(await echoOnce(listener, cert)).toBe('still here');
  });

  it('leaves no native thread or handle behind once closed', async () => {
    const resources = process.getActiveResourcesInfo().length;
    const l2 = await createWebTransportListener({
      host: '127.0.0.1',
      cert: cert.certPem,
      key: cert.keyPem,
      engine: 'quinn',
    });
    expect(threads()).toBeGreaterThan(baseThreads);
    await l2.close();
    await listener.close();
    // The listener of this file and l2 each had one I/O thread; clients' endpoints closed with their sessions.
    await expect.poll(() => threads(), { timeout: 5000 }).toBeLessThanOrEqual(baseThreads);
    expect(process.getActiveResourcesInfo().length).toBeLessThanOrEqual(resources);
  });
});
