import { afterAll, describe, expect, test } from 'vitest';
import { controlArgs, type Link, linkUnavailable, listLinkNamespaces } from '../lib/link.ts';
import { type Agent, emulated, type Network } from '../lib/network.ts';

const ECHO = 'bench/lib/roles/echo.ts';
const unavailable = linkUnavailable();

describe('forwarder control arguments', () => {
  test('a mean burst length maps to a Gilbert-Elliott chain whose long-run loss is the configured loss', () => {
    const a = controlArgs({ loss: 0.02, burst: 4 });
    const get = (k: string): number => Number(a.find((x) => x.startsWith(`${k}=`))?.split('=')[1]);
    const p = get('ge_p');
    const r = get('ge_r');
    expect(r).toBeCloseTo(0.25, 12);
    expect(p / (p + r)).toBeCloseTo(0.02, 12);
    expect(get('loss')).toBe(0);
  });
  test('out-of-range parameters are refused before reaching the forwarder', () => {
    expect(() => controlArgs({ delayMs: -1 })).toThrow(RangeError);
    expect(() => controlArgs({ delayMs: 1, loss: 1.5 })).toThrow(RangeError);
    expect(() => controlArgs({ delayMs: 1, loss: 0.1, burst: 0.5 })).toThrow(RangeError);
    expect(() => controlArgs({ delay: 5 } as never)).toThrow(/unknown link parameter/);
  });
});

describe.skipIf(unavailable !== undefined)(
  `emulated link${unavailable ? ` (skipped: ${unavailable.message})` : ''}`,
  () => {
    let net: Network | undefined;
    let server: Agent;
    let client: Agent;
    let ports: { tcpPort: number; udpPort: number };
    const DELAY = 20;

    afterAll(async () => {
      await net?.close();
    });

    test('UDP and TCP echoes take at least twice the one-way delay', async () => {
      net = await emulated({ delayMs: DELAY, seed: 3 });
      server = await net.agent('server');
      client = await net.agent('client');
      ports = await server.call(ECHO, 'startEcho', net.serverAddr);
      const udp = await client.call<{ received: number; rttMs: number[] }>(
        ECHO,
        'udpEcho',
        net.serverAddr,
        ports.udpPort,
        20,
      );
      expect(udp.received).toBe(20);
      expect(Math.min(...udp.rttMs)).toBeGreaterThanOrEqual(2 * DELAY);
      const tcp = await client.call<{ received: number; rttMs: number[]; connectMs: number }>(
        ECHO,
        'tcpEcho',
        net.serverAddr,
        ports.tcpPort,
        5,
      );
      expect(tcp.received).toBe(5);
      // The SYN/SYN-ACK exchange crosses the link too.
      expect(tcp.connectMs).toBeGreaterThanOrEqual(2 * DELAY);
      expect(Math.min(...tcp.rttMs)).toBeGreaterThanOrEqual(2 * DELAY);
    });

    test('with 100 % loss nothing arrives, and every drop is counted', async () => {
      const link = net!.link as Link;
      const before = await link.stats();
      await link.setParams({ loss: 1 }, 'up');
      const udp = await client.call<{ received: number }>(
        ECHO,
        'udpEcho',
        net!.serverAddr,
        ports.udpPort,
        20,
        5,
        300,
      );
      expect(udp.received).toBe(0);
      const after = await link.stats();
      expect(after.up.droppedLoss - before.up.droppedLoss).toBeGreaterThanOrEqual(20);
      await link.setParams({ loss: 0 }, 'up');
      const again = await client.call<{ received: number }>(
        ECHO,
        'udpEcho',
        net!.serverAddr,
        ports.udpPort,
        5,
        5,
      );
      expect(again.received).toBe(5);
    });

    test('a bandwidth cap serializes packets: 1 Mbit at 1 Mbit/s takes at least a second to cross', async () => {
      const link = net!.link as Link;
      await link.setParams({ rateMbit: 1 });
      // 100 datagrams of 1222 bytes are 1250-byte IP packets: 1 000 000 bits.
      const r = await client.call<{ received: number; spanMs: number }>(
        ECHO,
        'udpEcho',
        net!.serverAddr,
        ports.udpPort,
        100,
        0,
        3000,
        1222,
      );
      expect(r.received).toBe(100);
      expect(r.spanMs).toBeGreaterThanOrEqual(1000);
      await link.setParams({ rateMbit: 0 });
    });

    test('Gilbert-Elliott loss comes in bursts, Bernoulli loss mostly alone', async () => {
      const link = net!.link as Link;
      const meanRun = async (): Promise<{ lost: number; run: number }> => {
        const r = await client.call<{ lostSeqs: number[] }>(
          ECHO,
          'udpEcho',
          net!.serverAddr,
          ports.udpPort,
          1500,
          0,
          500,
        );
        let runs = 0;
        for (const [i, s] of r.lostSeqs.entries()) if (i === 0 || r.lostSeqs[i - 1] !== s - 1) runs++;
        return { lost: r.lostSeqs.length, run: r.lostSeqs.length / Math.max(1, runs) };
      };
      // Only the client -> server direction drops, so each lost echo is one lost packet.
      await link.setParams({ loss: 0.1, burst: 6 }, 'up');
      const bursty = await meanRun();
      await link.setParams({ loss: 0.1, burst: 0 }, 'up');
      const random = await meanRun();
      await link.setParams({ loss: 0 }, 'up');
      expect(bursty.lost).toBeGreaterThan(30);
      expect(random.lost).toBeGreaterThan(30);
      // Expected mean runs: 6 and 1/(1 - 0.1) = 1.1; the margins leave room for chance.
      expect(bursty.run).toBeGreaterThan(2.5);
      expect(random.run).toBeLessThan(1.8);
    });

    test('close() removes both namespaces and is idempotent', async () => {
      const link = net!.link as Link;
      expect(listLinkNamespaces()).toEqual(expect.arrayContaining([link.clientNs, link.serverNs]));
      await server.call(ECHO, 'stopEcho');
      await net!.close();
      await net!.close();
      const left = listLinkNamespaces();
      expect(left).not.toContain(link.clientNs);
      expect(left).not.toContain(link.serverNs);
      net = undefined;
    });
  },
);
