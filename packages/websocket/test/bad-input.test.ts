import { ProtocolViolationError } from '@quiver/transport';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { connectWebSocket, SUBPROTOCOL, type WebSocketSession, WsErrorCode } from '../src/index.js';
import { type EchoServer, pattern, readAll, startEchoServer, writeAll } from './helpers.js';

// Hand-written bytes, independent of the encoder under test (README "Framing").
const SETTINGS = [
  0x00,
  0x13, // SETTINGS, 19 bytes
  0x01,
  0x80,
  0x10,
  0x00,
  0x00, // max_message_size 1 MiB
  0x02,
  0x40,
  0x64, // initial_max_streams_bidi 100
  0x03,
  0x40,
  0x64, // initial_max_streams_uni 100
  0x04,
  0x80,
  0x04,
  0x00,
  0x00, // initial_max_stream_data 256 KiB
  0x05,
  0x44,
  0xb0, // max_datagram_size 1200
];

let server: EchoServer;
let healthy: WebSocketSession;

beforeAll(async () => {
  server = await startEchoServer({
    maxMessageSize: 4096,
    streamWindow: 1024,
    maxIncomingBidirectionalStreams: 2,
    handshakeTimeoutMs: 300,
  });
  // A session that is open across every bad one below and must keep working.
  healthy = connectWebSocket(server.url);
  await healthy.ready;
});

afterAll(async () => {
  healthy.close();
  await healthy.released;
  await server.close();
});

async function assertHealthy(): Promise<void> {
  for (const s of [healthy, connectWebSocket(server.url)]) {
    const stream = await s.createBidirectionalStream();
    const data = pattern(20_000);
    const [, back] = await Promise.all([writeAll(stream.writable, data, 3000), readAll(stream.readable)]);
    expect(Buffer.compare(back, data)).toBe(0);
    if (s !== healthy) {
      s.close();
      await s.released;
    }
  }
}

interface Outcome {
  wsCode: number;
  wsReason: string;
  serverError: unknown;
}

/** Connects a raw ws client, sends `messages` as they are, and reports how both ends closed. */
async function misbehave(messages: (number[] | string)[], sendSettings = true): Promise<Outcome> {
  const before = server.sessions.length;
  const ws = new WebSocket(server.url, [SUBPROTOCOL]);
  ws.on('error', () => {});
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  await new Promise((r) => ws.once('open', r));
  if (sendSettings) ws.send(Uint8Array.from(SETTINGS));
  for (const m of messages) ws.send(typeof m === 'string' ? m : Uint8Array.from(m));
  const { code, reason } = await closed;
  while (server.sessions.length === before) await new Promise((r) => setTimeout(r, 5));
  const serverError = await server.sessions[before].closed.then(
    () => undefined,
    (e) => e,
  );
  return { wsCode: code, wsReason: reason, serverError };
}

function expectViolation(o: Outcome, quiverCode: number, wsCode: number, withReason = true): void {
  expect(o.serverError).toBeInstanceOf(ProtocolViolationError);
  expect((o.serverError as ProtocolViolationError).code).toBe(quiverCode);
  expect(o.wsCode).toBe(wsCode);
  if (withReason) expect(o.wsReason).toMatch(new RegExp(`^Q${quiverCode} `));
}

