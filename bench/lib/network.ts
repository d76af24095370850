/**
 * Where a bench measurement runs: over an emulated link (client and server agents in their own namespaces) or
 * on loopback (both agents in this namespace, 127.0.0.1). Suites get the same {@link Network} either way.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLink, type Link, type LinkParams, linkUnavailable, REPO_ROOT } from './link.js';

const AGENT = join(REPO_ROOT, 'bench', 'lib', 'agent.ts');
// --expose-gc: memory figures (the load suite's RSS per session) are taken after a full collection.
const NODE_ARGS = ['--expose-gc', '--import', 'tsx', '--conditions=quiver-source', AGENT];

export interface Agent {
  readonly pid: number;
  /** Calls `fn(...args)` exported by `module` (a path relative to the repository root) inside the agent. */
  call<T = unknown>(module: string, fn: string, ...args: unknown[]): Promise<T>;
  /** Kills the agent at once (an abrupt disconnect: no close frames, no CONNECTION_CLOSE). */
  kill(): void;
  close(): Promise<void>;
}

export interface Network {
  readonly kind: 'link' | 'loopback';
  readonly clientAddr: string;
  readonly serverAddr: string;
  readonly link?: Link;
  /** Starts a Node agent on the client or the server side. */
  agent(side: 'client' | 'server', options?: AgentOptions): Promise<Agent>;
  /** Link parameters for the JSON (or `{ loopback: true }`). */
  describe(): Record<string, unknown>;
  close(): Promise<void>;
}

export interface AgentOptions {
  /**
   * Run the agent under SCHED_RR (priority 5) when root: latency measurements on a shared, busy machine then
   * measure the transports and the link rather than the scheduler. Only for light suites (setup, latency): a
   * busy real-time process would starve everything else.
   */
  realtime?: boolean;
  /** Pin the agent to these CPUs (`taskset -c`), e.g. `'0'`: keeps a measured server off its clients' core. */
  cpus?: string;
  /** Extra Node options (e.g. `--cpu-prof`), before the agent's own. */
  nodeArgs?: string[];
  /**
   * Run the agent in a session of its own (`setsid`) whose autogroup has this niceness (`/proc/PID/autogroup`,
   * -20..19; negative needs root). With `kernel.sched_autogroup_enabled` (as here) CFS first shares the CPUs
   * between sessions and only then by a process's own nice value, so `nice -n` cannot give an agent more than its
   * session's share: on this shared machine ~10 busy sessions left the soak's server and clients together ~0.2
   * core. An autogroup niceness gives a long, CPU-heavy measurement (the soak) its share without the starvation a
   * real-time policy would cause over minutes.
   */
  nice?: number;
}

/** The command line of an agent: node, optionally under `chrt -r 5`. */
function agentCommand(o: AgentOptions = {}): [string, string[]] {
  const rt = o.realtime && typeof process.getuid === 'function' && process.getuid() === 0;
  const node = [process.execPath, ...(o.nodeArgs ?? []), ...NODE_ARGS];
  const cmd = rt ? ['chrt', '-r', '5', ...node] : node;
  const pinned = o.cpus ? ['taskset', '-c', o.cpus, ...cmd] : cmd;
  return [pinned[0], pinned.slice(1)];
}

/** Sets the niceness of the autogroup of `pid` (its session); a kernel without autogroups has nothing to set. */
function setAutogroupNice(pid: number, nice: number): void {
  try {
    writeFileSync(`/proc/${pid}/autogroup`, String(nice));
  } catch {
    // No autogroup support, or not allowed (negative without root): the agent runs at the default share.
  }
}

const loopbackChildren = new Set<ChildProcess>();
let hook = false;

function wrap(child: ChildProcess): Promise<Agent> {
  let next = 1;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let exited = false;
  return new Promise((resolveAgent, rejectAgent) => {
    child.on('message', (m: { id: number; ok: boolean; result?: unknown; error?: string }) => {
      if (m.id === 0) {
        resolveAgent(agent);
        return;
      }
      const p = pending.get(m.id);
      if (!p) return;
      pending.delete(m.id);
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(`agent ${child.pid}: ${m.error}`));
    });
    child.once('exit', (code, sig) => {
      exited = true;
      const err = new Error(`agent ${child.pid} exited (${sig ?? code})`);
      for (const p of pending.values()) p.reject(err);
      pending.clear();
      rejectAgent(err);
    });
    child.once('error', (e) => rejectAgent(e));
    const agent: Agent = {
      pid: child.pid ?? -1,
      call<T>(module: string, fn: string, ...args: unknown[]): Promise<T> {
        if (exited) return Promise.reject(new Error(`agent ${child.pid} has exited`));
        const id = next++;
        return new Promise<T>((resolve, reject) => {
          pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
          child.send({ id, module, fn, args });
        });
      },
      kill() {
        if (!exited) child.kill('SIGKILL');
      },
      close() {
        if (exited) return Promise.resolve();
        return new Promise<void>((resolve) => {
          const t = setTimeout(() => child.kill('SIGKILL'), 5000);
          child.once('exit', () => {
            clearTimeout(t);
            resolve();
          });
          child.disconnect();
        });
      },
    };
  });
}

async function loopbackAgent(o?: AgentOptions): Promise<Agent> {
  if (!hook) {
    hook = true;
    process.on('exit', () => {
      for (const c of loopbackChildren) c.kill('SIGKILL');
    });
  }
  const [cmd, args] = agentCommand(o);
  const child = spawn(cmd, args, {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'advanced',
    // A session of its own is an autogroup of its own (see AgentOptions.nice).
    detached: o?.nice !== undefined,
  });
  if (o?.nice !== undefined && child.pid !== undefined) setAutogroupNice(child.pid, o.nice);
  loopbackChildren.add(child);
  child.once('exit', () => loopbackChildren.delete(child));
  return wrap(child);
}

export function loopback(): Network {
  const agents: Agent[] = [];
  return {
    kind: 'loopback',
    clientAddr: '127.0.0.1',
    serverAddr: '127.0.0.1',
    async agent(_side, o) {
      const a = await loopbackAgent(o);
      agents.push(a);
      return a;
    },
    describe: () => ({ loopback: true }),
    async close() {
      await Promise.all(agents.map((a) => a.close()));
    },
  };
}

export async function emulated(params: LinkParams): Promise<Network> {
  const link = await createLink(params);
  const agents: Agent[] = [];
  return {
    kind: 'link',
    clientAddr: link.clientAddr,
    serverAddr: link.serverAddr,
    link,
    async agent(side, o) {
      const [cmd, args] = agentCommand(o);
      const child = link.spawn(side === 'client' ? link.clientNs : link.serverNs, cmd, args, {
        cwd: REPO_ROOT,
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        serialization: 'advanced',
      });
      const a = await wrap(child);
      agents.push(a);
      return a;
    },
    describe: () => ({ ...link.params, rttMs: 2 * link.params.delayMs }),
    async close() {
      await Promise.all(agents.map((a) => a.close()));
      await link.close();
    },
  };
}

/**
 * An emulated link when possible, else loopback with `fallback` saying why (suites print it and note it in
 * their results: "without root, the link suites say so and run on loopback").
 */
export async function linkOrLoopback(params: LinkParams): Promise<{ net: Network; fallback?: string }> {
  const why = linkUnavailable();
  if (why) return { net: loopback(), fallback: why.message };
  return { net: await emulated(params) };
}
