/**
 * The page/Worker bridge of `@quiver/session/worker` in Node: the host and the page side talk over a real
 * `MessageChannel` (structured clone, asynchronous delivery, transferred buffers), the session underneath runs on
 * the memory transport. Browsers with a real dedicated Worker are covered by worker.browser.test.ts.
 */
import { connectMemory, createMemoryListener, type MemoryListener } from '@quiver/transport';
import { describe, expect, it } from 'vitest';
import {
  type ClientSession,
  ConnectError,
  createSessionServer,
  defineMessage,
  type SessionClient,
  SessionClosedError,
} from '../src/index.js';
import { connect, MainThreadDelay } from '../src/worker/index.js';
import { hostSessions } from '../src/worker-host/index.js';
import { cleanups, until, useCleanup } from './support/harness.js';

useCleanup();

const N = defineMessage<number>('n');
const Blob = defineMessage<Uint8Array>('blob');
const Pos = defineMessage<{ x: number }>('pos', { id: 9, channel: 'unreliable' });
const Checked = defineMessage<number>('checked', { validate: (v): v is number => typeof v === 'number' });

// The main-thread session satisfies the interface the Worker session implements (and rooms consume).
const _sameApi: (s: ClientSession) => SessionClient = (s) => s;

let seq = 0;

/** A "Worker" scope: one end of a MessageChannel whose other end is what the page posts to. */
function workerPair() {
  const { port1: page, port2: scope } = new MessageChannel();
  const stop = hostSessions({ connectors: { memory: connectMemory }, scope, reportIntervalMs: 20 });
  scope.start();
  cleanups.push(() => {
    stop();
    page.close();
    scope.close();
  });
  return page;
}

async function world(clientExtra: Record<string, unknown> = {}, serverExtra = {}) {
  const name = `worker-${process.pid}-${++seq}`;
  const listen = () => createMemoryListener({ name, seed: seq });
  const state: { listener: MemoryListener | null } = { listener: listen() };
  const server = createSessionServer({ listeners: [state.listener!], messages: [N, Pos], ...serverExtra });
  const worker = workerPair();
  const url = `memory://${name}/q`;
  const client = await connect(url, {
    worker,
    transports: [{ name: 'memory', connector: connectMemory }],
    reconnect: { initialMs: 5, maxMs: 40, seed: 7 },
    fallback: { memory: false },
    ...clientExtra,
  });
  cleanups.push(async () => {
    await client.close();
    await server.close();
    await state.listener?.close();
  });
  const restart = async () => {
    await state.listener?.close();
    state.listener = listen();
    server.addListener(state.listener);
  };
  return { server, client, restart, url, worker };
}

