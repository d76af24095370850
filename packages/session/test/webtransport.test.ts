/**
 * The session layer over WebTransport over HTTP/3 (real QUIC on loopback UDP): resumption across a listener
 * restart, and authentication on this transport.
 */
import { ensureDevCertificate } from '@quiver/devcert';
import { connectWebTransport, createWebTransportListener } from '@quiver/webtransport';
import { describe, expect, it } from 'vitest';
import { ConnectError, connect, createSessionServer, defineMessage, reject } from '../src/index.js';
import { cleanups, settle, until, useCleanup } from './support/harness.js';
import { rawClient } from './support/raw.js';

useCleanup();

/** `certificateHashOption` typed as `ConnectOptions` wants it (TS 5.9 tells Uint8Array<ArrayBufferLike> apart). */
const hashOf = (cert: { hash: Uint8Array }) => ({
  algorithm: 'sha-256' as const,
  value: cert.hash as BufferSource,
});

const N = defineMessage<number>('n');
const Pos = defineMessage<number>('pos', { channel: 'unreliable' });
const State = defineMessage<{ key: number; blob: Uint8Array }>('state', { channel: 'state' });

describe('session over WebTransport (HTTP/3)', () => {
  it('exchanges reliable and unreliable messages and resumes across a listener restart with zero loss', async () => {
    const cert = await ensureDevCertificate();
    const listen = (port = 0) =>
      createWebTransportListener({ host: '127.0.0.1', port, cert: cert.certPem, key: cert.keyPem });
    let listener = await listen();
    const port = listener.address.port;
    const server = createSessionServer({ listeners: [listener], messages: [N, Pos] });
    cleanups.push(async () => {
      await server.close();
      await listener.close();
    });
    const client = await connect(`https://127.0.0.1:${port}/quiver`, {
      transports: [{ name: 'webtransport', connector: connectWebTransport }],
      connectOptions: { serverCertificateHashes: [hashOf(cert)] },
      reconnect: { initialMs: 50, maxMs: 500, seed: 3 },
    });
    cleanups.push(() => client.close());
    expect(client.transport).toBe('webtransport');
    const atServer: number[] = [];
    const atClient: number[] = [];
    let datagrams = 0;
    const opens: boolean[] = [];
    server.on(N, (n) => atServer.push(n));
    server.on(Pos, () => datagrams++);
    client.on(N, (n) => atClient.push(n));
    client.on('open', (i) => opens.push(i.recovered));
    const s = [...server.sessions.values()][0];
    const total = 1000;
    for (let i = 0; i < total; i++) {
      client.send(N, i);
      s.send(N, i);
      if (i < 100) client.send(Pos, i);
      if (i === total / 2) {
        await listener.close();
        listener = await listen(port);
        server.addListener(listener);
      }
      if (i % 50 === 0) await settle();
    }
    await until(() => atServer.length >= total && atClient.length >= total, 'all messages');
    expect(opens).toEqual([true]);
    expect(atServer).toEqual(Array.from({ length: total }, (_, i) => i));
    expect(atClient).toEqual(Array.from({ length: total }, (_, i) => i));
    expect(datagrams).toBeGreaterThan(0);
  });

  it('rejects unauthenticated sessions on WebTransport before they exist', async () => {
    const cert = await ensureDevCertificate();
    const listener = await createWebTransportListener({
      host: '127.0.0.1',
      port: 0,
      cert: cert.certPem,
      key: cert.keyPem,
    });
    const server = createSessionServer({
      listeners: [listener],
      authenticate: (req) => (req.query.get('token') === 'ok' ? { userId: 'u' } : reject(401, 'no')),
    });
    cleanups.push(async () => {
      await server.close();
      await listener.close();
    });
    const url = `https://127.0.0.1:${listener.address.port}/`;
    const connectOptions = { serverCertificateHashes: [hashOf(cert)] };
    const err = await connect(url, { connector: connectWebTransport, connectOptions, token: 'bad' }).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(ConnectError);
    expect(err.status).toBe(401);
    expect(server.sessions.size).toBe(0);
    expect(server.metrics.rejections['401']).toBe(1);
    const ok = await connect(url, { connector: connectWebTransport, connectOptions, token: 'ok' });
    cleanups.push(() => ok.close());
    expect(ok.state).toBe('open');
  });

  it('holds a client that never reads to the session memory budget', async () => {
    const cert = await ensureDevCertificate();
    const listener = await createWebTransportListener({
      host: '127.0.0.1',
      port: 0,
      cert: cert.certPem,
      key: cert.keyPem,
    });
    const budget = { maxInFlightBytes: 64 * 1024, maxQueuedBytes: 32 * 1024 };
    const server = createSessionServer({
      listeners: [listener],
      channels: { state: { overflow: 'coalesce', maxQueuedBytes: budget.maxQueuedBytes } },
      maxInFlightBytes: budget.maxInFlightBytes,
    });
    cleanups.push(async () => {
      await server.close();
      await listener.close();
    });
    const raw = await rawClient(connectWebTransport, `https://127.0.0.1:${listener.address.port}/`, {
      serverCertificateHashes: [hashOf(cert)],
    });
    await raw.hello();
    await until(() => server.sessions.size === 1);
    const s = [...server.sessions.values()][0];
    let max = 0;
    const blob = new Uint8Array(300);
    for (let i = 0; i < 20_000; i++) {
      s.send(State, { key: i % 64, blob }, { key: i % 64 });
      max = Math.max(max, s.bufferedBytes);
      if (i % 500 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    expect(max).toBeLessThanOrEqual(budget.maxInFlightBytes + budget.maxQueuedBytes);
    expect(server.metrics.drops.coalesced).toBeGreaterThan(10_000);
    expect(s.state).toBe('open');
    raw.session.close();
  });
});
