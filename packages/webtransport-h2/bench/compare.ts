import { parseArgs } from 'node:util';
/**
 * WebTransport over HTTP/2 (this package) next to @quiver/websocket over TLS (wss:), measured in the same run, client
 * and server in this one process on loopback (so both sides share the CPU, as in the team's other loopback figures).
 *
 *   npx tsx --conditions=quiver-source packages/webtransport-h2/bench/compare.ts [--quick] [--json]
 *
 * Per transport:
 * - setup: connect() to `ready` of fresh sessions, one after another (a new TCP + TLS connection each);
 * - echo RTT: 64-byte messages on one bidirectional stream, one in flight, p50 and p99;
 * - bulk: MB/s of one unidirectional stream client -> server, from the first write to the server reading FIN;
 * - datagrams: 64-byte datagrams in bursts of 16 per event-loop turn for a fixed time; received per second at the
 *   server, with the drops each side counted (both carriers are reliable-only: drops are policy, never loss).
 */
import { generateCertificate } from '@quiver/devcert';
import type { IncomingSession, QuiverSession, TransportListener } from '@quiver/transport';
import { connectWebSocket, createWebSocketListener } from '@quiver/websocket';
import { connectH2WebTransport, createH2WebTransportListener } from '../src/index.js';

const { values } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, json: { type: 'boolean', default: false } },
});
const quick = values.quick;
const asJson = values.json;
const SETUP_N = quick ? 20 : 60;
const ECHO_N = quick ? 500 : 3000;
const BULK_BYTES = (quick ? 16 : 64) * 1024 * 1024;
const DGRAM_SECONDS = quick ? 1 : 3;
const DGRAM_BURST = 16;
const CHUNK = 64 * 1024;

interface Candidate {
  name: string;
  listen(): Promise<TransportListener>;
  connect(listener: TransportListener, path: string): QuiverSession;
}

interface Result {
  transport: string;
  setupP50Ms: number;
  setupP99Ms: number;
  rttP50Ms: number;
  rttP99Ms: number;
  bulkMBps: number;
  datagramsPerSec: number;
  datagramsSent: number;
  datagramsReceived: number;
  datagramDrops: string;
}

const now = () => performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Server side: per path, echo bidi streams (/echo), or count what arrives (/sink). */
function serve(listener: TransportListener, sink: { bytes: number; done?: () => void; datagrams: number }) {
  const sessions: QuiverSession[] = [];
  const loop = (async () => {
    const reader = listener.incomingSessions.getReader();
    for (;;) {
      let next: ReadableStreamReadResult<IncomingSession>;
      try {
        next = await reader.read();
      } catch {
        return;
      }
      if (next.done) return;
      const session = next.value.accept();
      sessions.push(session);
      session.closed.catch(() => {});
      session.ready.catch(() => {});
      void (async () => {
        const bidi = session.incomingBidirectionalStreams.getReader();
        for (;;) {
          const { value, done } = await bidi.read();
          if (done) return;
          void value.readable.pipeTo(value.writable).catch(() => {});
        }
      })().catch(() => {});
      void (async () => {
        const uni = session.incomingUnidirectionalStreams.getReader();
        for (;;) {
          const { value, done } = await uni.read();
          if (done) return;
          void (async () => {
            const r = value.getReader();
            for (;;) {
              const chunk = await r.read();
              if (chunk.done) break;
              sink.bytes += chunk.value.byteLength;
            }
            sink.done?.();
          })().catch(() => {});
        }
      })().catch(() => {});
      void (async () => {
        const d = session.datagrams.readable.getReader();
        for (;;) {
          const { done } = await d.read();
          if (done) return;
          sink.datagrams++;
        }
      })().catch(() => {});
    }
  })();
  return { sessions, loop };
}

