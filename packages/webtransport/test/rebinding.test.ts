/**
 * A client's address changes under a live session (RFC 9000 §9): a UDP relay on loopback moves its upstream side
 * to a new port, which is what a NAT rebinding (or a switch from Wi-Fi to cellular) looks like to the server. No
 * session layer sits on top, so nothing would reconnect: only the QUIC connection absorbing the path change, the
 * server validating the new path (§8.2, §9.3), keeps the bidirectional stream echoing. Each engine's listener is
 * tried (quinn when its addon is built).
 */
import { generateCertificate } from '@quiver/devcert';
import { startThrottledRelay } from '@quiver/testkit';
import type { QuiverSession } from '@quiver/transport';
import { availableEngines, connectWebTransport, createWebTransportListener } from '@quiver/webtransport';
import { afterEach, describe, expect, it } from 'vitest';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const engines = await availableEngines();

describe.each(['quiche', 'quinn'] as const)('a client address change against the %s listener', (engine) => {
  it.skipIf(!engines.includes(engine))(
    'keeps the connection: the same stream echoes after the rebinding',
    async () => {
      const cert = await generateCertificate({ hosts: ['127.0.0.1'], validityDays: 10 });
      const l = await createWebTransportListener({ cert: cert.certPem, key: cert.keyPem, engine });
      cleanups.push(() => l.close());
      const relay = await startThrottledRelay({ target: l.address, protocol: 'udp' });
      cleanups.push(() => relay.close());
      const accepted = l.incomingSessions.getReader().read();
      const client = connectWebTransport(`https://127.0.0.1:${relay.address.port}/e`, {
        serverCertificateHashes: [{ algorithm: 'sha-256', value: Buffer.from(cert.hashHex, 'hex') }],
      });
      cleanups.push(() => client.close());
      client.closed.catch(() => {});
      const server: QuiverSession = (await accepted).value!.accept();
      server.closed.catch(() => {});
      await Promise.all([client.ready, server.ready]);
      // The server echoes every chunk of the first bidirectional stream.
      void (async () => {
        const { value: s } = await server.incomingBidirectionalStreams.getReader().read();
        if (!s) return;
        const w = s.writable.getWriter();
        const r = s.readable.getReader();
        for (;;) {
          const { value, done } = await r.read();
          if (done) break;
          await w.write(value);
        }
      })().catch(() => {});
      const stream = await client.createBidirectionalStream();
      const w = stream.writable.getWriter();
      const r = stream.readable.getReader();
      const echo = async (text: string) => {
        await w.write(new TextEncoder().encode(text));
        let got = '';
        while (got.length < text.length) {
          const { value, done } = await r.read();
          if (done) throw new Error('stream ended');
          got += new TextDecoder().decode(value);
        }
        return got;
      };
      expect(await echo('before')).toBe('before');
      await relay.rebind();
      expect(await echo('after the rebinding')).toBe('after the rebinding');
      expect(await echo('and again')).toBe('and again');
    },
    30_000,
  );
});
