/**
 * Defect 4 of issue 11: the byte rate limit charged a frame only when it completed, so partial 1 MiB frames on 90
 * streams pushed 84 MiB past a 256 kB/s limit, unthrottled. Bytes are now charged as they arrive and incomplete
 * frames are capped per session (`maxReceiveBufferBytes`): the session is closed with 4429 long before.
 */
import { describe, expect, it } from 'vitest';
import { CloseCode, Kind, streamFrame } from '../../src/index.js';
import { useCleanup } from '../support/harness.js';
import { servesGoodClient, startHostileServer, type Target } from '../support/hostile.js';
import { rawClient } from '../support/raw.js';

useCleanup();

const MiB = 1 << 20;
const RSS_GROWTH_LIMIT = 48 * MiB;

/**
 * Opens `streams` unidirectional streams and sends on each all but the last byte of a 1 MiB frame, 64 KiB at a
 * time. Returns the bytes sent and whether the server let every byte in (the attack completed).
 */
export async function partialFrames(t: Target, streams: number) {
  const raw = await rawClient(t.connector, t.url, t.connectOptions);
  raw.drainControl();
  await raw.hello();
  let cut = false;
  const closed = raw.closed.then((info) => {
    cut = true;
    return info;
  });
  const chunk = new Uint8Array(64 * 1024);
  let sent = 0;
  try {
    for (let s = 0; s < streams && !cut; s++) {
      const w = (await raw.session.createUnidirectionalStream()).getWriter();
      for (const c of streamFrame([Kind.OPEN, 1])) await w.write(c);
      const prefix = new Uint8Array(4);
      new DataView(prefix.buffer).setUint32(0, MiB);
      await w.write(prefix);
      for (let off = 0; off + chunk.length < MiB && !cut; off += chunk.length) {
        await Promise.race([w.write(chunk), closed]);
        sent += chunk.length;
      }
      w.releaseLock();
    }
  } catch {
    cut = true;
  }
  const completed = !cut;
  const info = completed ? null : await closed;
  raw.session.close();
  return { sent, completed, info };
}

describe('hostile: partial frames on many streams (defect 4)', () => {
  for (const transport of ['websocket', 'webtransport'] as const) {
    it(`charges bytes as they arrive on ${transport}: 90 partial 1 MiB frames close the session (4429)`, async () => {
      const server = await startHostileServer({ rateLimits: { perSession: { bytesPerSecond: 256_000 } } });
      const t = server[transport];
      await servesGoodClient(t);
      const before = await server.stats();
      const { sent, completed, info } = await partialFrames(t, 90);
      expect(completed, `the server took all ${sent} bytes of partial frames`).toBe(false);
      expect(info?.closeCode).toBe(CloseCode.RATE_LIMITED);
      await servesGoodClient(t);
      const after = await server.stats();
      expect(server.alive(), server.exitInfo()).toBe(true);
      expect(after.rss - before.rss).toBeLessThan(RSS_GROWTH_LIMIT);
      expect(after.errors.RateLimitError).toBe(1);
      expect(after.metrics.errors['rate-limit']).toBe(1);
    });
  }
});
