/**
 * QUIC keeps order within a stream but not across streams or for datagrams (RFC 9000 §2.2, RFC 9221 §5): a
 * WebTransport stream can overtake the CONNECT that creates its session, the response can overtake the SETTINGS.
 * These runs deliver each side's output with random interleaving across streams and random chunking, and check
 * that every byte arrives, in order, on the right stream of the right session.
 */
import { describe, expect, it } from 'vitest';
import { createH3Connection, type H3Connection, type H3Event, type QuicCommand } from '../src/index.js';
import { seededRandom } from './core-harness.js';

interface Endpoint {
  conn: H3Connection;
  events: H3Event[];
  /** Outgoing commands not delivered yet, per stream (-1: datagrams). */
  queues: Map<number, QuicCommand[]>;
  errors: H3Event[];
}

function endpoint(role: 'client' | 'server', seed: number): Endpoint {
  return { conn: createH3Connection({ role, seed }), events: [], queues: new Map(), errors: [] };
}

function collect(e: Endpoint): void {
  for (const c of e.conn.drainCommands()) {
    const key = c.type === 'datagram' ? -1 : c.type === 'connection-close' ? -2 : c.streamId;
    let q = e.queues.get(key);
    if (!q) {
      q = [];
      e.queues.set(key, q);
    }
    q.push(c);
  }
  for (const ev of e.conn.drainEvents()) {
    e.events.push(ev);
    if (ev.type === 'connection-error' || ev.type === 'stream-error' || ev.type === 'datagram-dropped')
      e.errors.push(ev);
  }
}

/** Delivers one command from a random stream of `from` to `to`, split at a random point. */
function step(from: Endpoint, to: Endpoint, r: () => number): boolean {
  const keys = [...from.queues.keys()].filter((k) => (from.queues.get(k)?.length ?? 0) > 0);
  if (keys.length === 0) return false;
  const key = keys[Math.floor(r() * keys.length)];
  const q = from.queues.get(key) as QuicCommand[];
  // Datagrams may be reordered among themselves too.
  const c = key === -1 ? q.splice(Math.floor(r() * q.length), 1)[0] : (q.shift() as QuicCommand);
  switch (c.type) {
    case 'stream-write': {
      if (c.data.length > 1 && r() < 0.5) {
        const cut = 1 + Math.floor(r() * (c.data.length - 1));
        to.conn.receiveStreamData(c.streamId, c.data.slice(0, cut), false);
        // The rest stays first in this stream's queue.
        q.unshift({ ...c, data: c.data.slice(cut) });
      } else to.conn.receiveStreamData(c.streamId, c.data, c.fin);
      break;
    }
    case 'stream-reset':
      to.conn.receiveStreamReset(c.streamId, c.code);
      break;
    case 'stream-stop-sending':
      to.conn.receiveStopSending(c.streamId, c.code);
      break;
    case 'datagram':
      to.conn.receiveDatagram(c.data);
      break;
    case 'connection-close':
      break;
  }
  return true;
}

function payload(r: () => number, n: number): Uint8Array {
  return Uint8Array.from({ length: n }, () => Math.floor(r() * 256));
}

