import { QuiverTransportError } from '@quiver/transport';
import { afterEach, describe, expect, it } from 'vitest';
import { connectWebSocket, type WebSocketSession } from '../src/index.js';
import { type EchoServer, pattern, readAll, startEchoServer, writeAll } from './helpers.js';

let server: EchoServer | undefined;
const clients: WebSocketSession[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) {
    c.close();
    await c.released;
  }
  await server?.close();
  server = undefined;
});

function connect(url: string, options = {}): WebSocketSession {
  const s = connectWebSocket(url, options);
  clients.push(s);
  return s;
}

describe('WebSocket session over real sockets', () => {
  it('echoes a bidirectional stream of 1 MiB in order', async () => {
    server = await startEchoServer();
    const client = connect(`${server.url}/echo`);
    await client.ready;
    const data = pattern(1024 * 1024);
    const s = await client.createBidirectionalStream();
    const [, back] = await Promise.all([writeAll(s.writable, data, 10_000), readAll(s.readable)]);
    expect(back.length).toBe(data.length);
    expect(Buffer.compare(back, data)).toBe(0);
  });

  it('runs many concurrent streams with a window far smaller than the data', async () => {
    server = await startEchoServer({ streamWindow: 4096 });
    const client = connect(server.url, { streamWindow: 4096 });
    const results = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const data = pattern(100_000 + i, i + 1);
        const s = await client.createBidirectionalStream();
        const [, back] = await Promise.all([writeAll(s.writable, data), readAll(s.readable)]);
        return Buffer.compare(back, data);
      }),
    );
    expect(results).toEqual(new Array(20).fill(0));
  });

  it('carries unidirectional streams both ways', async () => {
    server = await startEchoServer();
    const client = connect(server.url);
    const reader = client.incomingUnidirectionalStreams.getReader();
    const w = await client.createUnidirectionalStream();
    const data = pattern(50_000);
    await writeAll(w, data);
    const { value } = await reader.read();
    expect(Buffer.compare(await readAll(value!), data)).toBe(0);
    reader.releaseLock();
  });

  it('waits for MAX_STREAMS instead of exceeding the peer stream limit', async () => {
    server = await startEchoServer({ maxIncomingBidirectionalStreams: 2 });
    const client = connect(server.url);
    const results = await Promise.all(
      Array.from({ length: 10 }, async (_, i) => {
        const s = await client.createBidirectionalStream();
        const data = pattern(1000, i + 7);
        const [, back] = await Promise.all([writeAll(s.writable, data), readAll(s.readable)]);
        return Buffer.compare(back, data);
      }),
    );
    expect(results).toEqual(new Array(10).fill(0));
    expect(server.sessions[0]).toBeDefined();
  });

  it('echoes datagrams and counts drops by reason', async () => {
    server = await startEchoServer();
    const client = connect(server.url);
    await client.ready;
    expect(client.datagrams.maxDatagramSize).toBe(1200);
    const writer = client.datagrams.writable.getWriter();
    const reader = client.datagrams.readable.getReader();
    await writer.write(new Uint8Array([1, 2, 3]));
    const { value } = await reader.read();
    expect(Array.from(value!)).toEqual([1, 2, 3]);
    await writer.write(new Uint8Array(1201));
    const stats = await client.getStats();
    expect(stats.datagrams.sent).toBe(1);
    expect(stats.datagrams.received).toBe(1);
    expect(stats.datagrams.droppedOutgoing['too-large']).toBe(1);
    writer.releaseLock();
    reader.releaseLock();
  });

  it('measures RTT with framing-level PING and counts bytes and frames', async () => {
    server = await startEchoServer();
    const client = connect(server.url, { pingIntervalMs: 20 });
    await client.ready;
    for (let i = 0; i < 50 && (await client.getStats()).smoothedRtt === 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const stats = await client.getStats();
    expect(stats.smoothedRtt).toBeGreaterThan(0);
    expect(stats.minRtt).toBeGreaterThan(0);
    expect(stats.bytesSent).toBeGreaterThan(0);
    expect(stats.bytesReceived).toBeGreaterThan(0);
    expect(stats.packetsSent).toBeGreaterThan(1);
    expect(stats.packetsReceived).toBeGreaterThan(1);
    expect(client.transport).toBe('websocket');
    expect(client.reliability).toBe('reliable-only');
  });

  it('probes the RTT on datagram writes only while sendEstimate() is in use', async () => {
    server = await startEchoServer();
    // No keep-alive PING: every RTT sample comes from a datagram write's probe.
    const client = connect(server.url, { pingIntervalMs: 0, rttProbeIntervalMs: 5 });
    await client.ready;
    const writer = client.datagrams.writable.getWriter();
    const reader = client.datagrams.readable.getReader();
    const roundTrip = async (i: number) => {
      await new Promise((r) => setTimeout(r, 10));
      await writer.write(new Uint8Array([i]));
      expect(Array.from((await reader.read()).value!)).toEqual([i]);
    };
    await roundTrip(0);
    const peer = server.sessions[0] as WebSocketSession;
    const sent = client.wireStats.messagesSent;
    const echoed = peer.wireStats.messagesSent;
    // The echo of each datagram comes back after the PONG a probe riding with it would have drawn.
    for (let i = 1; i < 5; i++) await roundTrip(i);
    expect((await client.getStats()).smoothedRtt).toBe(0);
    // One message per datagram each way: no PING rode with them, no PONG came back alone.
    expect(client.wireStats.messagesSent - sent).toBe(4);
    expect(peer.wireStats.messagesSent - echoed).toBe(4);
    client.datagrams.sendEstimate?.();
    for (let i = 5; i < 10 && (await client.getStats()).smoothedRtt === 0; i++) await roundTrip(i);
    expect((await client.getStats()).smoothedRtt).toBeGreaterThan(0);
    writer.releaseLock();
    reader.releaseLock();
  });

  it('carries close code and reason to the peer', async () => {
    server = await startEchoServer();
    const client = connect(server.url);
    await client.ready;
    while (server.sessions.length === 0) await new Promise((r) => setTimeout(r, 5));
    const serverSession = server.sessions[0];
    await serverSession.ready;
    client.close({ closeCode: 4242, reason: 'bye ✓' });
    expect(await client.closed).toEqual({ closeCode: 4242, reason: 'bye ✓' });
    expect(await serverSession.closed).toEqual({ closeCode: 4242, reason: 'bye ✓' });
  });

  it('truncates a close reason longer than 1024 bytes', async () => {
    server = await startEchoServer();
    const client = connect(server.url);
    await client.ready;
    while (server.sessions.length === 0) await new Promise((r) => setTimeout(r, 5));
    client.close({ closeCode: 1, reason: 'é'.repeat(600) });
    const info = await server.sessions[0].closed;
    expect(new TextEncoder().encode(info.reason).length).toBe(1024);
  });

  it('propagates reset and stop-sending codes', async () => {
    server = await startEchoServer();
    const client = connect(server.url);
    // Reset: the echo server's pipeTo aborts its writable with the reset error, whose code travels back.
    const s = await client.createBidirectionalStream();
    const w = s.writable.getWriter();
    await w.write(new Uint8Array([1]));
    await w.abort(new QuiverTransportError('x', { streamErrorCode: 77 }));
    const err = await readAll(s.readable).catch((e) => e);
    expect(err).toBeInstanceOf(QuiverTransportError);
    expect(err.streamErrorCode).toBe(77);
    // Stop sending: the server's pipeTo cancels its readable with our code, which arrives as STOP_SENDING.
    const s2 = await client.createBidirectionalStream();
    await s2.readable.cancel(new QuiverTransportError('y', { streamErrorCode: 9 }));
    const w2 = s2.writable.getWriter();
    await w2.write(new Uint8Array(10));
    const e2 = await w2.closed.catch((e) => e);
    expect(e2).toBeInstanceOf(QuiverTransportError);
    expect(e2.streamErrorCode).toBe(9);
  });

  it('fails ready and closed when nobody listens', async () => {
    server = await startEchoServer();
    const url = server.url;
    await server.close();
    server = undefined;
    const client = connect(url);
    const err = await client.ready.catch((e) => e);
    expect(err).toBeInstanceOf(QuiverTransportError);
    expect(err).toMatchObject({ source: 'session', streamErrorCode: null });
    expect(err.message).toMatch(/^connect ECONNREFUSED 127\.0\.0\.1:\d+$/);
    // closed rejects with the same error.
    expect(await client.closed.catch((e) => e)).toBe(err);
  });

  it('accepts https:// URLs and maps them to ws(s)', async () => {
    server = await startEchoServer();
    const client = connect(server.url.replace('ws://', 'http://'));
    await client.ready;
  });
});

