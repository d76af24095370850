/**
 * Defect 1 of issue 11: MessagePack array headers claim far more entries than their bytes could hold, and the
 * decoder used to preallocate them (a 3-byte `array16` header: 64 K slots). A 63 KB HELLO made of such headers
 * took an unauthenticated server to about 4 GB and an out-of-memory abort; ten 1,200-byte datagrams added about
 * 1 GB. The server runs in a child under a heap cap: before the fix it dies, after it stays small and serves.
 */
import { describe, expect, it } from 'vitest';
import { decodeValue } from '../../src/index.js';
import { useCleanup } from '../support/harness.js';
import { startHostileServer, servesGoodClient, type Target } from '../support/hostile.js';
import { rawClient } from '../support/raw.js';

useCleanup();

/** `count` nested `array16` headers each claiming 65 535 entries: 3 bytes each, none of the entries present. */
function arrayHeaders(count: number): Uint8Array {
  const out = new Uint8Array(count * 3);
  for (let i = 0; i < count; i++) out.set([0xdc, 0xff, 0xff], i * 3);
  return out;
}

/** A frame body (`u16 headerLength | header`) whose header is `bytes`. */
function body(header: Uint8Array): Uint8Array {
  const out = new Uint8Array(2 + header.length);
  out[0] = header.length >>> 8;
  out[1] = header.length & 0xff;
  out.set(header, 2);
  return out;
}

/** The same body behind a stream frame's `u32` length. */
function streamBody(header: Uint8Array): Uint8Array {
  const b = body(header);
  const out = new Uint8Array(4 + b.length);
  new DataView(out.buffer).setUint32(0, b.length);
  out.set(b, 4);
  return out;
}

const MiB = 1 << 20;
/** RSS the child may gain from an attack (the unfixed server needed gigabytes; a few buffers and GC slack fit). */
const RSS_GROWTH_LIMIT = 96 * MiB;

async function attack(t: Target, server: Awaited<ReturnType<typeof startHostileServer>>) {
  await servesGoodClient(t); // warm up: code paths loaded, pools allocated
  const before = await server.stats();

  // A 63 KB HELLO of array headers, before any authentication.
  const hello = await rawClient(t.connector, t.url, t.connectOptions);
  await hello.bytes(streamBody(arrayHeaders(21_000)));
  await hello.closed.catch(() => {});

  // A session that completed HELLO, then ten 1,200-byte datagrams of array headers (the first `[` is `[BUNDLE`).
  const raw = await rawClient(t.connector, t.url, t.connectOptions);
  raw.drainControl();
  await raw.hello();
  const writer = raw.session.datagrams.writable.getWriter();
  const max = Math.min(1200, raw.session.datagrams.maxDatagramSize);
  const dgram = body(arrayHeaders(Math.floor((max - 2) / 3)));
  for (let i = 0; i < 10; i++) await writer.write(dgram);

  // Then a well-behaved client is served, and the attacker's datagrams were counted, not decoded.
  await servesGoodClient(t);
  let after = await server.stats();
  // Datagrams are read concurrently with the good client; wait (on events, bounded) until the last is counted.
  for (let i = 0; i < 50 && (after.metrics.drops.malformed ?? 0) < 10; i++) {
    await new Promise((r) => setTimeout(r, 20));
    after = await server.stats();
  }
  raw.session.close();
  return { before, after };
}

describe('hostile: MessagePack headers that claim more than their bytes (defect 1)', () => {
  it('decodes nothing larger than its input: 63 KB of array headers is a DecodeError at once', () => {
    const bytes = arrayHeaders(21_000);
    const heap = process.memoryUsage().heapUsed;
    expect(() => decodeValue(bytes)).toThrow(/entries claimed/);
    expect(process.memoryUsage().heapUsed - heap).toBeLessThan(8 * MiB);
    // Nesting is bounded too, separately from lengths: 33 arrays of one element each is too deep by default.
    const deep = new Uint8Array(34);
    deep.fill(0x91, 0, 33);
    deep[33] = 0x01;
    expect(() => decodeValue(deep)).toThrow(/deeper than 32/);
    expect(decodeValue(deep.subarray(1))).toBeDefined();
    // Strings, binaries and extensions cannot claim past the end either.
    for (const bad of [
      [0xdb, 0xff, 0xff, 0xff, 0xff, 0x61],
      [0xc6, 0x10, 0, 0, 0],
      [0xc9, 0x7f, 0xff, 0xff, 0xff, 1],
      [0xdf, 0x7f, 0xff, 0xff, 0xff],
      [0xc1],
    ]) {
      expect(() => decodeValue(new Uint8Array(bad), 32)).toThrow(/MessagePack/);
    }
  });

  for (const transport of ['websocket', 'webtransport'] as const) {
    it(`keeps the server small and serving on ${transport}: 63 KB HELLO, then ten datagrams`, async () => {
      const server = await startHostileServer();
      const { before, after } = await attack(server[transport], server);
      expect(server.alive(), server.exitInfo()).toBe(true);
      expect(after.rss - before.rss).toBeLessThan(RSS_GROWTH_LIMIT);
      expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(RSS_GROWTH_LIMIT);
      expect(after.metrics.rejections.decode).toBe(1);
      // Every datagram that arrived was counted as malformed (over UDP, one may be lost on the way).
      const malformed = after.metrics.drops.malformed ?? 0;
      if (transport === 'websocket') expect(malformed).toBe(10);
      else expect(malformed).toBeGreaterThan(0);
      expect(after.metrics.sessionsTotal).toBe(3);
    });
  }
});
