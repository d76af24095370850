/**
 * A quick measurement (not a benchmark suite): reliable messages per second, client to server, and the median
 * echo RTT, through the session layer on each transport, on loopback in one process.
 *   npx tsx --conditions=quiver-source examples/throughput.ts
 */
import { certificateHashOption, ensureDevCertificate } from '@quiver/devcert';
import {
  type Connector,
  connectMemory,
  createMemoryListener,
  type TransportListener,
} from '@quiver/transport';
import { connectWebTransport, createWebTransportListener } from '@quiver/webtransport';
import { connectWebSocket, createWebSocketListener } from '@quiver/websocket';
import { connect, createSessionServer, defineMessage } from '@quiver/session';

const Msg = defineMessage<{ i: number; s: string }>('m');
const Ping = defineMessage<number>('ping');
const COUNT = Number(process.env.COUNT ?? 50_000);

async function measure(
  name: string,
  listener: TransportListener,
  url: string,
  connector: Connector,
  options = {},
) {
  const server = createSessionServer({
    listeners: [listener],
    messages: [Msg, Ping],
    // This measures the protocol's ceiling, far above what the default per-session rate limit lets a peer send.
    rateLimits: { perSession: { messagesPerSecond: Infinity, bytesPerSecond: Infinity } },
  });
  let got = 0;
  let done!: () => void;
  const all = new Promise<void>((r) => {
    done = r;
  });
  server.on(Msg, () => {
    if (++got === COUNT) done();
  });
  server.on(Ping, (t, s) => s.send(Ping, t));
  const client = await connect(url, { connector, connectOptions: options, reconnect: false });
  const t0 = performance.now();
  for (let i = 0; i < COUNT; i++) {
    client.send(Msg, { i, s: 'payload-of-some-32-bytes-length!' });
    // Follow the peer's pace: wait while more than 128 KiB is queued or in flight.
    if (i % 256 === 255) await client.drained(128 * 1024);
  }
  await all;
  const secs = (performance.now() - t0) / 1000;
  const rtts: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t = performance.now();
    await new Promise<void>((r) => {
      const off = client.on(Ping, () => {
        off();
        r();
      });
      client.send(Ping, t);
    });
    rtts.push(performance.now() - t);
  }
  rtts.sort((a, b) => a - b);
  console.log(
    `${name.padEnd(13)} ${Math.round(COUNT / secs).toLocaleString('en')} msg/s one-way, echo RTT median ${rtts[100].toFixed(3)} ms`,
  );
  await client.close();
  await server.close();
  await listener.close();
}

const mem = createMemoryListener({ name: 'throughput' });
await measure('memory', mem, 'memory://throughput/q', connectMemory);
const ws = await createWebSocketListener({ host: '127.0.0.1', port: 0 });
await measure('websocket', ws, `http://127.0.0.1:${ws.address.port}/q`, connectWebSocket);
const cert = await ensureDevCertificate();
const wt = await createWebTransportListener({
  host: '127.0.0.1',
  port: 0,
  cert: cert.certPem,
  key: cert.keyPem,
});
await measure('webtransport', wt, `https://127.0.0.1:${wt.address.port}/q`, connectWebTransport, {
  serverCertificateHashes: [certificateHashOption(cert)],
});
