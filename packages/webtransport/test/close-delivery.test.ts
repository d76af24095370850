/**
 * A session's close must reach the peer before the QUIC connection closes (draft-ietf-webtrans-http3 §6): a
 * CONNECTION_CLOSE is not congestion controlled (RFC 9002 §3), so sent while the close capsule still waits behind
 * unacknowledged stream data it overtakes it, and the peer sees its session lost rather than closed. Real QUIC on
 * each engine, through a UDP relay on loopback that can black the path out: with data in flight, the path goes
 * dark, the session closes, and the path comes back only once the closing end has sent more packets (with the fixed
 * linger of old, its CONNECTION_CLOSE; `lingerMs: 0` makes that immediate). Every wait is for an observed event
 * (relay counters, promises), none for a fixed time. A peer that never answers is closed after
 * `closeDeliveryTimeoutMs`, and counted.
 */
import { generateCertificate } from '@quiver/devcert';
import { startThrottledRelay, type ThrottledRelay } from '@quiver/testkit';
import type { QuiverSession } from '@quiver/transport';
import {
  availableEngines,
  connectWebTransport,
  createWebTransportListener,
  type EngineName,
  type WebTransportListener,
  webTransportClientCounters,
} from '@quiver/webtransport';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultQuicTransportOptions } from '../src/node/config.js';
import { type QuicConnectionHandler, type QuicEngineConnection, resolveEngine } from '../src/node/engine.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const engines = await availableEngines();
const cert = await generateCertificate({ hosts: ['127.0.0.1'], validityDays: 10 });
const CHUNK = new Uint8Array(16 * 1024);