async function measure(c: Candidate): Promise<Result> {
  const listener = await c.listen();
  const sink: { bytes: number; done?: () => void; datagrams: number } = { bytes: 0, datagrams: 0 };
  const server = serve(listener, sink);

  // Setup: sequential fresh sessions.
  const setups: number[] = [];
  for (let i = 0; i < SETUP_N; i++) {
    const t0 = now();
    const s = c.connect(listener, `/setup?i=${i}`);
    await s.ready;
    setups.push(now() - t0);
    s.close();
    await s.closed.catch(() => {});
  }
  setups.sort((a, b) => a - b);

  // Echo RTT.
  const client = c.connect(listener, '/echo');
  await client.ready;
  const stream = await client.createBidirectionalStream();
  const w = stream.writable.getWriter();
  const r = stream.readable.getReader();
  const msg = new Uint8Array(64).fill(7);
  const rtts: number[] = [];
  for (let i = 0; i < ECHO_N + 50; i++) {
    const t0 = now();
    await w.write(msg);
    let got = 0;
    while (got < msg.byteLength) {
      const { value, done } = await r.read();
      if (done) throw new Error('echo ended');
      got += value.byteLength;
    }
    if (i >= 50) rtts.push(now() - t0); // the first 50 warm up
  }
  await w.close();
  rtts.sort((a, b) => a - b);

  // Bulk, one unidirectional stream client -> server.
  sink.bytes = 0;
  const finished = new Promise<void>((resolve) => {
    sink.done = resolve;
  });
  const uni = await client.createUnidirectionalStream();
  const uw = uni.getWriter();
  const t0 = now();
  for (let sent = 0; sent < BULK_BYTES; sent += CHUNK) await uw.write(new Uint8Array(CHUNK));
  await uw.close();
  await finished;
  const bulkSeconds = (now() - t0) / 1000;
  if (sink.bytes !== BULK_BYTES) throw new Error(`bulk: ${sink.bytes} of ${BULK_BYTES} bytes arrived`);

  // Datagrams: bursts of DGRAM_BURST, yielding to the event loop between bursts so the sockets make progress (a loop
  // of writes that resolve in microtasks would otherwise measure only the drop policy), for DGRAM_SECONDS.
  sink.datagrams = 0;
  const dw = client.datagrams.writable.getWriter();
  const payload = new Uint8Array(64);
  const d0 = now();
  while (now() - d0 < DGRAM_SECONDS * 1000) {
    for (let i = 0; i < DGRAM_BURST; i++) {
      await dw.ready;
      await dw.write(payload);
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  // Let the last ones land (reliable-only carriers deliver every datagram that was not dropped).
  let last = -1;
  let lastChange = now();
  while (now() - lastChange < 200) {
    await sleep(5);
    if (sink.datagrams !== last) {
      last = sink.datagrams;
      lastChange = now();
    }
  }
  const dgramSeconds = (lastChange - d0) / 1000;
  dw.releaseLock();
  const clientStats = await client.getStats();
  const serverStats = await server.sessions[server.sessions.length - 1].getStats();
  const drops = {
    out: clientStats.datagrams.droppedOutgoing,
    in: serverStats.datagrams.droppedIncoming,
  };

  client.close();
  await client.closed.catch(() => {});
  await listener.close();
  await server.loop;

  return {
    transport: c.name,
    setupP50Ms: percentile(setups, 50),
    setupP99Ms: percentile(setups, 99),
    rttP50Ms: percentile(rtts, 50),
    rttP99Ms: percentile(rtts, 99),
    bulkMBps: BULK_BYTES / 1e6 / bulkSeconds,
    datagramsPerSec: sink.datagrams / dgramSeconds,
    datagramsSent: clientStats.datagrams.sent,
    datagramsReceived: serverStats.datagrams.received,
    datagramDrops: JSON.stringify(drops),
  };
}

async function main(): Promise<void> {
  const cert = await generateCertificate();
  const candidates: Candidate[] = [
    {
      name: 'websocket (wss:)',
      listen: () =>
        createWebSocketListener({
          host: '127.0.0.1',
          port: 0,
          tls: { cert: cert.certPem, key: cert.keyPem },
        }),
      connect: (l, path) =>
        connectWebSocket(`https://127.0.0.1:${l.address.port}${path}`, { tls: { ca: cert.certPem } }),
    },
    {
      name: 'http2-webtransport',
      listen: () => createH2WebTransportListener({ cert: cert.certPem, key: cert.keyPem }),
      connect: (l, path) =>
        connectH2WebTransport(`https://127.0.0.1:${l.address.port}${path}`, {
          serverCertificateHashes: [{ algorithm: 'sha-256', value: new Uint8Array(cert.hash) }],
        }),
    },
  ];
  const results: Result[] = [];
  // Alternate the order across two rounds so neither transport always runs on a warmer (or busier) machine.
  const rounds = quick ? 1 : 2;
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? candidates : [...candidates].reverse();
    for (const c of order) results.push(await measure(c));
  }
  if (asJson) {
    console.log(JSON.stringify(results, null, 2));
    return;
  }
  const f = (n: number, d = 2) => n.toFixed(d);
  console.log(
    `setup n=${SETUP_N}, echo n=${ECHO_N} x 64 B, bulk ${BULK_BYTES / 1024 / 1024} MiB, datagrams ${DGRAM_SECONDS} s of 64 B in bursts of ${DGRAM_BURST}`,
  );
  console.log(
    '| transport | setup p50 ms | setup p99 ms | RTT p50 ms | RTT p99 ms | bulk MB/s | datagrams/s | dgrams sent/recv | drops |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    console.log(
      `| ${r.transport} | ${f(r.setupP50Ms)} | ${f(r.setupP99Ms)} | ${f(r.rttP50Ms, 3)} | ${f(r.rttP99Ms, 3)} | ${f(r.bulkMBps, 1)} | ${f(r.datagramsPerSec, 0)} | ${r.datagramsSent}/${r.datagramsReceived} | ${r.datagramDrops} |`,
    );
  }
}

await main();
