import { request } from 'node:http';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BLANK_PAGE, bundleForBrowser, mapNativeStats, serveStatic } from '../src/index.js';

function get(url: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

describe('serveStatic', () => {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0)) await c();
  });

  it('serves a blank page at / and registered routes on 127.0.0.1 with an OS-chosen port', async () => {
    const s = await serveStatic({ routes: { '/app.js': 'export const x = 1;' } });
    closers.push(() => s.close());
    expect(s.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    expect(s.port).toBeGreaterThan(0);
    expect(await get(s.url)).toMatchObject({
      status: 200,
      body: BLANK_PAGE,
      type: 'text/html; charset=utf-8',
    });
    expect(await get(`${s.origin}/app.js?v=1`)).toMatchObject({
      status: 200,
      body: 'export const x = 1;',
      type: 'text/javascript; charset=utf-8',
    });
    expect((await get(`${s.origin}/missing`)).status).toBe(404);
    expect((await get(`${s.origin}/app.js`, 'POST')).status).toBe(405);
    s.set('/data.bin', { body: new Uint8Array([104, 105]), contentType: 'application/x-test' });
    expect(await get(`${s.origin}/data.bin`)).toMatchObject({
      status: 200,
      body: 'hi',
      type: 'application/x-test',
    });
  });

  it('close() ends kept-alive connections and frees the port', async () => {
    const s = await serveStatic();
    await get(s.url);
    await s.close();
    await expect(get(s.url)).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('bundleForBrowser', () => {
  it('bundles workspace packages through the quiver-source condition into one ES module', async () => {
    const code = await bundleForBrowser(join(import.meta.dirname, 'fixtures/bundle-entry.ts'), {
      sourcemap: false,
    });
    // Self-contained: no bare import left for the page to resolve.
    expect(code).not.toMatch(/from\s*['"]@quiver/);
    expect(code).toContain('streamErrorCode');
    const mod = (await import(`data:text/javascript;base64,${Buffer.from(code).toString('base64')}`)) as {
      e: { streamErrorCode: number; name: string };
    };
    expect(mod.e.streamErrorCode).toBe(5);
    expect(mod.e.name).toBe('WebTransportError');
  });

  it('rejects with the esbuild error for a broken entry', async () => {
    await expect(bundleForBrowser(join(import.meta.dirname, 'does-not-exist.ts'))).rejects.toThrow(
      /Could not resolve/,
    );
  });
});

describe('mapNativeStats', () => {
  it('maps W3C WebTransportConnectionStats and the agent datagram counts onto TransportStats', () => {
    const s = mapNativeStats({
      timestamp: 5,
      bytesSent: 10,
      bytesReceived: 20,
      packetsSent: 3,
      packetsReceived: 4,
      packetsLost: 1,
      smoothedRtt: 1.5,
      rttVariation: 0.5,
      minRtt: 0.9,
      datagrams: { droppedIncoming: 2, expiredIncoming: 0, expiredOutgoing: 3, lostOutgoing: 4 },
      agentDatagrams: { sent: 7, received: 8, tooLarge: 1 },
    });
    expect(s).toEqual({
      timestamp: 5,
      smoothedRtt: 1.5,
      rttVariation: 0.5,
      minRtt: 0.9,
      bytesSent: 10,
      bytesReceived: 20,
      packetsSent: 3,
      packetsReceived: 4,
      packetsLost: 1,
      datagrams: {
        sent: 7,
        received: 8,
        droppedOutgoing: { 'too-large': 1, expired: 3, lost: 4 },
        droppedIncoming: { 'receive-queue-full': 2 },
      },
    });
    expect(mapNativeStats({}).smoothedRtt).toBe(0);
  });
});