describe('bad input closes only the offending session', () => {
  it('truncated frame', async () => {
    // STREAM on stream 0 announcing 5 bytes, carrying 2.
    expectViolation(await misbehave([[0x08, 0x00, 0x05, 1, 2]]), WsErrorCode.FRAME_ENCODING_ERROR, 1002);
    await assertHealthy();
  });

  it('unknown frame type', async () => {
    expectViolation(await misbehave([[0x3f]]), WsErrorCode.FRAME_TYPE_ERROR, 1002);
    await assertHealthy();
  });

  it('varint beyond 2^53 - 1', async () => {
    expectViolation(
      await misbehave([[0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]]),
      WsErrorCode.FRAME_ENCODING_ERROR,
      1002,
    );
    await assertHealthy();
  });

  it('stream id of the server parity that the server never opened', async () => {
    expectViolation(await misbehave([[0x08, 0x01, 0x01, 0xaa]]), WsErrorCode.STREAM_STATE_ERROR, 1002);
    await assertHealthy();
  });

  it('data on a server-initiated unidirectional (send-only) stream', async () => {
    expectViolation(await misbehave([[0x08, 0x03, 0x01, 0xaa]]), WsErrorCode.STREAM_STATE_ERROR, 1002);
    await assertHealthy();
  });

  it('stream opened out of order', async () => {
    expectViolation(await misbehave([[0x08, 0x04, 0x01, 0xaa]]), WsErrorCode.STREAM_STATE_ERROR, 1002);
    await assertHealthy();
  });

  it('data after FIN', async () => {
    // STREAM_FIN on stream 0 with one byte, then STREAM on stream 0 again, in one message.
    expectViolation(
      await misbehave([[0x09, 0x00, 0x01, 0xaa, 0x08, 0x00, 0x01, 0xbb]]),
      WsErrorCode.STREAM_STATE_ERROR,
      1002,
    );
    await assertHealthy();
  });

  it('too many streams', async () => {
    // The server allows 2 bidirectional streams: the third (id 8) is one too many.
    expectViolation(
      await misbehave([[0x08, 0x00, 0x00, 0x08, 0x04, 0x00, 0x08, 0x08, 0x00]]),
      WsErrorCode.STREAM_LIMIT_ERROR,
      1008,
    );
    await assertHealthy();
  });

  it('data beyond the granted credit', async () => {
    // The server grants 1024 bytes per stream; send 1025 in one frame (length 0x4401).
    const data = new Array(1025).fill(7);
    expectViolation(
      await misbehave([[0x08, 0x00, 0x44, 0x01, ...data]]),
      WsErrorCode.FLOW_CONTROL_ERROR,
      1002,
    );
    await assertHealthy();
  });

  it('datagram over the limit', async () => {
    // DATAGRAM of 1201 bytes (length 0x44b1) against a 1200-byte limit.
    const data = new Array(1201).fill(1);
    expectViolation(await misbehave([[0x0a, 0x44, 0xb1, ...data]]), WsErrorCode.FRAME_SIZE_ERROR, 1009);
    await assertHealthy();
  });

  it('message over the max message size', async () => {
    // ws enforces maxPayload itself (close 1009, no Quiver reason); the session still gets the typed error.
    const o = await misbehave([new Array(5000).fill(0)]);
    expectViolation(o, WsErrorCode.FRAME_SIZE_ERROR, 1009, false);
    await assertHealthy();
  });

  it('close reason over 1024 bytes', async () => {
    expectViolation(
      await misbehave([[0x0b, 0, 0, 0, 1, 0x44, 0x01, ...new Array(1025).fill(0x61)]]),
      WsErrorCode.FRAME_SIZE_ERROR,
      1009,
    );
    await assertHealthy();
  });

  it('first frame is not SETTINGS', async () => {
    expectViolation(await misbehave([[0x01, 0x00]], false), WsErrorCode.SETTINGS_ERROR, 1002);
    await assertHealthy();
  });

  it('SETTINGS sent twice', async () => {
    expectViolation(await misbehave([SETTINGS]), WsErrorCode.SETTINGS_ERROR, 1002);
    await assertHealthy();
  });

  it('text message', async () => {
    expectViolation(await misbehave(['hello']), WsErrorCode.UNSUPPORTED_DATA, 1003);
    await assertHealthy();
  });

  it('no SETTINGS within the handshake timeout', async () => {
    expectViolation(await misbehave([], false), WsErrorCode.HANDSHAKE_TIMEOUT, 1008);
    await assertHealthy();
  });
});
