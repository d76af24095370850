import { readFileSync } from 'node:fs';
import 'reflect-metadata';
import { get as httpGet } from 'node:http';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import {
  CloseCode,
  ConnectError,
  connect,
  defineMessage,
  reject,
  transportsFromInfo,
  type ClientSession,
} from '@quiver/session';
import type { ConnectOptions } from '@quiver/transport';
import { connectWebTransport } from '@quiver/webtransport';
import { connectWebSocket } from '@quiver/websocket';
import net, { type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { generateCertificate } from '@quiver/devcert';
import { certificatePin } from '../src/certificate.js';
import quiver, { type QuiverInfo, type QuiverPluginOptions } from '../src/index.js';

const Chat = defineMessage<string>('chat');
const Pos = defineMessage<number[]>('pos', { channel: 'unreliable' });

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function start(
  session = {},
  logger: boolean | { level: string; stream: Writable } = false,
  plugin: QuiverPluginOptions = {},
  host = '127.0.0.1',
) {
  const app = Fastify({ logger });
  await app.register(quiver, { path: '/quiver', session: { messages: [Chat], ...session }, ...plugin });
  app.quiver.on(Chat, (m, s) => s.send(Chat, `echo:${m}`));
  await app.listen({ host, port: 0 });
  cleanups.push(() => app.close());
  await app.quiverTransports.ready();
  const port = (app.server.address() as { port: number }).port;
  const info = (await (await fetch(`http://127.0.0.1:${port}/quiver/info`)).json()) as QuiverInfo;
  return { app, info, port };
}

/** Records written by fastify's pino logger, as objects. */
function logRecords() {
  const records: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) records.push(JSON.parse(line));
      done();
    },
  });
  return { records, stream };
}

function wtOptions(info: QuiverInfo) {
  return {
    serverCertificateHashes: info.webtransport!.certificateHashes.map((h) => ({
      algorithm: h.algorithm,
      value: new Uint8Array(Buffer.from(h.value, 'base64')),
    })),
  };
}

async function client(
  info: QuiverInfo,
  which: 'webtransport' | 'websocket',
  extra = {},
): Promise<ClientSession> {
  const c =
    which === 'webtransport'
      ? await connect(info.webtransport!.url, {
          connector: connectWebTransport,
          connectOptions: wtOptions(info),
          reconnect: { initialMs: 20, seed: 1 },
          ...extra,
        })
      : await connect(info.websocket!.url, {
          connector: connectWebSocket,
          reconnect: { initialMs: 20, seed: 1 },
          ...extra,
        });
  cleanups.push(() => c.close());
  return c;
}

function echo(c: ClientSession, text: string): Promise<string> {
  return new Promise((resolve) => {
    const off = c.on(Chat, (m) => {
      off();
      resolve(m);
    });
    c.send(Chat, text);
  });
}

async function until(cond: () => boolean | Promise<boolean>): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > 45_000) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function metrics(app: FastifyInstance): Promise<string> {
  const res = await app.inject({ method: 'GET', url: '/metrics' });
  expect(res.statusCode).toBe(200);
  return res.body;
}

