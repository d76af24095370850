import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type StaticBody = string | Uint8Array | { body: string | Uint8Array; contentType: string };

export interface StaticServerOptions {
  /** Path (without query) to body. `/` defaults to an empty HTML page. */
  routes?: Record<string, StaticBody>;
  /** Host to bind. Default 127.0.0.1 (a secure context for the page, like localhost). */
  host?: string;
}

export interface StaticServer {
  /** `http://127.0.0.1:<port>/` */
  readonly url: string;
  readonly origin: string;
  readonly port: number;
  /** Adds or replaces a route. */
  set(path: string, body: StaticBody): void;
  /** Stops listening and destroys open connections. */
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.css': 'text/css',
  '.wasm': 'application/wasm',
};

export const BLANK_PAGE =
  '<!doctype html><html><head><meta charset="utf-8"><title>quiver test</title></head><body></body></html>';

function contentType(path: string): string {
  const dot = path.lastIndexOf('.');
  return (
    (dot >= 0 && TYPES[path.slice(dot)]) || (path.endsWith('/') ? TYPES['.html'] : 'application/octet-stream')
  );
}

/** A tiny HTTP server for test pages, on 127.0.0.1 and an OS-chosen port. */
export async function serveStatic(opts: StaticServerOptions = {}): Promise<StaticServer> {
  const routes = new Map<string, { body: Uint8Array | string; contentType: string }>();
  const set = (path: string, b: StaticBody) => {
    if (typeof b === 'object' && !(b instanceof Uint8Array)) routes.set(path, b);
    else routes.set(path, { body: b, contentType: contentType(path) });
  };
  set('/', BLANK_PAGE);
  for (const [p, b] of Object.entries(opts.routes ?? {})) set(p, b);

  const sockets = new Set<Socket>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    const route = routes.get(path);
    if (!route || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res
        .writeHead(route ? 405 : 404, { 'content-type': 'text/plain' })
        .end(route ? 'method not allowed' : 'not found');
      return;
    }
    res.writeHead(200, { 'content-type': route.contentType, 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : route.body);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const origin = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  let closing: Promise<void> | undefined;
  return {
    url: `${origin}/`,
    origin,
    port,
    set,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      return closing;
    },
  };
}
