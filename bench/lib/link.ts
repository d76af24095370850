/**
 * Emulated network links for the bench: a client and a server network namespace joined by the user-space
 * forwarder of scripts/netem (two TUN devices, one-way delay, jitter, random or Gilbert-Elliott loss, a bandwidth
 * cap). Kernel netem is not available on the bench machines; see scripts/netem/README.md.
 *
 * Only addresses inside the namespaces created here are used (198.18.0.0/15, RFC 2544's benchmarking range), so
 * no traffic can leave them. Everything is torn down by `close()`, at process exit, on SIGINT/SIGTERM/SIGHUP, and
 * namespaces left behind by a process that died by SIGKILL are removed by the next `createLink()`.
 */
import { type ChildProcess, execFileSync, type SpawnOptions, spawn as spawnChild } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = join(here, '..', '..');
const BUILD_SCRIPT = join(REPO_ROOT, 'scripts', 'netem', 'build.sh');

/** Every namespace this module creates starts with this, followed by the owner's pid. */
export const NS_PREFIX = 'qvl-';
export const CLIENT_ADDR = '198.18.0.1';
export const SERVER_ADDR = '198.18.0.2';

/** Gilbert-Elliott two-state loss model (per packet): transition, then lose with the state's loss probability. */
export interface GilbertElliott {
  /** P(good -> bad). */
  p: number;
  /** P(bad -> good); the mean burst length is 1/r. */
  r: number;
  /** P(deliver | bad). Default 0: every packet in the bad state is lost. */
  h?: number;
  /** P(deliver | good). Default 1. */
  k?: number;
}

export interface LinkParams {
  /** One-way delay in milliseconds, each direction (RTT = 2 × delayMs). */
  delayMs: number;
  /** Uniform jitter ± this many milliseconds; packets are never reordered. Default 0. */
  jitterMs?: number;
  /** Random (Bernoulli) loss probability per packet and direction, 0..1. Default 0. */
  loss?: number;
  /**
   * Bursty loss. A number is the mean burst length in packets: the Gilbert-Elliott model is then chosen so that
   * its long-run loss equals `loss` (which then is not applied a second time). An object sets the model directly
   * (and `loss` still applies on top). Default none.
   */
  burst?: number | GilbertElliott;
  /** Bandwidth cap in Mbit/s per direction; 0 or absent: unlimited. */
  rateMbit?: number;
  /** Packets queued per direction before drop-tail. Default 10 000. */
  limitPackets?: number;
  /** Seed of the loss and jitter generators. Default 1. */
  seed?: number;
}

export type Direction = 'up' | 'down' | 'both';

export interface DirectionStats {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  droppedLoss: number;
  droppedQueue: number;
  droppedWrite: number;
  queued: number;
}

/** Forwarder counters: `up` is client -> server. */
export interface LinkStats {
  up: DirectionStats;
  down: DirectionStats;
}

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface Link {
  readonly clientNs: string;
  readonly serverNs: string;
  readonly clientAddr: string;
  readonly serverAddr: string;
  readonly params: Readonly<LinkParams>;
  /** Runs `cmd args` inside `ns` to completion. */
  exec(ns: string, cmd: string, args?: string[], options?: { timeoutMs?: number }): Promise<ExecResult>;
  /** Starts `cmd args` inside `ns`; the process is killed by `close()` if still running. */
  spawn(ns: string, cmd: string, args?: string[], options?: SpawnOptions): ChildProcess;
  /** Changes the emulation without restarting anything (in-flight packets keep their scheduled times). */
  setParams(params: Partial<LinkParams>, direction?: Direction): Promise<void>;
  stats(): Promise<LinkStats>;
  /** Kills processes spawned here, stops the forwarder (its TUN devices vanish) and deletes both namespaces. */
  close(): Promise<void>;
}

export type LinkUnavailableReason = 'not-linux' | 'not-root' | 'no-tun' | 'no-ip' | 'no-cc';

export class LinkUnavailableError extends Error {
  override readonly name = 'LinkUnavailableError';
  constructor(
    readonly reason: LinkUnavailableReason,
    message: string,
  ) {
    super(message);
  }
}

function which(cmd: string): boolean {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    try {
      accessSync(join(dir, cmd), constants.X_OK);
      return true;
    } catch {}
  }
  return false;
}

