import { afterEach } from 'vitest';
import {
  type ClientOptions,
  connect,
  createSessionServer,
  type SessionServerOptions,
} from '../../src/index.js';
import { connectMemory, createMemoryListener } from '@quiver/transport';
import { createMemoryNetwork, type LinkOptions } from './memory.js';

let nameSeq = 0;

export const cleanups: (() => Promise<void> | void)[] = [];

export function useCleanup(): void {
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });
}

/**
 * A session server and a connected client. By default on @quiver/transport's memory transport (seeded link model:
 * `loss`, `reorder`); `helper: true` uses this package's test network instead, for what the official one does not
 * model (per-connection remote addresses, blackholing, a reliable-only carrier, a small datagram queue).
 */
export async function setup(
  serverOpts: SessionServerOptions = {},
  clientOpts: Partial<ClientOptions> = {},
  link: LinkOptions & { helper?: boolean } = {},
) {
  if (!link.helper) {
    const name = `session-harness-${process.pid}-${++nameSeq}`;
    const listener = createMemoryListener({
      name,
      seed: link.seed ?? 1,
      link: { lossRate: link.loss ?? 0, reorderRate: link.reorder ?? 0 },
    });
    const server = createSessionServer({ listeners: [listener], ...serverOpts });
    cleanups.push(async () => {
      await server.close();
      await listener.close();
    });
    const client = await connect(`memory://${name}/quiver`, { connector: connectMemory, ...clientOpts });
    cleanups.push(() => client.close());
    return { net: null, listener, server, client };
  }
  const net = createMemoryNetwork(link);
  const listener = net.listen();
  const server = createSessionServer({ listeners: [listener], ...serverOpts });
  cleanups.push(async () => {
    await server.close();
    await net.listener?.close();
    await listener.close();
  });
  const client = await connect('https://game.test/quiver', { connector: net.connect, ...clientOpts });
  cleanups.push(() => client.close());
  return { net, listener, server, client };
}

/** Polls `cond` on real time (for tests on the system clock); fails after 10 s. */
/**
 * How long `until` waits before it names what never happened. A hang detector, not a timing claim: generous, so
 * that a loaded 2-core CI machine never fails a test that is merely slow, and below the 60 s test timeout.
 */
export const UNTIL_LIMIT_MS = 45_000;

export function until(cond: () => boolean, what = 'condition'): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = () => {
      if (cond()) resolve();
      else if (Date.now() - started > UNTIL_LIMIT_MS) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(tick, 2);
    };
    tick();
  });
}

/** Lets promise jobs and stream plumbing settle (they are not timed by the manual clock). */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}

/** Advances a manual clock in steps, letting async work settle between steps. */
/** Any manual clock (this package's or @quiver/transport's). */
interface Advancing {
  advance(ms: number): unknown;
}

export async function run(clock: Advancing, ms: number, step = 1): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    clock.advance(Math.min(step, ms - t));
    await settle(3);
  }
}

/** Runs `clock` until `cond` holds (at most `maxMs` of manual time). */
export async function runUntil(
  clock: Advancing,
  cond: () => boolean,
  maxMs = 60_000,
  step = 1,
): Promise<void> {
  for (let t = 0; t < maxMs; t += step) {
    if (cond()) return;
    clock.advance(step);
    await settle(3);
  }
  if (!cond()) throw new Error(`condition not reached within ${maxMs} ms of manual time`);
}
