/**
 * WtConnection is the single seam between the HTTP/3 core and a QUIC engine: these tests drive a real core
 * through it with a recording engine connection (the layer below, which these tests are not about).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
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
  /** RESET_STREAM and STOP_SENDING in the order they were asked for. */
  readonly streamCloses: string[] = [];
  resetStream(streamId: number, code: bigint): void {
    this.streamCloses.push(`reset ${streamId} 0x${code.toString(16)}`);
  }
  stopSending(streamId: number, code: bigint): void {
    this.streamCloses.push(`stop ${streamId} 0x${code.toString(16)}`);
  }
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

/**
 * A server connection with one accepted session and one client bidi stream on it, driven by a real client core
 * (its CONNECT, SETTINGS and stream bytes go through the connection's engine handler as QUIC input would).
 */
function serverWithSessionAndStream(closeDeliveryTimeoutMs: number) {
  const quic = new RecordingQuic();
  const client = createH3Connection({ role: 'client' });
  let session: WtSession | undefined;
  const conn = new WtConnection(quic, createH3Connection({ role: 'server' }), {
    onSessionRequest: (c, sid) => {
      session = new WtSession(c, defaultSessionLimits);
      c.acceptSession(sid, session);
    },
    onClosed: () => {},
    closeDeliveryTimeoutMs,
  });
  conn.onEstablished();
  client.start();
  const sid = client.connect({ authority: 'example.test', path: '/x' });
  const stream = client.openStream(sid, true);
  client.sendStreamData(stream, new Uint8Array(100), false);
  // Both ways until quiet: the client sends its CONNECT once it has the server's SETTINGS.
  let seen = 0;
  for (let moved = true; moved; ) {
    moved = false;
    for (const c of client.drainCommands()) {
      if (c.type === 'stream-write') conn.onStreamData(c.streamId, c.data, c.fin);
      moved = true;
    }
    for (const w of quic.writes.slice(seen)) client.receiveStreamData(w.streamId, w.data, w.fin);
    if (quic.writes.length > seen) moved = true;
    seen = quic.writes.length;
  }
  if (!session) throw new Error('no session request reached the server');
  return { quic, conn, session, stream, sid };
}

describe('WtConnection session close (draft §6)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("sends a closed session's stream resets once the peer answers the close, not with it", async () => {
    const { quic, conn, session, stream, sid } = serverWithSessionAndStream(1000);
    session.close({ closeCode: 9, reason: 'mid-flight' });
    expect(quic.writes.filter((w) => w.streamId === sid && w.fin)).toHaveLength(1);
    expect(quic.streamCloses).toEqual([]);
    // The client's FIN answering the close (Chromium and Firefox send one) releases them.
    conn.onStreamData(sid, new Uint8Array(0), true);
    expect(quic.streamCloses).toEqual([`reset ${stream} 0x170d7b68`, `stop ${stream} 0x170d7b68`]);
  });

  it('sends them after closeDeliveryTimeoutMs when the peer never answers, and only once', async () => {
    vi.useFakeTimers();
    const { quic, conn, session, stream, sid } = serverWithSessionAndStream(250);
    session.close({ closeCode: 9, reason: 'nobody listens' });
    vi.advanceTimersByTime(249);
    expect(quic.streamCloses).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(quic.streamCloses).toEqual([`reset ${stream} 0x170d7b68`, `stop ${stream} 0x170d7b68`]);
    conn.onStreamData(sid, new Uint8Array(0), true);
    expect(quic.streamCloses).toHaveLength(2);
    // The answered close leaves no timer behind.
    expect(vi.getTimerCount()).toBe(0);
  });

  it('leaves no timer once the close is answered in time', async () => {
    vi.useFakeTimers();
    const { conn, session, sid } = serverWithSessionAndStream(1000);
    session.close({ closeCode: 1, reason: '' });
    expect(vi.getTimerCount()).toBe(1);
    conn.onStreamData(sid, new Uint8Array(0), true);
    expect(vi.getTimerCount()).toBe(0);
  });
});