/** Why links cannot be created here, or undefined when they can. */
export function linkUnavailable(): LinkUnavailableError | undefined {
  if (process.platform !== 'linux') return new LinkUnavailableError('not-linux', 'emulated links need Linux');
  if (typeof process.getuid !== 'function' || process.getuid() !== 0)
    return new LinkUnavailableError(
      'not-root',
      'emulated links need root (network namespaces and TUN devices); run as root or use loopback',
    );
  if (!existsSync('/dev/net/tun'))
    return new LinkUnavailableError(
      'no-tun',
      '/dev/net/tun is missing (no TUN support in this kernel/container)',
    );
  if (!which('ip')) return new LinkUnavailableError('no-ip', 'the `ip` command (iproute2) is missing');
  if (!which(process.env.CC ?? 'cc') && !existsSync(join(REPO_ROOT, 'scripts', '.build', 'quiver-netem')))
    return new LinkUnavailableError('no-cc', 'no C compiler (`cc`) to build scripts/netem/forwarder.c');
  return undefined;
}

/** Builds (if needed) and returns the path of the forwarder binary. */
export function buildForwarder(): string {
  return execFileSync('sh', [BUILD_SCRIPT], { encoding: 'utf8' }).trim().split('\n').pop() as string;
}

function ip(args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Namespaces named by this module whose owner process is gone. Returns the names removed. */
export function cleanupStaleNamespaces(): string[] {
  let list = '';
  try {
    list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0];
    const m = /^qvl-(\d+)-/.exec(name ?? '');
    if (!m || alive(Number(m[1]))) continue;
    try {
      ip(['netns', 'del', name]);
      removed.push(name);
    } catch {}
  }
  return removed;
}

/** Namespaces of this module that exist now (any owner). */
export function listLinkNamespaces(): string[] {
  try {
    return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.split(' ')[0])
      .filter((n): n is string => !!n && n.startsWith(NS_PREFIX));
  } catch {
    return [];
  }
}

/** The forwarder's `set` arguments for these parameters. */
const PARAM_KEYS = new Set(['delayMs', 'jitterMs', 'loss', 'burst', 'rateMbit', 'limitPackets', 'seed']);

export function controlArgs(p: Partial<LinkParams>): string[] {
  for (const k of Object.keys(p)) if (!PARAM_KEYS.has(k)) throw new RangeError(`unknown link parameter ${k}`);
  const a: string[] = [];
  const num = (name: string, v: number | undefined, lo: number, hi = Number.POSITIVE_INFINITY): void => {
    if (v === undefined) return;
    if (!Number.isFinite(v) || v < lo || v > hi)
      throw new RangeError(`link parameter ${name} out of range: ${v}`);
  };
  num('delayMs', p.delayMs, 0, 60_000);
  num('jitterMs', p.jitterMs, 0, 60_000);
  num('loss', p.loss, 0, 1);
  num('rateMbit', p.rateMbit, 0, 100_000);
  num('limitPackets', p.limitPackets, 1, 10_000_000);
  num('seed', p.seed, 0, 2 ** 52);
  if (p.delayMs !== undefined) a.push(`delay_us=${Math.round(p.delayMs * 1000)}`);
  if (p.jitterMs !== undefined) a.push(`jitter_us=${Math.round(p.jitterMs * 1000)}`);
  if (p.rateMbit !== undefined) a.push(`rate_bps=${Math.round(p.rateMbit * 1e6)}`);
  if (p.limitPackets !== undefined) a.push(`limit=${Math.round(p.limitPackets)}`);
  if (p.seed !== undefined) a.push(`seed=${Math.round(p.seed)}`);
  if (p.burst === undefined || p.burst === 0) {
    if (p.loss !== undefined) a.push(`loss=${p.loss}`);
    if ('burst' in p || p.loss !== undefined) a.push('ge_p=0');
  } else if (typeof p.burst === 'number') {
    // Stationary loss of the two-state chain with h=0, k=1 is p/(p+r); pick p so that it equals `loss`.
    if (!(p.burst >= 1))
      throw new RangeError(`link parameter burst (mean burst length) must be >= 1: ${p.burst}`);
    const loss = p.loss ?? 0;
    if (loss >= 1) throw new RangeError('bursty loss needs loss < 1');
    const r = 1 / p.burst;
    const gp = (loss * r) / (1 - loss);
    a.push('loss=0', `ge_p=${gp}`, `ge_r=${r}`, 'ge_h=0', 'ge_k=1');
  } else {
    const g = p.burst;
    num('burst.p', g.p, 0, 1);
    num('burst.r', g.r, 0, 1);
    num('burst.h', g.h, 0, 1);
    num('burst.k', g.k, 0, 1);
    if (p.loss !== undefined) a.push(`loss=${p.loss}`);
    a.push(`ge_p=${g.p}`, `ge_r=${g.r}`, `ge_h=${g.h ?? 0}`, `ge_k=${g.k ?? 1}`);
  }
  return a;
}

