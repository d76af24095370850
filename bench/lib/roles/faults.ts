/**
 * The faults suite's agents. Server: one `@quiver/session` server on WebTransport (quiche, and quinn when its native
 * addon is built), plain WebSocket and the HTTP transport, which sends
 * every session 1 KB of unreliable-sequenced state at 20 Hz (stamped with the wall clock, which both agents share on
 * one machine) and a numbered reliable message at 10 Hz, and checks the numbered messages each client sends.
 * Client: one session per transport, sending numbered reliable messages at 10 Hz and recording every arrival.
 * `faultSolo` (both agents) silences every session but one.
 */
import {
  createSessionServer,
  defineMessage,
  type ClientSession as SessionClient,
  type SessionServer,
} from '@quiver/session';
import type { Connector, TransportListener } from '@quiver/transport';

const State = defineMessage<{ t: number; pad: string }>('state', { channel: 'state' });
const Num = defineMessage<{ c: string; n: number }>('num');
const channels = { state: { mode: 'unreliable-sequenced' as const } };
const PAD = 'x'.repeat(1000);

/** Numbered messages as one side received them. */
export interface Sequence {
  received: number;
  /** Arrivals whose number was not the next one expected (a loss, reordering or repeat). */
  outOfOrder: number;
  duplicates: number;
  last: number;
}

function track(seq: Sequence, n: number): void {
  seq.received++;
  if (n <= seq.last) seq.duplicates++;
  else if (n !== seq.last + 1) seq.outOfOrder++;
  seq.last = Math.max(seq.last, n);
}

const newSeq = (): Sequence => ({ received: 0, outOfOrder: 0, duplicates: 0, last: -1 });

let server: SessionServer | undefined;
let listeners: TransportListener[] = [];
let timers: NodeJS.Timeout[] = [];
const atServer = new Map<string, Sequence>();
/** The client's name for each server session's transport (quiche and quinn both say "webtransport"). */
const nameOf = new WeakMap<object, string>();
const sentByServer = new Map<string, number>();
/**
 * When set, only this transport's session sends (state and numbered messages, both ways); the others stay
 * connected and idle (heartbeats only). The suite gives each transport the 64 kbit/s cap alone so.
 */
let solo: string | undefined;
const quiet = (name: string) => solo !== undefined && solo !== name;

/** Both agents: only `name`'s session sends from now on; without a name, every session again. */
export function faultSolo(o: { name?: string }) {
  solo = o.name;
}

export async function startFaultServer(o: { host: string; certPem: string; keyPem: string }) {
  const { createWebTransportListener, availableEngines } = await import('@quiver/webtransport');
  const { createWebSocketListener } = await import('@quiver/websocket');
  const { createHttpStreamListener } = await import('@quiver/http-stream');
  const tls = { host: o.host, port: 0, cert: o.certPem, key: o.keyPem };
  const wt = await createWebTransportListener({ ...tls, engine: 'quiche' });
  const quinn = (await availableEngines()).includes('quinn')
    ? await createWebTransportListener({ ...tls, engine: 'quinn' })
    : undefined;
  const ws = await createWebSocketListener({ host: o.host, port: 0, path: '/quiver' });
  const http = await createHttpStreamListener({ host: o.host, port: 0, path: '/quiver' });
  listeners = quinn ? [wt, quinn, ws, http] : [wt, ws, http];
  server = createSessionServer({
    listeners,
    messages: [State, Num],
    channels,
    resumeWindowMs: 60_000,
  });
  server.on(Num, (m, s) => {
    nameOf.set(s, m.c);
    let seq = atServer.get(m.c);
    if (!seq) {
      seq = newSeq();
      atServer.set(m.c, seq);
      // The client names its transport in its first message; the server answers on that session from then on.
      let n = 0;
      const name = m.c;
      timers.push(
        setInterval(() => {
          if (s.state === 'closed' || quiet(name)) return;
          s.send(State, { t: Date.now(), pad: PAD });
        }, 50),
        setInterval(() => {
          if (s.state === 'closed' || quiet(name)) return;
          s.send(Num, { c: name, n: n++ });
          sentByServer.set(name, n);
        }, 100),
      );
    }
    track(seq, m.n);
  });
  return { wt: wt.address.port, quinn: quinn?.address.port, ws: ws.address.port, http: http.address.port };
}

export function faultServerStats() {
  const drops: Record<string, Record<string, number>> = {};
  const buffered: Record<string, number> = {};
  for (const s of server?.sessions.values() ?? []) {
    const name = nameOf.get(s) ?? s.transport ?? 'none';
    drops[name] = { ...s.stats.drops };
    buffered[name] = s.bufferedBytes;
  }
  return {
    atServer: Object.fromEntries(atServer),
    sentByServer: Object.fromEntries(sentByServer),
    drops,
    buffered,
  };
}

