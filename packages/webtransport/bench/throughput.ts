/**
 * Local throughput of the WebTransport adapter, Node client → Node server in one process on loopback, next to
 * the raw `node:dgram` packet rate measured in the same run (same process, same machine load).
 *
 *   npx tsx --conditions=quiver-source packages/webtransport/bench/throughput.ts [--seconds 3] [--json]
 *
 * Reports: raw UDP packets/s and MB/s at 1200 B; bulk MB/s on 1 and on 8 streams with CPU ms per MB
 * (process.cpuUsage, both ends together since they share the process); datagrams/s at 64 B and 1 KB with the
 * counted drops.
 */
import dgram from 'node:dgram';
import { parseArgs } from 'node:util';
import { ensureDevCertificate } from '@quiver/devcert';
import type { QuiverSession } from '@quiver/transport';
import { connectWebTransport, createWebTransportListener } from '@quiver/webtransport';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
    'payload-size': { type: 'string', default: '1350' },
    /**
     * Also measure bulk with this opt-in maxUdpPayloadSize (loopback carries up to 65 527 B), next to raw
     * node:dgram at the same datagram size; 0 skips these cases.
     */
    'large-payload': { type: 'string', default: '16384' },
    /** congestionControl for both ends: cubic, reno or bbr. */
    cc: { type: 'string', default: 'cubic' },
    /** streamWindowBytes and connectionWindowBytes for both ends; empty keeps the adapter's defaults. */
    'stream-window': { type: 'string', default: '' },
    'connection-window': { type: 'string', default: '' },
    /** Only these cases (comma-separated: raw,bulk1,bulk8,dg64,dg1k,large), e.g. for profiling one. */
    only: { type: 'string', default: 'raw,bulk1,bulk8,dg64,dg1k,large' },
  },
});
const SECONDS = Number(values.seconds);
const CC = values.cc as 'cubic' | 'reno' | 'bbr';
const LARGE = Number(values['large-payload']);
const windows = {
  ...(values['stream-window'] ? { streamWindowBytes: Number(values['stream-window']) } : {}),
  ...(values['connection-window'] ? { connectionWindowBytes: Number(values['connection-window']) } : {}),
};
const MB = 1024 * 1024;

function cpuMs(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1000;
}

/** Raw ceiling: one process sends 1200 B datagrams to itself as fast as libuv lets it, and counts arrivals. */
async function rawDgram(
  size: number,
): Promise<{ sentPerSec: number; recvPerSec: number; mbPerSec: number; cpuUsPerPacket: number }> {
  const rx = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 * MB, sendBufferSize: 8 * MB });
  const tx = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 * MB, sendBufferSize: 8 * MB });
  await new Promise<void>((r) => rx.bind(0, '127.0.0.1', () => r()));
  await new Promise<void>((r) => tx.bind(0, '127.0.0.1', () => r()));
  const port = rx.address().port;
  await new Promise<void>((r) => tx.connect(port, '127.0.0.1', () => r()));
  let received = 0;
  let sent = 0;
  rx.on('message', () => {
    received++;
  });
  const buf = Buffer.alloc(size, 1);
  const cpu0 = process.cpuUsage();
  const end = performance.now() + SECONDS * 1000;
  // Keep a bounded number in flight so the measurement is of delivered packets, not of kernel drops.
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      if (performance.now() >= end) {
        resolve();
        return;
      }
      for (let i = 0; i < 64 && sent - received < 2048; i++) {
        tx.send(buf);
        sent++;
      }
      setImmediate(pump);
    };
    pump();
  });
  const t = SECONDS;
  await new Promise((r) => setTimeout(r, 50));
  const cpu = cpuMs(cpu0);
  await Promise.all([
    new Promise<void>((r) => rx.close(() => r())),
    new Promise<void>((r) => tx.close(() => r())),
  ]);
  return {
    sentPerSec: sent / t,
    recvPerSec: received / t,
    mbPerSec: (received * size) / MB / t,
    cpuUsPerPacket: (cpu * 1000) / received,
  };
}

async function withPair<T>(
  fn: (client: QuiverSession, server: QuiverSession) => Promise<T>,
  payloadSize = Number(values['payload-size']),
): Promise<T> {
  const cert = await ensureDevCertificate();
  const listener = await createWebTransportListener({
    host: '127.0.0.1',
    port: 0,
    cert: cert.certPem,
    key: cert.keyPem,
    maxUdpPayloadSize: payloadSize,
    congestionControl: CC,
    ...windows,
  });
  const serverP = listener.incomingSessions
    .getReader()
    .read()
    .then((r) => r.value!.accept());
  const client = connectWebTransport(`https://127.0.0.1:${listener.address.port}/bench`, {
    serverCertificateHashes: [{ algorithm: 'sha-256', value: cert.hash }],
    maxUdpPayloadSize: payloadSize,
    congestionControl: CC,
    ...windows,
  });
  await client.ready;
  const server = await serverP;
  try {
    return await fn(client, server);
  } finally {
    client.close();
    await client.closed.catch(() => {});
    await listener.close();
  }
}

