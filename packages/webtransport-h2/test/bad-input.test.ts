/**
 * Bad input at the listener: a raw node:http2 client speaking broken WebTransport-over-HTTP/2 (draft-ietf-webtrans-
 * http2 capsules), refused requests and pinning failures. The offending session (only it) ends; the listener keeps
 * serving.
 */
import { once } from 'node:events';
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect,
  createSecureServer,
  type Http2SecureServer,
  type ServerHttp2Stream,
} from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import { generateCertificate } from '@quiver/devcert';
import { QuiverTransportError } from '@quiver/transport';
import { afterEach, describe, expect, it } from 'vitest';
import { connectH2WebTransport, H2_PROTOCOL_ERROR, H2Session } from '../src/index.js';
import { readAllBytes, type Rig, rig } from './helpers.js';

let r: Rig | undefined;
let raw: ClientHttp2Session | undefined;
let rawServer: Http2SecureServer | undefined;
const sockets = new Set<Socket>();
afterEach(async () => {
  raw?.destroy();
  raw = undefined;
  // node:http2 servers only emit 'close' once every connection has ended.
  for (const socket of sockets) socket.destroy();
  if (rawServer) {
    const closed = once(rawServer, 'close');
    rawServer.close();
    await closed;
    rawServer = undefined;
  }
  await r?.close();
  r = undefined;
});

/** QUIC-style variable-length integer (RFC 9000 §16), as the capsules use. */
function varint(n: number): Buffer {
  if (n < 0x40) return Buffer.from([n]);
  if (n < 0x4000) return Buffer.from([0x40 | (n >> 8), n & 0xff]);
  const b = Buffer.alloc(4);
  b.writeUInt32BE((0x80000000 | n) >>> 0);
  return b;
}

const WT_STREAM = 0x190b4d3b;

async function rawConnect(rg: Rig, path: string): Promise<{ stream: ClientHttp2Stream; status: number }> {
  raw = connect(`https://127.0.0.1:${rg.listener.address.port}`, { ca: rg.cert.certPem });
  raw.on('error', () => {});
  await once(raw, 'remoteSettings');
  const stream = raw.request({
    ':method': 'CONNECT',
    ':protocol': 'webtransport',
    ':scheme': 'https',
    ':path': path,
    ':authority': `127.0.0.1:${rg.listener.address.port}`,
  });
  stream.on('error', () => {});
  const [headers] = (await once(stream, 'response')) as [Record<string, unknown>];
  return { stream, status: Number(headers[':status']) };
}

/** The listener still completes a normal session and echo after the bad one. */
async function stillServes(rg: Rig): Promise<void> {
  const client = rg.connect('/after');
  const server = (await rg.next()).accept();
  server.closed.catch(() => {});
  const [s] = await Promise.all([client.createBidirectionalStream(), server.ready]);
  const echo = (async () => {
    const incoming = (await server.incomingBidirectionalStreams.getReader().read()).value!;
    await incoming.readable.pipeTo(incoming.writable);
  })();
  const w = s.writable.getWriter();
  await w.write(new TextEncoder().encode('still here'));
  await w.close();
  expect(new TextDecoder().decode(await readAllBytes(s.readable))).toBe('still here');
  await echo;
  client.close();
  await client.closed;
}