/** Stops the server's sends (so that totals can be compared once everything drained). */
export function quietFaultServer() {
  for (const t of timers) clearInterval(t);
  timers = [];
}

export async function stopFaultServer() {
  for (const t of timers) clearInterval(t);
  timers = [];
  await server?.close();
  for (const l of listeners) await l.close();
}

interface ClientRecord {
  atClient: Sequence;
  sent: number;
  /** Flat pairs [receivedAt, sentAt] of state messages (wall clock, ms). */
  states: number[];
  /** Wall-clock times of every `open` after the first (a reconnect completed). */
  reopened: number[];
  reconnecting: number;
}

const clients = new Map<string, { client: SessionClient; rec: ClientRecord; timer: NodeJS.Timeout }>();

export async function startFaultClients(o: {
  host: string;
  wt: number;
  /** The quinn listener's port, when the server has one. */
  quinn?: number;
  ws: number;
  http: number;
  certHashHex: string;
  /** `--log`: lifecycle events on stderr, with the wall clock. */
  log?: boolean;
}) {
  const { connect } = await import('@quiver/session');
  const { connectWebTransport } = await import('@quiver/webtransport');
  const { connectWebSocket } = await import('@quiver/websocket');
  const { connectHttpStream } = await import('@quiver/http-stream');
  const hash = { algorithm: 'sha-256' as const, value: Buffer.from(o.certHashHex, 'hex') };
  // Certificate hashes make the WebSocket connector use TLS; the WebSocket and HTTP listeners here are plain.
  const wtOptions = (engine: string) => ({ serverCertificateHashes: [hash], engine });
  const setups: { name: string; url: string; connector: Connector; options: Record<string, unknown> }[] = [
    {
      name: 'webtransport',
      url: `https://${o.host}:${o.wt}/quiver`,
      connector: connectWebTransport,
      options: wtOptions('quiche'),
    },
  ];
  if (o.quinn !== undefined)
    setups.push({
      name: 'webtransport-quinn',
      url: `https://${o.host}:${o.quinn}/quiver`,
      connector: connectWebTransport,
      options: wtOptions('quinn'),
    });
  setups.push(
    { name: 'websocket', url: `http://${o.host}:${o.ws}/quiver`, connector: connectWebSocket, options: {} },
    { name: 'http', url: `http://${o.host}:${o.http}/quiver`, connector: connectHttpStream, options: {} },
  );
  for (const c of setups) {
    const client = await connect(c.url, {
      // Its own name, so that the session's transport is "webtransport" for both engines but the records differ.
      transports: [
        { name: c.name === 'webtransport-quinn' ? 'webtransport' : c.name, connector: c.connector },
      ],
      connectOptions: c.options,
      messages: [State, Num],
      channels,
    });
    const rec: ClientRecord = { atClient: newSeq(), sent: 0, states: [], reopened: [], reconnecting: 0 };
    client.on(State, (m) => rec.states.push(Date.now(), m.t));
    client.on(Num, (m) => track(rec.atClient, m.n));
    client.on('open', () => rec.reopened.push(Date.now()));
    client.on('reconnecting', () => rec.reconnecting++);
    if (o.log) {
      const log = (what: string) => process.stderr.write(`${Date.now()} ${c.name} ${what}\n`);
      client.on('reconnecting', (i) => log(`reconnecting ${JSON.stringify(i)}`));
      client.on('open', (i) => log(`open ${JSON.stringify(i)}`));
      client.on('error', (e) => log(`error ${e.message}`));
    }
    const timer = setInterval(() => {
      if (client.state === 'closed' || quiet(c.name)) return;
      client.send(Num, { c: c.name, n: rec.sent++ });
    }, 100);
    clients.set(c.name, { client, rec, timer });
  }
}

/** Takes the records (states are handed over once, so each call returns what arrived since the last). */
export function faultClientStats() {
  const out: Record<string, ClientRecord & { buffered: number }> = {};
  for (const [name, c] of clients) {
    out[name] = { ...c.rec, buffered: c.client.bufferedBytes };
    c.rec.states = [];
    c.rec.reopened = [];
  }
  return out;
}

/** Stops sending numbered messages (so that the totals can be compared once everything drained). */
export function quietFaultClients() {
  for (const c of clients.values()) clearInterval(c.timer);
}

export async function stopFaultClients() {
  for (const c of clients.values()) {
    clearInterval(c.timer);
    await c.client.close();
  }
  clients.clear();
}
