/**
 * The client agent's measurements. Every transport is driven through the same probe messages (wire.ts) against
 * the server agent (servers.ts). Runs inside the client namespace or on loopback.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { QuiverSession } from '@quiver/transport';
import WebSocket from 'ws';
import type { ServerPorts } from './servers.js';
import { Deframer, encodeProbe, FLAG_SINK, monoMs, readProbe } from './wire.js';

/** `qhttp`: the HTTP transport with its upload stream (HTTP/2); `qhttppost`: the same with POSTs up only. */
export type SessionTransport = 'wt' | 'qws' | 'qhttp' | 'qhttppost';
export type ChannelKind =
  | 'wt-datagram'
  | 'wt-stream'
  | 'qws-datagram'
  | 'qws-stream'
  | 'qhttp-datagram'
  | 'qhttp-stream'
  | 'qhttppost-datagram'
  | 'qhttppost-stream'
  | 'ws'
  | 'wss'
  | 'tcp'
  | 'udp';

export interface Target {
  host: string;
  ports: ServerPorts;
  /** SHA-256 of the server certificate, hex. */
  certHashHex: string;
  certPem: string;
  /** The QUIC engine of WebTransport clients (and of the server listening on `ports.wt`). Default: the default one. */
  wtEngine?: string;
}

interface Channel {
  /** Resolves when the transport is usable (`ready` / `open` / connected). */
  ready: Promise<void>;
  send(m: Uint8Array): void | Promise<void>;
  /** Resolves when sending more would only queue (backpressure). */
  drained(): Promise<void>;
  onMessage(cb: (m: Uint8Array) => void): void;
  close(): Promise<void>;
  session?: QuiverSession;
}

function hashOption(hex: string) {
  return [{ algorithm: 'sha-256' as const, value: new Uint8Array(Buffer.from(hex, 'hex')) }];
}

async function connectSession(kind: SessionTransport, t: Target): Promise<QuiverSession> {
  if (kind === 'wt') {
    if (!t.ports.wt) throw new Error(`WebTransport server missing: ${t.ports.wtError}`);
    const { connectWebTransport } = await import('@quiver/webtransport');
    return connectWebTransport(`https://${t.host}:${t.ports.wt}/bench`, {
      serverCertificateHashes: hashOption(t.certHashHex),
      connectTimeoutMs: 15_000,
      ...(t.wtEngine ? { engine: t.wtEngine as import('@quiver/webtransport').EngineName } : {}),
    });
  }
  if (kind === 'qhttp' || kind === 'qhttppost') {
    if (!t.ports.qhttp) throw new Error(`HTTP transport server missing: ${t.ports.qhttpError}`);
    const { connectHttpStream } = await import('@quiver/http-stream');
    // HTTP/2: one connection for the event stream and the POSTs, as a browser uses it over TLS.
    return connectHttpStream(`https://${t.host}:${t.ports.qhttp}/bench`, {
      tls: { ca: t.certPem },
      http2: true,
      uploadStream: kind === 'qhttp',
      connectTimeoutMs: 15_000,
    });
  }
  if (!t.ports.qws) throw new Error(`WebSocket transport server missing: ${t.ports.qwsError}`);
  const { connectWebSocket } = await import('@quiver/websocket');
  return connectWebSocket(`https://${t.host}:${t.ports.qws}/bench`, {
    serverCertificateHashes: hashOption(t.certHashHex),
    connectTimeoutMs: 15_000,
  });
}

async function closeSession(s: QuiverSession): Promise<void> {
  try {
    s.close({ closeCode: 0, reason: '' });
  } catch {}
  await Promise.race([s.closed.catch(() => {}), new Promise((r) => setTimeout(r, 3000))]);
}