/** Resolves once `cond` holds (checked every few ms: the relay's counters have no events). */
async function until(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

interface Rig {
  listener: WebTransportListener;
  relay: ThrottledRelay;
  client: QuiverSession;
  server: QuiverSession;
}

async function rig(
  engine: EngineName,
  server: { lingerMs?: number; closeDeliveryTimeoutMs?: number },
  client: { lingerMs?: number; closeDeliveryTimeoutMs?: number },
): Promise<Rig> {
  const listener = await createWebTransportListener({
    cert: cert.certPem,
    key: cert.keyPem,
    engine,
    ...server,
  });
  cleanups.push(() => listener.close());
  const relay = await startThrottledRelay({ target: listener.address, protocol: 'udp' });
  cleanups.push(() => relay.close());
  const accepted = listener.incomingSessions.getReader().read();
  const c = connectWebTransport(`https://127.0.0.1:${relay.address.port}/close`, {
    serverCertificateHashes: [{ algorithm: 'sha-256', value: Buffer.from(cert.hashHex, 'hex') }],
    engine,
    ...client,
  });
  cleanups.push(() => c.close());
  c.closed.catch(() => {});
  const s = (await accepted).value!.accept();
  s.closed.catch(() => {});
  await Promise.all([c.ready, s.ready]);
  return { listener, relay, client: c, server: s };
}

/**
 * `from` writes 16 KiB chunks on a unidirectional stream until its session ends; resolves once `to` has read
 * 256 KiB of them (the congestion window has opened and is in use).
 */
async function streamData(from: QuiverSession, to: QuiverSession): Promise<void> {
  const out = await from.createUnidirectionalStream();
  const w = out.getWriter();
  void (async () => {
    for (;;) await w.write(CHUNK);
  })().catch(() => {});
  const { value: inbound } = await to.incomingUnidirectionalStreams.getReader().read();
  if (!inbound) throw new Error('no stream arrived');
  const r = inbound.getReader();
  let got = 0;
  let flowing: () => void = () => {};
  const enough = new Promise<void>((resolve) => {
    flowing = resolve;
  });
  void (async () => {
    for (;;) {
      const { value, done } = await r.read();
      if (done) return;
      got += value.byteLength;
      if (got >= 256 * 1024) flowing();
    }
  })().catch(() => {});
  await enough;
}

describe.each(['quiche', 'quinn'] as const)('session close delivery on the %s engine', (engine) => {
  const run = engines.includes(engine);

  // The two directions differ only in who closes, which relay direction it sends on and which counter says the
  // close was delivered.
  it.skipIf(!run).each([
    { closer: 'server', info: { closeCode: 17, reason: 'server closed mid-flight ✓' } },
    { closer: 'client', info: { closeCode: 4000, reason: 'client closed mid-flight' } },
  ] as const)(
    'the $closer closes a session with data in flight: the peer gets the code and reason, not a lost connection',
    async ({ closer, info }) => {
      const clientBefore = webTransportClientCounters().closesUndelivered;
      const closing = { lingerMs: 0, closeDeliveryTimeoutMs: 20_000 };
      const { listener, relay, client, server } =
        closer === 'server' ? await rig(engine, closing, {}) : await rig(engine, {}, closing);
      const [from, to] = closer === 'server' ? [server, client] : [client, server];
      const dropped = () => (closer === 'server' ? relay.stats.dropped.down : relay.stats.dropped.up);
      await streamData(from, to);
      relay.blackout(true);
      const dark = dropped();
      // Stream data the closer sent is lost on the dark path: its window holds unacknowledged packets.
      await until(() => dropped() > dark, 'stream data lost in the blackout');
      from.close(info);
      await expect(from.closed).resolves.toEqual(info);
      const closed = dropped();
      // The closer went on sending after the close (probes; or, closing at once, its CONNECTION_CLOSE).
      await until(() => dropped() >= closed + 2, `the ${closer} to send after the close`);
      relay.blackout(false);
      await expect(to.closed).resolves.toEqual(info);
      if (closer === 'server') {
        await until(() => listener.connectionCount === 0, 'the server to close the connection');
        expect(listener.counters.closesUndelivered).toBe(0);
      } else {
        expect(webTransportClientCounters().closesUndelivered).toBe(clientBefore);
      }
    },
    30_000,
  );

  it.skipIf(!run)(
    'a client that never answers the close still has its connection closed after closeDeliveryTimeoutMs, counted',
    async () => {
      const { listener, relay, client, server } = await rig(
        engine,
        { lingerMs: 0, closeDeliveryTimeoutMs: 200 },
        {},
      );
      relay.blackout(true);
      server.close({ closeCode: 1, reason: 'nobody listens' });
      await server.closed;
      // The close is neither answered by a FIN nor acknowledged: the connection waits, then closes anyway.
      expect(listener.connectionCount).toBe(1);
      await until(() => listener.connectionCount === 0, 'the connection to close after the timeout');
      expect(listener.counters.closesUndelivered).toBe(1);
      client.close();
    },
    30_000,
  );

  it.skipIf(!run)(
    'a server that never answers the close: the client connection is closed after its timeout, counted',
    async () => {
      const before = webTransportClientCounters().closesUndelivered;
      const { relay, client } = await rig(engine, {}, { lingerMs: 0, closeDeliveryTimeoutMs: 200 });
      relay.blackout(true);
      client.close({ closeCode: 2, reason: 'nobody listens' });
      await client.closed;
      await until(
        () => webTransportClientCounters().closesUndelivered === before + 1,
        'the client connection to close after the timeout',
      );
    },
    30_000,
  );
});

describe('closeDeliveryTimeoutMs', () => {
  it('must be finite and not negative (an endless wait would let a peer hold the connection)', async () => {
    for (const bad of [Number.POSITIVE_INFINITY, -1, Number.NaN]) {
      await expect(
        createWebTransportListener({ cert: cert.certPem, key: cert.keyPem, closeDeliveryTimeoutMs: bad }),
      ).rejects.toBeInstanceOf(RangeError);
      // The client reports bad options as it does its other settings: the session fails with the error.
      const s = connectWebTransport('https://127.0.0.1:9/x', { closeDeliveryTimeoutMs: bad });
      s.closed.catch(() => {});
      await expect(s.ready).rejects.toThrow(/closeDeliveryTimeoutMs/);
    }
  });
});

describe.skipIf(!engines.includes('quinn'))('quinn engine: acknowledgement of a FIN', () => {
  it('reports it to the handler once the peer has every byte and the FIN (StreamEvent::Finished)', async () => {
    const quinn = await resolveEngine('quinn');
    const handler = (log: string[]): QuicConnectionHandler => ({
      onEstablished: () => log.push('established'),
      onStreamData: (id, data, fin) => log.push(`data ${id} ${data.length}${fin ? ' fin' : ''}`),
      onStreamReset: () => {},
      onStopSending: () => {},
      onDatagram: () => {},
      onStreamDrained: () => {},
      onFlush: () => {},
      onClosed: () => log.push('closed'),
      onStreamAcked: (id) => log.push(`acked ${id}`),
    });
    const serverLog: string[] = [];
    const server = await quinn.listen({
      host: '127.0.0.1',
      port: 0,
      cert: cert.certPem,
      key: cert.keyPem,
      transport: { ...defaultQuicTransportOptions },
      socketBufferBytes: 1 << 20,
      streamHighWaterMark: 1 << 16,
      streamTailHoldMs: 0,
      accept: (conn: QuicEngineConnection) => {
        conn.handler = handler(serverLog);
        return true;
      },
    });
    cleanups.push(() => server.close());
    const clientLog: string[] = [];
    const { conn, release } = await quinn.connect({
      remote: server.address,
      serverName: null,
      verifyPeer: false,
      transport: { ...defaultQuicTransportOptions },
      socketBufferBytes: 1 << 20,
      streamHighWaterMark: 1 << 16,
      streamTailHoldMs: 0,
    });
    conn.handler = handler(clientLog);
    cleanups.push(() => release());
    cleanups.push(() => conn.close(0, '', true));
    await until(() => clientLog.includes('established'), 'the handshake');
    // 100 KB and a FIN on the first client bidirectional stream (RFC 9000 §2.1: id 0).
    conn.write(0, new Uint8Array(100_000), true);
    await until(() => clientLog.includes('acked 0'), 'the acknowledgement of the FIN');
    // The server's events come on its own thread's wake-up, in no set order with the client's.
    const got = () => serverLog.filter((l) => l.startsWith('data 0 '));
    await until(() => got().at(-1)?.endsWith(' fin') === true, 'the FIN at the server');
    expect(got().reduce((n, l) => n + Number(l.split(' ')[2]), 0)).toBe(100_000);
    expect(clientLog.filter((l) => l.startsWith('acked'))).toEqual(['acked 0']);
  });
});
