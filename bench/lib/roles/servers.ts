/**
 * The server agent: every transport the bench compares, listening side by side on one address, all echoing the
 * probe messages of wire.ts (sink-flagged ones are only counted). Runs inside the server namespace or on loopback.
 *   - WebTransport over HTTP/3 (@quiver/webtransport): datagrams and every bidirectional stream echoed;
 *   - our WebSocket transport (@quiver/websocket) over TLS: the same QuiverSession handler;
 *   - our HTTP transport (@quiver/http-stream) over TLS (HTTP/2 and HTTP/1.1): the same handler;
 *   - plain `ws` and `ws` over TLS (WSS): messages echoed; the HTTPS server also serves the browser page;
 *   - raw TCP and UDP (node:net, node:dgram): the floors.
 */
import dgram from 'node:dgram';
import https from 'node:https';
import net from 'node:net';
import type { QuiverSession, TransportListener } from '@quiver/transport';
import { WebSocketServer } from 'ws';
import { Deframer, FLAG_SINK, HEADER, monoMs, readProbe } from './wire.js';

export interface ServerOptions {
  host: string;
  certPem: string;
  keyPem: string;
  /** QUIC idle timeout of the WebTransport listener: how soon a vanished client is noticed. Default 30 000 ms. */
  idleTimeoutMs?: number;
  /** HTML served at GET / by the HTTPS server (the browser suite's page). */
  page?: string;
  /**
   * Also listen with WebTransport on each of these QUIC engines (ports in `wtByEngine`), beside the default
   * listener, so that one run compares engines. Default: none.
   */
  engines?: string[];
}

export interface ServerPorts {
  wt?: number;
  /** Why WebTransport is not listening, when it is not. */
  wtError?: string;
  /** The QUIC engine the WebTransport listener runs on (the default one, see `availableEngines`). */
  wtEngine?: string;
  /** WebTransport listeners by engine (`ServerOptions.engines`, and the default one); errors by engine. */
  wtByEngine?: Record<string, number>;
  wtEngineErrors?: Record<string, string>;
  qws?: number;
  qwsError?: string;
  qhttp?: number;
  qhttpError?: string;
  ws: number;
  wss: number;
  tcp: number;
  udp: number;
}

export interface TagCounters {
  messages: number;
  bytes: number;
  firstAt: number;
  lastAt: number;
}

const counters = new Map<number, TagCounters>();
const oneWay = new Map<number, number[]>();
/** Per tag, flat pairs [receivedAt, sentAt]: what state staleness is computed from (bench/lib/staleness.ts). */
const arrivals = new Map<number, number[]>();
const sessions = new Set<QuiverSession>();
const stats = { wtAccepted: 0, qwsAccepted: 0, qhttpAccepted: 0, wsOpen: 0, errors: 0, malformed: 0 };
let closers: (() => Promise<void>)[] = [];
let wtListener: (TransportListener & { connectionCount?: number }) | undefined;
let qwsListener: (TransportListener & { stats?: { sessions: number } }) | undefined;

/** Counts a probe; returns whether it is to be echoed. */
function record(m: Uint8Array): boolean {
  if (m.length < HEADER) {
    stats.malformed++;
    return false;
  }
  const h = readProbe(m);
  const now = monoMs();
  let c = counters.get(h.tag);
  if (!c) {
    c = { messages: 0, bytes: 0, firstAt: now, lastAt: now };
    counters.set(h.tag, c);
  }
  c.messages++;
  c.bytes += m.length;
  c.lastAt = now;
  if (h.flags & FLAG_SINK) return false;
  let s = oneWay.get(h.tag);
  if (!s) {
    s = [];
    oneWay.set(h.tag, s);
  }
  s.push(now - h.sentAt);
  let a = arrivals.get(h.tag);
  if (!a) {
    a = [];
    arrivals.set(h.tag, a);
  }
  a.push(now, h.sentAt);
  return true;
}