describe('bad input', () => {
  it('closes only the session whose capsule announces an absurd length', async () => {
    r = await rig();
    const rawDone = rawConnect(r, '/bad?cid=1');
    const incoming = await r.next();
    expect(incoming.request.url).toBe('/bad?cid=1');
    const session = incoming.accept();
    const { stream, status } = await rawDone;
    expect(status).toBe(200);
    await session.ready;
    // WT_STREAM on stream id 1 with a 1 GiB length: far beyond the flow-control window.
    stream.write(Buffer.concat([varint(WT_STREAM), varint(0x3fffffff), varint(1), Buffer.alloc(16)]));
    const info = await session.closed;
    expect(info.closeCode).toBe(63);
    await stillServes(r);
  });

  it('closes only the session that sends data on a stream of the server direction it never opened', async () => {
    r = await rig();
    const rawDone = rawConnect(r, '/bad?cid=3');
    const session = (await r.next()).accept();
    const { stream } = await rawDone;
    await session.ready;
    // Without the adapter's parser guard the library throws from a socket handler here and the process ends.
    stream.write(Buffer.concat([varint(WT_STREAM), varint(3), varint(4000), Buffer.from('xy')]));
    const info = await session.closed;
    expect(info.closeCode).toBe(H2_PROTOCOL_ERROR);
    expect(info.reason).toContain('protocol violation');
    expect(session).toBeInstanceOf(H2Session);
    expect(((session as H2Session).protocolError as Error).message).toContain('without asking for it');
    await stillServes(r);
  });

  it('closes only the client session whose server sends data on a client stream it never opened', async () => {
    const cert = await generateCertificate();
    // A raw node:http2 server that speaks just enough extended CONNECT (RFC 8441) to be a broken WebTransport peer.
    rawServer = createSecureServer({
      cert: cert.certPem,
      key: cert.keyPem,
      settings: { enableConnectProtocol: true },
    });
    rawServer.on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
    rawServer.on('close', () => {});
    const streams: ServerHttp2Stream[] = [];
    rawServer.on('stream', (stream, headers) => {
      stream.on('error', () => {});
      streams.push(stream);
      if (headers[':method'] !== 'CONNECT') {
        stream.respond({ ':status': 406 });
        stream.end();
        return;
      }
      stream.respond({ ':status': 200 });
      // WT_STREAM on stream id 1: odd ids are the client's own bidirectional streams in the library's numbering
      // (lib/http2/parserbase.js newStream), and this client opened none. Sent right behind the 200, so it may arrive
      // before the client has even reported ready; the guard must hold either way.
      stream.write(Buffer.concat([varint(WT_STREAM), varint(3), varint(1), Buffer.from('xy')]));
    });
    rawServer.listen(0, '127.0.0.1');
    await once(rawServer, 'listening');
    const { port } = rawServer.address() as AddressInfo;
    const client = connectH2WebTransport(`https://127.0.0.1:${port}/bad`, {
      serverCertificateHashes: [{ algorithm: 'sha-256', value: new Uint8Array(cert.hash) }],
    });
    client.ready.catch(() => {});
    // Depending on whether the capsule is parsed before or after the 200 is reported, the session fails or closes;
    // what matters is that it ends, by itself, with the violation recorded, and that the process is still here.
    const ended = await client.closed.then(
      (info) => ({ info }),
      (error: unknown) => ({ error }),
    );
    if ('info' in ended) {
      expect(ended.info.closeCode).toBe(H2_PROTOCOL_ERROR);
      expect(ended.info.reason).toContain('protocol violation');
    } else {
      expect(ended.error).toBeInstanceOf(QuiverTransportError);
    }
    expect((client.protocolError as Error).message).toContain('without asking for it');
    for (const stream of streams) stream.destroy();
  });

  it('closes only the session that opens more streams than it was allowed', async () => {
    r = await rig({ initialBidirectionalStreams: 4 });
    const rawDone = rawConnect(r, '/bad?cid=2');
    const session = (await r.next()).accept();
    const { stream } = await rawDone;
    await session.ready;
    // A peer-initiated bidi stream far above the 4 allowed (WT_MAX_STREAMS_BIDI).
    stream.write(Buffer.concat([varint(WT_STREAM), varint(3), varint(4001), Buffer.from('xy')]));
    const info = await session.closed;
    expect(info.closeCode).toBe(20);
    await stillServes(r);
  });

  it('refuses a request nobody decides on with 408 after requestTimeoutMs', async () => {
    r = await rig({ requestTimeoutMs: 100 });
    const client = r.connect('/slow');
    const incoming = await r.next();
    const error = await client.ready.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(QuiverTransportError);
    expect((error as Error).message).toContain('408');
    expect(() => incoming.accept()).toThrow();
    await stillServes(r);
  });

  it('answers a request that is not a WebTransport CONNECT with 406, without bothering the application', async () => {
    r = await rig();
    raw = connect(`https://127.0.0.1:${r.listener.address.port}`, { ca: r.cert.certPem });
    raw.on('error', () => {});
    const req = raw.request({ ':method': 'GET', ':path': '/' });
    req.on('error', () => {});
    const [headers] = (await once(req, 'response')) as [Record<string, unknown>];
    expect(headers[':status']).toBe(406);
    req.destroy();
    await stillServes(r);
  });

  it('rejects reject() with a non-error status and a second verdict', async () => {
    r = await rig();
    const client = r.connect('/x');
    const incoming = await r.next();
    expect(() => incoming.reject(200)).toThrow(RangeError);
    incoming.reject(403);
    expect(() => incoming.accept()).toThrow();
    await expect(client.ready).rejects.toThrow(/403/);
  });

  it('fails ready when the pinned certificate hash does not match, and the listener goes on', async () => {
    r = await rig();
    const client = r.connect('/x', {
      serverCertificateHashes: [{ algorithm: 'sha-256', value: new Uint8Array(32) }],
    });
    await expect(client.ready).rejects.toBeInstanceOf(QuiverTransportError);
    await stillServes(r);
  });

  it('refuses close codes outside 0..2^32-1 with a TypeError', async () => {
    r = await rig();
    const client = r.connect('/x');
    const server = (await r.next()).accept();
    server.closed.catch(() => {});
    await client.ready;
    expect(() => client.close({ closeCode: 2 ** 32 })).toThrow(TypeError);
    expect(() => client.close({ closeCode: -1 })).toThrow(TypeError);
    client.close({ closeCode: 1, reason: 'x'.repeat(2000) });
    const info = await server.closed;
    expect(info.closeCode).toBe(1);
    expect(info.reason?.length).toBeLessThanOrEqual(1024);
  });
});
