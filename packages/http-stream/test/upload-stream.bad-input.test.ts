/**
 * Hostile upload streams (README "Upload stream") from a raw HTTP/2 client: oversize frames, garbage, a body that
 * ends inside a frame, another session's token, an upload over HTTP/1.1. Each ends in a typed error for that
 * session only (a healthy session next to it keeps working over its own upload stream), and the incremental
 * decoder holds at most one unfinished frame whatever the chunking.
 */
import http2 from 'node:http2';
import https from 'node:https';
import { type DevCertificate, generateCertificate } from '@quiver/devcert';
import type { QuiverSession } from '@quiver/transport';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  connectHttpStream,
  createHttpStreamListener,
  decodeTunnelFrames,
  EventStreamParser,
  encodeTunnelFrames,
  fromBase64,
  HttpErrorCode,
  type HttpStreamSession,
  TunnelFrameReader,
} from '../src/index.js';
import { violation } from './fixtures/violation.js';

let cert: DevCertificate;
beforeAll(async () => {
  cert = await generateCertificate();
});

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});
let h2: http2.ClientHttp2Session | undefined;
afterAll(() => h2?.destroy());

async function setup(options: Parameters<typeof createHttpStreamListener>[0] = {}) {
  const listener = await createHttpStreamListener({
    host: '127.0.0.1',
    port: 0,
    tls: { cert: cert.certPem, key: cert.keyPem },
    ...options,
  });
  cleanups.push(() => listener.close());
  const waiting: ((s: QuiverSession) => void)[] = [];
  void (async () => {
    const reader = listener.incomingSessions.getReader();
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      const s = r.value.accept();
      s.closed.catch(() => {});
      waiting.shift()?.(s);
    }
  })();
  const nextServer = () => new Promise<QuiverSession>((resolve) => waiting.push(resolve));
  const origin = `https://127.0.0.1:${listener.address.port}`;
  const client = http2.connect(origin, { ca: cert.certPem });
  client.on('error', () => {});
  cleanups.push(() => client.destroy());
  return { listener, origin, base: `${origin}/game`, nextServer, client };
}

/** A healthy session over HTTP/2 with its upload stream: it must still echo after the attack. */
async function healthy(base: string, nextServer: () => Promise<QuiverSession>) {
  const serverP = nextServer();
  const client = connectHttpStream(base, { http2: true, tls: { ca: cert.certPem } });
  cleanups.push(() => client.close());
  await client.ready;
  const server = await serverP;
  await server.ready;
  return async () => {
    const got = (async () => {
      const bidi = (await server.incomingBidirectionalStreams.getReader().read()).value!;
      return (await bidi.readable.getReader().read()).value;
    })();
    const s = await client.createBidirectionalStream();
    await s.writable.getWriter().write(new Uint8Array([7, 7, 7]));
    expect(Array.from((await got)!)).toEqual([7, 7, 7]);
    expect(client.tunnel.counters.uploads).toBeGreaterThan(0);
    expect(client.tunnel.counters.uploadFallbacks).toBe(0);
  };
}

/** Opens a session with a raw HTTP/2 request and reads its HELLO. */
async function rawOpen(client: http2.ClientHttp2Session): Promise<{ sid: string; token: string }> {
  const req = client.request({ ':path': '/game?qh=open' });
  cleanups.push(() => req.destroy());
  const parser = new EventStreamParser(1 << 20);
  for await (const chunk of req) {
    const events = parser.push(chunk as Buffer);
    if (events.length > 0) {
      const hello = decodeTunnelFrames(fromBase64(events[0]), 1 << 20)[0];
      if (hello.type !== 'hello') throw new Error('no hello');
      return { sid: hello.sessionId, token: hello.token };
    }
  }
  throw new Error('event stream ended');
}

/** An upload stream that writes `chunks` (then ends, unless `keepOpen`); resolves with its status and how it ended. */
function rawUpload(
  client: http2.ClientHttp2Session,
  sid: string,
  token: string,
  chunks: Uint8Array[],
  keepOpen = false,
): Promise<{ status: number; reset: boolean }> {
  return new Promise((resolve) => {
    const req = client.request(
      { ':method': 'POST', ':path': `/game?qh=stream&qh-sid=${sid}&qh-tok=${token}` },
      { endStream: false },
    );
    cleanups.push(() => req.destroy());
    let status = 0;
    req.on('response', (h) => {
      status = Number(h[':status']);
    });
    req.resume();
    req.on('end', () => resolve({ status, reset: false }));
    req.on('error', () => {});
    req.on('close', () => resolve({ status, reset: req.rstCode !== http2.constants.NGHTTP2_NO_ERROR }));
    for (const c of chunks) req.write(c);
    if (!keepOpen) req.end();
  });
}

