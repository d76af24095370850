import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';

/**
 * For tests and benches (`@quiver/redis/testing`): a real `redis-server` (`REDIS_SERVER`, default
 * `/usr/bin/redis-server`) on a free loopback port, without persistence; `stop()` kills it.
 */
export interface RedisServer {
  /** The loopback TCP port, kept across `kill()`/`start()`. */
  port: number;
  /** `redis://127.0.0.1:<port>`, for `connectRedisRooms` or `redisUrl`. */
  url: string;
  /** A new ioredis connection to the server (3 retries per command); `stop()` disconnects it. */
  client(): Redis;
  /** SIGKILLs the server; `start()` runs a fresh one (empty: no persistence) on the same port. */
  kill(): Promise<void>;
  /** Runs a fresh server on `port` after `kill()`; resolves once it accepts connections. */
  start(): Promise<void>;
  /** Disconnects every `client()` and kills the server. */
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Starts a `redis-server` and resolves once it accepts connections; rejects if it exits first. */
export async function startRedis(): Promise<RedisServer> {
  const port = await freePort();
  const clients: Redis[] = [];
  let proc: ChildProcess | undefined;
  const start = async () => {
    const p = spawn(
      process.env.REDIS_SERVER ?? '/usr/bin/redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    proc = p;
    let out = '';
    await new Promise<void>((resolve, reject) => {
      p.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('Ready to accept connections')) resolve();
      });
      p.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${out.slice(-500)}`)));
    });
  };
  await start();
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    client() {
      const c = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 3 });
      c.on('error', () => {}); // refused connections while a test has the server down: ioredis retries
      clients.push(c);
      return c;
    },
    async kill() {
      const p = proc;
      if (!p || p.exitCode !== null) return;
      const exited = once(p, 'exit');
      p.kill('SIGKILL');
      await exited;
    },
    start,
    async stop() {
      for (const c of clients) c.disconnect();
      await server.kill();
    },
  };
  return server;
}
