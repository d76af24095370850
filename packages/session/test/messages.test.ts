import { describe, expect, it } from 'vitest';
import { CloseCode, defineMessage } from '../src/index.js';
import { setup, until, useCleanup } from './support/harness.js';

const Chat = defineMessage<{ text: string }>('chat');
const Pos = defineMessage<{ x: number; y: number }>('pos', { channel: 'unreliable' });
const Blob = defineMessage<Uint8Array>('blob', { id: 40 });

useCleanup();

describe('messages', () => {
  it('delivers typed messages both ways on reliable and unreliable channels', async () => {
    const got: string[] = [];
    const { server, client } = await setup({ messages: [Chat, Pos] });
    server.on(Chat, (m, s) => {
      got.push(`server:${m.text}`);
      s.send(Chat, { text: m.text.toUpperCase() });
    });
    server.on(Pos, (p) => got.push(`pos:${p.x},${p.y}`));
    const replies: string[] = [];
    client.on(Chat, (m) => replies.push(m.text));
    client.send(Chat, { text: 'hello' });
    client.send(Pos, { x: 1, y: 2 });
    await until(() => replies.length === 1 && got.length === 2, 'replies');
    expect(replies).toEqual(['HELLO']);
    expect(got).toContain('server:hello');
    expect(got).toContain('pos:1,2');
    expect(client.transport).toBe('memory');
  });

  it('passes binary payloads as bytes', async () => {
    const { server, client } = await setup({ messages: [Blob] });
    const seen: Uint8Array[] = [];
    server.on(Blob, (b) => seen.push(b));
    const data = new Uint8Array(5000).map((_, i) => i & 0xff);
    client.send(Blob, data);
    await until(() => seen.length === 1);
    expect(seen[0]).toBeInstanceOf(Uint8Array);
    expect(Array.from(seen[0])).toEqual(Array.from(data));
  });

  it('sends messages registered after the handshake by name', async () => {
    const Late = defineMessage<number>('late');
    const { server, client } = await setup({ messages: [Late] });
    const seen: number[] = [];
    server.on(Late, (n) => seen.push(n));
    client.send(Late, 42);
    await until(() => seen.length === 1);
    expect(seen).toEqual([42]);
  });

  it('keeps order on reliable-ordered channels', async () => {
    const { server, client } = await setup({ messages: [Chat] });
    const seen: string[] = [];
    server.on(Chat, (m) => seen.push(m.text));
    for (let i = 0; i < 500; i++) client.send(Chat, { text: String(i) });
    await until(() => seen.length === 500);
    expect(seen).toEqual(Array.from({ length: 500 }, (_, i) => String(i)));
  });

  it('validation hook closes the offending session with 4422', async () => {
    const Strict = defineMessage<{ n: number }>('strict', {
      validate: (p): p is { n: number } => typeof (p as { n?: unknown })?.n === 'number',
    });
    const errors: Error[] = [];
    const { server, client } = await setup({ messages: [Strict], onError: (e) => errors.push(e) });
    server.on(Strict, () => {});
    client.send(Strict, { n: 'x' } as unknown as { n: number });
    const info = await client.closed;
    expect(info.code).toBe(CloseCode.VALIDATION_FAILED);
    expect(errors[0]?.name).toBe('ValidationError');
    expect(server.metrics.errors.validation).toBe(1);
  });
});
