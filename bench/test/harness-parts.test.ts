import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, test } from 'vitest';
import { loopback } from '../lib/network.ts';
import { CLIENTS, engineTarget, SERVERS, startPair } from '../lib/pair.ts';
import type { ThroughputResult } from '../lib/roles/clients.ts';
import type { TagCounters } from '../lib/roles/servers.ts';
import { Deframer, encodeProbe, FLAG_SINK, readProbe } from '../lib/roles/wire.ts';

const suitesDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'suites');
const OWN = ['setup', 'latency', 'throughput', 'load', 'micro', 'browser', 'soak'];

describe('probe wire format', () => {
  test('a probe carries tag, flags, length, sequence and send time', () => {
    const p = encodeProbe(7, 0xfffffffe, 100, FLAG_SINK, 1234.5);
    expect(p.length).toBe(100);
    expect(readProbe(p)).toEqual({ tag: 7, flags: FLAG_SINK, length: 100, seq: 0xfffffffe, sentAt: 1234.5 });
    // Never shorter than the header.
    expect(encodeProbe(1, 1, 3).length).toBe(16);
  });

  test('the deframer recovers messages from a byte stream cut anywhere', () => {
    const msgs = [
      encodeProbe(1, 1, 16),
      encodeProbe(2, 2, 40),
      encodeProbe(3, 3, 1000),
      encodeProbe(4, 4, 17),
    ];
    const all = new Uint8Array(msgs.reduce((n, m) => n + m.length, 0));
    let off = 0;
    for (const m of msgs) {
      all.set(m, off);
      off += m.length;
    }
    for (const cut of [1, 3, 15, 16, 17, 39, 500]) {
      const d = new Deframer();
      const got: number[] = [];
      for (let i = 0; i < all.length; i += cut)
        d.push(all.subarray(i, i + cut), (m) => got.push(readProbe(m).seq));
      expect(got).toEqual([1, 2, 3, 4]);
    }
  });

  test('a length below the header size is refused, not looped on', () => {
    const bad = encodeProbe(1, 1, 16);
    bad[3] = 4;
    expect(() => new Deframer().push(bad, () => {})).toThrow(/bad probe length/);
  });
});

describe('suites', () => {
  test.each(OWN)('%s is a valid suite module', async (name) => {
    expect(readdirSync(suitesDir)).toContain(`${name}.ts`);
    const mod = (await import(pathToFileURL(join(suitesDir, `${name}.ts`)).href)) as {
      default: { name: string; description: string; run: unknown };
    };
    expect(mod.default.name).toBe(name);
    expect(mod.default.description.length).toBeGreaterThan(10);
    expect(typeof mod.default.run).toBe('function');
  });
});

describe('agents on loopback', () => {
  test('a client agent echoes through a server agent over real UDP and TCP, and both exit on close', async () => {
    const net = loopback();
    try {
      const server = await net.agent('server');
      const client = await net.agent('client');
      const ports = await server.call<{ tcpPort: number; udpPort: number }>(
        'bench/lib/roles/echo.ts',
        'startEcho',
        net.serverAddr,
      );
      const udp = await client.call<{ sent: number; received: number }>(
        'bench/lib/roles/echo.ts',
        'udpEcho',
        net.serverAddr,
        ports.udpPort,
        10,
        2,
        500,
      );
      expect(udp.received).toBe(10);
      const tcp = await client.call<{ received: number }>(
        'bench/lib/roles/echo.ts',
        'tcpEcho',
        net.serverAddr,
        ports.tcpPort,
        3,
      );
      expect(tcp.received).toBe(3);
      await expect(client.call('bench/lib/roles/echo.ts', 'noSuchFunction')).rejects.toThrow(
        /has no function/,
      );
      await server.call('bench/lib/roles/echo.ts', 'stopEcho');
    } finally {
      await net.close();
    }
  });
});

describe('WebTransport on each engine', () => {
  test('the server agent listens on every engine asked for, and a client on that engine delivers datagrams to it', async () => {
    const { availableEngines } = await import('@quiver/webtransport');
    const engines = await availableEngines();
    const net = loopback();
    const pair = await startPair(net, { engines });
    try {
      expect(Object.keys(pair.ports.wtByEngine ?? {}).sort()).toEqual([...engines].sort());
      expect(new Set(Object.values(pair.ports.wtByEngine ?? {})).size).toBe(engines.length);
      for (const [i, e] of engines.entries()) {
        const tag = 200 + i;
        const target = engineTarget(pair, e);
        expect(target.ports.wt).toBe(pair.ports.wtByEngine?.[e]);
        const r = await pair.client.call<ThroughputResult>(CLIENTS, 'throughputRun', 'wt-datagram', target, {
          durationMs: 300,
          size: 100,
          tag,
          rate: 200,
        });
        expect(r.error).toBeUndefined();
        expect(r.sent).toBeGreaterThan(0);
        await new Promise((res) => setTimeout(res, 200));
        const got = await pair.server.call<{ counters?: TagCounters }>(SERVERS, 'takeTag', tag);
        expect(got.counters?.messages ?? 0, e).toBeGreaterThan(0);
      }
    } finally {
      await pair.close();
      await net.close();
    }
  });
});
