/**
 * Hostile peers against the HTTP tunnel: raw HTTP requests with malformed, oversize, replayed and out-of-window
 * batches, POSTs for another session's id, a client that never reads its event stream, and raw servers sending
 * malformed event streams to the client. Each must end in a typed error for that session only (a healthy session
 * opened alongside keeps working) with bounded memory.
 */
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { ProtocolViolationError, type QuiverSession } from '@quiver/transport';
import { afterEach, describe, expect, it } from 'vitest';
import {
  connectHttpStream,
  createHttpStreamListener,
  EventStreamParser,
  encodeEvent,
  encodeTunnelFrames,
  fromBase64,
  HttpErrorCode,
  type HttpStreamSession,
  decodeTunnelFrames,
} from '../src/index.js';
import { violation } from './fixtures/violation.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function setup(options: Parameters<typeof createHttpStreamListener>[0] = {}) {
  const listener = await createHttpStreamListener({ host: '127.0.0.1', port: 0, ...options });
  cleanups.push(() => listener.close());
  const servers: QuiverSession[] = [];
  const waiting: ((s: QuiverSession) => void)[] = [];
  void (async () => {
    const reader = listener.incomingSessions.getReader();
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      const s = r.value.accept();
      s.closed.catch(() => {});
      servers.push(s);
      waiting.shift()?.(s);
    }
  })();
  const nextServer = () =>
    new Promise<QuiverSession>((resolve) => {
      waiting.push(resolve);
    });
  return { listener, base: `http://127.0.0.1:${listener.address.port}/game`, nextServer };
}

/** A healthy session next to the hostile one: it must still echo after the attack. */
async function healthy(base: string, nextServer: () => Promise<QuiverSession>): Promise<() => Promise<void>> {
  const serverP = nextServer();
  const client = connectHttpStream(base);
  cleanups.push(() => client.close());
  await client.ready;
  const server = await serverP;
  await server.ready;
  return async () => {
    const got = (async () => {
      const bidi = (await server.incomingBidirectionalStreams.getReader().read()).value!;
      const r = await bidi.readable.getReader().read();
      return r.value;
    })();
    const s = await client.createBidirectionalStream();
    const w = s.writable.getWriter();
    await w.write(new Uint8Array([7, 7, 7]));
    expect(Array.from((await got)!)).toEqual([7, 7, 7]);
  };
}

/** Opens a session with a raw request and reads its HELLO: the id and token a real client would use. */
async function rawOpen(base: string): Promise<{ sid: string; token: string; res: http.IncomingMessage }> {
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    http.get(`${base}?qh=open`, resolve).on('error', reject);
  });
  cleanups.push(() => res.destroy());
  const parser = new EventStreamParser(1 << 20);
  for await (const chunk of res) {
    const events = parser.push(chunk as Buffer);
    if (events.length > 0) {
      const hello = decodeTunnelFrames(fromBase64(events[0]), 1 << 20)[0];
      if (hello.type !== 'hello') throw new Error('no hello');
      return { sid: hello.sessionId, token: hello.token, res };
    }
  }
  throw new Error('event stream ended');
}

async function rawPost(
  base: string,
  sid: string,
  token: string,
  body: Uint8Array,
): Promise<{ status: number; body: string }> {
  const res = await fetch(`${base}?qh=up&qh-sid=${sid}&qh-tok=${token}`, {
    method: 'POST',
    body: body as BufferSource,
  });
  return { status: res.status, body: await res.text() };
}

const data = (seq: number, bytes: number[] = [0]) => ({
  type: 'data' as const,
  seq,
  data: new Uint8Array(bytes),
});

