import {
  connectMemory,
  createMemoryListener,
  type MemoryListener,
  type MemoryListenerOptions,
  createMemoryPair,
  type IncomingSession,
  ManualClock,
  memoryListenerCount,
  QuiverTransportError,
  type QuiverSession,
  SessionRejectedError,
} from '@quiver/transport';
import { afterEach, describe, expect, it } from 'vitest';

const flush = () => new Promise<void>((resolve) => setImmediate(resolve));
const errorOf = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e as Error,
  );

/** A session-level failure with exactly this message (not a rejection with an HTTP status). */
function expectSessionError(e: unknown, message: string): void {
  expect(e).toBeInstanceOf(QuiverTransportError);
  expect(e).not.toBeInstanceOf(SessionRejectedError);
  expect(e).toMatchObject({ name: 'WebTransportError', source: 'session', streamErrorCode: null, message });
}

/** The listener's refusal as the client sees it: the HTTP status and reason, exactly. */
function expectRejected(e: unknown, status: number, reason: string): void {
  expect(e).toBeInstanceOf(SessionRejectedError);
  expect(e).toMatchObject({
    name: 'WebTransportError',
    source: 'session',
    status,
    message: `the server rejected the session: ${status} ${reason}`,
  });
}

/** A stream-level failure carrying the peer's code, exactly. */
function expectStreamError(e: unknown, message: string, streamErrorCode: number): void {
  expect(e).toBeInstanceOf(QuiverTransportError);
  expect(e).toMatchObject({ name: 'WebTransportError', source: 'stream', streamErrorCode, message });
}

const ALREADY = new Error('this session request was already accepted or rejected');

/** Advances a ManualClock in steps, letting promise reactions run between steps. */
async function run(clock: ManualClock, ms: number, step = 1) {
  for (let t = 0; t < ms; t += step) {
    clock.advance(step);
    await flush();
  }
}

async function nextIncoming(readable: ReadableStream<IncomingSession>): Promise<IncomingSession> {
  const reader = readable.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  return value!;
}

const listeners: { listener: MemoryListener; clock?: ManualClock }[] = [];
/** A listener closed after the test even when the test failed, so one failure does not cascade. */
function listen(options: MemoryListenerOptions = {}): MemoryListener {
  const listener = createMemoryListener(options);
  listeners.push({ listener, clock: options.clock instanceof ManualClock ? options.clock : undefined });
  return listener;
}

afterEach(async () => {
  for (const { listener, clock } of listeners.splice(0)) {
    const closing = listener.close();
    // Under a ManualClock the close frames only travel when simulated time moves.
    clock?.runAll();
    await closing;
  }
  expect(memoryListenerCount()).toBe(0);
});

