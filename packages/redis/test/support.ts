import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';

/** A server process of the cluster tests (`fixtures/node.ts`). */
export interface TestNode {
  name: string;
  endpoint: string;
  port: number;
  proc: ChildProcess;
}

const procs: ChildProcess[] = [];

/** Starts a server process on `redisUrl`; resolves once it listens and takes placed rooms. */
export async function startNode(redisUrl: string, name: string, host = '127.0.0.1'): Promise<TestNode> {
  const proc = spawn(
    process.execPath,
    ['--import', 'tsx', '--conditions=quiver-source', 'packages/redis/test/fixtures/node.ts'],
    {
      cwd: join(import.meta.dirname, '../../..'),
      env: { ...process.env, REDIS_URL: redisUrl, NODE_NAME: name, HOST: host },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  procs.push(proc);
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(out.slice(0, nl));
    });
    proc.once('exit', (code) => reject(new Error(`node ${name} exited (${code})`)));
  });
  const { port } = JSON.parse(line) as { port: number };
  return { name, port, endpoint: `http://127.0.0.1:${port}`, proc };
}

/** SIGTERMs every node still running (graceful: the plugin drains) and waits for it to exit. */
export async function stopNodes(): Promise<void> {
  for (const p of procs.splice(0)) {
    if (p.exitCode !== null || p.signalCode !== null) continue;
    const exited = once(p, 'exit');
    p.kill('SIGTERM');
    await exited;
  }
}

/** `GET /quiver/rooms?name=arena` of a node. */
export async function listing(
  endpoint: string,
): Promise<{ id: string; clients: number; metadata: { mode?: string } }[]> {
  const res = await fetch(`${endpoint}/quiver/rooms?name=arena`);
  return ((await res.json()) as { rooms: { id: string; clients: number; metadata: { mode?: string } }[] })
    .rooms;
}

/** Polls `cond` (every 20 ms, up to 15 s). */
export async function waitFor(cond: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