interface LiveLink {
  namespaces: string[];
  forwarder: ChildProcess;
  children: Set<ChildProcess>;
}

const live = new Set<LiveLink>();
let hooksInstalled = false;
let counter = 0;

function teardownSync(l: LiveLink): void {
  for (const c of l.children) if (c.exitCode === null && c.signalCode === null) killTree(c, 'SIGKILL');
  if (l.forwarder.exitCode === null) l.forwarder.kill('SIGKILL');
  for (const ns of l.namespaces) {
    try {
      ip(['netns', 'del', ns]);
    } catch {}
  }
  live.delete(l);
}

function onSignal(sig: NodeJS.Signals): void {
  for (const l of [...live]) teardownSync(l);
  process.removeListener(sig, onSignal);
  // Only re-raise when nobody else handles the signal: then the default action (termination) applies.
  if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const l of [...live]) teardownSync(l);
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal);
}

/**
 * `ip netns exec` runs the command in the same process (it execs), but a command may start its own children:
 * spawn in a new process group so the whole group can be signalled.
 */
function killTree(c: ChildProcess, sig: NodeJS.Signals): void {
  if (c.pid === undefined) return;
  try {
    process.kill(-c.pid, sig);
  } catch {
    try {
      c.kill(sig);
    } catch {}
  }
}

