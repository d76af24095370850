/** Engine selection: the listener says which QUIC engine runs it; an engine that is not available is an error. */
import { generateCertificate } from '@quiver/devcert';
import { availableEngines, connectWebTransport, createWebTransportListener } from '@quiver/webtransport';
import { describe, expect, it } from 'vitest';

const engines = await availableEngines();

describe('QUIC engine selection', () => {
  it('runs on an available engine, reports and logs it, and serves a session on it', async () => {
    expect(engines).toContain('quiche');
    const cert = await generateCertificate({ hosts: ['127.0.0.1'], validityDays: 10 });
    const logs: string[] = [];
    const l = await createWebTransportListener({
      cert: cert.certPem,
      key: cert.keyPem,
      engine: 'quiche',
      log: (m) => logs.push(m),
    });
    try {
      expect(l.engine).toBe('quiche');
      expect(logs).toEqual([
        `WebTransport listener on udp://127.0.0.1:${l.address.port} (QUIC engine: quiche)`,
      ]);
      const accepted = l.incomingSessions.getReader().read();
      const s = connectWebTransport(`https://127.0.0.1:${l.address.port}/e`, {
        serverCertificateHashes: [{ algorithm: 'sha-256', value: Buffer.from(cert.hashHex, 'hex') }],
        engine: 'quiche',
      });
      const server = (await accepted).value?.accept();
      await s.ready;
      s.close();
      await s.closed;
      await server?.closed;
    } finally {
      await l.close();
    }
  });

  it.skipIf(engines.includes('quinn'))(
    'refuses an engine that is not available, naming how to build it',
    async () => {
      await expect(createWebTransportListener({ cert: 'x', key: 'y', engine: 'quinn' })).rejects.toThrow(
        /quinn.*not available.*build:native/,
      );
    },
  );

  it.skipIf(!engines.includes('quinn'))(
    'runs the quinn engine when it was built and is named, and logs it',
    async () => {
      // quinn is the default where it was built; quiche stays available by name.
      expect(engines).toEqual(['quinn', 'quiche']);
      const cert = await generateCertificate({ hosts: ['127.0.0.1'], validityDays: 10 });
      const logs: string[] = [];
      const l = await createWebTransportListener({
        cert: cert.certPem,
        key: cert.keyPem,
        engine: 'quinn',
        log: (m) => logs.push(m),
      });
      try {
        expect(l.engine).toBe('quinn');
        expect(logs).toEqual([
          `WebTransport listener on udp://127.0.0.1:${l.address.port} (QUIC engine: quinn)`,
        ]);
      } finally {
        await l.close();
      }
    },
  );

  it('runs quinn by default when built (quiche otherwise), takes the engine from QUIVER_QUIC_ENGINE, and refuses an unknown one there', async () => {
    const cert = await generateCertificate({ hosts: ['127.0.0.1'], validityDays: 10 });
    const saved = process.env.QUIVER_QUIC_ENGINE;
    try {
      delete process.env.QUIVER_QUIC_ENGINE;
      const logs: string[] = [];
      const byDefault = await createWebTransportListener({
        cert: cert.certPem,
        key: cert.keyPem,
        log: (m) => logs.push(m),
      });
      const best = engines.includes('quinn') ? 'quinn' : 'quiche';
      expect(byDefault.engine).toBe(best);
      expect(logs[0]).toContain(`(QUIC engine: ${best})`);
      await byDefault.close();
      // The environment overrides the default (where quinn is built, it selects quiche instead).
      const pinned = 'quiche';
      process.env.QUIVER_QUIC_ENGINE = pinned;
      const l = await createWebTransportListener({ cert: cert.certPem, key: cert.keyPem });
      expect(l.engine).toBe(pinned);
      await l.close();
      process.env.QUIVER_QUIC_ENGINE = 'msquic';
      await expect(createWebTransportListener({ cert: cert.certPem, key: cert.keyPem })).rejects.toThrow(
        /unknown QUIC engine/,
      );
    } finally {
      if (saved === undefined) delete process.env.QUIVER_QUIC_ENGINE;
      else process.env.QUIVER_QUIC_ENGINE = saved;
    }
  });

  it('refuses an unknown engine', async () => {
    await expect(
      createWebTransportListener({ cert: 'x', key: 'y', engine: 'msquic' as unknown as 'quiche' }),
    ).rejects.toThrow(/unknown QUIC engine/);
  });
});