/** Client writes on `streams` uni streams for SECONDS; the server reads and counts. */
async function bulk(
  streams: number,
  payloadSize?: number,
): Promise<{ mbPerSec: number; cpuMsPerMb: number; packetsSent: number; cpuUsPerPacket: number }> {
  return withPair(async (client, server) => {
    let received = 0;
    const reading = (async () => {
      const r = server.incomingUnidirectionalStreams.getReader();
      const tasks: Promise<void>[] = [];
      for (let i = 0; i < streams; i++) {
        const { value } = await r.read();
        tasks.push(
          (async () => {
            const sr = value!.getReader();
            for (;;) {
              const { value: chunk, done } = await sr.read();
              if (done) return;
              received += chunk.byteLength;
            }
          })(),
        );
      }
      await Promise.all(tasks);
    })();
    const chunk = new Uint8Array(64 * 1024).fill(3);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const end = t0 + SECONDS * 1000;
    const statsBefore = await client.getStats();
    await Promise.all(
      Array.from({ length: streams }, async () => {
        const w = (await client.createUnidirectionalStream()).getWriter();
        while (performance.now() < end) await w.write(chunk);
        await w.close();
      }),
    );
    await reading;
    const secs = (performance.now() - t0) / 1000;
    const cpu = cpuMs(cpu0);
    const statsAfter = await client.getStats();
    const mb = received / MB;
    if (process.env.QUIVER_BENCH_DEBUG) console.error('bulk stats', statsAfter);
    const packets = statsAfter.packetsSent - statsBefore.packetsSent;
    return {
      mbPerSec: mb / secs,
      cpuMsPerMb: cpu / mb,
      packetsSent: packets / secs,
      // Everything both ends spend per data packet: send, receive, stream reads, ACKs, timers.
      cpuUsPerPacket: (cpu * 1000) / packets,
    };
  }, payloadSize);
}

/** Client sends datagrams of `size` bytes for SECONDS, 32 per event-loop turn; the server counts arrivals. */
async function datagrams(size: number): Promise<{
  sentPerSec: number;
  receivedPerSec: number;
  cpuUsPerDatagram: number;
  drops: Record<string, number>;
}> {
  return withPair(async (client, server) => {
    let received = 0;
    const r = server.datagrams.readable.getReader();
    let reading = true;
    const readLoop = (async () => {
      while (reading) {
        const res = await r.read();
        if (res.done) return;
        received++;
      }
    })();
    const w = client.datagrams.writable.getWriter();
    const payload = new Uint8Array(size).fill(5);
    let sent = 0;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const end = t0 + SECONDS * 1000;
    await new Promise<void>((resolve) => {
      const pump = (): void => {
        if (performance.now() >= end) {
          resolve();
          return;
        }
        for (let i = 0; i < 32; i++) {
          void w.write(payload);
          sent++;
        }
        setImmediate(pump);
      };
      pump();
    });
    await new Promise((res) => setTimeout(res, 100));
    // Both ends (one process): send, packet build, receive, parse and delivery to the reader.
    const cpuUsPerDatagram = (cpuMs(cpu0) * 1000) / Math.max(1, received);
    const secs = SECONDS;
    const st = await client.getStats();
    const srv = await server.getStats();
    reading = false;
    void readLoop;
    return {
      sentPerSec: sent / secs,
      receivedPerSec: received / secs,
      cpuUsPerDatagram,
      drops: {
        ...Object.fromEntries(
          Object.entries(st.datagrams.droppedOutgoing).map(([k, v]) => [`out:${k}`, v ?? 0]),
        ),
        ...Object.fromEntries(
          Object.entries(srv.datagrams.droppedIncoming).map(([k, v]) => [`in:${k}`, v ?? 0]),
        ),
        lostOnWire:
          st.datagrams.sent -
          srv.datagrams.received -
          (srv.datagrams.droppedIncoming['receive-queue-full'] ?? 0),
      },
    };
  });
}

