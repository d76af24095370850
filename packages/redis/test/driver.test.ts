import { MemoryDriver } from '@quiver/rooms';
import { afterAll, beforeAll } from 'vitest';
import { RedisDriver } from '../src/index.js';
import { driverContract } from './driver-contract.js';
import { type RedisServer, startRedis } from '../src/testing.js';

let server: RedisServer;
beforeAll(async () => {
  server = await startRedis();
});
afterAll(() => server.stop());

driverContract('MemoryDriver', async (clock) => ({
  driver: new MemoryDriver({ clock }),
  close: async () => {},
}));

let db = 0;
driverContract('RedisDriver', async (clock) => {
  const redis = server.client();
  // Each case on its own key prefix: a fresh registry on the same server.
  const driver = new RedisDriver({
    redis,
    clock,
    prefix: `t${++db}:`,
    heartbeatMs: 10_000,
    nodeTtlMs: 60_000,
  });
  return {
    driver,
    close: async () => {
      await driver.close();
      redis.disconnect();
    },
  };
});