describe('memory listener', () => {
  it('runs a whole session under a ManualClock and leaves no timer behind', async () => {
    const clock = new ManualClock();
    const listener = listen({ clock, link: { delayMs: 5 } });
    const client = connectMemory(`${listener.url}/game?room=1`, {
      headers: { 'X-Token': 'abc', Origin: 'https://o' },
    });
    const incomingP = nextIncoming(listener.incomingSessions);
    await run(clock, 5);
    const incoming = await incomingP;
    expect(incoming.request).toMatchObject({
      transport: 'memory',
      path: '/game',
      url: '/game?room=1',
      origin: 'https://o',
      headers: { 'x-token': 'abc', origin: 'https://o' },
    });
    expect(incoming.request.query.get('room')).toBe('1');
    const server = incoming.accept();
    let ready = false;
    void client.ready.then(() => {
      ready = true;
    });
    await run(clock, 4);
    expect(ready).toBe(false);
    await run(clock, 1);
    expect(ready).toBe(true);
    expect(clock.now()).toBe(10);
    expect((await client.getStats()).minRtt).toBe(10);
    client.close({ closeCode: 7, reason: 'done' });
    await run(clock, 5);
    expect(await server.closed).toEqual({ closeCode: 7, reason: 'done' });
    await listener.close();
    expect(clock.pending).toBe(0);
  });

  it('rejects a request left undecided with 408 after requestTimeoutMs', async () => {
    const clock = new ManualClock();
    const listener = listen({ clock, requestTimeoutMs: 1000 });
    const client = connectMemory(`${listener.url}/slow`);
    const incomingP = nextIncoming(listener.incomingSessions);
    await run(clock, 999, 111);
    const incoming = await incomingP;
    const readyError = errorOf(client.ready);
    clock.advance(1);
    await flush();
    expectRejected(await readyError, 408, 'request timeout');
    expectRejected(await errorOf(client.closed), 408, 'request timeout');
    expect(() => incoming.accept()).toThrow(ALREADY);
    expect(() => incoming.reject(403)).toThrow(ALREADY);
    await listener.close();
    expect(clock.pending).toBe(0);
  });

  it('refuses requests beyond maxPendingRequests with 503 and counts them and timeouts', async () => {
    const clock = new ManualClock();
    const listener = listen({ clock, maxPendingRequests: 2, requestTimeoutMs: 50 });
    const clients = [1, 2, 3].map((i) => connectMemory(`${listener.url}/p${i}`));
    clock.advance(0);
    await flush();
    expectRejected(await errorOf(clients[2].ready), 503, 'too many pending session requests');
    expect(listener.refusedRequests).toBe(1);
    clock.advance(50);
    await flush();
    expectRejected(await errorOf(clients[0].ready), 408, 'request timeout');
    expect(listener.timedOutRequests).toBe(2);
    await listener.close();
    expect(clock.pending).toBe(0);
  });

  it('validates reject statuses and lets a rejected client see the status', async () => {
    const listener = listen();
    const client = connectMemory(`${listener.url}/x`);
    const incoming = await nextIncoming(listener.incomingSessions);
    expect(() => incoming.reject(200)).toThrow(
      new RangeError('reject status must be an HTTP error status (400-599), got 200'),
    );
    incoming.reject(429, 'slow down');
    expectRejected(await errorOf(client.ready), 429, 'slow down');
    await listener.close();
  });

  it('fails connections to unknown listeners, on connectTimeoutMs and on abort', async () => {
    const missing = connectMemory('memory://nobody/here');
    expectSessionError(await errorOf(missing.ready), 'no memory listener at memory://nobody/here');
    expectSessionError(await errorOf(missing.closed), 'no memory listener at memory://nobody/here');
    expect(() => connectMemory('https://example/x')).toThrow(TypeError);

    const clock = new ManualClock();
    const listener = listen({ clock, link: { delayMs: 50 } });
    const timedOut = connectMemory(`${listener.url}/t`, { connectTimeoutMs: 20 });
    await run(clock, 20);
    expectSessionError(await errorOf(timedOut.ready), 'connect timed out after 20 ms');
    // The request still arrives; accepting it yields a session that is closed at once, not a lingering one.
    const incomingP = nextIncoming(listener.incomingSessions);
    await run(clock, 60);
    const late = (await incomingP).accept();
    expect((await late.closed).reason).toContain('abandoned');

    const controller = new AbortController();
    const aborted = connectMemory(`${listener.url}/a`, { signal: controller.signal });
    controller.abort();
    expectSessionError(await errorOf(aborted.ready), 'the connection attempt was aborted');
    await run(clock, 200);
    await listener.close();
    clock.runAll();
    expect(clock.pending).toBe(0);
  });

  it('clears the connect timeout once connected, and ignores a later abort', async () => {
    const clock = new ManualClock();
    const listener = listen({ clock });
    const controller = new AbortController();
    const client = connectMemory(`${listener.url}/x`, { connectTimeoutMs: 1000, signal: controller.signal });
    const incomingP = nextIncoming(listener.incomingSessions);
    clock.advance(0);
    const server = (await incomingP).accept();
    clock.advance(0);
    await client.ready;
    expect(clock.pending).toBe(0);
    controller.abort();
    clock.advance(2000);
    await flush();
    client.close({ closeCode: 5 });
    clock.runAll();
    expect(await server.closed).toEqual({ closeCode: 5, reason: '' });
    await listener.close();
    expect(clock.pending).toBe(0);
  });

  it('closes its sessions, rejects undecided requests with 503 and frees its name on close', async () => {
    const listener = listen({ name: 'arena' });
    expect(() => createMemoryListener({ name: 'arena' })).toThrow(/already exists/);
    const accepted = connectMemory('memory://arena/a');
    const undecided = connectMemory('memory://arena/b');
    const reader = listener.incomingSessions.getReader();
    (await reader.read()).value!.accept();
    await accepted.ready;
    await (await reader.read()).value;
    await listener.close({ closeCode: 1001, reason: 'maintenance' });
    expect(await accepted.closed).toEqual({ closeCode: 1001, reason: 'maintenance' });
    expectRejected(await errorOf(undecided.ready), 503, 'listener closed');
    expect((await reader.read()).done).toBe(true);
    const again = listen({ name: 'arena' });
    await again.close();
  });
});

