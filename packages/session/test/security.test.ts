import {
  type ConnectOptions,
  connectMemory,
  createMemoryListener,
  type QuiverSession,
  type TransportListener,
} from '@quiver/transport';
import { describe, expect, it } from 'vitest';
import {
  CloseCode,
  ConnectError,
  connect,
  createSessionServer,
  bundleFrame,
  datagramFrame,
  defineMessage,
  Kind,
  parseBody,
  reject,
  SessionError,
  type SessionServerOptions,
  streamFrame,
  unbundle,
} from '../src/index.js';
import { cleanups, until, useCleanup } from './support/harness.js';
import { createMemoryNetwork } from './support/memory.js';
import { rawClient } from './support/raw.js';

useCleanup();

const Chat = defineMessage<string>('chat');

/** The connector tests dial through: any `https://game.test/<path>?<query>` reaches the test's listener. */
interface Net {
  connect: (url: string, options?: ConnectOptions) => QuiverSession;
}

/**
 * A server on @quiver/transport's memory transport, or (`helper`) on this package's test network, which gives each
 * connection the remote address of its `x-test-ip` header (for the per-IP limit).
 */
async function world(opts: SessionServerOptions = {}, helper = false) {
  let net: Net;
  let listener: TransportListener;
  if (helper) {
    const n = createMemoryNetwork();
    listener = n.listen();
    net = n;
  } else {
    const l = createMemoryListener();
    listener = l;
    net = {
      connect: (url, options) => {
        const u = new URL(url);
        return connectMemory(`${l.url}${u.pathname}${u.search}`, options);
      },
    };
  }
  const errors: Error[] = [];
  const server = createSessionServer({
    listeners: [listener],
    messages: [Chat],
    onError: (e) => errors.push(e),
    ...opts,
  });
  cleanups.push(async () => {
    await server.close();
    await listener.close();
  });
  server.on(Chat, (m, s) => s.send(Chat, `echo:${m}`));
  return { net, server, errors };
}

async function goodClient(net: Net, token = 'good') {
  const c = await connect('https://game.test/q', { connector: net.connect, token, reconnect: false });
  cleanups.push(() => c.close());
  return c;
}

async function echo(c: Awaited<ReturnType<typeof goodClient>>, text: string): Promise<string> {
  return new Promise((resolve) => {
    const off = c.on(Chat, (m) => {
      off();
      resolve(m);
    });
    c.send(Chat, text);
  });
}

const auth: SessionServerOptions['authenticate'] = (req) => {
  const t = req.query.get('token');
  if (t === 'good' || t?.startsWith('fresh')) return { userId: `u-${t}` };
  if (t === 'banned') reject(403, 'banned');
  return reject(401, 'bad token');
};