/** Opens a channel; everything is issued at once (a stream is requested before `ready`, as the API allows). */
async function openChannel(kind: ChannelKind, t: Target): Promise<Channel> {
  const listeners: ((m: Uint8Array) => void)[] = [];
  const deliver = (m: Uint8Array): void => {
    for (const l of listeners) l(m);
  };
  if (kind.endsWith('-datagram') || kind.endsWith('-stream')) {
    const session = await connectSession(kind.slice(0, kind.indexOf('-')) as SessionTransport, t);
    if (kind.endsWith('datagram')) {
      const writer = session.datagrams.writable.getWriter();
      void (async () => {
        const r = session.datagrams.readable.getReader();
        try {
          for (;;) {
            const { value, done } = await r.read();
            if (done) break;
            deliver(value);
          }
        } catch {}
      })();
      return {
        session,
        ready: session.ready,
        send: (m) => {
          writer.write(m).catch(() => {});
        },
        drained: () => writer.ready,
        onMessage: (cb) => listeners.push(cb),
        close: () => closeSession(session),
      };
    }
    const streamP = session.createBidirectionalStream();
    streamP.catch(() => {});
    let writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
    const pending: Uint8Array[] = [];
    void streamP.then(
      async (stream) => {
        writer = stream.writable.getWriter();
        for (const m of pending.splice(0)) writer.write(m).catch(() => {});
        const r = stream.readable.getReader();
        const d = new Deframer();
        try {
          for (;;) {
            const { value, done } = await r.read();
            if (done) break;
            d.push(value, (m) => deliver(m));
          }
        } catch {}
      },
      () => {},
    );
    return {
      session,
      ready: session.ready,
      send: (m) => {
        if (writer) writer.write(m).catch(() => {});
        else pending.push(m);
      },
      drained: async () => {
        await streamP;
        await writer?.ready;
      },
      onMessage: (cb) => listeners.push(cb),
      close: () => closeSession(session),
    };
  }
  if (kind === 'ws' || kind === 'wss') {
    const url = kind === 'ws' ? `ws://${t.host}:${t.ports.ws}/bench` : `wss://${t.host}:${t.ports.wss}/bench`;
    const ws = new WebSocket(url, { perMessageDeflate: false, ca: kind === 'wss' ? t.certPem : undefined });
    ws.binaryType = 'nodebuffer';
    const ready = new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ready.catch(() => {});
    ws.on('message', (d: Buffer) => deliver(new Uint8Array(d.buffer, d.byteOffset, d.byteLength)));
    ws.on('error', () => {});
    return {
      ready,
      send: (m) => ws.send(m),
      drained: async () => {
        while (ws.bufferedAmount > 1 << 20) await new Promise((r) => setImmediate(r));
      },
      onMessage: (cb) => listeners.push(cb),
      close: () =>
        new Promise<void>((resolve) => {
          if (ws.readyState === WebSocket.CLOSED) return resolve();
          const tm = setTimeout(() => {
            ws.terminate();
            resolve();
          }, 3000);
          ws.once('close', () => {
            clearTimeout(tm);
            resolve();
          });
          ws.close();
        }),
    };
  }
  if (kind === 'tcp') {
    const s = net.connect({ host: t.host, port: t.ports.tcp, noDelay: true });
    const ready = new Promise<void>((resolve, reject) => {
      s.once('connect', () => resolve());
      s.once('error', reject);
    });
    ready.catch(() => {});
    const d = new Deframer();
    s.on('data', (c) => d.push(c, deliver));
    s.on('error', () => {});
    return {
      ready,
      send: (m) => {
        s.write(m);
      },
      drained: () =>
        s.writableNeedDrain ? new Promise<void>((r) => s.once('drain', () => r())) : Promise.resolve(),
      onMessage: (cb) => listeners.push(cb),
      close: async () => {
        s.destroy();
      },
    };
  }
  const u = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 });
  await new Promise<void>((r) => u.bind(0, r));
  u.on('message', (m) => deliver(new Uint8Array(m.buffer, m.byteOffset, m.byteLength)));
  let inflight = 0;
  let wake: (() => void) | undefined;
  return {
    ready: Promise.resolve(),
    send: (m) => {
      inflight++;
      u.send(m, t.ports.udp, t.host, () => {
        inflight--;
        if (inflight < 64) wake?.();
      });
    },
    drained: () =>
      inflight < 64
        ? Promise.resolve()
        : new Promise<void>((r) => {
            wake = () => {
              wake = undefined;
              r();
            };
          }),
    onMessage: (cb) => listeners.push(cb),
    close: () => new Promise<void>((r) => u.close(() => r())),
  };
}

export interface SetupSample {
  readyMs: number;
  echoMs: number;
}

