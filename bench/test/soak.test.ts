import { describe, expect, test } from 'vitest';
import { loopback } from '../lib/network.ts';
import { benchCert } from '../lib/pair.ts';
import type { Target } from '../lib/roles/clients.ts';
import type { CohortStats } from '../lib/roles/soak-clients.ts';
import type { SoakPorts, SoakSample } from '../lib/roles/soak-server.ts';

const SERVER = 'bench/lib/roles/soak-server.ts';
const COHORT = 'bench/lib/roles/soak-clients.ts';

async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, what: string): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const v = await read();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('soak roles', () => {
  test('a cohort on both transports plays at the tick rate; after a SIGKILL the server forgets every session and leaves no handle', async () => {
    const net = loopback();
    const cert = await benchCert();
    const server = await net.agent('server');
    const client = await net.agent('client');
    try {
      const ports = await server.call<SoakPorts>(SERVER, 'startSoakServer', {
        host: net.serverAddr,
        certPem: cert.certPem,
        keyPem: cert.keyPem,
        hz: 20,
        resumeWindowMs: 500,
        idleTimeoutMs: 1000,
      });
      expect(ports.wtError).toBeUndefined();
      const target = {
        host: net.serverAddr,
        ports,
        certHashHex: cert.hashHex,
        certPem: cert.certPem,
      } as Target;
      await client.call(COHORT, 'startCohort', {
        target,
        count: 4,
        wtFraction: 0.5,
        hz: 20,
        spreadMs: 200,
        lifetimeMs: [60_000, 60_000],
        seed: 1,
      });
      const stats = () => client.call<CohortStats>(COHORT, 'cohortStats');
      const playing = await until(
        stats,
        (s) => s.open.wt === 2 && s.open.qws === 2 && s.wt.statesReceived > 20 && s.qws.statesReceived > 20,
        'two sessions per transport receiving states',
      );
      expect(playing.wt.failed + playing.qws.failed).toBe(0);
      const sample = () => server.call<SoakSample>(SERVER, 'sampleSoakServer');
      const s = await until(
        sample,
        (x) => x.open === 4 && x.inputs > 20,
        'four open sessions sending inputs',
      );
      expect(s.byTransport).toEqual({ webtransport: 2, websocket: 2 });
      client.kill();
      await until(
        sample,
        (x) => x.sessions === 0 && x.wtConnections === 0 && x.qwsSessions === 0,
        'the server to forget the killed clients',
      );
      const { handlesLeft } = await server.call<{ handlesLeft: string[] }>(SERVER, 'stopSoakServer');
      expect(handlesLeft).toEqual([]);
    } finally {
      client.kill();
      await server.close();
      await net.close();
    }
  });
});