describe('timers on an injected clock', () => {
  it('fails a session with IDLE_TIMEOUT when nothing arrives for idleTimeoutMs', async () => {
    const { ManualClock, ProtocolViolationError } = await import('@quiver/transport');
    const { WsErrorCode } = await import('../src/index.js');
    server = await startEchoServer({ pingIntervalMs: 0 });
    const clock = new ManualClock(1_000_000);
    const client = connect(server.url, { clock, pingIntervalMs: 0, idleTimeoutMs: 10_000 });
    await client.ready;
    let settled = false;
    client.closed.then(
      () => {
        settled = true;
      },
      () => {
        settled = true;
      },
    );
    clock.advance(9_999);
    await new Promise((r) => setTimeout(r, 20));
    expect(settled).toBe(false);
    clock.advance(1);
    const err = await client.closed.catch((e) => e);
    expect(err).toBeInstanceOf(ProtocolViolationError);
    expect(err.code).toBe(WsErrorCode.IDLE_TIMEOUT);
    await client.released;
    // The server saw the policy close (1008) and ended its session without a close info.
    const serverErr = await server.sessions[0].closed.catch((e) => e);
    expect(serverErr).toBeInstanceOf(QuiverTransportError);
    expect(serverErr).toMatchObject({
      source: 'session',
      streamErrorCode: null,
      message: `WebSocket closed with 1008 (Q${WsErrorCode.IDLE_TIMEOUT} IDLE_TIMEOUT: nothing received for 10000 ms)`,
    });
  });
});
