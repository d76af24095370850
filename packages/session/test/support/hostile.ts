/**
 * Runs `hostile-server.ts` in a child process under a memory cap and talks to it: hostile tests attack it over real
 * sockets, then check that it is alive, that its memory stayed bounded and that a well-behaved client is served.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { certificateHashOption, ensureDevCertificate } from '@quiver/devcert';
import type { ConnectOptions, Connector } from '@quiver/transport';
import { connectWebSocket } from '@quiver/websocket';
import { connectWebTransport } from '@quiver/webtransport';
import { connect, defineMessage, type SessionMetrics, type SessionServerOptions } from '../../src/index.js';
import { cleanups } from './harness.js';

const script = fileURLToPath(new URL('./hostile-server.ts', import.meta.url));

export interface ChildStats {
  rss: number;
  arrayBuffers: number;
  heapUsed: number;
  sessions: number;
  metrics: Omit<SessionMetrics, 'observeRtt' | 'rttListeners'>;
  errors: Record<string, number>;
}

export interface Target {
  name: 'websocket' | 'webtransport';
  url: string;
  connector: Connector;
  connectOptions: ConnectOptions;
}

export interface HostileServer {
  websocket: Target;
  webtransport: Target;
  /** Memory (after a forced GC) and metrics of the child; rejects if the child died. */
  stats(): Promise<ChildStats>;
  /** True while the child runs (an out-of-memory abort ends it). */
  alive(): boolean;
  exitInfo(): string;
}

/** Heap cap of the child: an attack that needs more aborts it instead of taking the machine down. */
export const CHILD_HEAP_MB = 384;
/** The child is killed after this long whatever happens (a hung attack must not outlive the test). */
const CHILD_LIFETIME_MS = 120_000;

export async function startHostileServer(options: SessionServerOptions = {}): Promise<HostileServer> {
  const child: ChildProcess = fork(script, [], {
    execArgv: [
      '--import',
      'tsx',
      '--conditions=quiver-source',
      `--max-old-space-size=${CHILD_HEAP_MB}`,
      '--expose-gc',
    ],
    env: { ...process.env, QUIVER_HOSTILE_OPTIONS: JSON.stringify(options) },
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  let exited: string | null = null;
  const exit = new Promise<void>((resolve) =>
    child.on('exit', (code, signal) => {
      exited = `exited (code ${code}, signal ${signal}): ${stderr}`;
      resolve();
    }),
  );
  const killer = setTimeout(() => child.kill('SIGKILL'), CHILD_LIFETIME_MS);
  cleanups.push(async () => {
    clearTimeout(killer);
    if (exited === null) {
      // The child may be dying from the attack right now: a closed channel is as good as an answer.
      if (child.connected) child.send({ type: 'exit' }, () => {});
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exit;
      clearTimeout(t);
    }
  });
  const ready = await new Promise<{ websocket: number; webtransport: number }>((resolve, reject) => {
    child.on('message', (m: { type: string; websocket: number; webtransport: number }) => {
      if (m.type === 'ready') resolve(m);
    });
    exit.then(() => reject(new Error(`hostile server ${exited}`)));
  });
  const cert = await ensureDevCertificate();
  let seq = 0;
  return {
    websocket: {
      name: 'websocket',
      url: `http://127.0.0.1:${ready.websocket}/q`,
      connector: connectWebSocket,
      connectOptions: {},
    },
    webtransport: {
      name: 'webtransport',
      url: `https://127.0.0.1:${ready.webtransport}/q`,
      connector: connectWebTransport,
      connectOptions: { serverCertificateHashes: [certificateHashOption(cert)] },
    },
    alive: () => exited === null,
    exitInfo: () => exited ?? 'running',
    stats() {
      const id = ++seq;
      return new Promise<ChildStats>((resolve, reject) => {
        if (exited !== null) return reject(new Error(`hostile server ${exited}`));
        const on = (m: ChildStats & { type: string; id: number }) => {
          if (m.type !== 'stats' || m.id !== id) return;
          child.off('message', on);
          resolve(m);
        };
        child.on('message', on);
        exit.then(() => reject(new Error(`hostile server ${exited}`)));
        child.send({ type: 'stats', id }, () => {});
      });
    },
  };
}

const Echo = defineMessage<unknown>('echo');

/** A well-behaved client connects, gets an echo back and leaves: the server still serves. */
export async function servesGoodClient(t: Target): Promise<void> {
  const client = await connect(t.url, {
    connector: t.connector,
    connectOptions: t.connectOptions,
    reconnect: false,
    fallback: { connectTimeoutMs: 10_000 },
  });
  try {
    const back = new Promise((resolve) => client.on(Echo, resolve));
    client.send(Echo, { hello: 'world' });
    const got = await Promise.race([
      back,
      new Promise((_, rej) => setTimeout(() => rej(new Error('no echo within 10 s')), 10_000)),
    ]);
    if (JSON.stringify(got) !== JSON.stringify({ hello: 'world' })) throw new Error('wrong echo');
  } finally {
    await client.close();
  }
}
