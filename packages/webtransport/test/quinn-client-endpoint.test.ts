/**
 * The quinn engine's Node clients share one client endpoint (socket and I/O thread) per process and client
 * configuration: concurrent and consecutive connections use the same UDP port, and once the last connection is
 * gone the endpoint closes after its idle delay, leaving no thread behind and never holding the process open.
 * Skipped when the addon was not built (`npm run build:native`).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { type DevCertificate, generateCertificate } from '@quiver/devcert';
import type { QuiverSession } from '@quiver/transport';
import {
  availableEngines,
  connectWebTransport,
  createWebTransportListener,
  type WebTransportListener,
} from '@quiver/webtransport';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_ENDPOINT_IDLE_MS } from '../src/node/quinn-engine.js';

const quinn = (await availableEngines()).includes('quinn');

function threads(): number {
  const m = /^Threads:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : -1;
}

describe.skipIf(!quinn)('quinn engine: one shared client endpoint per process', () => {
  let cert: DevCertificate;
  let listener: WebTransportListener;
  const ports: number[] = [];

  beforeAll(async () => {
    cert = await generateCertificate({ hosts: ['127.0.0.1'], validityDays: 10 });
    listener = await createWebTransportListener({
      host: '127.0.0.1',
      cert: cert.certPem,
      key: cert.keyPem,
      engine: 'quinn',
    });
    void (async () => {
      for await (const inc of listener.incomingSessions) {
        ports.push(inc.request.remotePort);
        inc.accept();
      }
    })();
  });

  afterAll(async () => {
    await listener?.close();
  });

  const open = (): QuiverSession =>
    connectWebTransport(`https://127.0.0.1:${listener.address.port}/e`, {
      engine: 'quinn',
      serverCertificateHashes: [{ algorithm: 'sha-256', value: cert.hash }],
      connectTimeoutMs: 5000,
    });

  it('carries concurrent and consecutive connections on one socket and thread, then closes it', async () => {
    const before = threads();
    ports.length = 0;
    const a = open();
    const b = open();
    await Promise.all([a.ready, b.ready]);
    // One I/O thread for both clients (the listener's thread was there before).
    expect(threads()).toBe(before + 1);
    a.close();
    b.close();
    await Promise.all([a.closed, b.closed]);
    // The next connection, made within the idle delay, reuses the endpoint.
    const c = open();
    await c.ready;
    c.close();
    await c.closed;
    expect(ports).toHaveLength(3);
    expect(new Set(ports).size).toBe(1);
    // Once every connection is gone (closing periods included) the endpoint closes after its idle delay.
    await expect
      .poll(() => threads(), { timeout: CLIENT_ENDPOINT_IDLE_MS + 5000, interval: 100 })
      .toBe(before);
  });

  it('does not keep a process alive while it lingers without connections', () => {
    // A child process that makes one session and returns: it must exit at once, not after the idle delay.
    const script = `
      import { connectWebTransport, createWebTransportListener } from '@quiver/webtransport';
      const l = await createWebTransportListener({ host: '127.0.0.1', cert: process.env.C, key: process.env.K, engine: 'quinn' });
      void (async () => { for await (const inc of l.incomingSessions) inc.accept(); })();
      const s = connectWebTransport('https://127.0.0.1:' + l.address.port + '/e', {
        engine: 'quinn', serverCertificateHashes: [{ algorithm: 'sha-256', value: Buffer.from(process.env.H, 'hex') }],
      });
      await s.ready;
      s.close();
      await s.closed;
      // The client connection goes after its linger and closing period: the endpoint idles after this point.
      globalThis.t0 = performance.now();
      await l.close();
      process.on('exit', () => console.log('exit after ' + Math.round(performance.now() - globalThis.t0)));
    `;
    const out = execFileSync(
      process.execPath,
      ['--conditions=quiver-source', '--import', 'tsx', '--input-type=module', '-e', script],
      {
        env: { ...process.env, C: cert.certPem, K: cert.keyPem, H: cert.hashHex },
        encoding: 'utf8',
        timeout: 30_000,
      },
    );
    const m = /exit after (\d+)/.exec(out);
    expect(m).not.toBeNull();
    // A process held by the lingering endpoint would exit only when it closes, at least the idle delay after it
    // went idle (which is after t0).
    expect(Number(m![1])).toBeLessThan(CLIENT_ENDPOINT_IDLE_MS);
  });
});
