/**
 * QUIC connection migration (RFC 9000 §9) on real QUIC over loopback: when the client's socket reports that its path
 * is gone (the send error the kernel gives once the socket's source address was removed, as on a switch from Wi-Fi
 * to cellular), the client moves to a new socket and the same connection carries on from the new address: the
 * server sees the new address, and the session's streams and datagrams keep working. Loopback cannot lose its
 * address, so the error is raised on the socket; the emulated-link bench (`npm run bench -- faults`) removes a real
 * address.
 */
import { generateCertificate } from '@quiver/devcert';
import type { QuiverSession } from '@quiver/transport';
import { connectWebTransport, createWebTransportListener } from '@quiver/webtransport';
import { describe, expect, it } from 'vitest';
import type { QuicEndpoint } from '../src/node/endpoint.js';
import type { QuicConnection } from '../src/node/quic-connection.js';

/** The QUIC connection under a Node WebTransport session (the adapter's single seam holds it). */
function quicOf(s: QuiverSession): QuicConnection {
  return (s as unknown as { conn: { quic: QuicConnection } }).conn.quic;
}

type Incoming = ReadableStreamDefaultReader<{ readable: ReadableStream<Uint8Array> }>;

/** Sends `text` on a new stream and returns what the server's end of it read. */
async function echoOnce(client: QuiverSession, serverStreams: Incoming, text: string): Promise<string> {
  const incoming = serverStreams.read();
  const out = await client.createBidirectionalStream();
  const w = out.writable.getWriter();
  await w.write(new TextEncoder().encode(text));
  await w.close();
  const inc = (await incoming).value!;
  const r = inc.readable.getReader();
  const chunks: Uint8Array[] = [];
  for (;;) {
    const { value, done } = await r.read();
    if (done) break;
    chunks.push(value);
  }
  return new TextDecoder().decode(Buffer.concat(chunks));
}

describe('QUIC connection migration (quiche)', () => {
  it('moves the client to a new socket when its path is gone; the same connection carries on', async () => {
    const cert = await generateCertificate({ hosts: ['127.0.0.1'], validityDays: 10 });
    const l = await createWebTransportListener({ cert: cert.certPem, key: cert.keyPem, engine: 'quiche' });
    try {
      const accepted = l.incomingSessions.getReader().read();
      const client = connectWebTransport(`https://127.0.0.1:${l.address.port}/m`, {
        serverCertificateHashes: [{ algorithm: 'sha-256', value: Buffer.from(cert.hashHex, 'hex') }],
        engine: 'quiche',
      });
      const server = (await accepted).value!.accept();
      await client.ready;
      const streams = server.incomingBidirectionalStreams.getReader();
      expect(await echoOnce(client, streams, 'before')).toBe('before');
      const cq = quicOf(client);
      const sq = quicOf(server);
      const endpoint = cq.endpoint as QuicEndpoint;
      const oldPort = endpoint.local.port;
      expect(sq.peer.port).toBe(oldPort);
      // What node:dgram emits when a send fails because the socket's source address no longer exists.
      endpoint.socket.emit(
        'error',
        Object.assign(new Error('send EINVAL'), { code: 'EINVAL', syscall: 'send' }),
      );
      for (let i = 0; i < 200 && cq.counters.migrations === 0; i++)
        await new Promise((r) => setTimeout(r, 5));
      expect(cq.counters).toMatchObject({ migrations: 1, migrationsFailed: 0 });
      expect(endpoint.local.port).not.toBe(oldPort);
      expect(await echoOnce(client, streams, 'after')).toBe('after');
      // The server took the new address for the same connection (RFC 9000 §9.3), validated by quiche (§8.2).
      expect(sq.peer.port).toBe(endpoint.local.port);
      expect(quicOf(server)).toBe(sq);
      client.close();
      await client.closed;
    } finally {
      await l.close();
    }
  });
});
