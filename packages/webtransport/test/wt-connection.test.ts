/**
 * WtConnection is the single seam between the HTTP/3 core and a QUIC engine: these tests drive a real core
 * through it with a recording engine connection (the layer below, which these tests are not about).
 */
import { describe, expect, it } from 'vitest';
import { createH3Connection, encodeVarint, SettingId } from '../src/core/index.js';
import { encodeSettings } from '../src/core/frames.js';
import type { QuicConnectionHandler, QuicEngineConnection } from '../src/node/engine.js';
import { defaultSessionLimits, WtSession } from '../src/node/session.js';
import { WtConnection } from '../src/node/wt-connection.js';

class RecordingQuic implements QuicEngineConnection {
  handler!: QuicConnectionHandler;
  closed = false;
  peer = { host: '127.0.0.1', port: 4433 };
  readonly datagrams: Uint8Array[] = [];
  readonly writes: { streamId: number; data: Uint8Array; fin: boolean }[] = [];
  write(streamId: number, data: Uint8Array, fin: boolean): void {
    this.writes.push({ streamId, data, fin });
  }
  queuedBytes(): number {
    return 0;
  }
  waitDrained(): void {}
  trackSend(): void {}
  resetStream(): void {}
  stopSending(): void {}
  pauseRead(): void {}
  resumeRead(): void {}
  forget(): void {}
  sendDatagram(data: Uint8Array): null {
    this.datagrams.push(data);
    return null;
  }
  maxDatagramPayload(): number {
    return 1200;
  }
  peerStreamsLeft(): number {
    return 100;
  }
  peerCertChain(): null {
    return null;
  }
  stats(): undefined {
    return undefined;
  }
  schedule(): void {}
  readonly closes: { code: number; reason: string; isApp: boolean | undefined }[] = [];
  close(code: number, reason: string, _abandon?: boolean, isApp?: boolean): void {
    this.closes.push({ code, reason, isApp });
    this.closed = true;
  }
  flushNow(): void {}
  destroy(): void {
    this.closed = true;
  }
}

/** A client connection with one session whose CONNECT is out; the server's SETTINGS are `settings`. */
function clientWithSession(settings: [bigint, bigint][]) {
  const quic = new RecordingQuic();
  const session = new WtSession(undefined, defaultSessionLimits);
  const conn = new WtConnection(quic, createH3Connection({ role: 'client' }), {
    onStarted: (c) => session.bind(c.h3.connect({ authority: 'example.test', path: '/x' })),
    onClosed: () => {},
  });
  session.attach(conn);
  conn.onEstablished();
  // RFC 9114 §6.2.1: the server's control stream (server-initiated unidirectional, id 3) starts with type 0x00.
  const control = encodeSettings(settings);
  const bytes = new Uint8Array(1 + control.length);
  bytes.set(encodeVarint(0), 0);
  bytes.set(control, 1);
  conn.onStreamData(3, bytes, false);
  return { quic, session };
}

describe('WtConnection datagram accounting', () => {
  it('counts a datagram the core refuses (peer without HTTP datagrams, RFC 9297 §2.1.1) as dropped, not sent', async () => {
    const { quic, session } = clientWithSession([[SettingId.ENABLE_WEBTRANSPORT_DRAFT02, 1n]]);
    const w = session.datagrams.writable.getWriter();
    await w.write(new Uint8Array([1, 2, 3]));
    expect(quic.datagrams).toHaveLength(0);
    const st = await session.getStats();
    expect(st.datagrams.sent).toBe(0);
    expect(st.datagrams.droppedOutgoing.closed).toBe(1);
  });

  it('counts a datagram the core queues as sent, with the quarter stream id in front (RFC 9297 §2.1)', async () => {
    const { quic, session } = clientWithSession([
      [SettingId.ENABLE_WEBTRANSPORT_DRAFT02, 1n],
      [SettingId.H3_DATAGRAM, 1n],
    ]);
    const w = session.datagrams.writable.getWriter();
    await w.write(new Uint8Array([1, 2, 3]));
    expect(quic.datagrams).toHaveLength(1);
    expect([...quic.datagrams[0]]).toEqual([session.sessionId / 4, 1, 2, 3]);
    expect((await session.getStats()).datagrams.sent).toBe(1);
  });
});

describe('WtConnection graceful close', () => {
  it('closes with H3_NO_ERROR and a reason Chromium reads as QUIC_NO_ERROR ("0:" prefix)', () => {
    const { quic } = clientWithSession([[SettingId.ENABLE_WEBTRANSPORT_DRAFT02, 1n]]);
    const conn = quic.handler as WtConnection;
    let timedOut = 0;
    conn.closeWhenDelivered(true, 1000, () => timedOut++);
    // Nothing was in flight (the session never closed), so it closes at once, gracefully.
    expect(quic.closes).toEqual([{ code: 0x100, reason: expect.stringMatching(/^0:/), isApp: true }]);
    expect(timedOut).toBe(0);
  });
});