const only = new Set(values.only.split(','));
const skipped = { sentPerSec: 0, recvPerSec: 1, mbPerSec: 0, cpuUsPerPacket: 0 };
const none = { mbPerSec: 0, cpuMsPerMb: 0, packetsSent: 0, cpuUsPerPacket: 0 };
const noDg = { sentPerSec: 0, receivedPerSec: 0, cpuUsPerDatagram: 0, drops: {} };
const raw = only.has('raw') ? await rawDgram(1200) : skipped;
const bulk1 = only.has('bulk1') ? await bulk(1) : none;
const bulk8 = only.has('bulk8') ? await bulk(8) : none;
const dg64 = only.has('dg64') ? await datagrams(64) : noDg;
const dg1k = only.has('dg1k') ? await datagrams(1024) : noDg;
const withLarge = only.has('large') && LARGE > 0;
const rawL = withLarge ? await rawDgram(LARGE) : skipped;
const bulk1L = withLarge ? await bulk(1, LARGE) : none;
const bulk8L = withLarge ? await bulk(8, LARGE) : none;
const result = {
  node: process.version,
  seconds: SECONDS,
  congestionControl: CC,
  maxUdpPayloadSize: Number(values['payload-size']),
  largePayload: {
    maxUdpPayloadSize: LARGE,
    rawDgram: rawL,
    bulk1: bulk1L,
    bulk8: bulk8L,
    /** Bulk bytes/s over raw node:dgram bytes/s at the same datagram size. */
    byteRateVsRaw: { bulk1: bulk1L.mbPerSec / rawL.mbPerSec, bulk8: bulk8L.mbPerSec / rawL.mbPerSec },
  },
  rawDgram1200: raw,
  bulk1,
  bulk8,
  datagrams64: dg64,
  datagrams1024: dg1k,
  packetRateVsRaw: {
    bulk1: bulk1.packetsSent / raw.recvPerSec,
    bulk8: bulk8.packetsSent / raw.recvPerSec,
  },
  /** CPU per packet of raw send+receive over CPU per QUIC data packet: the rate ratio a CPU-bound run would see. */
  cpuEfficiencyVsRaw: {
    bulk1: bulk1.cpuUsPerPacket ? raw.cpuUsPerPacket / bulk1.cpuUsPerPacket : 0,
    bulk8: bulk8.cpuUsPerPacket ? raw.cpuUsPerPacket / bulk8.cpuUsPerPacket : 0,
  },
};
if (values.json) console.log(JSON.stringify(result));
else {
  const f = (n: number, d = 1) => n.toFixed(d);
  console.log(
    `node ${process.version}, ${SECONDS} s per case, QUIC max UDP payload ${result.maxUdpPayloadSize} B, ${CC}`,
  );
  console.log(
    `raw node:dgram 1200 B  sent ${f(raw.sentPerSec, 0)}/s  received ${f(raw.recvPerSec, 0)}/s  ${f(raw.mbPerSec)} MB/s  ${f(raw.cpuUsPerPacket, 2)} CPU us/packet`,
  );
  for (const [name, b] of [
    ['1 stream ', bulk1],
    ['8 streams', bulk8],
  ] as const) {
    console.log(
      `bulk ${name}  ${f(b.mbPerSec)} MB/s  ${f(b.cpuMsPerMb)} CPU ms/MB  ${f(b.packetsSent, 0)} packets/s sent (${f((100 * b.packetsSent) / raw.recvPerSec)} % of raw)  ${f(b.cpuUsPerPacket, 2)} CPU us/packet (${f((100 * raw.cpuUsPerPacket) / b.cpuUsPerPacket)} % of raw efficiency)`,
    );
  }
  for (const [name, d] of [
    ['64 B ', dg64],
    ['1 KiB', dg1k],
  ] as const) {
    console.log(
      `datagrams ${name}  sent ${f(d.sentPerSec, 0)}/s  received ${f(d.receivedPerSec, 0)}/s  ${f(d.cpuUsPerDatagram, 2)} CPU us/datagram  drops ${JSON.stringify(d.drops)}`,
    );
  }
  if (withLarge) {
    console.log(
      `opt-in maxUdpPayloadSize ${LARGE} B (loopback only): raw node:dgram ${LARGE} B  received ${f(rawL.recvPerSec, 0)}/s  ${f(rawL.mbPerSec)} MB/s  ${f(rawL.cpuUsPerPacket, 2)} CPU us/packet`,
    );
    for (const [name, b] of [
      ['1 stream ', bulk1L],
      ['8 streams', bulk8L],
    ] as const) {
      console.log(
        `bulk ${name} @${LARGE} B  ${f(b.mbPerSec)} MB/s (${f((100 * b.mbPerSec) / rawL.mbPerSec)} % of raw MB/s)  ${f(b.cpuMsPerMb)} CPU ms/MB  ${f(b.packetsSent, 0)} packets/s sent  ${f(b.cpuUsPerPacket, 2)} CPU us/packet`,
      );
    }
  }
}