describe('hostile upload streams', () => {
  it('a DATA frame over maxMessageSize fails that session from its header (BATCH_TOO_LARGE), before its payload', async () => {
    const { base, nextServer, client, listener } = await setup({ maxMessageSize: 32 * 1024 });
    const check = await healthy(base, nextServer);
    const serverP = nextServer();
    const { sid, token } = await rawOpen(client);
    const server = await serverP;
    // The header of a 1 GiB message (type, seq 1, length 2^30) and nothing of its payload: refused at once.
    const header = new Uint8Array([0x01, 0x01, 0xc0, 0, 0, 0, 0x40, 0, 0, 0]);
    const end = await rawUpload(client, sid, token, [header], true);
    expect((await violation(server)).code).toBe(HttpErrorCode.BATCH_TOO_LARGE);
    expect(end.status).toBe(200);
    expect(listener.stats.oversize).toBe(1);
    await check();
  });

  it('garbage, and a body that ends inside a frame, fail that session with MALFORMED', async () => {
    const { base, nextServer, client } = await setup();
    const check = await healthy(base, nextServer);
    const serverP = nextServer();
    const a = await rawOpen(client);
    const server = await serverP;
    await rawUpload(client, a.sid, a.token, [new Uint8Array([0x3f, 1, 2, 3])], true);
    expect((await violation(server)).code).toBe(HttpErrorCode.MALFORMED);

    const serverP2 = nextServer();
    const b = await rawOpen(client);
    const server2 = await serverP2;
    const whole = encodeTunnelFrames([{ type: 'data', seq: 1, data: new Uint8Array(100) }]);
    await rawUpload(client, b.sid, b.token, [whole.subarray(0, 50)]);
    expect((await violation(server2)).code).toBe(HttpErrorCode.MALFORMED);
    await check();
  });

  it("an upload stream for another session's id needs its token: 403, and that session goes on", async () => {
    const { base, nextServer, client, listener } = await setup();
    const serverP = nextServer();
    const victim = connectHttpStream(base, { http2: true, tls: { ca: cert.certPem } });
    cleanups.push(() => victim.close());
    await victim.ready;
    const server = await serverP;
    await server.ready;
    const attackerP = nextServer();
    const attacker = await rawOpen(client);
    await attackerP;
    const victimId = (victim as unknown as { adapter: { sessionId: string } }).adapter.sessionId;
    const bad = await rawUpload(client, victimId, attacker.token, [
      encodeTunnelFrames([{ type: 'close', code: 1000, reason: '' }]),
    ]);
    expect(bad.status).toBe(403);
    expect(listener.stats.forbidden).toBe(1);
    const got = (async () => {
      const bidi = (await server.incomingBidirectionalStreams.getReader().read()).value!;
      return (await bidi.readable.getReader().read()).value;
    })();
    const s = await victim.createBidirectionalStream();
    await s.writable.getWriter().write(new Uint8Array([1, 2]));
    expect(Array.from((await got)!)).toEqual([1, 2]);
    expect(victim.tunnel.counters.uploadFallbacks).toBe(0);
  });

  it('an upload stream over HTTP/1.1 is refused with 505; an HTTP/1.1 client keeps to POSTs', async () => {
    const { base, nextServer, client, listener } = await setup();
    const serverP = nextServer();
    const { sid, token } = await rawOpen(client);
    await serverP;
    const status = await new Promise<number>((resolve, reject) => {
      const req = https.request(
        `${base}?qh=stream&qh-sid=${sid}&qh-tok=${token}`,
        { method: 'POST', ca: cert.certPem },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end(encodeTunnelFrames([{ type: 'ack', seq: 0 }]));
    });
    expect(status).toBe(505);
    expect(listener.stats.uploadsRefused).toBe(1);
    // The Node client over HTTP/1.1 does not try (an intermediary could hold the body back for ever).
    const serverP2 = nextServer();
    const h1 = connectHttpStream(base, { tls: { ca: cert.certPem } }) as HttpStreamSession;
    cleanups.push(() => h1.close());
    await h1.ready;
    await (await serverP2).ready;
    expect(h1.tunnel.counters.uploads).toBe(0);
  });
});

describe('cross-origin upload streams', () => {
  it('get their CORS preflight answered (a ReadableStream body is never a simple request)', async () => {
    const { client, listener } = await setup();
    const headers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
      const req = client.request({
        ':method': 'OPTIONS',
        ':path': '/game?qh=stream&qh-sid=x&qh-tok=y',
        origin: 'https://page.example',
        'access-control-request-method': 'POST',
      });
      req.on('response', resolve);
      req.on('error', reject);
      req.resume();
      req.end();
    });
    expect(headers[':status']).toBe(204);
    expect(headers['access-control-allow-origin']).toBe('https://page.example');
    expect(headers['access-control-allow-methods']).toBe('POST');
    expect(listener.stats.preflights).toBe(1);
  });
});

describe('TunnelFrameReader', () => {
  const frames = [
    { type: 'ack' as const, seq: 70_000 },
    { type: 'data' as const, seq: 1, data: new Uint8Array(3000).fill(5) },
    { type: 'close' as const, code: 1000, reason: 'bye' },
    { type: 'data' as const, seq: 2, data: new Uint8Array(1).fill(9) },
  ];
  const bytes = encodeTunnelFrames(frames);

  it('decodes the same frames whatever the chunking, holding at most one unfinished frame', () => {
    for (const size of [1, 2, 7, 100, 2999, 3010, bytes.length]) {
      const r = new TunnelFrameReader(4096);
      const out = [];
      let maxHeld = 0;
      for (let i = 0; i < bytes.length; i += size) {
        out.push(...r.push(bytes.subarray(i, i + size)));
        maxHeld = Math.max(maxHeld, r.buffered);
      }
      expect(out).toEqual(frames);
      expect(r.buffered).toBe(0);
      expect(maxHeld).toBeLessThanOrEqual(3010);
    }
  });

  it('refuses an oversize DATA from its header and an unknown type at once', () => {
    const r = new TunnelFrameReader(1024);
    expect(() => r.push(new Uint8Array([0x01, 0x01, 0x44, 0x01]))).toThrow(/BATCH_TOO_LARGE/);
    expect(() => new TunnelFrameReader(1024).push(new Uint8Array([0x09]))).toThrow(/MALFORMED/);
  });
});