describe('session hosted in a Worker (bridge over MessageChannel)', () => {
  it('sends and receives typed messages, bytes, fixed ids; answers reads synchronously', async () => {
    const { server, client } = await world();
    server.on(N, (n, s) => s.send(N, n * 2));
    server.on(Blob, (b, s) =>
      s.send(
        Blob,
        b.map((x) => x + 1),
      ),
    );
    const got: number[] = [];
    client.on(N, (n) => got.push(n));
    for (let i = 0; i < 100; i++) client.send(N, i);
    await until(() => got.length === 100, '100 echoes');
    expect(got).toEqual(Array.from({ length: 100 }, (_, i) => i * 2));
    expect(client.latest(N)).toBe(198);

    const blob = await new Promise<Uint8Array>((resolve) => {
      client.on(Blob, resolve);
      client.send(Blob, new Uint8Array([1, 2, 3]));
    });
    expect(blob).toBeInstanceOf(Uint8Array);
    expect([...blob]).toEqual([2, 3, 4]);
    // A buffer reused right after send() (a scratch buffer) does not change what was sent.
    const scratch = new Uint8Array([7, 7]);
    const reused = new Promise<Uint8Array>((resolve) => client.on(Blob, resolve));
    client.send(Blob, scratch);
    scratch.fill(0);
    expect([...(await reused)]).toEqual([8, 8]);

    // The fixed id of `pos` reached the handshake from the page.
    const s = [...server.sessions.values()][0];
    const atServer: number[] = [];
    server.on(Pos, (p) => atServer.push(p.x));
    client.send(Pos, { x: 5 });
    await until(() => atServer.length === 1, 'pos');
    expect(s.transport).toBe('memory');

    expect(client.state).toBe('open');
    expect(client.transport).toBe('memory');
    expect(client.sessionId).toBe(s.id);
    expect(client.stats.messagesOut.reliable).toBeGreaterThanOrEqual(101);
    expect(client.clockError).toBeLessThan(Number.POSITIVE_INFINITY);
    expect(Math.abs(client.serverTime() - Date.now())).toBeLessThan(1000);
    expect(client.mainThreadDelay.samples).toBeGreaterThan(0);
    expect(() => client.send(N, 1, { channel: 'nope' })).toThrow(TypeError);
  });

  it('counts unhandled messages on the page, and closes with 4422 when a payload fails validation', async () => {
    const drops: string[] = [];
    const { server, client } = await world({ onDrop: (r: string) => drops.push(r) });
    const s = [...server.sessions.values()][0];
    s.send(N, 1);
    await until(() => client.stats.drops.unhandled === 1, 'unhandled drop');
    expect(drops).toEqual(['unhandled']);
    client.on(Checked, () => {});
    const errors: Error[] = [];
    client.on('error', (e) => errors.push(e));
    s.send(Checked, 'not a number' as unknown as number);
    const closed = await client.closed;
    expect(closed.code).toBe(4422);
    expect(errors[0]?.name).toBe('ValidationError');
    expect(client.state).toBe('closed');
    expect(() => client.send(N, 1)).toThrow(SessionClosedError);
  });

  it('reconnects and resumes in the Worker without losing a reliable message', async () => {
    const { server, client, restart } = await world();
    const atServer: number[] = [];
    server.on(N, (n) => atServer.push(n));
    const events: string[] = [];
    client.on('reconnecting', () => events.push('reconnecting'));
    client.on('open', (i) => events.push(`open recovered=${i.recovered}`));
    for (let i = 0; i < 500; i++) {
      client.send(N, i);
      if (i === 250) await restart();
    }
    await until(() => atServer.length >= 500, 'all messages');
    expect(atServer).toEqual(Array.from({ length: 500 }, (_, i) => i));
    await until(() => events.length >= 2, 'events');
    expect(events).toEqual(['reconnecting', 'open recovered=true']);
    expect(client.recovered).toBe(true);
    expect(client.reconnects).toBe(1);
  });

  it('asks the page for a fresh token on every connect', async () => {
    let calls = 0;
    const seen: string[] = [];
    const { restart, client } = await world(
      { token: () => `t${++calls}` },
      {
        authenticate: (req: { query: URLSearchParams }) => {
          seen.push(req.query.get('token') ?? '');
          return { userId: 'u' };
        },
      },
    );
    await restart();
    await until(() => client.reconnects === 1, 'reconnect');
    expect(seen).toEqual(['t1', 't2']);
  });

  it('rejects with ConnectError and the attempts when every transport fails', async () => {
    const worker = workerPair();
    const err = await connect('memory://nobody-listens/q', {
      worker,
      transports: [
        { name: 'memory', connector: connectMemory },
        { name: 'missing-in-worker', connector: connectMemory },
      ],
      fallback: { memory: false, headStartMs: 10 },
      reconnect: false,
    }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).attempts.map((a) => [a.name, a.outcome])).toEqual([
      ['memory', 'failed'],
      ['missing-in-worker', 'unsupported'],
    ]);
  });

  it('MainThreadDelay: last, mean and the max over the last one to two windows', () => {
    const d = new MainThreadDelay(1000);
    d.add(0, 2);
    d.add(100, 150);
    expect(d.lastMs).toBe(50);
    expect(d.avgMs).toBeCloseTo(2 + (50 - 2) / 8);
    expect(d.maxMs).toBe(50);
    d.add(1100, 1101); // a new window: the previous one's max still counts
    expect(d.maxMs).toBe(50);
    d.add(2200, 2201); // two windows later it no longer does
    expect(d.maxMs).toBe(1);
    d.add(5000, 4990); // a report stamped after the page's clock (clock granularity) counts as no wait
    expect(d.lastMs).toBe(0);
    expect(d.samples).toBe(5);
  });
});