async function serveStream(stream: {
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
}) {
  const writer = stream.writable.getWriter();
  const reader = stream.readable.getReader();
  const d = new Deframer();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const out: Uint8Array[] = [];
      d.push(value, (m) => {
        if (record(m)) out.push(m.slice());
      });
      for (const m of out) void writer.write(m).catch(() => {});
    }
    await writer.close().catch(() => {});
  } catch {
    stats.errors++;
  }
}

async function serveSession(s: QuiverSession): Promise<void> {
  sessions.add(s);
  s.closed.then(
    () => sessions.delete(s),
    () => sessions.delete(s),
  );
  void (async () => {
    const reader = s.incomingBidirectionalStreams.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        void serveStream(value);
      }
    } catch {}
  })();
  const dr = s.datagrams.readable.getReader();
  const dw = s.datagrams.writable.getWriter();
  try {
    for (;;) {
      const { value, done } = await dr.read();
      if (done) break;
      if (record(value)) void dw.write(value).catch(() => {});
    }
  } catch {}
}

async function acceptAll(
  l: TransportListener,
  kind: 'wtAccepted' | 'qwsAccepted' | 'qhttpAccepted',
): Promise<void> {
  const reader = l.incomingSessions.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      stats[kind]++;
      void serveSession(value.accept());
    }
  } catch {}
}