describe('memory session', () => {
  const sessions: QuiverSession[] = [];
  afterEach(() => {
    for (const s of sessions.splice(0)) s.close();
  });
  const pair = (...args: Parameters<typeof createMemoryPair>) => {
    const p = createMemoryPair(...args);
    sessions.push(p.client, p.server);
    return p;
  };

  it('stalls a writer whose reader stalls, within highWaterMark + receive window', async () => {
    const highWaterMark = 32 * 1024;
    const streamReceiveWindow = 64 * 1024;
    const { client, server } = pair({ highWaterMark, streamReceiveWindow });
    const stream = await client.createBidirectionalStream();
    const writer = stream.writable.getWriter();
    let accepted = 0;
    const chunk = 8 * 1024;
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 64; i++) {
      writes.push(
        writer.write(new Uint8Array(chunk)).then(() => {
          accepted += chunk;
        }),
      );
    }
    for (let i = 0; i < 20; i++) await flush();
    // Nothing reads on the server: only the receive window's worth got through.
    expect(accepted).toBe(streamReceiveWindow);
    expect(writer.desiredSize).toBeLessThanOrEqual(0);
    const incoming = (await server.incomingBidirectionalStreams.getReader().read()).value!;
    const reader = incoming.readable.getReader();
    let read = 0;
    while (read < 64 * chunk) read += (await reader.read()).value!.byteLength;
    await Promise.all(writes);
    expect(accepted).toBe(64 * chunk);
  });

  it('makes stream creation wait for the peer to allow more streams (maxIncomingStreams)', async () => {
    const clock = new ManualClock();
    const { client, server } = pair({ clock, maxIncomingStreams: 2 });
    const first = await client.createBidirectionalStream();
    await client.createBidirectionalStream();
    let third = false;
    const thirdP = client.createBidirectionalStream().then((s) => {
      third = true;
      return s;
    });
    // Uni streams have their own budget.
    await client.createUnidirectionalStream();
    clock.advance(0);
    await flush();
    expect(third).toBe(false);
    const incoming = server.incomingBidirectionalStreams.getReader();
    const s1 = (await incoming.read()).value!;
    // Finish the first stream both ways: only then is its slot free again.
    await first.writable.close();
    await s1.writable.close();
    clock.advance(0);
    await flush();
    await s1.readable.getReader().read();
    await first.readable.getReader().read();
    clock.advance(0);
    await flush();
    expect(third).toBe(true);
    await thirdP;
    // A create waiting on the limit rejects when the session closes.
    const fourth = errorOf(client.createBidirectionalStream());
    await flush();
    client.close();
    expectSessionError(await fourth, 'the session closed (code 0)');
    clock.runAll();
  });

  it('bounds the incoming datagram queue, dropping the oldest, and counts receive-queue-full drops', async () => {
    const clock = new ManualClock();
    const { client, server } = pair({ clock, datagramReceiveQueue: 4 });
    const writer = client.datagrams.writable.getWriter();
    for (let i = 0; i < 10; i++) await writer.write(new Uint8Array([i]));
    clock.advance(0);
    const dropped = await server.getStats();
    expect(dropped.datagrams.droppedIncoming['receive-queue-full']).toBe(6);
    const reader = server.datagrams.readable.getReader();
    const got = [];
    for (let i = 0; i < 4; i++) got.push((await reader.read()).value![0]);
    expect(got).toEqual([6, 7, 8, 9]);
    // `received` counts what reached the application.
    expect((await server.getStats()).datagrams.received).toBe(4);
  });

  it('drops datagrams as congestion behind a bandwidth cap and as closed after close', async () => {
    const clock = new ManualClock();
    const { client } = pair({
      clock,
      link: { bandwidthBytesPerSecond: 1000 },
      datagramSendBufferBytes: 2500,
    });
    const writer = client.datagrams.writable.getWriter();
    for (let i = 0; i < 10; i++) await writer.write(new Uint8Array(1000));
    const stats = await client.getStats();
    expect(stats.datagrams.sent).toBe(2);
    expect(stats.datagrams.droppedOutgoing.congestion).toBe(8);
    client.close();
    const after = await client.getStats();
    // The two still behind the cap were abandoned by the close.
    expect(after.datagrams.droppedOutgoing.closed).toBe(2);
    expectSessionError(await errorOf(writer.write(new Uint8Array(1))), 'the session closed (code 0)');
    clock.runAll();
    expect(clock.pending).toBe(0);
  });

  it('validates the close code and truncates the reason to 1024 UTF-8 bytes', async () => {
    const { client, server } = pair();
    expect(() => client.close({ closeCode: -1 })).toThrow(TypeError);
    expect(() => client.close({ closeCode: 2 ** 32 })).toThrow(TypeError);
    expect(() => client.close({ closeCode: 1.5 })).toThrow(TypeError);
    client.close({ closeCode: 3, reason: 'é'.repeat(600) });
    const info = await server.closed;
    expect(info.closeCode).toBe(3);
    expect(info.reason).toBe('é'.repeat(512));
    expect(await client.closed).toEqual(info);
  });

  it('discards unread data on reset and rejects chunks that are not bytes', async () => {
    const clock = new ManualClock();
    const { client, server } = pair({ clock });
    const stream = await client.createUnidirectionalStream();
    const writer = stream.getWriter();
    await writer.write(new Uint8Array(100));
    clock.advance(0);
    const incomingStreams = server.incomingUnidirectionalStreams.getReader();
    const incoming = (await incomingStreams.read()).value!;
    await writer.abort({ streamErrorCode: 9 });
    clock.advance(0);
    const error = await errorOf(incoming.getReader().read());
    expectStreamError(error, 'the peer reset the stream (RESET_STREAM, code 9)', 9);

    const other = (await client.createUnidirectionalStream()).getWriter();
    expect(await errorOf(other.write({ byteLength: 3 } as unknown as Uint8Array))).toEqual(
      new TypeError('a WebTransport stream or datagram chunk must be a BufferSource (Uint8Array)'),
    );
    clock.advance(0);
    // The bad write resets the stream, so the peer's reader is not left waiting.
    const otherIncoming = (await incomingStreams.read()).value!;
    expectStreamError(
      await errorOf(otherIncoming.getReader().read()),
      'the peer reset the stream (RESET_STREAM, code 0)',
      0,
    );
  });

  it('refuses streams the application no longer accepts (incoming readable cancelled)', async () => {
    const clock = new ManualClock();
    const { client, server } = pair({ clock });
    await server.incomingBidirectionalStreams.cancel();
    const stream = await client.createBidirectionalStream();
    const writer = stream.writable.getWriter();
    const reading = errorOf(stream.readable.getReader().read());
    const writing = errorOf(
      (async () => {
        for (;;) await writer.write(new Uint8Array(1024));
      })(),
    );
    for (let i = 0; i < 5; i++) {
      clock.advance(0);
      await flush();
    }
    expectStreamError(await writing, 'the peer stopped reading (STOP_SENDING, code 0)', 0);
    expectStreamError(await reading, 'the peer reset the stream (RESET_STREAM, code 0)', 0);
    // The session itself is unharmed.
    const uni = (await client.createUnidirectionalStream()).getWriter();
    await uni.write(new Uint8Array([1]));
    clock.advance(0);
    expect((await server.incomingUnidirectionalStreams.getReader().read()).done).toBe(false);
  });

  it('numbers streams as RFC 9000 §2.1 does and refuses new streams after close', async () => {
    const { client, server } = pair();
    await client.createBidirectionalStream();
    await client.createUnidirectionalStream();
    await server.createBidirectionalStream();
    const bidi = server.incomingBidirectionalStreams.getReader();
    const uni = server.incomingUnidirectionalStreams.getReader();
    expect((await bidi.read()).done).toBe(false);
    expect((await uni.read()).done).toBe(false);
    client.close();
    expectSessionError(await errorOf(client.createBidirectionalStream()), 'the session is closed');
    await server.closed;
    expect((await bidi.read()).done).toBe(true);
    expect((await uni.read()).done).toBe(true);
  });
});
