/**
 * Defect 4 of issue 11: the byte rate limit charged a frame only when it completed, so partial 1 MiB frames on 90
 * streams pushed 84 MiB past a 256 kB/s limit, unthrottled. Bytes are now charged as they arrive and incomplete
 * frames are capped per session (`maxReceiveBufferBytes`): the session is closed with 4429 long before.
 */
import { describe, expect, it } from 'vitest';
import { CloseCode } from '../../src/index.js';
import { useCleanup } from '../support/harness.js';
import { partialFrames, servesGoodClient, startHostileServer } from '../support/hostile.js';

useCleanup();

const MiB = 1 << 20;
const RSS_GROWTH_LIMIT = 48 * MiB;

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
