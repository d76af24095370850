/**
 * Raw TCP and UDP echo, run inside agents: the check that a link really delays and drops, and the raw floor the
 * transports are compared to.
 */
import dgram from 'node:dgram';
import net from 'node:net';

let tcp: net.Server | undefined;
let udp: dgram.Socket | undefined;
const sockets = new Set<net.Socket>();

export async function startEcho(host: string): Promise<{ tcpPort: number; udpPort: number }> {
  tcp = net.createServer((s) => {
    sockets.add(s);
    s.setNoDelay(true);
    s.on('data', (d) => s.write(d));
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => tcp!.listen(0, host, r));
  udp = dgram.createSocket('udp4');
  udp.on('message', (m, rinfo) => udp!.send(m, rinfo.port, rinfo.address));
  await new Promise<void>((r) => udp!.bind(0, host, r));
  return { tcpPort: (tcp.address() as net.AddressInfo).port, udpPort: udp.address().port };
}

export async function stopEcho(): Promise<void> {
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => (tcp ? tcp.close(() => r()) : r()));
  await new Promise<void>((r) => (udp ? udp.close(() => r()) : r()));
  tcp = undefined;
  udp = undefined;
}

export interface EchoResult {
  sent: number;
  received: number;
  rttMs: number[];
  /** From the first send to the last echo received (0 when none came back). */
  spanMs: number;
  /** Sequence numbers that never came back (UDP only). */
  lostSeqs?: number[];
}

/** Sends `count` probes of `size` bytes `intervalMs` apart; waits `timeoutMs` after the last for stragglers. */
export async function udpEcho(
  host: string,
  port: number,
  count: number,
  intervalMs = 10,
  timeoutMs = 1000,
  size = 64,
): Promise<EchoResult> {
  const s = dgram.createSocket('udp4');
  const sentAt = new Map<number, number>();
  const rttMs: number[] = [];
  let first = 0;
  let last = 0;
  s.on('message', (m) => {
    const seq = m.readUInt32BE(0);
    const t = sentAt.get(seq);
    if (t !== undefined) {
      last = performance.now();
      rttMs.push(last - t);
      sentAt.delete(seq);
    }
  });
  await new Promise<void>((r) => s.bind(0, r));
  for (let i = 0; i < count; i++) {
    const b = Buffer.alloc(Math.max(4, size));
    b.writeUInt32BE(i, 0);
    sentAt.set(i, performance.now());
    if (i === 0) first = performance.now();
    s.send(b, port, host);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  await new Promise((r) => setTimeout(r, timeoutMs));
  await new Promise<void>((r) => s.close(() => r()));
  return {
    sent: count,
    received: rttMs.length,
    rttMs,
    spanMs: last ? last - first : 0,
    lostSeqs: [...sentAt.keys()].sort((a, b) => a - b),
  };
}

/** Connects, then sends `count` 64-byte probes one at a time (each after the previous echo). */
export async function tcpEcho(
  host: string,
  port: number,
  count: number,
  timeoutMs = 10_000,
): Promise<EchoResult & { connectMs: number }> {
  const started = performance.now();
  const s = net.connect({ host, port, noDelay: true });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('tcp connect timed out')), timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      resolve();
    });
    s.once('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
  });
  const connectMs = performance.now() - started;
  const rttMs: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      let got = 0;
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('tcp echo timed out')), timeoutMs);
        const onData = (d: Buffer): void => {
          got += d.length;
          if (got >= 64) {
            clearTimeout(t);
            s.off('data', onData);
            resolve();
          }
        };
        s.on('data', onData);
        s.write(Buffer.alloc(64, i & 0xff));
      });
      rttMs.push(performance.now() - t0);
    }
  } finally {
    s.destroy();
  }
  return { sent: count, received: rttMs.length, rttMs, connectMs, spanMs: rttMs.reduce((a, b) => a + b, 0) };
}