describe('security', () => {
  it('rejects unauthenticated sessions with 401 before they exist, and 403 on refusal', async () => {
    const { net, server } = await world({ authenticate: auth });
    const e1 = await connect('https://game.test/q', { connector: net.connect, token: 'nope' }).catch(
      (e) => e,
    );
    expect(e1).toBeInstanceOf(ConnectError);
    expect(e1.status).toBe(401);
    const e2 = await connect('https://game.test/q', { connector: net.connect, token: 'banned' }).catch(
      (e) => e,
    );
    expect(e2.status).toBe(403);
    expect(server.sessions.size).toBe(0);
    expect(server.metrics.rejections).toMatchObject({ '401': 1, '403': 1 });
    const ok = await goodClient(net);
    expect(await echo(ok, 'hi')).toBe('echo:hi');
  });

  it('runs authenticate again on reconnect with a fresh token', async () => {
    const tokens: string[] = [];
    const net = createMemoryNetwork();
    let listener = net.listen();
    const server = createSessionServer({
      listeners: [listener],
      authenticate: (req) => {
        tokens.push(req.query.get('token')!);
        return { userId: 'same-user' };
      },
    });
    cleanups.push(async () => {
      await server.close();
      await net.listener?.close();
    });
    let n = 0;
    const c = await connect('https://game.test/q', {
      connector: net.connect,
      token: () => `fresh-${++n}`,
      reconnect: { initialMs: 5, seed: 1 },
    });
    cleanups.push(() => c.close());
    const opens: boolean[] = [];
    c.on('open', (i) => opens.push(i.recovered));
    await listener.close();
    listener = net.listen();
    server.addListener(listener);
    await until(() => opens.length === 1);
    expect(tokens).toEqual(['fresh-1', 'fresh-2']);
    expect(opens).toEqual([true]);
  });

  it('enforces allowed origins, per-IP session rate and maxSessions', async () => {
    const { net, server } = await world(
      {
        allowedOrigins: ['https://good.test'],
        rateLimits: { perIp: { sessionsPerMinute: 2 } },
        maxSessions: 3,
      },
      true,
    );
    const bad = await connect('https://game.test/q', {
      connector: net.connect,
      connectOptions: { headers: { origin: 'https://evil.test' } },
    }).catch((e) => e);
    expect(bad.status).toBe(403);
    const ip = (a: string) => ({ headers: { origin: 'https://good.test', 'x-test-ip': a } });
    const a1 = await connect('https://game.test/q', {
      connector: net.connect,
      connectOptions: ip('10.0.0.1'),
    });
    const a2 = await connect('https://game.test/q', {
      connector: net.connect,
      connectOptions: ip('10.0.0.1'),
    });
    cleanups.push(
      () => a1.close(),
      () => a2.close(),
    );
    const a3 = await connect('https://game.test/q', {
      connector: net.connect,
      connectOptions: ip('10.0.0.1'),
    }).catch((e) => e);
    expect(a3.status).toBe(429);
    const b1 = await connect('https://game.test/q', {
      connector: net.connect,
      connectOptions: ip('10.0.0.2'),
    });
    cleanups.push(() => b1.close());
    const b2 = await connect('https://game.test/q', {
      connector: net.connect,
      connectOptions: ip('10.0.0.3'),
    }).catch((e) => e);
    expect(b2.status).toBe(503);
    expect(server.metrics.rejections).toMatchObject({ '403': 1, '429': 1, '503': 1 });
    expect(await echo(a1, 'still')).toBe('echo:still');
  });

  it('refuses with 503 when authenticate does not decide in time', async () => {
    const { net, errors } = await world({
      authenticate: () => new Promise(() => {}),
      handshakeTimeoutMs: 30,
    });
    const e = await connect('https://game.test/q', { connector: net.connect }).catch((x) => x);
    expect(e.status).toBe(503);
    expect(errors[0]?.name).toBe('HandshakeTimeoutError');
  });

  it('closes a session that never says HELLO with 4408', async () => {
    const { net, errors } = await world({ firstMessageTimeoutMs: 30 });
    const raw = await rawClient(net.connect);
    const info = await raw.closed;
    expect(info.closeCode).toBe(CloseCode.HANDSHAKE_TIMEOUT);
    expect(errors[0]?.name).toBe('HandshakeTimeoutError');
  });

  describe('bad input closes only the offending session, with a documented code', () => {
    const cases: [string, number, string, (raw: Awaited<ReturnType<typeof rawClient>>) => Promise<void>][] = [
      [
        'a message before HELLO',
        CloseCode.NOT_AUTHENTICATED,
        'NotAuthenticatedError',
        async (raw) => raw.frame([Kind.DATA, 1, 1, 0], new Uint8Array([0xa1, 0x61])),
      ],
      [
        'undecodable MessagePack',
        CloseCode.BAD_MESSAGE,
        'DecodeError',
        async (raw) => {
          await raw.hello();
          await raw.bytes(new Uint8Array([0, 0, 0, 3, 0, 1, 0xc1]));
        },
      ],
      [
        'an unknown message id',
        CloseCode.UNKNOWN_MESSAGE,
        'UnknownMessageError',
        async (raw) => {
          await raw.hello({ messages: [['nope', 9]] });
          const w = (await raw.session.createUnidirectionalStream()).getWriter();
          for (const c of [
            ...streamFrame([Kind.OPEN, 1]),
            ...streamFrame([Kind.DATA, 9, 1, 0], new Uint8Array([1])),
          ])
            await w.write(c);
        },
      ],
      [
        'an unknown message name',
        CloseCode.UNKNOWN_MESSAGE,
        'UnknownMessageError',
        async (raw) => {
          await raw.hello();
          const w = (await raw.session.createUnidirectionalStream()).getWriter();
          for (const c of [
            ...streamFrame([Kind.OPEN, 1]),
            ...streamFrame([Kind.DATA, 'admin', 1, 0], new Uint8Array([0xc0])),
          ])
            await w.write(c);
        },
      ],
      [
        'an oversize message',
        CloseCode.MESSAGE_TOO_LARGE,
        'MessageTooLargeError',
        async (raw) => {
          await raw.hello();
          const w = (await raw.session.createUnidirectionalStream()).getWriter();
          for (const c of streamFrame([Kind.OPEN, 1])) await w.write(c);
          await w.write(new Uint8Array([0, 0, 0x40, 0]));
        },
      ],
      [
        'a flood',
        CloseCode.RATE_LIMITED,
        'RateLimitError',
        async (raw) => {
          await raw.hello();
          for (let i = 0; i < 200; i++) await raw.frame([Kind.PING, i, 0]).catch(() => {});
        },
      ],
    ];
    const kindOf: Record<string, string> = {
      NotAuthenticatedError: 'not-authenticated',
      DecodeError: 'decode',
      UnknownMessageError: 'unknown-message',
      MessageTooLargeError: 'too-large',
      RateLimitError: 'rate-limit',
    };
    // Datagrams are the exception the table does not cover: a bad one is counted and dropped, the session stays.
    it('a malformed datagram bundle is dropped and counted as malformed; good bundles still work', async () => {
      const { net, server, errors } = await world();
      const raw = await rawClient(net.connect);
      raw.drainControl();
      await raw.hello();
      await until(() => server.sessions.size === 1, 'session');
      const ping = (id: number) => datagramFrame([Kind.PING, id, 0]);
      const good = bundleFrame([ping(101), ping(102)]);
      const goodBody = parseBody(good).payload;
      const head = good.subarray(0, good.length - goodBody.length);
      const withPayload = (p: Uint8Array) => Uint8Array.of(...head, ...p);
      const bad = [
        // Announces two bodies, the second's length runs past the end.
        withPayload(goodBody.subarray(0, -1)),
        // Announces two bodies, holds one more byte than they account for.
        withPayload(Uint8Array.of(...goodBody, 0)),
        // A count of zero.
        datagramFrame([Kind.BUNDLE, 0], goodBody),
        // A bundle inside a bundle: bundles do not nest.
        bundleFrame([good, ping(103)]),
      ];
      const before = server.metrics.drops.malformed ?? 0;
      const w = raw.session.datagrams.writable.getWriter();
      for (const d of bad) await w.write(d);
      await w.write(good);
      const pongs = new Set<number>();
      const r = raw.session.datagrams.readable.getReader();
      while (!(pongs.has(101) && pongs.has(102))) {
        const { value } = await r.read();
        const f = parseBody(value!);
        for (const body of f.header[0] === Kind.BUNDLE ? unbundle(f) : [value!]) {
          const h = parseBody(body).header;
          if (h[0] === Kind.PONG) pongs.add(h[1] as number);
        }
      }
      // The nested bundle's inner ping (103) is answered: only the nested bundle in it is malformed.
      expect(pongs.has(103)).toBe(true);
      expect(server.metrics.drops.malformed).toBe(before + 4);
      expect(errors).toEqual([]);
      expect(server.sessions.size).toBe(1);
      r.releaseLock();
      w.releaseLock();
      raw.session.close();
    });

    for (const [what, code, errorName, misbehave] of cases) {
      it(what, async () => {
        const { net, server, errors } = await world({
          maxMessageBytes: 4096,
          rateLimits: { perSession: { messagesPerSecond: 50 } },
        });
        const good = await goodClient(net);
        const raw = await rawClient(net.connect);
        raw.drainControl();
        await misbehave(raw).catch(() => {});
        const info = await raw.closed;
        expect(info.closeCode).toBe(code);
        expect(errors.map((e) => e.name)).toContain(errorName);
        // The offending error is typed, carries the code the session was closed with, and is counted under its
        // own kind (the `quiver_errors_total{kind}` label), once per error reported.
        const kind = kindOf[errorName];
        const offending = errors.find((e) => e.name === errorName) as SessionError;
        expect(offending).toBeInstanceOf(SessionError);
        expect(offending.kind).toBe(kind);
        expect(offending.closeCode).toBe(code);
        expect(server.metrics.errors[kind]).toBe(
          errors.filter((e) => (e as SessionError).kind === kind).length,
        );
        expect(server.metrics.errors[kind]).toBeGreaterThanOrEqual(1);
        // The well-behaved session is untouched.
        expect(await echo(good, 'ok')).toBe('echo:ok');
        expect(good.state).toBe('open');
      });
    }
  });
});