/** Creates a link; throws {@link LinkUnavailableError} where links are impossible (not root, no TUN, ...). */
export async function createLink(params: LinkParams): Promise<Link> {
  const why = linkUnavailable();
  if (why) throw why;
  const args = controlArgs({
    jitterMs: 0,
    loss: 0,
    rateMbit: 0,
    seed: 1,
    ...params,
    burst: params.burst ?? 0,
  });
  const bin = buildForwarder();
  cleanupStaleNamespaces();
  installHooks();
  const id = `${process.pid}-${++counter}`;
  const clientNs = `${NS_PREFIX}${id}-c`;
  const serverNs = `${NS_PREFIX}${id}-s`;
  // IFNAMSIZ is 16 (15 characters); pids are at most 7 digits on Linux.
  const devTag = `${process.pid.toString(36)}${counter.toString(36)}`;
  const clientDev = `qvc${devTag}`.slice(0, 15);
  const serverDev = `qvs${devTag}`.slice(0, 15);

  // QUIVER_NETEM_TRACE=1 makes the forwarder log every packet; that goes straight to our stderr.
  const tracing = !!process.env.QUIVER_NETEM_TRACE && process.env.QUIVER_NETEM_TRACE !== '0';
  const forwarder = spawnChild(bin, [clientDev, serverDev], {
    stdio: ['pipe', 'pipe', tracing ? 'inherit' : 'pipe'],
  });
  const l: LiveLink = { namespaces: [], forwarder, children: new Set() };
  live.add(l);
  let stderr = '';
  forwarder.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 4096) stderr += d.toString();
  });
  const lines = createInterface({ input: forwarder.stdout! });
  const waiting: ((line: string) => void)[] = [];
  let exited = false;
  const exitWaiters: (() => void)[] = [];
  forwarder.once('exit', () => {
    exited = true;
    for (const w of waiting.splice(0)) w('error forwarder exited');
    for (const w of exitWaiters.splice(0)) w();
  });
  lines.on('line', (line) => waiting.shift()?.(line));
  const nextLine = (): Promise<string> =>
    new Promise((resolve) => {
      if (exited) resolve('error forwarder exited');
      else waiting.push(resolve);
    });
  // Serialize commands: every command gets exactly one reply line, in order.
  let chain: Promise<unknown> = Promise.resolve();
  const command = (cmd: string): Promise<string> => {
    const p = chain.then(() => {
      const reply = nextLine();
      forwarder.stdin!.write(`${cmd}\n`);
      return reply;
    });
    chain = p.catch(() => {});
    return p;
  };

  try {
    const first = await nextLine();
    if (first !== 'ready') throw new Error(`netem forwarder did not start: ${stderr.trim() || first}`);
    ip(['netns', 'add', clientNs]);
    l.namespaces.push(clientNs);
    ip(['netns', 'add', serverNs]);
    l.namespaces.push(serverNs);
    // The forwarder keeps its descriptors after the devices move (verified, see the notes).
    ip(['link', 'set', clientDev, 'netns', clientNs]);
    ip(['link', 'set', serverDev, 'netns', serverNs]);
    for (const [ns, dev, local, peer] of [
      [clientNs, clientDev, CLIENT_ADDR, SERVER_ADDR],
      [serverNs, serverDev, SERVER_ADDR, CLIENT_ADDR],
    ] as const) {
      ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      ip(['-n', ns, 'addr', 'add', local, 'peer', `${peer}/32`, 'dev', dev]);
      // No IPv6 on the TUN: router solicitations would only add noise to the counters.
      try {
        execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', `net.ipv6.conf.${dev}.disable_ipv6=1`], {
          stdio: 'ignore',
        });
      } catch {}
      ip(['-n', ns, 'link', 'set', dev, 'up']);
    }
    const r = await command(`set both ${args.join(' ')}`);
    if (r !== 'ok') throw new Error(`netem forwarder rejected its parameters: ${r}`);
  } catch (e) {
    teardownSync(l);
    throw e;
  }

  let current: LinkParams = { ...params };
  let closed = false;
  const nsCheck = (ns: string): void => {
    if (ns !== clientNs && ns !== serverNs) throw new Error(`not a namespace of this link: ${ns}`);
  };
  const link: Link = {
    clientNs,
    serverNs,
    clientAddr: CLIENT_ADDR,
    serverAddr: SERVER_ADDR,
    get params() {
      return current;
    },
    spawn(ns, cmd, cmdArgs = [], options = {}) {
      nsCheck(ns);
      if (closed) throw new Error('link closed');
      const c = spawnChild('ip', ['netns', 'exec', ns, cmd, ...cmdArgs], { detached: true, ...options });
      l.children.add(c);
      c.once('exit', () => l.children.delete(c));
      return c;
    },
    exec(ns, cmd, cmdArgs = [], options = {}) {
      const c = link.spawn(ns, cmd, cmdArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      c.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
      });
      c.stderr?.on('data', (d: Buffer) => {
        err += d.toString();
      });
      const timer = setTimeout(() => killTree(c, 'SIGKILL'), options.timeoutMs ?? 60_000);
      return new Promise((resolve, reject) => {
        c.once('error', (e) => {
          clearTimeout(timer);
          reject(e);
        });
        c.once('close', (code) => {
          clearTimeout(timer);
          resolve({ code, stdout: out, stderr: err });
        });
      });
    },
    async setParams(p, direction = 'both') {
      if (closed) throw new Error('link closed');
      const a = controlArgs(p);
      if (a.length === 0) return;
      const r = await command(`set ${direction} ${a.join(' ')}`);
      if (r !== 'ok') throw new Error(`netem forwarder rejected parameters ${a.join(' ')}: ${r}`);
      if (direction === 'both') current = { ...current, ...p };
    },
    async stats() {
      if (closed) throw new Error('link closed');
      const r = await command('stats');
      if (!r.startsWith('{')) throw new Error(`netem forwarder stats failed: ${r}`);
      return JSON.parse(r) as LinkStats;
    },
    async close() {
      if (closed) return;
      closed = true;
      const kids = [...l.children];
      for (const c of kids) killTree(c, 'SIGTERM');
      await Promise.all(
        kids.map(
          (c) =>
            new Promise<void>((resolve) => {
              if (c.exitCode !== null || c.signalCode !== null) return resolve();
              const t = setTimeout(() => {
                killTree(c, 'SIGKILL');
                resolve();
              }, 3000);
              c.once('exit', () => {
                clearTimeout(t);
                resolve();
              });
            }),
        ),
      );
      if (!exited) {
        const done = new Promise<void>((resolve) => exitWaiters.push(resolve));
        forwarder.stdin!.end();
        const t = setTimeout(() => forwarder.kill('SIGKILL'), 2000);
        await done;
        clearTimeout(t);
      }
      lines.close();
      teardownSync(l);
    },
  };
  return link;
}
