import { describe, expect, it } from 'vitest';
import { createSessionServer, defineMessage, encodeValue, Kind, streamFrame } from '../src/index.js';
import { cleanups, until, useCleanup } from './support/harness.js';
import { connectMemory, createMemoryListener } from '@quiver/transport';
import { frameReader, rawClient } from './support/raw.js';

useCleanup();

const N = defineMessage<number>('n', { id: 1 });

async function sendData(
  session: { createUnidirectionalStream(): Promise<WritableStream<Uint8Array>> },
  seqs: number[],
) {
  const w = (await session.createUnidirectionalStream()).getWriter();
  for (const c of streamFrame([Kind.OPEN, 1])) await w.write(c);
  for (const seq of seqs)
    for (const c of streamFrame([Kind.DATA, 1, seq, 0], encodeValue(seq * 10))) await w.write(c);
  await w.close();
}

describe('exactly-once', () => {
  it('delivers a replayed reliable message once, also when it comes back on a resumed connection', async () => {
    const listener = createMemoryListener();
    const server = createSessionServer({ listeners: [listener], messages: [N] });
    cleanups.push(async () => {
      await server.close();
      await listener.close();
    });
    const seen: number[] = [];
    server.on(N, (n) => seen.push(n));
    const hello = { messages: [['n', 1]], channels: [['reliable', 1, 'reliable-ordered']] };

    const first = await rawClient(connectMemory, `${listener.url}/q`);
    const read1 = frameReader(first.control.readable);
    await first.hello(hello);
    const welcome = (await read1())!.header[1] as { sessionId: string; resumeToken: string };
    await sendData(first.session, [1, 2, 3]);
    await sendData(first.session, [2]); // a replay on the same connection
    await until(() => seen.length === 3 && (server.metrics.drops.duplicate ?? 0) === 1);
    // The transport drops without a goodbye: the session waits for a resume.
    first.session.close({ closeCode: 0 });
    await until(() => [...server.sessions.values()][0]?.state === 'disconnected');

    const second = await rawClient(connectMemory, `${listener.url}/q`);
    const read2 = frameReader(second.control.readable);
    // The client does not know what arrived: it replays from 2 (as after a lost ACK).
    await second.hello({ ...hello, resume: { id: welcome.sessionId, token: welcome.resumeToken } });
    const w2 = (await read2())!.header[1] as { recovered: boolean; acks: [string, number][] };
    expect(w2.recovered).toBe(true);
    expect(w2.acks).toEqual([['reliable', 3]]);
    await sendData(second.session, [2, 3, 4]);
    await until(() => seen.length === 4);
    await until(() => (server.metrics.drops.duplicate ?? 0) === 3);
    expect(seen).toEqual([10, 20, 30, 40]);
    second.session.close();
  });

  it('a wrong resume token gets a fresh session and leaves the old one alone', async () => {
    const listener = createMemoryListener();
    const server = createSessionServer({ listeners: [listener], messages: [N] });
    cleanups.push(async () => {
      await server.close();
      await listener.close();
    });
    const hello = { messages: [['n', 1]], channels: [['reliable', 1, 'reliable-ordered']] };
    const first = await rawClient(connectMemory, `${listener.url}/q`);
    const read1 = frameReader(first.control.readable);
    await first.hello(hello);
    const welcome = (await read1())!.header[1] as { sessionId: string; resumeToken: string };
    first.session.close({ closeCode: 0 });
    await until(() => server.sessions.get(welcome.sessionId)?.state === 'disconnected');
    const thief = await rawClient(connectMemory, `${listener.url}/q`);
    const read2 = frameReader(thief.control.readable);
    const forged = welcome.resumeToken.replace(/^./, (c) => (c === '0' ? '1' : '0'));
    await thief.hello({ ...hello, resume: { id: welcome.sessionId, token: forged } });
    const w2 = (await read2())!.header[1] as { recovered: boolean; sessionId: string };
    expect(w2.recovered).toBe(false);
    expect(w2.sessionId).not.toBe(welcome.sessionId);
    expect(server.sessions.get(welcome.sessionId)?.state).toBe('disconnected');
    expect(server.metrics.reconnects).toBe(1);
    expect(server.metrics.recoveries).toBe(0);
    thief.session.close();
  });
});
