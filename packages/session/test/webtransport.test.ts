/**
 * The session layer over WebTransport over HTTP/3 (real QUIC on loopback UDP): resumption across a listener
 * restart, authentication, and a stalled client held to its budget on this transport.
 */
import { certificateHashOption, ensureDevCertificate } from '@quiver/devcert';
import { connectWebTransport, createWebTransportListener } from '@quiver/webtransport';
import { describe, expect, it } from 'vitest';
import { connect, createSessionServer, defineMessage } from '../src/index.js';
import { cleanups, settle, until, useCleanup } from './support/harness.js';
import {
  holdsStalledClientToBudget,
  type RealTransport,
  rejectsUnauthenticated,
} from './support/transports.js';

useCleanup();

const N = defineMessage<number>('n');
const Pos = defineMessage<number>('pos', { channel: 'unreliable' });

/** WebTransport on loopback with the development certificate, pinned by its hash. */
async function webtransport(): Promise<RealTransport> {
  const cert = await ensureDevCertificate();
  return {
    listen: () =>
      createWebTransportListener({ host: '127.0.0.1', port: 0, cert: cert.certPem, key: cert.keyPem }),
    url: (port, path) => `https://127.0.0.1:${port}${path}`,
    connector: connectWebTransport,
    connectOptions: { serverCertificateHashes: [certificateHashOption(cert)] },
  };
}

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
      connectOptions: { serverCertificateHashes: [certificateHashOption(cert)] },
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
    let unackedAtRestart = { client: 0, server: 0 };
    const total = 1000;
    for (let i = 0; i < total; i++) {
      client.send(N, i);
      s.send(N, i);
      if (i < 100) client.send(Pos, i);
      if (i === total / 2) {
        // Sent but not yet received, so certainly unacknowledged: the restart has something to replay.
        unackedAtRestart = {
          client: (client.stats.messagesOut.reliable ?? 0) - atServer.length,
          server: (s.stats.messagesOut.reliable ?? 0) - atClient.length,
        };
        await listener.close();
        listener = await listen(port);
        server.addListener(listener);
      }
      if (i % 50 === 0) await settle();
    }
    await until(() => atServer.length >= total && atClient.length >= total, 'all messages');
    expect(opens).toEqual([true]);
    expect(unackedAtRestart.client).toBeGreaterThan(0);
    expect(unackedAtRestart.server).toBeGreaterThan(0);
    expect(atServer).toEqual(Array.from({ length: total }, (_, i) => i));
    expect(atClient).toEqual(Array.from({ length: total }, (_, i) => i));
    expect(datagrams).toBeGreaterThan(0);
  });

  it('rejects unauthenticated sessions on WebTransport before they exist', async () =>
    rejectsUnauthenticated(await webtransport()));

  it('holds a client that never reads to the session memory budget', async () =>
    holdsStalledClientToBudget(await webtransport(), 20_000, 10_000));
});
