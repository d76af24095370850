/**
 * Cases the session layer must pass on every real transport (loopback sockets), written once and run by
 * websocket.test.ts and webtransport.test.ts with their own listener and connector.
 */
import type { ConnectOptions, Connector, TransportListener } from '@quiver/transport';
import { expect } from 'vitest';
import { ConnectError, connect, createSessionServer, defineMessage, reject } from '../../src/index.js';
import { cleanups, until } from './harness.js';
import { rawClient } from './raw.js';

const State = defineMessage<{ key: number; blob: Uint8Array }>('state', { channel: 'state' });

export interface RealTransport {
  /** A listener on 127.0.0.1 and an OS-chosen port. */
  listen(): Promise<TransportListener>;
  /** The URL of `path` on `port` in the connector's scheme. */
  url(port: number, path: string): string;
  connector: Connector;
  /** Passed to every connection (certificate pinning for WebTransport). */
  connectOptions?: ConnectOptions;
}

/** Authentication refuses with 401 before a session exists; the client sees the status; a good token gets in. */
export async function rejectsUnauthenticated(t: RealTransport): Promise<void> {
  const listener = await t.listen();
  const server = createSessionServer({
    listeners: [listener],
    authenticate: (req) => (req.query.get('token') === 'ok' ? { userId: 'u' } : reject(401, 'no')),
  });
  cleanups.push(async () => {
    await server.close();
    await listener.close();
  });
  const url = t.url(listener.address.port, '/');
  const options = { connector: t.connector, connectOptions: t.connectOptions };
  const err = await connect(url, { ...options, token: 'bad' }).catch((e) => e);
  expect(err).toBeInstanceOf(ConnectError);
  expect(err.status).toBe(401);
  expect(server.sessions.size).toBe(0);
  expect(server.metrics.rejections['401']).toBe(1);
  const ok = await connect(url, { ...options, token: 'ok' });
  cleanups.push(() => ok.close());
  expect(ok.state).toBe('open');
}

/**
 * A client that never reads: `sends` coalescing sends must keep the session's buffer within its memory budget, at
 * least `minCoalesced` of them coalesced, and the session open.
 */
export async function holdsStalledClientToBudget(
  t: RealTransport,
  sends: number,
  minCoalesced: number,
): Promise<void> {
  const listener = await t.listen();
  const budget = { maxInFlightBytes: 64 * 1024, maxQueuedBytes: 32 * 1024 };
  const server = createSessionServer({
    listeners: [listener],
    channels: { state: { overflow: 'coalesce', maxQueuedBytes: budget.maxQueuedBytes } },
    maxInFlightBytes: budget.maxInFlightBytes,
  });
  cleanups.push(async () => {
    await server.close();
    await listener.close();
  });
  const raw = await rawClient(t.connector, t.url(listener.address.port, '/'), t.connectOptions);
  await raw.hello();
  await until(() => server.sessions.size === 1);
  const s = [...server.sessions.values()][0];
  let max = 0;
  const blob = new Uint8Array(300);
  for (let i = 0; i < sends; i++) {
    s.send(State, { key: i % 64, blob }, { key: i % 64 });
    max = Math.max(max, s.bufferedBytes);
    if (i % 500 === 0) await new Promise((r) => setTimeout(r, 1));
  }
  expect(max).toBeLessThanOrEqual(budget.maxInFlightBytes + budget.maxQueuedBytes);
  expect(server.metrics.drops.coalesced).toBeGreaterThan(minCoalesced);
  expect(s.state).toBe('open');
  raw.session.close();
}
