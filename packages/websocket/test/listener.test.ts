import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type IncomingSession, QuiverTransportError, SessionRejectedError } from '@quiver/transport';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  connectWebSocket,
  createWebSocketListener,
  SUBPROTOCOL,
  type WebSocketListener,
} from '../src/index.js';
import { echo, pattern, readAll, writeAll } from './helpers.js';
import { makeSelfSignedCert } from './tls.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function listen(
  options: Parameters<typeof createWebSocketListener>[0] = {},
): Promise<WebSocketListener> {
  const l = await createWebSocketListener({ port: 0, ...options });
  cleanups.push(() => l.close());
  return l;
}

async function nextRequest(l: WebSocketListener): Promise<IncomingSession> {
  const reader = l.incomingSessions.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  return value!;
}

/** A raw upgrade attempt: resolves with the HTTP status the server answered (101 on success). */
function rawUpgrade(
  port: number,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      path,
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
        'Sec-WebSocket-Version': '13',
        ...headers,
      },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, body: '' });
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** What a second accept() or reject() of an IncomingSession throws (a plain Error: a programming mistake). */
const ALREADY_DECIDED = new Error('IncomingSession already accepted or rejected');

describe('createWebSocketListener', () => {
  it('exposes the request before the session exists', async () => {
    const l = await listen();
    const client = connectWebSocket(`ws://127.0.0.1:${l.address.port}/game/room?token=abc&x=1`, {
      headers: { 'X-Player': 'p1', Origin: 'https://example.test' },
    });
    cleanups.push(async () => {
      client.close();
      await client.released;
    });
    const incoming = await nextRequest(l);
    const r = incoming.request;
    expect(r.transport).toBe('websocket');
    expect(r.path).toBe('/game/room');
    expect(r.url).toBe('/game/room?token=abc&x=1');
    expect(r.query.get('token')).toBe('abc');
    expect(r.headers['x-player']).toBe('p1');
    expect(r.headers['sec-websocket-protocol']).toBe(SUBPROTOCOL);
    expect(r.origin).toBe('https://example.test');
    expect(r.remoteAddress).toBe('127.0.0.1');
    expect(r.remotePort).toBeGreaterThan(0);
    const session = incoming.accept();
    expect(() => incoming.accept()).toThrow(ALREADY_DECIDED);
    await Promise.all([client.ready, session.ready]);
  });

  it('rejects with an HTTP status and reason: no upgrade, the client sees the status', async () => {
    const l = await listen();
    const port = l.address.port;
    const statusP = rawUpgrade(port, '/x');
    (await nextRequest(l)).reject(401, 'token expired');
    expect(await statusP).toEqual({ status: 401, body: 'token expired' });

    const client = connectWebSocket(`ws://127.0.0.1:${port}/x`);
    const incoming = await nextRequest(l);
    incoming.reject(429);
    expect(() => incoming.accept()).toThrow(ALREADY_DECIDED);
    const err = await client.ready.catch((e) => e);
    expect(String(err.message)).toContain('429');
    expect(err).toBeInstanceOf(SessionRejectedError);
    expect(err).toMatchObject({ status: 429, source: 'session' });
    await client.released;
    expect(l.stats.rejected).toBe(2);
  });

  it('answers 408 to requests left undecided past requestTimeoutMs', async () => {
    const l = await listen({ requestTimeoutMs: 100 });
    const statusP = rawUpgrade(l.address.port, '/slow');
    const incoming = await nextRequest(l);
    expect((await statusP).status).toBe(408);
    expect(() => incoming.accept()).toThrow(ALREADY_DECIDED);
    expect(l.stats.timedOut).toBe(1);
  });

  it('answers 503 beyond maxPendingRequests and 400 to a malformed upgrade', async () => {
    const l = await listen({ maxPendingRequests: 1 });
    const first = rawUpgrade(l.address.port, '/a');
    const incoming = await nextRequest(l);
    expect((await rawUpgrade(l.address.port, '/b')).status).toBe(503);
    expect((await rawUpgrade(l.address.port, '/c', { 'Sec-WebSocket-Key': 'short' })).status).toBe(400);
    incoming.reject(403);
    expect((await first).status).toBe(403);
    expect(l.stats).toMatchObject({ overloaded: 1, malformed: 1, rejected: 1 });
  });

  it('answers plain HTTP requests with 426 and upgrades outside its paths with 404 when standalone', async () => {
    const l = await listen({ path: ['/a', '/b/'] });
    const res = await fetch(`http://127.0.0.1:${l.address.port}/a`);
    expect(res.status).toBe(426);
    await res.text();
    expect((await rawUpgrade(l.address.port, '/c')).status).toBe(404);
    expect((await rawUpgrade(l.address.port, '/ab')).status).toBe(404);
    const waiting = [rawUpgrade(l.address.port, '/a?x'), rawUpgrade(l.address.port, '/b/c')];
    const seen = [(await nextRequest(l)).request.path, (await nextRequest(l)).request.path].sort();
    expect(seen).toEqual(['/a', '/b/c']);
    await l.close();
    // Requests still waiting for a verdict when the listener closes get 503.
    expect((await Promise.all(waiting)).map((r) => r.status)).toEqual([503, 503]);
  });

  it('fails an accepted session whose client went away while the request waited', async () => {
    const l = await listen();
    const ws = new WebSocket(`ws://127.0.0.1:${l.address.port}/gone`, [SUBPROTOCOL]);
    ws.on('error', () => {});
    const incoming = await nextRequest(l);
    const gone = new Promise((r) => ws.once('close', r));
    ws.terminate();
    await gone;
    while (l.stats.abandoned === 0) await new Promise((r) => setTimeout(r, 5));
    const session = incoming.accept();
    await expect(session.closed).rejects.toMatchObject({ source: 'session' });
  });

  it('mounts on an existing http server at a path prefix and leaves other upgrades alone', async () => {
    const server = http.createServer((_req, res) => res.end('plain'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const port = (server.address() as AddressInfo).port;
    let otherSeen = 0;
    // Another upgrade handler on the same server: it owns `/other` and answers 404 to what nobody owns.
    server.on('upgrade', (req, socket) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (path.startsWith('/other')) {
        otherSeen++;
        socket.end("HTTP/1.1 418 I'm a teapot\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      } else if (path !== '/quiver' && !path.startsWith('/quiver/')) {
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      }
    });
    const l = await listen({ server, path: '/quiver' });
    expect(l.address.port).toBe(port);
    void (async () => {
      for await (const incoming of l.incomingSessions as unknown as AsyncIterable<IncomingSession>) {
        void echo(incoming.accept());
      }
    })();
    const client = connectWebSocket(`http://127.0.0.1:${port}/quiver/v1?room=3`);
    cleanups.push(async () => {
      client.close();
      await client.released;
    });
    const s = await client.createBidirectionalStream();
    const data = pattern(10_000);
    const [, back] = await Promise.all([writeAll(s.writable, data), readAll(s.readable)]);
    expect(Buffer.compare(back, data)).toBe(0);
    expect((await rawUpgrade(port, '/other')).status).toBe(418);
    expect(otherSeen).toBe(1);
    // `/quiverx` is not below `/quiver`: the listener leaves it to the other handler.
    expect((await rawUpgrade(port, '/quiverx')).status).toBe(404);
    expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe('plain');
    expect(l.stats.requests).toBe(1);
  });

  it('serves wss:// with tls and closes every session on close()', async () => {
    const tls = makeSelfSignedCert();
    const l = await createWebSocketListener({ port: 0, tls });
    const accepted: Promise<unknown>[] = [];
    void (async () => {
      for await (const incoming of l.incomingSessions as unknown as AsyncIterable<IncomingSession>) {
        accepted.push(incoming.accept().closed);
      }
    })();
    const clients = [1, 2].map(() =>
      connectWebSocket(`https://localhost:${l.address.port}/`, { tls: { ca: tls.cert } }),
    );
    await Promise.all(clients.map((c) => c.ready));
    expect(l.stats.sessions).toBe(2);
    // A client that does not trust the certificate fails its TLS handshake (while the listener is up, so that the
    // failure is the certificate and not a refused connection).
    const untrusted = connectWebSocket(`wss://127.0.0.1:${l.address.port}/`);
    const err = await untrusted.ready.catch((e) => e);
    expect(err).toBeInstanceOf(QuiverTransportError);
    expect(err).not.toBeInstanceOf(SessionRejectedError);
    expect(err).toMatchObject({
      source: 'session',
      message: 'self-signed certificate',
      streamErrorCode: null,
    });
    await untrusted.released;
    expect(l.stats.sessions).toBe(2);
    await l.close({ closeCode: 7, reason: 'maintenance' });
    for (const c of clients) expect(await c.closed).toEqual({ closeCode: 7, reason: 'maintenance' });
    expect(await Promise.all(accepted)).toEqual([
      { closeCode: 7, reason: 'maintenance' },
      { closeCode: 7, reason: 'maintenance' },
    ]);
    expect(l.stats.sessions).toBe(0);
    await Promise.all(clients.map((c) => c.released));
  });
});
