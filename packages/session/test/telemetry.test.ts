/**
 * Client telemetry over a real WebTransport session (datagrams): reports arrive at a low rate, become the
 * session's quality, cross the thresholds both ways (the hook fires once per crossing), and bad or too frequent
 * reports are counted and ignored without closing the session.
 */
import { certificateHashOption, ensureDevCertificate } from '@quiver/devcert';
import { connectWebTransport, createWebTransportListener } from '@quiver/webtransport';
import { describe, expect, it } from 'vitest';
import {
  type ClientQuality,
  clientTelemetry,
  connect,
  createSessionServer,
  parseTelemetry,
  type ServerSession,
  TelemetryMessage,
  type TelemetryReport,
} from '../src/index.js';
import { cleanups, until, useCleanup } from './support/harness.js';

useCleanup();

async function setup(serverOptions: Parameters<typeof createSessionServer>[0] = {}) {
  const cert = await ensureDevCertificate();
  const listener = await createWebTransportListener({
    host: '127.0.0.1',
    port: 0,
    cert: cert.certPem,
    key: cert.keyPem,
  });
  const server = createSessionServer({ listeners: [listener], ...serverOptions });
  cleanups.push(async () => {
    await server.close();
    await listener.close();
  });
  return {
    server,
    url: `https://127.0.0.1:${listener.address.port}/`,
    connectOptions: { serverCertificateHashes: [certificateHashOption(cert)] },
  };
}

describe('client telemetry', () => {
  it('reports become the session quality; the hook fires when the thresholds are crossed, both ways', async () => {
    const changes: [string, ClientQuality['state'], number | undefined][] = [];
    const { server, url, connectOptions } = await setup({
      quality: { minIntervalMs: 50, thresholds: { frameTimeMs: 33 } },
      onQualityChange: (s, q) => changes.push([s.id, q.state, q.frameTimeMs]),
    });
    // The application's frame time: smooth, then a stall, then smooth again.
    const frames = [16, 16, 50, 50, 30, 16, 16];
    let i = 0;
    const c = await connect(url, {
      connector: connectWebTransport,
      connectOptions,
      telemetry: clientTelemetry({
        intervalMs: 100,
        sample: () => ({ frameTimeMs: frames[Math.min(i++, frames.length - 1)], interpolationDelayMs: 100 }),
      }),
    });
    cleanups.push(() => c.close());
    await until(() => changes.length >= 2 || server.metrics.telemetry.accepted >= 12, 'two crossings');
    const s = [...server.sessions.values()][0] as ServerSession;
    // 30 is under the threshold but above 80 % of it: still poor until 16 (hysteresis), then good.
    expect(changes.map(([id, st, f]) => [id, st, f])).toEqual([
      [s.id, 'poor', 50],
      [s.id, 'good', 16],
    ]);
    expect(s.quality).toMatchObject({ state: 'good', frameTimeMs: 16, interpolationDelayMs: 100 });
    expect(s.quality!.rttMs).toBeGreaterThan(0);
    expect(s.quality!.loss).toBeGreaterThanOrEqual(0);
    expect(server.metrics.telemetry.invalid).toBe(0);
  });

  it('counts and ignores invalid and too frequent reports; the session stays open', async () => {
    const { server, url, connectOptions } = await setup({ quality: { minIntervalMs: 60_000 } });
    const c = await connect(url, {
      connector: connectWebTransport,
      connectOptions,
      messages: [TelemetryMessage],
    });
    cleanups.push(() => c.close());
    const bad: unknown[] = [
      [1, 2],
      [-1, 0, 0, null, null],
      [1, 1, 2, null, null],
      [1, 1, 0, 'x', null],
    ];
    const send = (r: unknown) => c.send(TelemetryMessage, r as TelemetryReport);
    // Datagrams may be lost: keep sending the good pair until both outcomes are seen.
    for (
      let k = 0;
      server.metrics.telemetry.accepted === 0 || server.metrics.telemetry['rate-limited'] === 0;
      k++
    ) {
      if (k > 200) throw new Error('no report arrived');
      send([10, 1, 0, 16, null]);
      await new Promise((r) => setTimeout(r, 10));
    }
    const before = server.metrics.telemetry.invalid;
    for (let k = 0; server.metrics.telemetry.invalid < before + 4 && k < 50; k++) {
      for (const b of bad) send(b);
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(server.metrics.telemetry.invalid).toBeGreaterThanOrEqual(4);
    expect(server.metrics.telemetry.accepted).toBe(1);
    expect(c.state).toBe('open');
    expect(server.sessions.size).toBe(1);
  });

  it('parses only five bounded numbers', () => {
    expect(parseTelemetry([10, 2, 0.01, 16.6, 100])).toEqual({
      rttMs: 10,
      jitterMs: 2,
      loss: 0.01,
      frameTimeMs: 16.6,
      interpolationDelayMs: 100,
    });
    expect(parseTelemetry([10, 2, 0.01, null, null])?.frameTimeMs).toBeUndefined();
    for (const bad of [
      null,
      {},
      [1, 2, 3, 4],
      [1, 2, 3, 4, 5, 6],
      [Number.NaN, 0, 0, null, null],
      [1e9, 0, 0, null, null],
      [1, 0, 1.5, null, null],
    ])
      expect(parseTelemetry(bad)).toBeNull();
  });
});