describe('@quiver/fastify', () => {
  it('serves WebTransport on the HTTP port number (UDP) and WebSocket on the same path, with /quiver/info', async () => {
    const { app, info } = await start();
    const port = (app.server.address() as { port: number }).port;
    expect(info.webtransport?.port).toBe(port);
    expect(info.webtransport?.url).toBe(`https://127.0.0.1:${port}/quiver`);
    expect(info.webtransport?.certificateHashes[0]?.algorithm).toBe('sha-256');
    expect(info.websocket?.url).toBe(`ws://127.0.0.1:${port}/quiver`);
    const a = await client(info, 'webtransport');
    const b = await client(info, 'websocket');
    expect(a.transport).toBe('webtransport');
    expect(b.transport).toBe('websocket');
    expect(await echo(a, 'wt')).toBe('echo:wt');
    expect(await echo(b, 'ws')).toBe('echo:ws');
  });

  it('exports Prometheus metrics prefixed quiver_', async () => {
    const { app, info } = await start();
    const a = await client(info, 'webtransport', { heartbeat: { intervalMs: 20 } });
    const b = await client(info, 'websocket', { heartbeat: { intervalMs: 20 } });
    for (let i = 0; i < 5; i++) {
      await echo(a, `a${i}`);
      await echo(b, `b${i}`);
    }
    await until(() => app.quiver.metrics.rtt.count > 0);
    const text = await metrics(app);
    expect(text).toContain('quiver_sessions_active{transport="webtransport"} 1');
    expect(text).toContain('quiver_sessions_active{transport="websocket"} 1');
    expect(text).toContain('quiver_messages_total{channel="reliable",direction="in"} 10');
    expect(text).toContain('quiver_messages_total{channel="reliable",direction="out"} 10');
    expect(text).toMatch(/quiver_bytes_total\{channel="reliable",direction="in"\} \d+/);
    expect(text).toMatch(/quiver_rtt_seconds_count [1-9]/);
    expect(text).toContain('quiver_reconnects_total 0');
    expect(text).toContain('quiver_recoveries_total 0');
    expect(text).toContain('# TYPE quiver_drops_total counter');
  });

  it('exports link quality by transport and the QUIC figures of live sessions', async () => {
    const { app, info } = await start();
    const a = await client(info, 'webtransport');
    const b = await client(info, 'websocket');
    for (let i = 0; i < 5; i++) {
      await echo(a, `a${i}`);
      await echo(b, `b${i}`);
    }
    // The first heartbeat of each server session is immediate; its answer is a quality sample.
    await until(async () =>
      /quiver_transport_rtt_seconds_count\{transport="websocket"\} [1-9]/.test(await metrics(app)),
    );
    await until(async () =>
      /quiver_transport_rtt_seconds_count\{transport="webtransport"\} [1-9]/.test(await metrics(app)),
    );
    const text = await metrics(app);
    for (const t of ['webtransport', 'websocket']) {
      expect(text).toMatch(new RegExp(`quiver_transport_jitter_seconds_count\\{transport="${t}"\\} [1-9]`));
      expect(text).toMatch(new RegExp(`quiver_transport_loss_ratio_count\\{transport="${t}"\\} [1-9]`));
    }
    // QUIC's own figures reach the metrics through the transport interface (getStats), for the QUIC session only.
    expect(text).toMatch(/quiver_transport_congestion_window_bytes_count\{transport="webtransport"\} 1\n/);
    expect(text).not.toMatch(/quiver_transport_congestion_window_bytes_count\{transport="websocket"\}/);
    expect(text).toMatch(/quiver_transport_packets_sent\{transport="webtransport"\} [1-9]/);
    expect(text).toMatch(/quiver_transport_packets_retransmitted\{transport="webtransport"\} \d+/);
    expect(text).toMatch(/quiver_transport_packets_lost\{transport="webtransport"\} \d+/);
    expect(text).toMatch(/quiver_send_buffered_bytes \d+/);
    expect(text).toMatch(/quiver_send_queue_messages \d+/);
    expect(text).toContain('quiver_trace_context_invalid_total 0');
    // Every session metric the Grafana dashboard queries exists (the rooms ones come with @quiver/rooms).
    const dashboard = readFileSync(new URL('../../../docs/grafana/quiver.json', import.meta.url), 'utf8');
    const used = new Set(
      [...dashboard.matchAll(/(quiver_[a-z_]+?)(?:_bucket|_count|_sum)?[{[(]/g)].map((m) => m[1]),
    );
    const rooms = [...used].filter((n) => n.startsWith('quiver_room'));
    expect(rooms.length).toBeGreaterThan(0);
    for (const name of used) if (!rooms.includes(name)) expect(text).toContain(`# TYPE ${name} `);
  });

  it('counts drops by reason: unreliable sends over the send budget', async () => {
    const { app, info } = await start({
      messages: [Chat, Pos],
      sendBudget: { bytesPerSecond: 1000, burstBytes: 500 },
    });
    const a = await client(info, 'webtransport');
    await echo(a, 'hi');
    const s = [...app.quiver.sessions.values()][0];
    let dropped = 0;
    for (let i = 0; i < 40; i++) if (!s.send(Pos, new Array(20).fill(i))) dropped++;
    expect(dropped).toBeGreaterThan(0);
    expect(app.quiver.metrics.drops.budget).toBe(dropped);
    const text = await metrics(app);
    expect(text).toContain(`quiver_drops_total{reason="budget"} ${dropped}`);
  });

  it('counts errors by kind: a message the server does not know closes only that session (4404)', async () => {
    const { app, info } = await start();
    const good = await client(info, 'webtransport');
    const bad = await client(info, 'websocket', { reconnect: false });
    const closed = bad.closed;
    bad.send(defineMessage<string>('admin'), 'let me in');
    expect(await closed).toEqual({ code: CloseCode.UNKNOWN_MESSAGE, reason: "unknown message 'admin'" });
    expect(await echo(good, 'still here')).toBe('echo:still here');
    const text = await metrics(app);
    expect(text).toContain('quiver_errors_total{kind="unknown-message"} 1');
    expect(text).toContain('quiver_sessions_active{transport="websocket"} 0');
    expect(text).toContain('quiver_sessions_active{transport="webtransport"} 1');
  });

  it("logs through fastify's pino logger as records with fields: sessionId, transport, user, code, reason", async () => {
    const { records, stream } = logRecords();
    const { info } = await start({}, { level: 'info', stream });
    const b = await client(info, 'websocket');
    await echo(b, 'log me');
    const opened = records.find((r) => r.msg === 'session opened');
    expect(opened).toMatchObject({
      level: 30,
      component: 'quiver',
      transport: 'websocket',
      user: 'anonymous',
    });
    expect(opened?.sessionId).toEqual(expect.any(String));
    await b.close(4100, 'bye');
    await until(() => records.some((r) => r.msg === 'session closed'));
    expect(records.find((r) => r.msg === 'session closed')).toMatchObject({
      level: 30,
      component: 'quiver',
      sessionId: opened?.sessionId,
      transport: 'websocket',
      user: 'anonymous',
      code: 4100,
      reason: 'bye',
    });
    expect(records.find((r) => r.msg === 'WebTransport listening')).toMatchObject({
      transport: 'webtransport',
      host: '127.0.0.1',
      port: expect.any(Number),
    });
    // No record carries its details only inside a formatted message.
    for (const r of records.filter((r) => r.component === 'quiver')) expect(r.msg).not.toMatch(/\d{3,}/);
  });

  it('restarting the transports keeps sessions: clients resume (recovered) and the counters show it', async () => {
    const { app, info } = await start();
    const a = await client(info, 'webtransport');
    const b = await client(info, 'websocket');
    const opens: string[] = [];
    a.on('open', (i) => opens.push(`wt:${i.recovered}`));
    b.on('open', (i) => opens.push(`ws:${i.recovered}`));
    await app.quiverTransports.restart();
    await until(() => opens.length === 2);
    expect(opens.sort()).toEqual(['ws:true', 'wt:true']);
    expect(await echo(a, 'after')).toBe('echo:after');
    expect(await echo(b, 'after')).toBe('echo:after');
    const text = await metrics(app);
    expect(text).toContain('quiver_reconnects_total 2');
    expect(text).toContain('quiver_recoveries_total 2');
  });

  it('rejects unauthenticated sessions on both transports and counts them', async () => {
    const { app, info } = await start({
      authenticate: (req: { query: URLSearchParams }) =>
        req.query.get('token') === 'secret' ? { userId: 'u1' } : reject(401, 'bad token'),
    });
    const e1 = await client(info, 'webtransport', { token: 'nope' }).catch((e) => e);
    const e2 = await client(info, 'websocket', { token: 'nope' }).catch((e) => e);
    // Both transports report the refusal as a ConnectError carrying the HTTP status, per attempt and overall.
    for (const e of [e1, e2]) {
      expect(e).toBeInstanceOf(ConnectError);
      expect(e.status).toBe(401);
      expect(e.attempts).toHaveLength(1);
      expect(e.attempts[0]).toMatchObject({ name: 'default', outcome: 'failed', status: 401 });
    }
    expect(e1.attempts[0].error).toBe('session rejected with status 401: HTTP 401');
    expect(e2.attempts[0].error).toBe('Unexpected server response: 401');
    expect(app.quiver.sessions.size).toBe(0);
    const ok = await client(info, 'websocket', { token: 'secret' });
    expect(await echo(ok, 'in')).toBe('echo:in');
    const text = await metrics(app);
    expect(text).toContain('quiver_rejections_total{reason="401"} 2');
  });

  it('exports pending handshakes and evicts the oldest while authenticate is still running', async () => {
    // authenticate parks every slow client on a gate this test opens; `entered` tells which calls are running.
    let open!: () => void;
    const gate = new Promise<void>((r) => {
      open = r;
    });
    const entered: string[] = [];
    const waiters: { n: number; resolve: () => void }[] = [];
    const enteredCount = (n: number) =>
      new Promise<void>((resolve) => {
        if (entered.length >= n) resolve();
        else waiters.push({ n, resolve });
      });
    const { app, info } = await start({
      preAuth: { maxPendingPerIp: 2 },
      authenticate: async (req: { query: URLSearchParams }) => {
        const token = req.query.get('token') ?? '';
        if (token === 'good') return { userId: 'good' };
        entered.push(token);
        for (const w of waiters.filter((w) => entered.length >= w.n)) w.resolve();
        await gate;
        return { userId: token };
      },
    });
    const gauge = async () => /^quiver_handshakes_pending (\d+)$/m.exec(await metrics(app))?.[1];
    expect(await gauge()).toBe('0');

    const slow = (token: string) => client(info, 'websocket', { token, reconnect: false });
    const first = slow('slow1').catch((e) => e);
    await enteredCount(1);
    const second = slow('slow2').catch((e) => e);
    await enteredCount(2);
    expect(await gauge()).toBe('2');

    // A third from the same address is over maxPendingPerIp: the oldest, whose authenticate has not returned, goes.
    const third = slow('slow3');
    const e1 = await first;
    expect(e1).toBeInstanceOf(ConnectError);
    expect(e1.status).toBe(503);
    await enteredCount(3);
    let text = await metrics(app);
    expect(text).toMatch(/^quiver_handshakes_pending 2$/m);
    expect(text).toContain('quiver_rejections_total{reason="handshake-evicted"} 1');

    // A good client still gets in while both slots are held (evicting the now oldest, slow2) and is served.
    const good = await client(info, 'websocket', { token: 'good', reconnect: false });
    expect(await echo(good, 'in')).toBe('echo:in');
    const e2 = await second;
    expect(e2).toBeInstanceOf(ConnectError);
    expect(e2.status).toBe(503);
    text = await metrics(app);
    expect(text).toMatch(/^quiver_handshakes_pending 1$/m);
    expect(text).toContain('quiver_rejections_total{reason="handshake-evicted"} 2');

    // Once authenticate returns, the survivor completes its handshake and frees its slot.
    open();
    const c3 = await third;
    expect(await echo(c3, 'late')).toBe('echo:late');
    expect(await gauge()).toBe('0');
    expect([...app.quiver.sessions.values()].map((s) => s.user.userId).sort()).toEqual(['good', 'slow3']);
    expect(entered).toEqual(['slow1', 'slow2', 'slow3']);
  });

  it('app.close() tells sessions to go away (4503: reconnect later) and releases everything', async () => {
    const { app, info } = await start();
    const a = await client(info, 'webtransport', { reconnect: false });
    const b = await client(info, 'websocket', { reconnect: false });
    const closes = [a.closed, b.closed];
    await app.close();
    const infos = await Promise.all(closes);
    expect(infos).toEqual([
      { code: CloseCode.GOING_AWAY, reason: 'server closing' },
      { code: CloseCode.GOING_AWAY, reason: 'server closing' },
    ]);
    expect(app.quiver.sessions.size).toBe(0);
  });

  it('a session closed by the server for good is not resumed by the client', async () => {
    const { app, info } = await start();
    const b = await client(info, 'websocket');
    const events: string[] = [];
    b.on('reconnecting', () => events.push('reconnecting'));
    const closed = b.closed;
    await [...app.quiver.sessions.values()][0].close(CloseCode.FORBIDDEN, 'kicked');
    // The CLOSE frame and the transport's close carry the same final code, whichever reaches the client first.
    expect(await closed).toEqual({ code: CloseCode.FORBIDDEN, reason: 'kicked' });
    expect(events).toEqual([]);
    expect(b.state).toBe('closed');
  });

  it('close(0) by the server is final too: the client does not resume', async () => {
    const { app, info } = await start();
    const b = await client(info, 'websocket');
    const events: string[] = [];
    b.on('reconnecting', () => events.push('reconnecting'));
    const closed = b.closed;
    await [...app.quiver.sessions.values()][0].close(0, 'kicked');
    // The CLOSE frame says 0; the transport's close, which can overtake it, says CLOSED (4000), because a bare 0
    // on the transport would mean "went away, resume". The client reports whichever arrived first: both are named
    // here and nothing else is accepted (a single code would need the session layer to normalise it).
    const i = await closed;
    expect(i.reason).toBe('kicked');
    expect([CloseCode.NORMAL, CloseCode.CLOSED]).toContain(i.code);
    expect(events).toEqual([]);
    expect(b.state).toBe('closed');
  });
});

describe('@quiver/fastify without listening', () => {
  it('answers /quiver/info and /metrics through inject before listen, and closes cleanly', async () => {
    const app = Fastify({ logger: false });
    await app.register(quiver, { webtransport: false });
    const info = (await app.inject({ method: 'GET', url: '/quiver/info' })).json() as QuiverInfo;
    expect(info.webtransport).toBeNull();
    const m = await app.inject({ method: 'GET', url: '/metrics' });
    expect(m.body).toContain('# TYPE quiver_sessions_active gauge');
    await app.close();
  });
});

describe('@quiver/fastify HTTP deadlines', () => {
  it('sets safe defaults on the HTTP server, tightening but never loosening what the app configured', async () => {
    const app = Fastify({ logger: false, requestTimeout: 5000 });
    await app.register(quiver, { webtransport: false });
    expect(app.server.requestTimeout).toBe(5000);
    expect(app.server.headersTimeout).toBe(5000);
    expect((app.server as { connectionsCheckingInterval?: number }).connectionsCheckingInterval).toBe(1000);
    await app.close();
    const loose = Fastify({ logger: false });
    await loose.register(quiver, { webtransport: false });
    expect(loose.server.requestTimeout).toBe(30_000);
    expect(loose.server.headersTimeout).toBe(10_000);
    await loose.close();
  });

  it('frees a stalled partial upgrade at the configured headers deadline, while others are served', async () => {
    const app = Fastify({ logger: false });
    await app.register(quiver, {
      path: '/quiver',
      webtransport: false,
      session: { messages: [Chat] },
      httpTimeouts: { headersTimeoutMs: 300, checkIntervalMs: 100 },
    });
    app.quiver.on(Chat, (m, s) => s.send(Chat, `echo:${m}`));
    await app.listen({ host: '127.0.0.1', port: 0 });
    cleanups.push(() => app.close());
    const { port } = app.server.address() as AddressInfo;
    // An upgrade request whose head never ends (no blank line): with Node's defaults it would be held 60 to 90 s.
    const stalled = net.connect(port, '127.0.0.1');
    let answer = '';
    stalled.on('data', (d) => {
      answer += d.toString('latin1');
    });
    const freed = new Promise<void>((resolve) => stalled.on('close', () => resolve()));
    stalled.write('GET /quiver HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n');
    // Served meanwhile: a well-behaved WebSocket client completes a round trip.
    const info = (await (
      await fetch(`http://127.0.0.1:${(app.server.address() as { port: number }).port}/quiver/info`)
    ).json()) as QuiverInfo;
    const c = await client(info, 'websocket');
    expect(await echo(c, 'hi')).toBe('echo:hi');
    await freed;
    // Node answers the expired head with 408 (RFC 9110 §15.5.9) before it drops the connection.
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('refuses nonsensical deadlines', async () => {
    const app = Fastify({ logger: false });
    await expect(
      app.register(quiver, { webtransport: false, httpTimeouts: { headersTimeoutMs: 0 } }),
    ).rejects.toThrow(RangeError);
    await app.close().catch(() => {});
  });
});

/** GET <path>/info over a real socket with the given request headers (fetch cannot set Host). */
function getInfo(port: number, headers: Record<string, string> = {}) {
  return new Promise<{ info: QuiverInfo; cacheControl: string | undefined }>((resolve, reject) => {
    httpGet({ host: '127.0.0.1', port, path: '/quiver/info', headers }, (res) => {
      let body = '';
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => resolve({ info: JSON.parse(body), cacheControl: res.headers['cache-control'] }));
    }).on('error', reject);
  });
}

/** A self-signed certificate with any key and validity (devcert refuses what browsers cannot pin). */
async function selfSigned(days: number, key: 'ECDSA' | 'RSA') {
  const subtle = webcrypto.subtle;
  const alg =
    key === 'ECDSA'
      ? { name: 'ECDSA', namedCurve: 'P-256' }
      : {
          name: 'RSASSA-PKCS1-v1_5',
          modulusLength: 2048,
          publicExponent: new Uint8Array([1, 0, 1]),
          hash: 'SHA-256',
        };
  const keys = (await subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const notBefore = new Date(Date.now() - 3_600_000);
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: '01',
      name: 'CN=localhost',
      notBefore,
      notAfter: new Date(notBefore.getTime() + days * 86_400_000),
      keys,
      signingAlgorithm: key === 'ECDSA' ? { name: 'ECDSA', hash: 'SHA-256' } : alg,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.SubjectAlternativeNameExtension([
          { type: 'dns', value: 'localhost' },
          { type: 'ip', value: '127.0.0.1' },
        ]),
      ],
    },
    webcrypto as unknown as Crypto,
  );
  const pkcs8 = Buffer.from(await subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  return {
    certPem: cert.toString('pem'),
    keyPem: `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`,
  };
}

describe('@quiver/fastify in production shape', () => {
  it('advertises the host each request reached (Host header), not the wildcard it listens on', async () => {
    const { app, port } = await start({}, false, {}, '0.0.0.0');
    const direct = await getInfo(port);
    expect(direct.info.webtransport?.url).toBe(`https://127.0.0.1:${port}/quiver`);
    expect(direct.cacheControl).toBe('no-store');
    const named = await getInfo(port, { host: `localhost:${port}` });
    expect(named.info.webtransport?.url).toBe(`https://localhost:${port}/quiver`);
    expect(named.info.websocket?.url).toBe(`ws://localhost:${port}/quiver`);
    const v6 = await getInfo(port, { host: `[::1]:${port}` });
    expect(v6.info.websocket?.url).toBe(`ws://[::1]:${port}/quiver`);
    // A Host that is no host[:port] is not reflected: the bound address is advertised instead.
    const bad = await getInfo(port, { host: 'evil.example/x?' });
    expect(bad.info.websocket?.url).toBe(`ws://127.0.0.1:${port}/quiver`);
    // Called without a request: the bound address (wildcard shown as 127.0.0.1).
    expect((await app.quiverTransports.info()).websocket?.url).toBe(`ws://127.0.0.1:${port}/quiver`);
    // The advertised WebSocket URL works as given.
    const c = await client(named.info, 'websocket');
    expect(await echo(c, 'via host')).toBe('echo:via host');
  });

  it('behind a reverse proxy (trustProxy) advertises X-Forwarded-Host and wss:', async () => {
    const app = Fastify({ trustProxy: true });
    await app.register(quiver, { path: '/quiver', webtransport: false });
    await app.listen({ host: '127.0.0.1', port: 0 });
    cleanups.push(() => app.close());
    const port = (app.server.address() as { port: number }).port;
    const { info } = await getInfo(port, {
      'x-forwarded-host': 'game.example.com',
      'x-forwarded-proto': 'https',
    });
    expect(info.websocket?.url).toBe('wss://game.example.com/quiver');
    expect(info.webtransport).toBeNull();
  });

  it('publicUrl (or PUBLIC_URL) overrides the Host for every request', async () => {
    const { port } = await start({}, false, { publicUrl: 'https://game.example.com' });
    const { info } = await getInfo(port, { host: `localhost:${port}` });
    expect(info.websocket?.url).toBe('wss://game.example.com/quiver');
    expect(info.webtransport?.url).toBe(`https://game.example.com:${port}/quiver`);

    process.env.PUBLIC_URL = 'http://lan-box:8080';
    try {
      const app = Fastify();
      await app.register(quiver, { webtransport: false });
      await app.listen({ host: '127.0.0.1', port: 0 });
      cleanups.push(() => app.close());
      expect((await app.quiverTransports.info()).websocket?.url).toBe('ws://lan-box:8080/quiver');
    } finally {
      delete process.env.PUBLIC_URL;
    }
    await expect(Fastify().register(quiver, { publicUrl: 'ftp://x', webtransport: false })).rejects.toThrow(
      /publicUrl must be an http: or https: URL/,
    );
  });

  it('a certificate browsers cannot pin (90 days) is advertised without hashes, logged once, and clients validate it by CA', async () => {
    const { certPem, keyPem } = await selfSigned(90, 'ECDSA');
    const { records, stream } = logRecords();
    const { info } = await start(
      {},
      { level: 'info', stream },
      { webtransport: { cert: certPem, key: keyPem } },
    );
    expect(info.webtransport?.certificateHashes).toEqual([]);
    const explained = records.filter((r) => /certificate hashes not advertised/.test(String(r.msg)));
    expect(explained).toHaveLength(1);
    expect(explained[0]).toMatchObject({ level: 30, reason: 'it is valid for 90 days, more than 14' });
    // The hash-less entry gets no serverCertificateHashes: the client checks the chain against its CAs.
    const [wt] = transportsFromInfo(info, { webtransport: connectWebTransport });
    expect(wt.options).toBeUndefined();
    const c = await connect(wt.url!, { transports: [wt], connectOptions: { ca: certPem } as ConnectOptions });
    cleanups.push(() => c.close());
    expect(c.transport).toBe('webtransport');
    expect(await echo(c, 'ca')).toBe('echo:ca');
  });

  it('advertises the hash of a certificate browsers accept (ECDSA P-256, at most 14 days), none for RSA', async () => {
    const short = await generateCertificate({ validityDays: 14 });
    expect(certificatePin(short.certPem).hash).toEqual(short.hash);
    const rsa = await selfSigned(7, 'RSA');
    expect(certificatePin(rsa.certPem)).toEqual({ hash: null, reason: 'its key is rsa, not ECDSA P-256' });
    const { info } = await start({}, false, { webtransport: { cert: short.certPem, key: short.keyPem } });
    expect(info.webtransport?.certificateHashes).toEqual([
      { algorithm: 'sha-256', value: Buffer.from(short.hash).toString('base64') },
    ]);
  });
});