export async function startServers(o: ServerOptions): Promise<ServerPorts> {
  const ports: Partial<ServerPorts> = {};
  const wtOptions = (engine?: string) => ({
    host: o.host,
    port: 0,
    cert: o.certPem,
    key: o.keyPem,
    idleTimeoutMs: o.idleTimeoutMs ?? 30_000,
    maxConnections: 4096,
    maxPendingRequests: 1024,
    ...(engine ? { engine: engine as import('@quiver/webtransport').EngineName } : {}),
  });
  try {
    const wt = (await import('@quiver/webtransport')) as typeof import('@quiver/webtransport');
    const listener = await wt.createWebTransportListener(wtOptions());
    wtListener = listener;
    ports.wt = listener.address.port;
    ports.wtEngine = listener.engine;
    ports.wtByEngine = { [listener.engine]: listener.address.port };
    void acceptAll(wtListener, 'wtAccepted');
    const l = wtListener;
    closers.push(() => l.close());
  } catch (e) {
    ports.wtError = e instanceof Error ? e.message : String(e);
  }
  for (const engine of o.engines ?? []) {
    if (ports.wtByEngine?.[engine]) continue;
    try {
      const wt = (await import('@quiver/webtransport')) as typeof import('@quiver/webtransport');
      const l = await wt.createWebTransportListener(wtOptions(engine));
      ports.wtByEngine = { ...ports.wtByEngine, [engine]: l.address.port };
      void acceptAll(l, 'wtAccepted');
      closers.push(() => l.close());
    } catch (e) {
      ports.wtEngineErrors = {
        ...ports.wtEngineErrors,
        [engine]: e instanceof Error ? e.message : String(e),
      };
    }
  }
  try {
    const qws = (await import('@quiver/websocket')) as typeof import('@quiver/websocket');
    qwsListener = await qws.createWebSocketListener({
      host: o.host,
      port: 0,
      tls: { cert: o.certPem, key: o.keyPem },
      maxPendingRequests: 1024,
    });
    ports.qws = qwsListener.address.port;
    void acceptAll(qwsListener, 'qwsAccepted');
    const l = qwsListener;
    closers.push(() => l.close());
  } catch (e) {
    ports.qwsError = e instanceof Error ? e.message : String(e);
  }
  try {
    const qhttp = (await import('@quiver/http-stream')) as typeof import('@quiver/http-stream');
    const l = await qhttp.createHttpStreamListener({
      host: o.host,
      port: 0,
      tls: { cert: o.certPem, key: o.keyPem },
      maxPendingRequests: 1024,
    });
    ports.qhttp = l.address.port;
    void acceptAll(l, 'qhttpAccepted');
    closers.push(() => l.close());
  } catch (e) {
    ports.qhttpError = e instanceof Error ? e.message : String(e);
  }

  const onWs = (sock: import('ws').WebSocket): void => {
    stats.wsOpen++;
    sock.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) return;
      const m = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      if (record(m)) sock.send(m);
    });
    sock.on('error', () => stats.errors++);
    sock.on('close', () => stats.wsOpen--);
  };
  const plain = new WebSocketServer({ host: o.host, port: 0, perMessageDeflate: false });
  plain.on('connection', onWs);
  await new Promise<void>((r) => plain.once('listening', r));
  ports.ws = (plain.address() as net.AddressInfo).port;
  const httpsServer = https.createServer({ cert: o.certPem, key: o.keyPem }, (req, res) => {
    if (req.url === '/' && o.page) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(o.page);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  const secure = new WebSocketServer({ server: httpsServer, perMessageDeflate: false });
  secure.on('connection', onWs);
  await new Promise<void>((r) => httpsServer.listen(0, o.host, r));
  ports.wss = (httpsServer.address() as net.AddressInfo).port;
  closers.push(async () => {
    for (const c of plain.clients) c.terminate();
    for (const c of secure.clients) c.terminate();
    await new Promise<void>((r) => plain.close(() => r()));
    await new Promise<void>((r) => secure.close(() => r()));
    httpsServer.closeAllConnections();
    await new Promise<void>((r) => httpsServer.close(() => r()));
  });

  const tcpSockets = new Set<net.Socket>();
  const tcp = net.createServer((s) => {
    tcpSockets.add(s);
    s.setNoDelay(true);
    const d = new Deframer();
    s.on('data', (chunk) => {
      try {
        d.push(chunk, (m) => {
          if (record(m)) s.write(m);
        });
      } catch {
        stats.malformed++;
        s.destroy();
      }
    });
    s.on('error', () => {});
    s.on('close', () => tcpSockets.delete(s));
  });
  await new Promise<void>((r) => tcp.listen(0, o.host, r));
  ports.tcp = (tcp.address() as net.AddressInfo).port;
  const udp = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 });
  udp.on('message', (m, rinfo) => {
    if (record(new Uint8Array(m.buffer, m.byteOffset, m.byteLength))) udp.send(m, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => udp.bind(0, o.host, r));
  ports.udp = udp.address().port;
  closers.push(async () => {
    for (const s of tcpSockets) s.destroy();
    await new Promise<void>((r) => tcp.close(() => r()));
    await new Promise<void>((r) => udp.close(() => r()));
  });
  return ports as ServerPorts;
}

export interface ServerSnapshot {
  /** µs of CPU (user + system) since the agent started. */
  cpuUs: number;
  rssBytes: number;
  /** Sessions (WebTransport and our WebSocket transport) whose `closed` has not settled. */
  liveSessions: number;
  wtConnections: number;
  qwsSessions: number;
  wsOpen: number;
  stats: typeof stats;
  at: number;
}

/** With `collect`, a full garbage collection first (agents run with --expose-gc) so that RSS means live memory. */
export function snapshot(collect = false): ServerSnapshot {
  if (collect) (globalThis as { gc?: () => void }).gc?.();
  const u = process.cpuUsage();
  return {
    cpuUs: u.user + u.system,
    rssBytes: process.memoryUsage.rss(),
    liveSessions: sessions.size,
    wtConnections: wtListener?.connectionCount ?? 0,
    qwsSessions: qwsListener?.stats?.sessions ?? 0,
    wsOpen: stats.wsOpen,
    stats: { ...stats },
    at: monoMs(),
  };
}

/** Counters of a series, its one-way delays and its arrivals (then forgotten). */
export function takeTag(tag: number): { counters?: TagCounters; oneWayMs: number[]; arrivals: number[] } {
  const c = counters.get(tag);
  const s = oneWay.get(tag) ?? [];
  const a = arrivals.get(tag) ?? [];
  counters.delete(tag);
  oneWay.delete(tag);
  arrivals.delete(tag);
  return { counters: c, oneWayMs: s, arrivals: a };
}

export function resetTags(): void {
  counters.clear();
  oneWay.clear();
  arrivals.clear();
}

export async function stopServers(): Promise<void> {
  const cs = closers;
  closers = [];
  await Promise.all(cs.map((c) => c().catch(() => {})));
  wtListener = undefined;
  qwsListener = undefined;
}
