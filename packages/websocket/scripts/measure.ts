/**
 * One-off figures for the WebSocket transport on this machine (Node client and server in one process, loopback).
 * Not a benchmark suite (see bench/); single runs on a shared machine, with the raw `ws` ceiling measured in the
 * same run for comparison.
 *
 *   npx tsx --conditions=quiver-source packages/websocket/scripts/measure.ts
 */
import type { AddressInfo } from 'node:net';
import type { IncomingSession, QuiverBidirectionalStream, QuiverSession } from '@quiver/transport';
import WebSocket, { WebSocketServer } from 'ws';
import { connectWebSocket, createWebSocketListener } from '../src/index.js';

function serve(session: QuiverSession): void {
  void (async () => {
    for await (const s of session.incomingBidirectionalStreams as unknown as AsyncIterable<QuiverBidirectionalStream>) {
      void s.readable.pipeTo(s.writable).catch(() => {});
    }
  })().catch(() => {});
  void (async () => {
    const w = session.datagrams.writable.getWriter();
    for await (const d of session.datagrams.readable as unknown as AsyncIterable<Uint8Array>)
      await w.write(d);
  })().catch(() => {});
}

async function bulk(client: QuiverSession, bytes: number): Promise<number> {
  const s = await client.createBidirectionalStream();
  const t0 = performance.now();
  const reading = (async () => {
    let n = 0;
    for await (const c of s.readable as unknown as AsyncIterable<Uint8Array>) n += c.length;
    return n;
  })();
  const w = s.writable.getWriter();
  const chunk = 64 * 1024;
  for (let off = 0; off < bytes; off += chunk) await w.write(new Uint8Array(chunk));
  await w.close();
  const n = await reading;
  if (n !== bytes) throw new Error(`echoed ${n} of ${bytes}`);
  return (bytes / 1e6 / (performance.now() - t0)) * 1000;
}

async function pingPong(client: QuiverSession, rounds: number): Promise<number[]> {
  const s = await client.createBidirectionalStream();
  const w = s.writable.getWriter();
  const r = s.readable.getReader();
  const samples: number[] = [];
  const msg = new Uint8Array(64);
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    await w.write(msg);
    let got = 0;
    while (got < msg.length) got += (await r.read()).value!.length;
    samples.push(performance.now() - t0);
  }
  await w.close();
  return samples.sort((a, b) => a - b);
}

/** Echo rate with `window` datagrams in flight; a datagram dropped by policy (counted) costs one slot for 1 s. */
async function datagramEchoes(client: QuiverSession, total: number, window: number): Promise<number> {
  const w = client.datagrams.writable.getWriter();
  const r = client.datagrams.readable.getReader();
  const t0 = performance.now();
  let received = 0;
  let sent = 0;
  const payload = new Uint8Array(100);
  while (sent < Math.min(window, total)) {
    await w.write(payload);
    sent++;
  }
  let pending = r.read();
  while (received < total) {
    const got = await Promise.race([
      pending,
      new Promise<null>((res) => setTimeout(() => res(null), 1000).unref()),
    ]);
    if (got === null) break;
    pending = r.read();
    received++;
    if (sent < total) {
      await w.write(payload);
      sent++;
    }
  }
  const rate = (received / (performance.now() - t0)) * 1000;
  w.releaseLock();
  return rate;
}

async function rawWsEchoes(total: number, window: number): Promise<number> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise((r) => wss.once('listening', r));
  wss.on('connection', (ws) => ws.on('message', (d) => ws.send(d as Buffer)));
  const ws = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
  await new Promise((r) => ws.once('open', r));
  const t0 = performance.now();
  const payload = Buffer.alloc(100);
  await new Promise<void>((resolve) => {
    let received = 0;
    let sent = 0;
    ws.on('message', () => {
      received++;
      if (sent < total) {
        ws.send(payload);
        sent++;
      }
      if (received === total) resolve();
    });
    for (; sent < Math.min(window, total); sent++) ws.send(payload);
  });
  const rate = (total / (performance.now() - t0)) * 1000;
  ws.close();
  await new Promise((r) => ws.once('close', r));
  await new Promise((r) => wss.close(r));
  return rate;
}

const listener = await createWebSocketListener({ port: 0 });
void (async () => {
  for await (const incoming of listener.incomingSessions as unknown as AsyncIterable<IncomingSession>) {
    serve(incoming.accept());
  }
})();
const client = connectWebSocket(`ws://127.0.0.1:${listener.address.port}/measure`);
await client.ready;

await bulk(client, 8 << 20); // warm-up
const mbps = await bulk(client, 64 << 20);
const rtt = await pingPong(client, 2000);
const dgRate = await datagramEchoes(client, 50_000, 64);
const rawRate = await rawWsEchoes(50_000, 64);
const stats = await client.getStats();

console.log(`one bidi stream, 64 MiB echoed: ${mbps.toFixed(1)} MB/s each way`);
console.log(
  `64-byte stream echo RTT over 2000 rounds: median ${rtt[1000].toFixed(3)} ms, p99 ${rtt[1980].toFixed(3)} ms`,
);
console.log(
  `100-byte datagram echoes, 64 in flight: ${Math.round(dgRate)}/s (raw ws ceiling same run: ${Math.round(rawRate)}/s)`,
);
console.log(
  `PING smoothed RTT ${stats.smoothedRtt.toFixed(3)} ms; datagram drops ${JSON.stringify(stats.datagrams.droppedOutgoing)}`,
);

client.close();
await client.released;
await listener.close();
