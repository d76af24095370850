import type { AddressInfo } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import {
  connectWebSocket,
  encodeFrames,
  SettingId,
  SUBPROTOCOL,
  type WebSocketSession,
} from '../src/index.js';

let wss: WebSocketServer | undefined;
let client: WebSocketSession | undefined;

afterEach(async () => {
  client?.close();
  await client?.released;
  for (const ws of wss?.clients ?? []) ws.terminate();
  await new Promise((r) => wss?.close(r));
  wss = client = undefined;
});

it('drops datagrams as congestion, never queueing them, when the peer stops reading', async () => {
  // A raw peer that grants a huge stream window, then stops reading its TCP socket: the client's send buffer fills.
  wss = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: () => SUBPROTOCOL });
  await new Promise((r) => wss!.once('listening', r));
  wss.on('connection', (ws) => {
    const settings = new Map([
      [SettingId.MAX_MESSAGE_SIZE, 1 << 20],
      [SettingId.INITIAL_MAX_STREAMS_BIDI, 10],
      [SettingId.INITIAL_MAX_STREAMS_UNI, 10],
      [SettingId.INITIAL_MAX_STREAM_DATA, 1 << 30],
      [SettingId.MAX_DATAGRAM_SIZE, 1200],
    ]);
    ws.send(encodeFrames([{ type: 'settings', settings }]));
    (ws as unknown as { _socket: { pause(): void } })._socket.pause();
  });
  const port = (wss.address() as AddressInfo).port;
  client = connectWebSocket(`ws://127.0.0.1:${port}`, {
    datagramDropThreshold: 16 * 1024,
    pingIntervalMs: 0,
    closeTimeoutMs: 50,
  });
  await client.ready;
  const s = await client.createUnidirectionalStream();
  const sw = s.getWriter();
  // Not awaited: the stream stalls once the socket is full.
  void (async () => {
    for (;;) await sw.write(new Uint8Array(64 * 1024));
  })().catch(() => {});
  const dw = client.datagrams.writable.getWriter();
  let written = 0;
  for (let i = 0; i < 2000; i++) {
    await dw.write(new Uint8Array(1000));
    written++;
    const stats = await client.getStats();
    if ((stats.datagrams.droppedOutgoing.congestion ?? 0) >= 10) break;
    await new Promise((r) => setTimeout(r, 2));
  }
  const stats = await client.getStats();
  expect(stats.datagrams.droppedOutgoing.congestion).toBeGreaterThanOrEqual(10);
  // Every datagram is either sent or counted as dropped.
  expect(stats.datagrams.sent + (stats.datagrams.droppedOutgoing.congestion ?? 0)).toBe(written);
  dw.releaseLock();
});