export interface SetupResult {
  samples: SetupSample[];
  failures: number;
  firstError?: string;
}

/**
 * `count` fresh connections one after another: time from the connect call to `ready`/`open`, and to the echo of a
 * message written right away (on a bidirectional stream for the session transports, as early as the API lets the
 * application write; on `open` for plain WebSockets).
 */
export async function setupRun(
  kind: 'wt' | 'qws' | 'qhttp' | 'qhttppost' | 'ws' | 'wss',
  t: Target,
  count: number,
  pauseMs = 20,
): Promise<SetupResult> {
  const samples: SetupSample[] = [];
  let failures = 0;
  let firstError: string | undefined;
  for (let i = 0; i < count; i++) {
    const ch: ChannelKind = kind === 'ws' || kind === 'wss' ? kind : `${kind}-stream`;
    const t0 = monoMs();
    let c: Channel | undefined;
    try {
      c = await openChannel(ch, t);
      const cc = c;
      const echo = new Promise<number>((resolve) => cc.onMessage(() => resolve(monoMs() - t0)));
      const readyP = c.ready.then(() => monoMs() - t0);
      if (kind === 'ws' || kind === 'wss') void c.ready.then(() => cc.send(encodeProbe(200, i, 32)));
      else c.send(encodeProbe(200, i, 32));
      const timeout = new Promise<never>((_, rej) =>
        setTimeout(() => rej(new Error('setup timed out')), 20_000),
      );
      const [readyMs, echoMs] = await Promise.race([Promise.all([readyP, echo]), timeout]);
      samples.push({ readyMs, echoMs });
    } catch (e) {
      failures++;
      firstError ??= e instanceof Error ? e.message : String(e);
    } finally {
      await c?.close();
    }
    await new Promise((r) => setTimeout(r, pauseMs));
  }
  return { samples, failures, firstError };
}

export interface LatencyChannelResult {
  kind: ChannelKind;
  tag: number;
  sent: number;
  received: number;
  rttMs: number[];
  /** CLOCK_MONOTONIC ms of the first and last send (the same for every kind of a run: they send in one tick). */
  firstSentAt?: number;
  lastSentAt?: number;
  error?: string;
}

/**
 * All `kinds` at once over the same path: each sends a `size`-byte probe at `hz` for `durationMs` and records the
 * echo round trip; the server records the one-way delay. Probes still missing `graceMs` after the last send
 * count as lost.
 */
export async function latencyRun(
  kinds: ChannelKind[],
  /** One target for all, or one per kind (e.g. WebTransport kinds on different QUIC engines). */
  t: Target | Target[],
  opts: { hz: number; durationMs: number; size: number; graceMs: number; tagBase: number },
): Promise<LatencyChannelResult[]> {
  const out: LatencyChannelResult[] = [];
  const chans: (Channel | undefined)[] = [];
  for (const [i, kind] of kinds.entries()) {
    const r: LatencyChannelResult = { kind, tag: opts.tagBase + i, sent: 0, received: 0, rttMs: [] };
    out.push(r);
    try {
      const c = await openChannel(kind, Array.isArray(t) ? t[i] : t);
      await Promise.race([
        c.ready,
        new Promise((_, rej) => setTimeout(() => rej(new Error('ready timed out')), 20_000)),
      ]);
      chans.push(c);
      c.onMessage((m) => {
        const h = readProbe(m);
        if (h.tag !== r.tag) return;
        r.received++;
        r.rttMs.push(monoMs() - h.sentAt);
      });
    } catch (e) {
      r.error = e instanceof Error ? e.message : String(e);
      chans.push(undefined);
    }
  }
  const interval = 1000 / opts.hz;
  const start = monoMs();
  let seq = 0;
  await new Promise<void>((resolve) => {
    // Scheduled against absolute times so timer drift does not lower the rate.
    const tick = (): void => {
      const now = monoMs();
      if (now - start >= opts.durationMs) {
        resolve();
        return;
      }
      for (const [i, c] of chans.entries()) {
        if (!c) continue;
        c.send(encodeProbe(out[i].tag, seq, opts.size));
        out[i].firstSentAt ??= now;
        out[i].lastSentAt = now;
        out[i].sent++;
      }
      seq++;
      setTimeout(tick, Math.max(0, start + seq * interval - monoMs()));
    };
    tick();
  });
  await new Promise((r) => setTimeout(r, opts.graceMs));
  await Promise.all(chans.map((c) => c?.close()));
  return out;
}

