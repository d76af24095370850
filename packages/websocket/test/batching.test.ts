/**
 * Batching over real TLS sockets: what the application writes in one turn leaves in as few WebSocket messages (TLS
 * records, syscalls) as fit, and arrives complete and in order; a burst beyond what the socket takes is sent or
 * counted as dropped, never lost silently.
 */
import type { QuiverSession } from '@quiver/transport';
import { afterEach, expect, it } from 'vitest';
import {
  connectWebSocket,
  createWebSocketListener,
  type WebSocketListener,
  type WebSocketSession,
} from '../src/index.js';
import { pattern, readAll } from './helpers.js';
import { makeSelfSignedCert } from './tls.js';

const cert = makeSelfSignedCert();
let listener: WebSocketListener | undefined;
let client: WebSocketSession | undefined;

afterEach(async () => {
  client?.close();
  await client?.released;
  await listener?.close();
  listener = client = undefined;
});

/** A datagram that names its index (first 2 bytes) and whose body can be checked. */
function numbered(i: number, length: number): Uint8Array {
  const d = pattern(length, i + 1);
  d[0] = i >> 8;
  d[1] = i & 0xff;
  return d;
}

function indexOf(d: Uint8Array): number {
  return (d[0] << 8) | d[1];
}

/** A wss:// listener whose first session is handed to the test, and a client connected to it. */
async function pair(options: { incomingDatagramQueue?: number } = {}) {
  listener = await createWebSocketListener({
    port: 0,
    host: '127.0.0.1',
    tls: cert,
    incomingDatagramQueue: options.incomingDatagramQueue,
  });
  const accepted = (async () => {
    const r = listener!.incomingSessions.getReader();
    const { value } = await r.read();
    r.releaseLock();
    return value!.accept() as WebSocketSession;
  })();
  client = connectWebSocket(`wss://127.0.0.1:${listener.address.port}/`, {
    tls: { ca: cert.cert },
    pingIntervalMs: 0,
  });
  await client.ready;
  const server = await accepted;
  await server.ready;
  return { client, server };
}

/** Reads datagrams until `done(received)` says so. */
async function readDatagrams(s: QuiverSession, done: (got: Uint8Array[]) => boolean): Promise<Uint8Array[]> {
  const got: Uint8Array[] = [];
  const r = s.datagrams.readable.getReader();
  while (!done(got)) {
    const { value, done: end } = await r.read();
    if (end) break;
    got.push(value);
  }
  r.releaseLock();
  return got;
}

it('sends the datagrams written in one turn in one message, in order and intact, stream data amid them too', async () => {
  const { client, server } = await pair();
  const dw = client.datagrams.writable.getWriter();
  const sentBefore = client.wireStats.messagesSent;
  const receivedBefore = server.wireStats.messagesReceived;
  const incoming = server.incomingBidirectionalStreams.getReader().read();
  const body = pattern(3000, 99);
  const sent: Uint8Array[] = [];
  const writes: Promise<void>[] = [];
  // One turn: no await between the writes.
  for (let i = 0; i < 100; i++) {
    const d = numbered(i, 2 + ((i * 37) % 500));
    sent.push(d);
    writes.push(dw.write(d));
  }
  const arrived = readDatagrams(server, (got) => got.length === 100);
  await Promise.all(writes);
  const got = await arrived;
  expect(got.map(indexOf)).toEqual(sent.map((_, i) => i));
  for (const [i, d] of got.entries()) expect(d).toEqual(sent[i]);
  // 100 datagrams (about 25 KB) fit in one 64 KiB message.
  expect(client.wireStats.messagesSent - sentBefore).toBe(1);
  expect(server.wireStats.messagesReceived - receivedBefore).toBe(1);
  expect((await client.getStats()).datagrams.sent).toBe(100);
  // Stream data written amid a burst flushes a microtask later, as it always did (a writer awaiting each write
  // waits for that flush): what was queued by then goes with it, the rest of the burst in later messages.
  const stream = await client.createBidirectionalStream();
  const sw = stream.writable.getWriter();
  const mixedBefore = client.wireStats.messagesSent;
  const mixed: Promise<void>[] = [];
  for (let i = 100; i < 200; i++) {
    const d = numbered(i, 2 + ((i * 37) % 500));
    sent.push(d);
    mixed.push(dw.write(d));
    if (i === 150) mixed.push(sw.write(body));
  }
  const more = readDatagrams(server, (g) => g.length === 100);
  await Promise.all(mixed);
  const got2 = await more;
  expect(got2.map(indexOf)).toEqual(sent.slice(100).map((_, i) => 100 + i));
  for (const [i, d] of got2.entries()) expect(d).toEqual(sent[100 + i]);
  // Far fewer messages than datagrams all the same.
  expect(client.wireStats.messagesSent - mixedBefore).toBeLessThan(10);
  // The FIN waits for the write before it (WHATWG Streams), so it leaves in a message of its own.
  await sw.close();
  const { value: peerStream } = await incoming;
  expect(await readAll(peerStream!.readable)).toEqual(body);
});

it('sends a burst far beyond the drop threshold in full messages, counting what it drops', async () => {
  const { client, server } = await pair({ incomingDatagramQueue: 4000 });
  const n = 2000;
  const dw = client.datagrams.writable.getWriter();
  const sentBefore = client.wireStats.messagesSent;
  const writes: Promise<void>[] = [];
  // 2 MB in one turn: 16 times the default datagramDropThreshold (128 KiB).
  for (let i = 0; i < n; i++) writes.push(dw.write(numbered(i, 1000)));
  await Promise.all(writes);
  const accounted = async () => {
    const st = (await client.getStats()).datagrams;
    return { sent: st.sent, dropped: st.droppedOutgoing.congestion ?? 0 };
  };
  // Datagrams held while the socket is above sendHighWaterMark go out as it drains.
  let a = await accounted();
  while (a.sent + a.dropped < n) {
    await new Promise((r) => setTimeout(r, 5));
    a = await accounted();
  }
  expect(a.sent + a.dropped).toBe(n);
  expect(a.sent).toBeGreaterThan(0);
  const got = await readDatagrams(server, (g) => g.length === a.sent);
  // What was sent arrives whole and in the order written; what was not is counted.
  const idx = got.map(indexOf);
  for (let i = 1; i < idx.length; i++) expect(idx[i]).toBeGreaterThan(idx[i - 1]);
  for (const d of got) expect(d).toEqual(numbered(indexOf(d), 1000));
  expect((await server.getStats()).datagrams.droppedIncoming['receive-queue-full'] ?? 0).toBe(0);
  // Full messages of about 64 datagrams each, not one message per datagram.
  const messages = client.wireStats.messagesSent - sentBefore;
  expect(messages).toBeGreaterThanOrEqual(Math.ceil((a.sent * 1003) / (64 * 1024)));
  expect(messages).toBeLessThanOrEqual(Math.ceil(a.sent / 32));
});
