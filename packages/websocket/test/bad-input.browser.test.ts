/**
 * Bad input reaching the browser build: a raw `ws` server sends crafted bytes to the client in headless Chromium,
 * which must close only that session with a typed error. Browsers may only send close codes 1000 and 3000-4999, so
 * the client closes with 4000 + the Quiver code and the usual `Q<code> <NAME>: ...` reason (README "Errors").
 */
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { browserHarness, launchChromium } from '@quiver/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { encodeFrames, SettingId, SUBPROTOCOL, WsErrorCode } from '../src/index.js';

const harness = browserHarness({
  launch: launchChromium,
  module: { entry: join(import.meta.dirname, 'fixtures/browser-client.ts') },
});
const SETTINGS = encodeFrames([
  {
    type: 'settings',
    settings: new Map([
      [SettingId.MAX_MESSAGE_SIZE, 4 << 20],
      [SettingId.INITIAL_MAX_STREAMS_BIDI, 10],
      [SettingId.INITIAL_MAX_STREAMS_UNI, 10],
      [SettingId.INITIAL_MAX_STREAM_DATA, 65536],
      [SettingId.MAX_DATAGRAM_SIZE, 1200],
    ]),
  },
]);

let wss: WebSocketServer;

beforeAll(async () => {
  await harness.setup();
  wss = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: () => SUBPROTOCOL });
  await new Promise((r) => wss.once('listening', r));
});

afterAll(async () => {
  for (const ws of wss?.clients ?? []) ws.terminate();
  await new Promise((r) => wss?.close(r));
  await harness.teardown();
});

/** Serves one connection with SETTINGS then `bad`, and reports how the browser closed it. */
async function browserAgainst(bad: Uint8Array) {
  const serverSide = new Promise<{ code: number; reason: string }>((resolve) => {
    wss.once('connection', (ws) => {
      ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
      ws.once('message', () => {
        // The client's SETTINGS arrived: it is ready, now misbehave.
        ws.send(SETTINGS);
        ws.send(bad);
      });
    });
  });
  const session = harness.connect(
    { address: { host: '127.0.0.1', port: (wss.address() as AddressInfo).port } },
    '/bad',
  );
  const closed = await session.closed.then(
    () => undefined,
    (e: Error) => e,
  );
  return { closed, server: await serverSide };
}

describe('bad input reaching the browser client', () => {
  it('unknown frame type: closes with 4000 + FRAME_TYPE_ERROR', async () => {
    const { closed, server } = await browserAgainst(Uint8Array.from([0x3f]));
    expect(closed?.name).toBe('ProtocolViolationError');
    expect(server.code).toBe(4000 + WsErrorCode.FRAME_TYPE_ERROR);
    expect(server.reason).toMatch(/^Q3 FRAME_TYPE_ERROR: /);
  });

  it('message over maxMessageSize (checked by the core, browsers have no maxPayload): 4000 + FRAME_SIZE_ERROR', async () => {
    const { closed, server } = await browserAgainst(new Uint8Array((1 << 20) + 1));
    expect(closed?.name).toBe('ProtocolViolationError');
    expect(server.code).toBe(4000 + WsErrorCode.FRAME_SIZE_ERROR);
    expect(server.reason).toMatch(/^Q7 FRAME_SIZE_ERROR: /);
  });
});
