import { describe, expect, it } from 'vitest';
import { connect, createSessionServer, defineMessage, Kind, QueueFullError } from '../src/index.js';
import { cleanups, settle, until, useCleanup } from './support/harness.js';
import { frameReader, rawClient } from './support/raw.js';
import { connectMemory, createMemoryListener, type MemoryListener } from '@quiver/transport';

let seq = 0;

useCleanup();

const N = defineMessage<number>('n');

async function world(serverExtra = {}, clientExtra = {}) {
  // A named listener: closing it and creating another with the same name is a transport restart.
  const name = `reconnect-${process.pid}-${++seq}`;
  const listen = () => createMemoryListener({ name, seed: seq });
  const state: { listener: MemoryListener | null } = { listener: listen() };
  const server = createSessionServer({ listeners: [state.listener!], messages: [N], ...serverExtra });
  const client = await connect(`memory://${name}/q`, {
    connector: connectMemory,
    reconnect: { initialMs: 5, maxMs: 40, seed: 7 },
    ...clientExtra,
  });
  cleanups.push(async () => {
    await client.close();
    await server.close();
    await state.listener?.close();
  });
  /** Closes the transport listener (every transport session drops) and, later, opens a new one. */
  const restart = async (downMs = 0) => {
    await state.listener?.close();
    state.listener = null;
    if (downMs) await new Promise((r) => setTimeout(r, downMs));
    state.listener = listen();
    server.addListener(state.listener);
  };
  return { server, client, restart, state, url: `memory://${name}/q` };
}

describe('reconnection and resumption', () => {
  it('loses no reliable message, in either direction, across a transport restart mid-stream', async () => {
    const { server, client, restart } = await world();
    const atServer: number[] = [];
    const atClient: number[] = [];
    const opens: boolean[] = [];
    server.on(N, (n) => atServer.push(n));
    client.on(N, (n) => atClient.push(n));
    client.on('open', (i) => opens.push(i.recovered));
    const s = [...server.sessions.values()][0];
    let unackedAtRestart = { client: 0, server: 0 };
    for (let i = 0; i < 1000; i++) {
      client.send(N, i);
      s.send(N, i);
      if (i === 500) {
        // Messages on the wire (counted out) that the other end has not received are certainly unacknowledged: the
        // replay buffers are non-empty at the restart, so passing needs a replay, not only a later flush.
        unackedAtRestart = {
          client: (client.stats.messagesOut.reliable ?? 0) - atServer.length,
          server: (s.stats.messagesOut.reliable ?? 0) - atClient.length,
        };
        await restart();
      }
      if (i % 25 === 0) await settle();
    }
    await until(() => atServer.length >= 1000 && atClient.length >= 1000, 'all messages');
    await settle(20);
    expect(unackedAtRestart.client).toBeGreaterThan(0);
    expect(unackedAtRestart.server).toBeGreaterThan(0);
    expect(opens).toEqual([true]);
    expect(client.recovered).toBe(true);
    expect(atServer).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(atClient).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(server.sessions.size).toBe(1);
    expect(server.metrics.reconnects).toBe(1);
    expect(server.metrics.recoveries).toBe(1);
  });

  it('gives a fresh session (recovered: false) once the resume window has passed', async () => {
    const { server, client, restart } = await world({ resumeWindowMs: 30 });
    const firstId = client.sessionId;
    const opens: boolean[] = [];
    client.on('open', (i) => opens.push(i.recovered));
    await restart(150);
    await until(() => opens.length === 1, 'reopen');
    expect(opens).toEqual([false]);
    expect(client.sessionId).not.toBe(firstId);
    expect(server.metrics.reconnects).toBe(1);
    expect(server.metrics.recoveries).toBe(0);
    // The new session works.
    const seen: number[] = [];
    server.on(N, (n) => seen.push(n));
    client.send(N, 5);
    await until(() => seen.length === 1);
  });

  it('queues reliable sends while disconnected, bounded, with the error policy', async () => {
    const { server, client, restart, state } = await world(
      {},
      { channels: { reliable: { maxQueuedMessages: 3, overflow: 'error' } } },
    );
    const seen: number[] = [];
    server.on(N, (n) => seen.push(n));
    await state.listener!.close();
    state.listener = null;
    await until(() => client.state === 'reconnecting');
    client.send(N, 1);
    client.send(N, 2);
    client.send(N, 3);
    expect(() => client.send(N, 4)).toThrow(QueueFullError);
    // The refusal is counted like any other loss, so an application that swallows the error still sees it.
    expect(client.stats.drops['queue-full']).toBe(1);
    await restart();
    await until(() => seen.length === 3);
    expect(seen).toEqual([1, 2, 3]);
  });

  it('drop-oldest policy keeps the newest while disconnected, counting drops', async () => {
    const drops: string[] = [];
    const { server, client, restart, state } = await world(
      {},
      {
        channels: { reliable: { maxQueuedMessages: 3, overflow: 'drop-oldest' } },
        onDrop: (r: string) => drops.push(r),
      },
    );
    const seen: number[] = [];
    server.on(N, (n) => seen.push(n));
    await state.listener!.close();
    state.listener = null;
    await until(() => client.state === 'reconnecting');
    for (let i = 1; i <= 10; i++) client.send(N, i);
    await restart();
    await until(() => seen.length === 3);
    expect(seen).toEqual([8, 9, 10]);
    expect(client.stats.drops['queue-full']).toBe(7);
    expect(drops.filter((d) => d === 'queue-full').length).toBe(7);
  });

  it('does not resume with a forged token: the same user gets a fresh session, the real one is untouched', async () => {
    const { server, client, url } = await world({ authenticate: () => ({ userId: 'alice' }) });
    const victim = client.sessionId;
    const seen: number[] = [];
    server.on(N, (n) => seen.push(n));
    // Resume tokens are 18 random bytes in base64url (24 characters); forge one of the same length and one shorter
    // (the comparison must not accept a prefix).
    for (const [i, token] of ['A'.repeat(24), 'A'.repeat(23)].entries()) {
      const raw = await rawClient(connectMemory, url);
      const read = frameReader(raw.control.readable);
      await raw.hello({ resume: { id: victim, token } });
      const reply = await read();
      expect(reply?.header[0]).toBe(Kind.WELCOME);
      const welcome = reply!.header[1] as { sessionId: string; recovered: boolean };
      expect(welcome.recovered).toBe(false);
      expect(welcome.sessionId).not.toBe(victim);
      expect(server.metrics.reconnects).toBe(i + 1);
      expect(server.metrics.recoveries).toBe(0);
      raw.session.close();
    }
    // The victim's session was neither taken over nor replaced: same id, still open, still carrying messages.
    expect(client.state).toBe('open');
    expect(client.sessionId).toBe(victim);
    expect(server.sessions.get(victim!)?.user.userId).toBe('alice');
    client.send(N, 7);
    await until(() => seen.length === 1);
    expect(seen).toEqual([7]);
  });

  it('does not resume for a different user, even with the right token', async () => {
    let user = 'alice';
    const { server, client, restart } = await world({
      authenticate: () => ({ userId: user }),
    });
    const first = client.sessionId;
    const opens: boolean[] = [];
    client.on('open', (i) => opens.push(i.recovered));
    user = 'mallory';
    await restart();
    await until(() => opens.length === 1);
    expect(opens).toEqual([false]);
    expect(client.sessionId).not.toBe(first);
    expect(server.metrics.reconnects).toBe(1);
    expect(server.metrics.recoveries).toBe(0);
    expect([...server.sessions.values()].map((s) => s.user.userId)).toContain('mallory');
  });
});