describe('H3 core: reordering across streams', () => {
  it('sessions, early streams and datagrams survive any interleaving', () => {
    let roundsThatBuffered = 0;
    let streamsChecked = 0;
    for (let round = 0; round < 150; round++) {
      const r = seededRandom(1000 + round);
      const client = endpoint('client', round);
      const server = endpoint('server', round + 7);
      client.conn.start();
      server.conn.start();
      // Sent payloads per stream id, on each side.
      const sentByClient = new Map<number, Uint8Array>();
      const sentByServer = new Map<number, Uint8Array>();
      const sessions: number[] = [];
      const datagramsSent = new Map<number, number>();
      let pendingOpens = 0;
      const open = (sid: number) => {
        const bidi = r() < 0.5;
        const id = client.conn.openStream(sid, bidi);
        const data = payload(r, Math.floor(r() * 300));
        client.conn.sendStreamData(id, data, true);
        sentByClient.set(id, data);
      };
      let accepted = 0;
      let handled = 0;
      let buffered = false;
      for (let guard = 0; guard < 100_000; guard++) {
        collect(client);
        collect(server);
        // The client connects once it knows the server's SETTINGS... or before: the core holds the request.
        if (sessions.length < 2 && r() < 0.05) {
          const sid = client.conn.connect({ authority: 'a.test', path: `/s${sessions.length}` });
          sessions.push(sid);
          pendingOpens += 2;
          datagramsSent.set(sid, 0);
        }
        if (pendingOpens > 0 && r() < 0.2) {
          pendingOpens--;
          open(sessions[Math.floor(r() * sessions.length)]);
          const sid = sessions[Math.floor(r() * sessions.length)];
          client.conn.sendDatagram(sid, Uint8Array.of(sid));
          datagramsSent.set(sid, (datagramsSent.get(sid) ?? 0) + 1);
        }
        for (; handled < server.events.length; handled++) {
          const ev = server.events[handled];
          if (ev.type !== 'session-request') continue;
          server.conn.acceptSession(ev.sessionId);
          accepted++;
          // The server answers with a stream of its own at once.
          const id = server.conn.openStream(ev.sessionId, r() < 0.5);
          const data = payload(r, Math.floor(r() * 300));
          server.conn.sendStreamData(id, data, true);
          sentByServer.set(id, data);
        }
        collect(client);
        collect(server);
        const moved = step(client, server, r) || step(server, client, r);
        const moved2 = step(server, client, r);
        if (server.conn.getStats().bufferedUnknownSessionBytes > 0) buffered = true;
        if (!moved && !moved2 && sessions.length === 2 && pendingOpens === 0) {
          collect(client);
          collect(server);
          if ([...client.queues.values(), ...server.queues.values()].every((q) => q.length === 0)) break;
        }
      }
      expect(client.errors).toEqual([]);
      expect(server.errors).toEqual([]);
      expect(accepted).toBe(2);
      const received = (events: H3Event[]) => {
        const out = new Map<number, number[]>();
        const fins = new Set<number>();
        for (const e of events) {
          if (e.type !== 'stream-data') continue;
          const b = out.get(e.streamId) ?? [];
          b.push(...e.data);
          out.set(e.streamId, b);
          if (e.fin) fins.add(e.streamId);
        }
        return { out, fins };
      };
      const atServer = received(server.events);
      for (const [id, data] of sentByClient) {
        expect(Uint8Array.from(atServer.out.get(id) ?? []), `round ${round} stream ${id}`).toEqual(data);
        expect(atServer.fins.has(id)).toBe(true);
      }
      const atClient = received(client.events);
      for (const [id, data] of sentByServer) {
        expect(Uint8Array.from(atClient.out.get(id) ?? []), `round ${round} stream ${id}`).toEqual(data);
      }
      // Every stream was announced in the session its header named.
      const opened = server.events.filter((e) => e.type === 'stream-opened');
      expect(opened.map((e) => e.streamId).sort()).toEqual([...sentByClient.keys()].sort());
      const dgrams = server.events.filter((e) => e.type === 'datagram');
      for (const [sid, n] of datagramsSent) expect(dgrams.filter((d) => d.sessionId === sid)).toHaveLength(n);
      expect(server.conn.getStats().bufferedUnknownSessionBytes).toBe(0);
      if (buffered) roundsThatBuffered++;
      streamsChecked += sentByClient.size + sentByServer.size;
    }
    // The runs did exercise streams that overtook their CONNECT (draft §4.6), not only the in-order case.
    expect(roundsThatBuffered).toBeGreaterThan(10);
    expect(streamsChecked).toBeGreaterThan(500);
  });
});