describe('hostile clients against the listener', () => {
  it('a malformed POST body fails only that session with MALFORMED (400)', async () => {
    const { base, nextServer } = await setup();
    const check = await healthy(base, nextServer);
    const serverP = nextServer();
    const { sid, token } = await rawOpen(base);
    const server = await serverP;
    const r = await rawPost(base, sid, token, new Uint8Array([0x3f, 1, 2]));
    expect(r.status).toBe(400);
    expect((await violation(server)).code).toBe(HttpErrorCode.MALFORMED);
    // Truncated DATA: the same.
    const serverP2 = nextServer();
    const b = await rawOpen(base);
    const server2 = await serverP2;
    expect((await rawPost(base, b.sid, b.token, new Uint8Array([0x01, 1, 50, 1]))).status).toBe(400);
    expect((await violation(server2)).code).toBe(HttpErrorCode.MALFORMED);
    await check();
  });

  it('an oversize batch is refused with 413 before it is read, declared or streamed, and fails that session', async () => {
    const { base, nextServer, listener } = await setup({
      maxBatchBytes: 64 * 1024,
      maxMessageSize: 32 * 1024,
    });
    const check = await healthy(base, nextServer);
    const serverP = nextServer();
    const { sid, token } = await rawOpen(base);
    const server = await serverP;
    expect((await rawPost(base, sid, token, new Uint8Array(65 * 1024))).status).toBe(413);
    expect((await violation(server)).code).toBe(HttpErrorCode.BATCH_TOO_LARGE);
    // Without a content-length (chunked): counted while it streams, cut at the limit.
    const serverP2 = nextServer();
    const b = await rawOpen(base);
    const server2 = await serverP2;
    const status = await new Promise<number>((resolve) => {
      const req = http.request(`${base}?qh=up&qh-sid=${b.sid}&qh-tok=${b.token}`, { method: 'POST' }, (res) =>
        resolve(res.statusCode ?? 0),
      );
      req.on('error', () => resolve(-1));
      const chunk = new Uint8Array(16 * 1024);
      const write = () => {
        // A client that would send forever: the server stops it at the limit.
        for (let i = 0; i < 4 && !req.destroyed; i++) req.write(chunk);
        if (!req.destroyed) setTimeout(write, 1);
      };
      write();
    });
    expect([413, -1]).toContain(status);
    expect((await violation(server2)).code).toBe(HttpErrorCode.BATCH_TOO_LARGE);
    expect(listener.stats.oversize).toBe(2);
    await check();
  });

  it('replayed sequence numbers are dropped and counted; out-of-window ones fail the session (SEQUENCE_ERROR)', async () => {
    const { base, nextServer } = await setup({ receiveWindow: 8 });
    const check = await healthy(base, nextServer);
    const serverP = nextServer();
    const { sid, token } = await rawOpen(base);
    const server = await serverP;
    // Message 2 arrives before 1 (held), then again: a replay is answered (with the acknowledgement), not delivered.
    expect((await rawPost(base, sid, token, encodeTunnelFrames([data(2, [1])]))).status).toBe(200);
    expect((await rawPost(base, sid, token, encodeTunnelFrames([data(2, [1])]))).status).toBe(200);
    // A sequence number far beyond the window.
    const r = await rawPost(base, sid, token, encodeTunnelFrames([data(1000)]));
    expect(r.status).toBe(400);
    expect((await violation(server)).code).toBe(HttpErrorCode.SEQUENCE_ERROR);
    // An acknowledgement of a message the server never sent.
    const serverP2 = nextServer();
    const b = await rawOpen(base);
    const server2 = await serverP2;
    expect(
      (await rawPost(base, b.sid, b.token, encodeTunnelFrames([{ type: 'ack', seq: 1e9 }]))).status,
    ).toBe(400);
    expect((await violation(server2)).code).toBe(HttpErrorCode.SEQUENCE_ERROR);
    await check();
  });

  it('a POST or a resume for another session needs its token: 403, and that session goes on', async () => {
    const { base, nextServer, listener } = await setup();
    const serverP = nextServer();
    const victim = connectHttpStream(base);
    cleanups.push(() => victim.close());
    await victim.ready;
    const server = await serverP;
    await server.ready;
    // The attacker knows the victim's id (e.g. from a log) but not its token.
    const attackerP = nextServer();
    const attacker = await rawOpen(base);
    await attackerP;
    const victimId = await sessionIdOf(victim);
    const bad = await rawPost(
      base,
      victimId,
      attacker.token,
      encodeTunnelFrames([data(1), { type: 'close', code: 1000, reason: '' }]),
    );
    expect(bad.status).toBe(403);
    const resume = await fetch(`${base}?qh=down&qh-sid=${victimId}&qh-tok=${attacker.token}&qh-ack=0`);
    expect(resume.status).toBe(403);
    await resume.body?.cancel();
    expect(listener.stats.forbidden).toBe(2);
    // The victim's session is untouched.
    const got = (async () => {
      const bidi = (await server.incomingBidirectionalStreams.getReader().read()).value!;
      return (await bidi.readable.getReader().read()).value;
    })();
    const s = await victim.createBidirectionalStream();
    await s.writable.getWriter().write(new Uint8Array([1, 2]));
    expect(Array.from((await got)!)).toEqual([1, 2]);
  });

  it('a client that never reads its event stream holds the server to its buffer bound; datagrams drop as congestion', async () => {
    const { base, nextServer } = await setup({
      sendHighWaterMark: 256 * 1024,
      datagramDropThreshold: 300 * 1024,
    });
    const check = await healthy(base, nextServer);
    const serverP = nextServer();
    // A raw TCP client: opens the session, answers SETTINGS through a real client's first POST, then stops reading.
    const slow = connectHttpStream(base, { idleTimeoutMs: 0, pingIntervalMs: 0 });
    cleanups.push(() => slow.close());
    await slow.ready;
    const server = await serverP;
    await server.ready;
    pauseDownstream(slow);
    const w = (await server.createUnidirectionalStream()).getWriter();
    let written = 0;
    const chunk = new Uint8Array(64 * 1024);
    const writing = (async () => {
      for (let i = 0; i < 1024; i++) {
        await w.write(chunk);
        written += chunk.length;
      }
    })();
    writing.catch(() => {});
    // Writes stall: what the server holds is its high-water mark plus the socket buffers, not the 64 MiB offered.
    let last = -1;
    while (written !== last) {
      last = written;
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(written).toBeLessThan(16 * 1024 * 1024);
    const dg = server.datagrams.writable.getWriter();
    // Past the drop threshold (above the high-water mark) datagrams are dropped, not queued.
    for (let i = 0; i < 2000; i++) await dg.write(new Uint8Array(100));
    const stats = await server.getStats();
    expect(stats.datagrams.droppedOutgoing.congestion).toBeGreaterThan(0);
    await check();
  });
});

/** The session id a client got in its HELLO (what an attacker might learn from a log line). */
async function sessionIdOf(s: HttpStreamSession): Promise<string> {
  return (s as unknown as { adapter: { sessionId: string } }).adapter.sessionId;
}

/** Stops reading the client's event stream at the socket (as a slow or stuck reader would). */
function pauseDownstream(s: HttpStreamSession): void {
  const carrier = (s as unknown as { adapter: { carrier: { live: Set<http.ClientRequest> } } }).adapter
    .carrier;
  for (const req of carrier.live) if (req.method === 'GET') req.socket?.pause();
}

describe('hostile servers against the client', () => {
  async function rawServer(body: (res: http.ServerResponse) => void): Promise<string> {
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      body(res);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(() => {
      server.closeAllConnections();
      server.close();
    });
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/x`;
  }

  it('bad base64, a first event that is not HELLO, and an unknown frame: MALFORMED', async () => {
    for (const payload of [
      'data:!!!notbase64\n\n',
      encodeEvent(encodeTunnelFrames([{ type: 'ack', seq: 0 }])),
      `data:${Buffer.from([0x3f]).toString('base64')}\n\n`,
    ]) {
      const url = await rawServer((res) => res.write(payload));
      const c = connectHttpStream(url);
      const err = await c.closed.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ProtocolViolationError);
      expect((err as ProtocolViolationError).code).toBe(HttpErrorCode.MALFORMED);
    }
  });

  it('an event line that never ends is cut at the event bound (BATCH_TOO_LARGE), memory bounded', async () => {
    const url = await rawServer((res) => {
      res.write('data:');
      const junk = 'A'.repeat(64 * 1024);
      const more = () => {
        if (res.destroyed) return;
        if (res.write(junk)) setImmediate(more);
        else res.once('drain', more);
      };
      more();
    });
    const c = connectHttpStream(url, { maxBatchBytes: 128 * 1024, maxMessageSize: 64 * 1024 });
    const err = await c.closed.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ProtocolViolationError);
    expect((err as ProtocolViolationError).code).toBe(HttpErrorCode.BATCH_TOO_LARGE);
  });

  it('a refusal shows its HTTP status', async () => {
    const server = http.createServer((_req, res) => {
      res.writeHead(429).end('slow down');
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(() => server.close());
    const c = connectHttpStream(`http://127.0.0.1:${(server.address() as AddressInfo).port}/x`);
    const err = (await c.ready.catch((e: unknown) => e)) as { status?: number };
    expect(err.status).toBe(429);
  });
});
