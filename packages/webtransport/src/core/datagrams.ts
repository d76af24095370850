/**
 * HTTP Datagrams (RFC 9297 §2) of WebTransport sessions: the Quarter Stream ID names the session;
 * received ones are delivered, held (draft §4.6) or dropped and counted; sent ones only if the peer takes them.
 */

import { H3ErrorCode, SettingId } from './codes.js';
import { assertSessionId, type H3Context } from './context.js';
import { decodeVarint, decodeVarintBig, encodeVarint, varintLength } from './varint.js';

/** RFC 9297 §2.1: the largest legal Quarter Stream ID is 2^60 - 1. */
const MAX_QUARTER_STREAM_ID_EXCLUSIVE = 1n << 60n;
const MAX_SAFE_BIG = BigInt(Number.MAX_SAFE_INTEGER);

/** Datagrams in and out of the sessions of one connection. */
export class Datagrams {
  constructor(private readonly c: H3Context) {}

  receiveDatagram(data: Uint8Array): void {
    if (this.c.failed) return;
    // RFC 9297 §2.1: the Quarter Stream ID names a client-initiated bidi stream (id / 4). Stream ids are below
    // 2^62, so a value of 2^60 or more is a connection error of type H3_DATAGRAM_ERROR, not a datagram to drop.
    // Values of one to four bytes (below 2^30) decode as numbers: only 8-byte ones need the bigint path.
    const q = data.length > 0 && data[0] < 0xc0 ? decodeVarint(data, 0) : decodeVarintBig(data, 0);
    if (!q) {
      this.c.stats.datagramsDroppedMalformed++;
      this.c.events.push({ type: 'datagram-dropped', reason: 'malformed' });
      return;
    }
    if (typeof q.value === 'bigint') {
      if (q.value >= MAX_QUARTER_STREAM_ID_EXCLUSIVE) {
        this.c.connectionError(
          H3ErrorCode.H3_DATAGRAM_ERROR,
          `quarter stream id ${q.value} >= 2^60 (RFC 9297 §2.1)`,
        );
        return;
      }
      // Legal, but no stream this high can have been opened (it would take 2^51 requests): a counted drop.
      if (q.value * 4n > MAX_SAFE_BIG) {
        this.c.stats.datagramsDroppedUnknownSession++;
        this.c.events.push({ type: 'datagram-dropped', reason: 'unknown-session' });
        return;
      }
    }
    const sessionId = Number(q.value) * 4;
    const payload = data.subarray(q.length);
    const session = this.c.sessions.get(sessionId);
    if (session?.state === 'established') {
      this.c.stats.datagramsReceived++;
      this.c.events.push({ type: 'datagram', sessionId, data: payload });
      return;
    }
    const unknownToClient = this.c.role === 'client' && !session && sessionId >= this.c.nextBidi;
    if (this.c.endedSessions.has(sessionId) || unknownToClient) {
      this.c.stats.datagramsDroppedUnknownSession++;
      this.c.events.push({ type: 'datagram-dropped', reason: 'unknown-session' });
      return;
    }
    // draft §4.6: held until the session is established, within the shared budget.
    if (!this.c.buffer.holdDatagram(sessionId, payload)) {
      this.c.stats.datagramsDroppedUnknownSession++;
      this.c.events.push({ type: 'datagram-dropped', reason: 'unknown-session' });
    }
  }

  sendDatagram(sessionId: number, data: Uint8Array): void {
    const session = this.c.lifecycle.liveSession(sessionId, 'sendDatagram');
    if (!session || this.c.failed) {
      this.c.stats.datagramsDroppedClosedSession++;
      return;
    }
    // RFC 9297 §2.1.1: never to a peer whose SETTINGS say it takes no HTTP Datagrams. Before its SETTINGS
    // arrive we send optimistically (draft §4.6: the first flight may carry datagrams).
    const ps = this.c.control.peerSettings;
    if (ps && ps.get(SettingId.H3_DATAGRAM) !== 1n && ps.get(SettingId.H3_DATAGRAM_DRAFT04) !== 1n) {
      this.c.stats.datagramsDroppedNotNegotiated++;
      return;
    }
    // draft §4.6: a client may send before the response; the server as soon as it has the request.
    const prefix = encodeVarint(sessionId / 4);
    const out = new Uint8Array(prefix.length + data.length);
    out.set(prefix, 0);
    out.set(data, prefix.length);
    this.c.stats.datagramsSent++;
    this.c.commands.push({ type: 'datagram', data: out });
  }

  datagramOverhead(sessionId: number): number {
    assertSessionId(sessionId);
    return varintLength(sessionId / 4);
  }
}