export interface ThroughputResult {
  kind: ChannelKind;
  sent: number;
  cpuUs: number;
  wallMs: number;
  error?: string;
}

/**
 * Sends sink-flagged `size`-byte probes for `durationMs`: as fast as backpressure allows, or at `rate` messages per
 * second (unreliable kinds have no backpressure from the receiver, so blasting mostly measures drops).
 */
export async function throughputRun(
  kind: ChannelKind,
  t: Target,
  opts: { durationMs: number; size: number; tag: number; rate?: number },
): Promise<ThroughputResult> {
  let c: Channel | undefined;
  try {
    c = await openChannel(kind, t);
    await c.ready;
    const msg = encodeProbe(opts.tag, 0, opts.size, FLAG_SINK);
    const cpu0 = process.cpuUsage();
    const t0 = monoMs();
    let sent = 0;
    const batch = kind === 'udp' ? 16 : 64;
    const rate = opts.rate;
    while (monoMs() - t0 < opts.durationMs) {
      await c.drained();
      let n = batch;
      if (rate) {
        n = Math.min(batch, Math.floor(((monoMs() - t0) * rate) / 1000) - sent);
        if (n <= 0) {
          await new Promise((r) => setTimeout(r, 1));
          continue;
        }
      }
      for (let i = 0; i < n; i++) {
        c.send(msg);
        sent++;
      }
      // Let the event loop run receive and send callbacks between batches.
      await new Promise((r) => setImmediate(r));
    }
    const wallMs = monoMs() - t0;
    const cu = process.cpuUsage(cpu0);
    return { kind, sent, cpuUs: cu.user + cu.system, wallMs };
  } catch (e) {
    return { kind, sent: 0, cpuUs: 0, wallMs: 0, error: e instanceof Error ? e.message : String(e) };
  } finally {
    await c?.close();
  }
}

export interface StormResult {
  attempted: number;
  ready: number;
  failed: number;
  readyMs: number[];
  firstError?: string;
}

const storm: QuiverSession[] = [];
const heartbeats: NodeJS.Timeout[] = [];

/**
 * Join storm: `count` sessions started evenly over `spreadMs`, each kept open with a 1 Hz heartbeat datagram.
 * `closeStorm` (or killing this agent) ends them.
 */
export async function joinStorm(
  kind: SessionTransport,
  t: Target,
  count: number,
  spreadMs: number,
): Promise<StormResult> {
  const readyMs: number[] = [];
  let failed = 0;
  let firstError: string | undefined;
  const all: Promise<void>[] = [];
  const start = monoMs();
  for (let i = 0; i < count; i++) {
    const due = start + (i * spreadMs) / count;
    const wait = due - monoMs();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const t0 = monoMs();
    all.push(
      connectSession(kind, t).then(async (s) => {
        storm.push(s);
        try {
          await s.ready;
          readyMs.push(monoMs() - t0);
          // A joined player is never silent: one small datagram a second keeps the session (and QUIC's idle
          // timer, RFC 9000 §10.1) alive, as game traffic would.
          const w = s.datagrams.writable.getWriter();
          heartbeats.push(
            setInterval(() => {
              w.write(encodeProbe(250, 0, 16, FLAG_SINK)).catch(() => {});
            }, 1000),
          );
        } catch (e) {
          failed++;
          firstError ??= e instanceof Error ? e.message : String(e);
        }
      }),
    );
  }
  await Promise.all(all);
  return { attempted: count, ready: readyMs.length, failed, readyMs, firstError };
}

/** Closes the storm's sessions cleanly. */
export async function closeStorm(): Promise<void> {
  for (const h of heartbeats.splice(0)) clearInterval(h);
  await Promise.all(storm.splice(0).map((s) => closeSession(s)));
}

export function usage(): { cpuUs: number; rssBytes: number } {
  const u = process.cpuUsage();
  return { cpuUs: u.user + u.system, rssBytes: process.memoryUsage.rss() };
}
