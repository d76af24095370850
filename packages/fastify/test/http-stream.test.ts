/**
 * The HTTP fallback served by the plugin on the app's own port and path: advertised in /quiver/info, carrying a
 * session's messages, counted in quiver_sessions_active{transport="http"}, and leaving the app's own routes (and
 * plain requests on the same path) alone.
 */
import { generateCertificate } from '@quiver/devcert';
import { connectHttpStream, type HttpStreamSession } from '@quiver/http-stream';
import { connect, defineMessage } from '@quiver/session';
import type { ConnectOptions } from '@quiver/transport';
import { connectWebSocket } from '@quiver/websocket';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import quiver, { type QuiverInfo } from '../src/index.js';

const Chat = defineMessage<string>('chat');
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

describe('@quiver/fastify HTTP fallback', () => {
  it('serves the HTTP transport on the app port and path, advertises it and counts its sessions', async () => {
    const app = Fastify({ logger: false });
    await app.register(quiver, { path: '/quiver', webtransport: false, session: { messages: [Chat] } });
    app.quiver.on(Chat, (m, s) => s.send(Chat, `echo:${m}`));
    app.get('/quiver/hello', async () => 'app route');
    await app.listen({ host: '127.0.0.1', port: 0 });
    cleanups.push(() => app.close());
    const port = (app.server.address() as { port: number }).port;
    const info = (await (
      await fetch(`http://127.0.0.1:${(app.server.address() as { port: number }).port}/quiver/info`)
    ).json()) as QuiverInfo;
    expect(info.http?.url).toBe(`http://127.0.0.1:${port}/quiver`);

    const c = await connect(info.http!.url, { connector: connectHttpStream, reconnect: false });
    cleanups.push(() => c.close());
    expect(c.transport).toBe('http');
    const reply = new Promise<string>((resolve) => c.on(Chat, resolve));
    c.send(Chat, 'over http');
    expect(await reply).toBe('echo:over http');

    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toContain('quiver_sessions_active{transport="http"} 1');
    expect(metrics).toContain('quiver_sessions_active{transport="websocket"} 0');

    // Requests without the tunnel's query parameter are the app's: its route answers, unknown paths get 404.
    const own = await fetch(`http://127.0.0.1:${port}/quiver/hello`);
    expect(await own.text()).toBe('app route');
    expect((await fetch(`http://127.0.0.1:${port}/quiver`)).status).toBe(404);
    // A tunnel request for a session that does not exist is answered by the transport, not by the app.
    const stray = await fetch(`http://127.0.0.1:${port}/quiver?qh=up&qh-sid=nope&qh-tok=x`, {
      method: 'POST',
      body: new Uint8Array([1]),
    });
    expect(stray.status).toBe(404);
    expect(app.quiverTransports.http?.stats.unknownSession).toBe(1);
  });

  it('on fastify with HTTP/2 over TLS (allowHTTP1): the upload stream over HTTP/2, POSTs over HTTP/1.1, WebSocket alike', async () => {
    const cert = await generateCertificate();
    const app = Fastify({
      logger: false,
      http2: true,
      https: { allowHTTP1: true, cert: cert.certPem, key: cert.keyPem },
    });
    await app.register(quiver, { path: '/quiver', webtransport: false, session: { messages: [Chat] } });
    app.quiver.on(Chat, (m, s) => s.send(Chat, `echo:${m}`));
    await app.listen({ host: '127.0.0.1', port: 0 });
    cleanups.push(() => app.close());
    const url = `https://127.0.0.1:${(app.server.address() as { port: number }).port}/quiver`;
    const tls = { ca: cert.certPem };
    let h2Session: HttpStreamSession | undefined;
    const clients = [
      (u: string, o?: ConnectOptions) => {
        h2Session = connectHttpStream(u, { ...o, http2: true, tls });
        return h2Session;
      },
      (u: string, o?: ConnectOptions) => connectHttpStream(u, { ...o, tls }),
      (u: string, o?: ConnectOptions) => connectWebSocket(u, { ...o, tls }),
    ];
    for (const connector of clients) {
      const c = await connect(url, { connector, reconnect: false });
      const reply = new Promise<string>((resolve) => c.on(Chat, resolve));
      c.send(Chat, c.transport);
      expect(await reply).toBe(`echo:${c.transport}`);
      await c.close();
    }
    const stats = app.quiverTransports.http!.stats;
    expect(h2Session!.tunnel.counters.uploads).toBe(1);
    expect(h2Session!.tunnel.counters.uploadFallbacks).toBe(0);
    expect(stats.uploads).toBe(1);
    expect(stats.uploadsRefused).toBe(0);
  });

  it('can be disabled', async () => {
    const app = Fastify({ logger: false });
    await app.register(quiver, { webtransport: false, http: false });
    cleanups.push(() => app.close());
    const info = (await app.inject({ method: 'GET', url: '/quiver/info' })).json() as QuiverInfo;
    expect(info.http).toBeNull();
    expect(app.quiverTransports.http).toBeNull();
  });
});
