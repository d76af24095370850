/**
 * `datagrams.sendEstimate()` on each QUIC engine through a 64 kbit/s bottleneck (a throttled UDP relay on loopback,
 * real QUIC through it): DATAGRAM frames are congestion controlled (RFC 9221 §5), so a burst beyond the congestion
 * window waits in the engine's queue, and the estimate must show that wait (the session's freshness guard drops
 * stale state by it); once the cap is lifted and the queue drained, it must fall back below the guard's default age
 * limit. On quinn the figures come from one native call into a reused array (`pathEstimate`), never from `stats()`
 * (JSON, formerly read per datagram). The quinn case is skipped when its addon is not built (`npm run build:native`).
 */
import { generateCertificate } from '@quiver/devcert';
import { startThrottledRelay } from '@quiver/testkit';
import type { QuiverSession } from '@quiver/transport';
import { availableEngines, connectWebTransport, createWebTransportListener } from '@quiver/webtransport';
import { afterEach, describe, expect, it } from 'vitest';
import { loadQuinnAddon } from '../src/node/quinn-engine.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const engines = await availableEngines();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** 64 kbit/s. */
const CAP = 8000;
/** The session's default `maxUnreliableAgeMs`. */
const AGE_LIMIT_MS = 100;

describe.each(['quiche', 'quinn'] as const)('send estimate on the %s engine', (engine) => {
  it.skipIf(!engines.includes(engine))(
    'shows the DATAGRAM backlog behind a 64 kbit/s bottleneck as a long wait, and a short one once it drained',
    async () => {
      const cert = await generateCertificate({ hosts: ['127.0.0.1'], validityDays: 10 });
      const l = await createWebTransportListener({ cert: cert.certPem, key: cert.keyPem, engine });
      cleanups.push(() => l.close());
      const relay = await startThrottledRelay({ target: l.address, protocol: 'udp', queueBytes: 32 * 1024 });
      cleanups.push(() => relay.close());
      const accepted = l.incomingSessions.getReader().read();
      const client = connectWebTransport(`https://127.0.0.1:${relay.address.port}/e`, {
        serverCertificateHashes: [{ algorithm: 'sha-256', value: Buffer.from(cert.hashHex, 'hex') }],
        engine,
      });
      cleanups.push(() => client.close());
      client.closed.catch(() => {});
      const server: QuiverSession = (await accepted).value!.accept();
      server.closed.catch(() => {});
      await Promise.all([client.ready, server.ready]);
      const estimate = () => {
        const e = server.datagrams.sendEstimate?.();
        if (!e) throw new Error(`no send estimate on ${engine}`);
        return e;
      };
      // The client drains what arrives, so its receive queue never refuses anything.
      void (async () => {
        const r = client.datagrams.readable.getReader();
        while (!(await r.read()).done);
      })().catch(() => {});

      // quinn: count stats() calls from here on (the estimate must not need them).
      const addon = engine === 'quinn' ? loadQuinnAddon() : undefined;
      let statsCalls = 0;
      if (addon) {
        const stats = addon.stats;
        addon.stats = (h, c) => {
          statsCalls++;
          return stats.call(addon, h, c);
        };
        cleanups.push(() => {
          addon.stats = stats;
        });
      }

      relay.setRate(CAP);
      const writer = server.datagrams.writable.getWriter();
      const payload = new Uint8Array(1000);
      // 150 KB at once: about 19 s at the cap, far beyond any congestion window the handshake left open.
      for (let i = 0; i < 150; i++) await writer.write(payload);
      const atOnce = estimate();
      expect(atOnce.queuedBytes).toBeGreaterThan(50_000);
      // A few drain samples at the cap (the estimator measures the rate from what left the queue).
      const capped: number[] = [];
      for (let i = 0; i < 10; i++) {
        await sleep(50);
        capped.push(estimate().delayMs);
      }
      // Every one says "later than the age limit" (the guard holds or drops state), most of them seconds.
      expect(Math.min(...capped)).toBeGreaterThan(AGE_LIMIT_MS);
      expect(capped.filter((d) => d > 1000).length).toBeGreaterThan(capped.length / 2);

      // The cap lifted: the backlog drains; small datagrams keep RTT samples coming until the wait is short again.
      relay.setRate(0);
      const small = new Uint8Array(100);
      const deadline = Date.now() + 10_000;
      let last = estimate();
      while (!(last.queuedBytes === 0 && last.delayMs < AGE_LIMIT_MS) && Date.now() < deadline) {
        await writer.write(small);
        await sleep(20);
        last = estimate();
      }
      expect(last.queuedBytes).toBe(0);
      expect(last.delayMs).toBeLessThan(AGE_LIMIT_MS);
      if (addon) expect(statsCalls).toBe(0);
    },
    30_000,
  );
});
