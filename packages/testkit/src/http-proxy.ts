/**
 * A small HTTP/1.1 reverse proxy for tests of HTTP transports: it streams requests and responses through as they
 * come (it buffers nothing), and can misbehave the way middleboxes do: refuse WebSocket upgrades, drop a POST
 * before or after the origin saw it, cut long responses (an event stream) after some bytes.
 */
import { once } from 'node:events';
import http from 'node:http';

export interface TestProxyOptions {
  /** Where requests go. */
  target: { host: string; port: number };
  /** Answer WebSocket upgrades with 403 instead of forwarding them (as a proxy that only speaks HTTP). Default true. */
  refuseUpgrades?: boolean;
  /**
   * Decides the fate of the n-th POST (1-based): `'before'` answers 502 without forwarding it, `'after'` forwards
   * it and then drops the connection instead of passing the origin's answer on. Default: every POST goes through.
   */
  dropPost?: (n: number) => 'before' | 'after' | undefined;
  /** Closes a response (both connections) once this many body bytes went through (0: never). Default 0. */
  cutResponsesAfterBytes?: number;
  /**
   * Rewrites the JSON answers to requests for any of `paths` (exact, or a prefix when it ends in `/`), e.g. point a
   * page's `/quiver/info` and its matchmaking answers at a dead UDP port, as a network that drops UDP would make it.
   */
  rewriteJson?: { paths: string[]; map(value: unknown): unknown };
  /**
   * Holds every POST this many ms before forwarding it, as a slow uplink (or a busy client) makes acknowledgements
   * arrive late and in bursts. Default 0.
   */
  delayPostsMs?: number;
}

export interface TestProxyStats {
  requests: number;
  refusedUpgrades: number;
  droppedBefore: number;
  droppedAfter: number;
  cutResponses: number;
}

export interface TestProxy {
  readonly address: { host: string; port: number };
  readonly stats: Readonly<TestProxyStats>;
  close(): Promise<void>;
}

export async function startTestProxy(options: TestProxyOptions): Promise<TestProxy> {
  const stats: TestProxyStats = {
    requests: 0,
    refusedUpgrades: 0,
    droppedBefore: 0,
    droppedAfter: 0,
    cutResponses: 0,
  };
  const cut = options.cutResponsesAfterBytes ?? 0;
  let posts = 0;
  const server = http.createServer((req, res) => {
    stats.requests++;
    const fate = req.method === 'POST' ? options.dropPost?.(++posts) : undefined;
    if (fate === 'before') {
      stats.droppedBefore++;
      req.resume();
      req.on('end', () => {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end('Bad Gateway (test proxy)');
      });
      return;
    }
    const delay = req.method === 'POST' ? (options.delayPostsMs ?? 0) : 0;
    if (delay > 0) {
      req.pause();
      const t = setTimeout(() => forward(req, res, fate), delay);
      res.on('close', () => clearTimeout(t));
      return;
    }
    forward(req, res, fate);
  });
  const forward = (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    fate: 'before' | 'after' | undefined,
  ) => {
    const upstream = http.request({
      host: options.target.host,
      port: options.target.port,
      method: req.method,
      path: req.url,
      headers: req.headers,
    });
    upstream.on('response', (ures) => {
      const rewrite = options.rewriteJson;
      const reqPath = (req.url ?? '').split('?')[0];
      const rewritten = rewrite?.paths.some((p) => (p.endsWith('/') ? reqPath.startsWith(p) : reqPath === p));
      if (rewrite && rewritten && (ures.headers['content-type'] ?? '').startsWith('application/json')) {
        const chunks: Buffer[] = [];
        ures.on('data', (c: Buffer) => chunks.push(c));
        ures.on('end', () => {
          const body = Buffer.from(JSON.stringify(rewrite.map(JSON.parse(Buffer.concat(chunks).toString()))));
          const headers = { ...ures.headers, 'content-length': String(body.length) };
          delete headers['transfer-encoding'];
          res.writeHead(ures.statusCode ?? 200, headers);
          res.end(body);
        });
        return;
      }
      if (fate === 'after') {
        stats.droppedAfter++;
        ures.resume();
        res.destroy();
        return;
      }
      res.writeHead(ures.statusCode ?? 502, ures.headers);
      res.flushHeaders();
      let bytes = 0;
      let cutting = false;
      ures.on('data', (chunk: Buffer) => {
        if (cutting) return;
        if (cut > 0 && bytes + chunk.length >= cut) {
          // The first `cut` bytes are delivered, then both connections drop mid-response.
          cutting = true;
          stats.cutResponses++;
          ures.destroy();
          res.write(chunk.subarray(0, cut - bytes), () => res.destroy());
          return;
        }
        bytes += chunk.length;
        res.write(chunk);
      });
      ures.on('end', () => {
        if (!cutting) res.end();
      });
      ures.on('error', () => {
        if (!cutting) res.destroy();
      });
    });
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  };
  server.on('upgrade', (_req, socket) => {
    socket.on('error', () => {});
    if (options.refuseUpgrades ?? true) {
      stats.refusedUpgrades++;
      socket.end('HTTP/1.1 403 Forbidden\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    socket.destroy();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const a = server.address() as { address: string; port: number };
  return {
    address: { host: a.address, port: a.port },
    get stats() {
      return { ...stats };
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
