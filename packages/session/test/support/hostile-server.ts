/**
 * A session server in a child process, for hostile-peer tests: an attack that would exhaust memory kills this child
 * (it runs under `--max-old-space-size`), never the test runner or the shared machine. It listens on WebSocket and
 * WebTransport (127.0.0.1, OS-chosen ports), echoes `echo` on every channel, and answers the parent's `stats`
 * requests over IPC with its memory and the server's metrics.
 *
 * Options: `QUIVER_HOSTILE_OPTIONS`, JSON `SessionServerOptions` (data only). Started by `hostile.ts`.
 */
import { ensureDevCertificate } from '@quiver/devcert';
import { createWebSocketListener } from '@quiver/websocket';
import { createWebTransportListener } from '@quiver/webtransport';
import { createSessionServer, defineMessage, type SessionServerOptions } from '../../src/index.js';

const Echo = defineMessage<unknown>('echo');
const EchoDgram = defineMessage<unknown>('echo-dgram', { channel: 'unreliable' });

const options = JSON.parse(process.env.QUIVER_HOSTILE_OPTIONS ?? '{}') as SessionServerOptions;
const cert = await ensureDevCertificate();
const ws = await createWebSocketListener({ host: '127.0.0.1', port: 0 });
const wt = await createWebTransportListener({
  host: '127.0.0.1',
  port: 0,
  cert: cert.certPem,
  key: cert.keyPem,
});
const errors: Record<string, number> = {};
const server = createSessionServer({
  listeners: [ws, wt],
  messages: [Echo, EchoDgram],
  ...options,
  onError: (e) => {
    errors[e.name] = (errors[e.name] ?? 0) + 1;
  },
});
server.on(Echo, (m, s) => s.send(Echo, m));
server.on(EchoDgram, (m, s) => s.send(EchoDgram, m));

const gc = (globalThis as { gc?: () => void }).gc;

process.on('message', (msg: { type: string; id: number }) => {
  if (msg.type === 'stats') {
    gc?.();
    const mem = process.memoryUsage();
    const m = server.metrics;
    process.send?.({
      type: 'stats',
      id: msg.id,
      rss: mem.rss,
      arrayBuffers: mem.arrayBuffers,
      heapUsed: mem.heapUsed,
      sessions: server.sessions.size,
      metrics: JSON.parse(JSON.stringify({ ...m, sessionsActive: m.sessionsActive })),
      errors,
    });
  } else if (msg.type === 'exit') {
    server
      .close()
      .then(() => Promise.all([ws.close(), wt.close()]))
      .finally(() => process.exit(0));
  }
});

process.send?.({ type: 'ready', websocket: ws.address.port, webtransport: wt.address.port });
