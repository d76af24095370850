/**
 * The browser-busy suite's link baseline, run in a client-namespace agent: a raw UDP ping at a fixed rate to the
 * echo of bench/lib/roles/echo.ts, each sample with its send time (epoch ms, the page's clock) so that a tail in
 * the browser's figures can be matched with what a plain Node process saw on the same link at the same moment.
 */
import dgram from 'node:dgram';

export interface PingResult {
  /** [send time (epoch ms), round trip (ms)] of every echo that came back. */
  samples: [number, number][];
  sent: number;
}

export async function ping(host: string, port: number, count: number, hz: number): Promise<PingResult> {
  const s = dgram.createSocket('udp4');
  const sentAt = new Map<number, number>();
  const samples: [number, number][] = [];
  const now = () => performance.timeOrigin + performance.now();
  s.on('message', (m) => {
    const t = sentAt.get(m.readUInt32BE(0));
    if (t === undefined) return;
    samples.push([t, now() - t]);
    sentAt.delete(m.readUInt32BE(0));
  });
  await new Promise<void>((r) => s.bind(0, r));
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    const b = Buffer.alloc(64);
    b.writeUInt32BE(i, 0);
    sentAt.set(i, now());
    s.send(b, port, host);
    // On schedule (as the page's 60 Hz loop), not drifting by each timer's lateness.
    await new Promise((r) => setTimeout(r, Math.max(0, start + ((i + 1) * 1000) / hz - performance.now())));
  }
  await new Promise((r) => setTimeout(r, 1000));
  await new Promise<void>((r) => s.close(() => r()));
  return { samples, sent: count };
}
