import { describe, expect, it } from 'vitest';
import {
  createH3Connection,
  encodeVarint,
  type H3Connection,
  H3ErrorCode,
  type H3Event,
} from '../src/index.js';
import { establishedPair, literalBlock, ofType, seededRandom } from './core-harness.js';

/** Draft-02 client SETTINGS as a control stream: type 0x00, SETTINGS { 0x33: 1, 0x2b603742: 1 }. */
const CLIENT_CONTROL = [0x00, 0x04, 0x07, 0x33, 0x01, 0xab, 0x60, 0x37, 0x42, 0x01];

function v(n: number | bigint): number[] {
  return [...encodeVarint(n)];
}

function frame(type: number | bigint, payload: number[]): number[] {
  return [...v(type), ...v(payload.length), ...payload];
}

function connectBlock(extra: Array<[string, string]> = []): number[] {
  return literalBlock([
    [':method', 'CONNECT'],
    [':protocol', 'webtransport'],
    [':scheme', 'https'],
    [':authority', 'a.test'],
    [':path', '/'],
    ...extra,
  ]);
}

/** A started server that has seen valid client SETTINGS. */
function server(limits: Parameters<typeof createH3Connection>[0]['limits'] = {}): H3Connection {
  const s = createH3Connection({ role: 'server', limits });
  s.start();
  s.receiveStreamData(2, Uint8Array.from(CLIENT_CONTROL), false);
  s.drainCommands();
  expect(ofType(s.drainEvents(), 'settings')).toHaveLength(1);
  return s;
}

/** Feeds bytes one at a time (worst-case chunking) and returns the events. */
function feedBytes(c: H3Connection, streamId: number, bytes: number[], fin = false): H3Event[] {
  for (let i = 0; i < bytes.length; i++)
    c.receiveStreamData(streamId, Uint8Array.of(bytes[i]), fin && i === bytes.length - 1);
  if (bytes.length === 0 && fin) c.receiveStreamData(streamId, new Uint8Array(0), true);
  return c.drainEvents();
}

function expectConnectionError(c: H3Connection, events: H3Event[], code: bigint): void {
  const errors = ofType(events, 'connection-error');
  expect(errors.map((e) => e.code)).toEqual([code]);
  const closes = c.drainCommands().filter((x) => x.type === 'connection-close');
  expect(closes.map((x) => x.type === 'connection-close' && x.code)).toEqual([code]);
}

describe('H3 core: connection errors on the control stream', () => {
  const fresh = () => {
    const s = createH3Connection({ role: 'server' });
    s.start();
    s.drainCommands();
    return s;
  };

  it('an HTTP/2 setting is H3_SETTINGS_ERROR', () => {
    for (const id of [0x00, 0x02, 0x03, 0x04, 0x05]) {
      const s = fresh();
      expectConnectionError(
        s,
        feedBytes(s, 2, [0x00, ...frame(0x04, [id, 0x01])]),
        H3ErrorCode.H3_SETTINGS_ERROR,
      );
    }
  });

  it('a duplicate setting is H3_SETTINGS_ERROR', () => {
    const s = fresh();
    expectConnectionError(
      s,
      feedBytes(s, 2, [0x00, ...frame(0x04, [0x33, 0x01, 0x06, 0x10, 0x33, 0x01])]),
      H3ErrorCode.H3_SETTINGS_ERROR,
    );
  });

  it('a non-boolean H3_DATAGRAM or ENABLE_CONNECT_PROTOCOL is H3_SETTINGS_ERROR', () => {
    const s = fresh();
    expectConnectionError(
      s,
      feedBytes(s, 2, [0x00, ...frame(0x04, [0x33, 0x02])]),
      H3ErrorCode.H3_SETTINGS_ERROR,
    );
  });

  it('a truncated setting pair is H3_FRAME_ERROR', () => {
    const s = fresh();
    expectConnectionError(s, feedBytes(s, 2, [0x00, ...frame(0x04, [0x33])]), H3ErrorCode.H3_FRAME_ERROR);
  });

  it('a first frame other than SETTINGS is H3_MISSING_SETTINGS, even a reserved one', () => {
    for (const first of [frame(0x07, [0x00]), frame(0x21, [1, 2, 3])]) {
      const s = fresh();
      expectConnectionError(s, feedBytes(s, 2, [0x00, ...first]), H3ErrorCode.H3_MISSING_SETTINGS);
    }
  });

  it('a second control stream is H3_STREAM_CREATION_ERROR', () => {
    const s = server();
    expectConnectionError(
      s,
      feedBytes(s, 6, [0x00, ...frame(0x04, [])]),
      H3ErrorCode.H3_STREAM_CREATION_ERROR,
    );
  });

  it('DATA, HEADERS, PUSH_PROMISE, HTTP/2 frames and a second SETTINGS on the control stream are H3_FRAME_UNEXPECTED', () => {
    for (const f of [
      frame(0x00, [1]),
      frame(0x01, [0, 0]),
      frame(0x05, [0]),
      frame(0x02, []),
      frame(0x06, [0]),
      frame(0x08, []),
      frame(0x09, []),
      frame(0x04, []),
    ]) {
      const s = server();
      expectConnectionError(s, feedBytes(s, 2, f), H3ErrorCode.H3_FRAME_UNEXPECTED);
    }
  });

  it('an oversize SETTINGS frame is H3_EXCESSIVE_LOAD before it is buffered', () => {
    const s = createH3Connection({ role: 'server', limits: { maxFramePayload: 100 } });
    s.start();
    // Only the frame header: the 101-byte payload never needs to arrive.
    expectConnectionError(s, feedBytes(s, 2, [0x00, 0x04, ...v(101)]), H3ErrorCode.H3_EXCESSIVE_LOAD);
  });

  it('a GOAWAY payload that is not exactly one varint is H3_FRAME_ERROR', () => {
    const s = server();
    expectConnectionError(s, feedBytes(s, 2, frame(0x07, [0x01, 0x02])), H3ErrorCode.H3_FRAME_ERROR);
  });

  it('a client rejects a GOAWAY naming a non-request stream or one that increases (H3_ID_ERROR)', () => {
    const c = createH3Connection({ role: 'client' });
    c.start();
    feedBytes(c, 3, CLIENT_CONTROL);
    expectConnectionError(c, feedBytes(c, 3, frame(0x07, [0x02])), H3ErrorCode.H3_ID_ERROR);
    const d = createH3Connection({ role: 'client' });
    d.start();
    feedBytes(d, 3, [...CLIENT_CONTROL, ...frame(0x07, [0x04])]);
    expectConnectionError(d, feedBytes(d, 3, frame(0x07, [0x08])), H3ErrorCode.H3_ID_ERROR);
  });

  it('closing or resetting a critical stream is H3_CLOSED_CRITICAL_STREAM', () => {
    const a = server();
    expectConnectionError(a, feedBytes(a, 2, [], true), H3ErrorCode.H3_CLOSED_CRITICAL_STREAM);
    const b = server();
    b.receiveStreamReset(2, 0x100n);
    expectConnectionError(b, b.drainEvents(), H3ErrorCode.H3_CLOSED_CRITICAL_STREAM);
    const c = server();
    feedBytes(c, 6, [0x02]);
    expectConnectionError(c, feedBytes(c, 6, [], true), H3ErrorCode.H3_CLOSED_CRITICAL_STREAM);
    const d = server();
    // STOP_SENDING on our own control stream (server uni stream 3).
    d.receiveStopSending(3, 0x100n);
    expectConnectionError(d, d.drainEvents(), H3ErrorCode.H3_CLOSED_CRITICAL_STREAM);
  });

  it('CANCEL_PUSH for a push we never allowed is H3_ID_ERROR; MAX_PUSH_ID at a client is H3_FRAME_UNEXPECTED', () => {
    const s = server();
    expectConnectionError(s, feedBytes(s, 2, frame(0x03, [0x00])), H3ErrorCode.H3_ID_ERROR);
    const c = createH3Connection({ role: 'client' });
    c.start();
    feedBytes(c, 3, CLIENT_CONTROL);
    expectConnectionError(c, feedBytes(c, 3, frame(0x0d, [0x05])), H3ErrorCode.H3_FRAME_UNEXPECTED);
  });
});

describe('H3 core: unidirectional stream types', () => {
  it('a push stream from a client is H3_STREAM_CREATION_ERROR; at a client, H3_ID_ERROR', () => {
    const s = server();
    expectConnectionError(s, feedBytes(s, 6, [0x01, 0x00]), H3ErrorCode.H3_STREAM_CREATION_ERROR);
    const c = createH3Connection({ role: 'client' });
    c.start();
    c.drainCommands();
    expectConnectionError(c, feedBytes(c, 7, [0x01, 0x00]), H3ErrorCode.H3_ID_ERROR);
  });

  it('unknown and reserved stream types get STOP_SENDING H3_STREAM_CREATION_ERROR and are ignored', () => {
    const s = server();
    const grease = 0x1fn * 0xdeadbeefn + 0x21n;
    const events = feedBytes(s, 6, [...v(grease), 1, 2, 3, 4]);
    expect(ofType(events, 'connection-error')).toEqual([]);
    expect(s.drainCommands()).toEqual([
      { type: 'stream-stop-sending', streamId: 6, code: H3ErrorCode.H3_STREAM_CREATION_ERROR },
    ]);
    // More bytes and the FIN are dropped, counted.
    s.receiveStreamData(6, Uint8Array.of(5, 6), true);
    expect(s.drainEvents()).toEqual([]);
    expect(s.getStats()).toMatchObject({ unknownStreamTypes: 1, bytesDiscarded: 6 });
  });

  it('QPACK streams: capacity-0 instruction and stream cancellations pass, anything else is an encoder/decoder stream error', () => {
    const ok = server();
    expect(ofType(feedBytes(ok, 6, [0x02, 0x20]), 'connection-error')).toEqual([]);
    // Stream Cancellation for stream 4, and one with a multi-byte stream id (0x3f + continuation).
    expect(ofType(feedBytes(ok, 10, [0x03, 0x44, 0x7f, 0x81, 0x01]), 'connection-error')).toEqual([]);
    const enc = server();
    // Set Dynamic Table Capacity 1 (0x21) exceeds our 0.
    expectConnectionError(enc, feedBytes(enc, 6, [0x02, 0x21]), H3ErrorCode.QPACK_ENCODER_STREAM_ERROR);
    const ins = server();
    expectConnectionError(
      ins,
      feedBytes(ins, 6, [0x02, 0xc0 | 17, 0x01, 0x61]),
      H3ErrorCode.QPACK_ENCODER_STREAM_ERROR,
    );
    const dec = server();
    // Insert Count Increment 1.
    expectConnectionError(dec, feedBytes(dec, 10, [0x03, 0x01]), H3ErrorCode.QPACK_DECODER_STREAM_ERROR);
    const ack = server();
    // Section Acknowledgment for stream 0.
    expectConnectionError(ack, feedBytes(ack, 10, [0x03, 0x80]), H3ErrorCode.QPACK_DECODER_STREAM_ERROR);
    const twice = server();
    feedBytes(twice, 6, [0x02]);
    expectConnectionError(twice, feedBytes(twice, 10, [0x02]), H3ErrorCode.H3_STREAM_CREATION_ERROR);
  });
});

describe('H3 core: request streams', () => {
  it('bad pseudo-headers are a stream error H3_MESSAGE_ERROR; the connection lives on', () => {
    const cases: Array<Array<[string, string]>> = [
      [
        [':method', 'CONNECT'],
        [':protocol', 'webtransport'],
        [':authority', 'a'],
        [':path', '/'],
      ], // no :scheme
      [
        [':method', 'CONNECT'],
        [':protocol', 'webtransport'],
        [':scheme', 'https'],
        [':authority', 'a'],
      ], // no :path
      [
        [':method', 'CONNECT'],
        [':protocol', 'webtransport'],
        [':scheme', 'https'],
        [':path', '/'],
      ], // no :authority
      [
        [':method', 'GET'],
        [':protocol', 'webtransport'],
        [':scheme', 'https'],
        [':authority', 'a'],
        [':path', '/'],
      ],
      [
        [':method', 'CONNECT'],
        [':method', 'CONNECT'],
        [':authority', 'a'],
      ],
      [
        ['origin', 'x'],
        [':method', 'CONNECT'],
        [':authority', 'a'],
      ],
      [
        [':method', 'CONNECT'],
        [':authority', 'a'],
        [':status', '200'],
      ],
      [
        [':method', 'CONNECT'],
        [':authority', 'a'],
        ['Upper', 'x'],
      ],
      [
        [':method', 'CONNECT'],
        [':authority', 'a'],
        ['connection', 'close'],
      ],
      [
        [':method', 'CONNECT'],
        [':authority', 'a'],
        ['x', 'a\r\nb'],
      ],
      [
        [':scheme', 'https'],
        [':path', '/'],
      ],
    ];
    const s = server();
    let id = 0;
    for (const fields of cases) {
      const block = literalBlock(fields);
      const events = feedBytes(s, id, frame(0x01, block));
      expect(ofType(events, 'connection-error')).toEqual([]);
      expect(ofType(events, 'stream-error').map((e) => [e.streamId, e.code])).toEqual([
        [id, H3ErrorCode.H3_MESSAGE_ERROR],
      ]);
      const cmds = s.drainCommands();
      expect(cmds).toContainEqual({ type: 'stream-reset', streamId: id, code: H3ErrorCode.H3_MESSAGE_ERROR });
      expect(cmds).toContainEqual({
        type: 'stream-stop-sending',
        streamId: id,
        code: H3ErrorCode.H3_MESSAGE_ERROR,
      });
      id += 4;
    }
    expect(s.getStats().streamErrors).toBe(cases.length);
    // Still usable: a good CONNECT is offered.
    const ok = feedBytes(s, id, frame(0x01, connectBlock()));
    expect(ofType(ok, 'session-request').map((e) => e.sessionId)).toEqual([id]);
  });

  it('an undecodable field section is QPACK_DECOMPRESSION_FAILED', () => {
    const s = server();
    // Required Insert Count 1: a dynamic table reference with capacity 0.
    expectConnectionError(
      s,
      feedBytes(s, 0, frame(0x01, [0x01, 0x00, 0x80])),
      H3ErrorCode.QPACK_DECOMPRESSION_FAILED,
    );
  });

  it('a field section over maxFieldSectionSize is answered with 431', () => {
    const s = server({ maxFieldSectionSize: 200 });
    const events = feedBytes(s, 0, frame(0x01, connectBlock([['x-big', 'y'.repeat(300)]])));
    expect(ofType(events, 'connection-error')).toEqual([]);
    expect(ofType(events, 'session-request')).toEqual([]);
    const w = s.drainCommands().find((c) => c.type === 'stream-write' && c.streamId === 0);
    expect(w && w.type === 'stream-write' && w.fin).toBe(true);
  });

  it('an oversize HEADERS frame is H3_EXCESSIVE_LOAD', () => {
    const s = server({ maxFramePayload: 1000 });
    expectConnectionError(s, feedBytes(s, 0, [0x01, ...v(5000)]), H3ErrorCode.H3_EXCESSIVE_LOAD);
  });

  it('DATA before HEADERS, control frames and WT_STREAM inside a request are connection errors', () => {
    const a = server();
    expectConnectionError(a, feedBytes(a, 0, frame(0x00, [1, 2])), H3ErrorCode.H3_FRAME_UNEXPECTED);
    const b = server();
    expectConnectionError(
      b,
      feedBytes(b, 0, [...frame(0x01, connectBlock()), ...frame(0x04, [])]),
      H3ErrorCode.H3_FRAME_UNEXPECTED,
    );
    const c = server();
    expectConnectionError(
      c,
      feedBytes(c, 0, [...frame(0x01, connectBlock()), ...v(0x41), 0x00]),
      H3ErrorCode.H3_FRAME_ERROR,
    );
    const d = server();
    expectConnectionError(d, feedBytes(d, 0, frame(0x05, [0x00])), H3ErrorCode.H3_FRAME_UNEXPECTED);
  });

  it('a request stream ending inside a frame is H3_FRAME_ERROR', () => {
    const s = server();
    const f = frame(0x01, connectBlock());
    expectConnectionError(s, feedBytes(s, 0, f.slice(0, f.length - 3), true), H3ErrorCode.H3_FRAME_ERROR);
  });

  it('a server-initiated bidi stream without the WebTransport signal is H3_STREAM_CREATION_ERROR', () => {
    const c = createH3Connection({ role: 'client' });
    c.start();
    expectConnectionError(c, feedBytes(c, 1, frame(0x01, [0, 0])), H3ErrorCode.H3_STREAM_CREATION_ERROR);
  });

  it('a WebTransport stream naming an impossible session id is H3_ID_ERROR', () => {
    const s = server();
    expectConnectionError(s, feedBytes(s, 4, [...v(0x41), ...v(2)]), H3ErrorCode.H3_ID_ERROR);
    const u = server();
    expectConnectionError(u, feedBytes(u, 6, [...v(0x54), ...v(5)]), H3ErrorCode.H3_ID_ERROR);
  });
});

describe('H3 core: capsules and WebTransport streams', () => {
  function closeCapsuleOnStream(
    p: ReturnType<typeof establishedPair>,
    capsule: number[],
  ): { server: H3Event[]; cmds: ReturnType<H3Connection['drainCommands']> } {
    p.server.conn.receiveStreamData(p.sessionId, Uint8Array.from(frame(0x00, capsule)), false);
    return { server: p.server.conn.drainEvents(), cmds: p.server.conn.drainCommands() };
  }

  it('a malformed CLOSE capsule resets the CONNECT stream with H3_MESSAGE_ERROR and ends the session abruptly', () => {
    for (const capsule of [
      [...v(0x2843), 0x02, 0x00, 0x01], // shorter than the u32 code
      [...v(0x2843), ...v(4 + 1025), 0, 0, 0, 1, ...new Array(1025).fill(0x61)], // reason over 1024 bytes
      [...v(0x2843), 0x06, 0, 0, 0, 1, 0xff, 0xfe], // reason not UTF-8
    ]) {
      const p = establishedPair(41);
      const wt = p.server.conn.openStream(p.sessionId, false);
      const { server: events, cmds } = closeCapsuleOnStream(p, capsule);
      expect(ofType(events, 'connection-error')).toEqual([]);
      expect(ofType(events, 'stream-error').map((e) => e.code)).toEqual([H3ErrorCode.H3_MESSAGE_ERROR]);
      const [closed] = ofType(events, 'session-closed');
      expect(closed).toMatchObject({ sessionId: p.sessionId, abrupt: true });
      expect(cmds).toContainEqual({
        type: 'stream-reset',
        streamId: p.sessionId,
        code: H3ErrorCode.H3_MESSAGE_ERROR,
      });
      expect(cmds).toContainEqual({ type: 'stream-reset', streamId: wt, code: H3ErrorCode.WT_SESSION_GONE });
    }
  });

  it('an oversize capsule of any type is refused at its header', () => {
    for (const type of [0x2843, 0x1234567]) {
      const p = establishedPair(43);
      p.server.conn.receiveStreamData(
        p.sessionId,
        Uint8Array.from([0x00, ...v(70_000), ...v(type), ...v(65 * 1024 + 1)]),
        false,
      );
      const events = p.server.conn.drainEvents();
      expect(ofType(events, 'stream-error').map((e) => e.code)).toEqual([H3ErrorCode.H3_MESSAGE_ERROR]);
      expect(ofType(events, 'session-closed')).toHaveLength(1);
      expect(ofType(events, 'connection-error')).toEqual([]);
    }
  });

  it('unknown (GREASE) capsules are skipped, like the one Chromium sends after its CONNECT', () => {
    const p = establishedPair(45);
    const grease = 0x1fn * 0x77n + 0x21n;
    p.server.conn.receiveStreamData(
      p.sessionId,
      Uint8Array.from(frame(0x00, [...v(grease), 0x03, 1, 2, 3])),
      false,
    );
    expect(p.server.conn.drainEvents()).toEqual([]);
    expect(p.server.conn.drainCommands()).toEqual([]);
  });

  it('streams for unknown sessions are buffered up to the budget, then reset with WT_BUFFERED_STREAM_REJECTED', () => {
    const s = server({ maxBufferedUnknownSessionBytes: 1000 });
    // Session 400 does not exist (yet): 64 bytes of overhead + 300 of data per stream.
    const payload = new Array(300).fill(7);
    for (const id of [4, 8]) {
      feedBytes(s, id, [...v(0x41), ...v(400), ...payload]);
      expect(s.drainCommands()).toEqual([]);
    }
    expect(s.getStats().bufferedUnknownSessionBytes).toBe(728);
    const events = feedBytes(s, 12, [...v(0x41), ...v(400), ...payload]);
    expect(ofType(events, 'connection-error')).toEqual([]);
    const cmds = s.drainCommands();
    expect(cmds).toContainEqual({
      type: 'stream-reset',
      streamId: 12,
      code: H3ErrorCode.WT_BUFFERED_STREAM_REJECTED,
    });
    expect(cmds).toContainEqual({
      type: 'stream-stop-sending',
      streamId: 12,
      code: H3ErrorCode.WT_BUFFERED_STREAM_REJECTED,
    });
    expect(s.getStats().streamsRejectedBufferFull).toBe(1);
    // A buffered stream that grows over the budget is rejected too.
    s.receiveStreamData(8, new Uint8Array(500), false);
    expect(s.drainCommands()).toContainEqual({
      type: 'stream-reset',
      streamId: 8,
      code: H3ErrorCode.WT_BUFFERED_STREAM_REJECTED,
    });
    expect(s.getStats().bufferedUnknownSessionBytes).toBe(364);
    // Datagrams over the budget are dropped and counted.
    s.receiveDatagram(Uint8Array.from([...v(100), ...new Array(700).fill(1)]));
    expect(ofType(s.drainEvents(), 'datagram-dropped')).toEqual([
      { type: 'datagram-dropped', reason: 'unknown-session' },
    ]);
  });

  it('streams naming a closed session are reset with WT_SESSION_GONE', () => {
    const p = establishedPair(47);
    p.client.conn.closeSession(p.sessionId, 0, '');
    p.pump();
    p.server.conn.receiveStreamData(8, Uint8Array.from([...v(0x41), ...v(p.sessionId), 1, 2]), false);
    expect(p.server.conn.drainCommands()).toContainEqual({
      type: 'stream-reset',
      streamId: 8,
      code: H3ErrorCode.WT_SESSION_GONE,
    });
    expect(p.server.conn.getStats().streamsRejectedSessionGone).toBe(1);
  });

  it('streams over maxStreamsPerSession are refused', () => {
    const p = establishedPair(49);
    const s = createH3Connection({ role: 'server', limits: { maxStreamsPerSession: 2 } });
    s.start();
    s.receiveStreamData(2, Uint8Array.from(CLIENT_CONTROL), false);
    s.receiveStreamData(0, Uint8Array.from(frame(0x01, connectBlock())), false);
    s.acceptSession(0);
    s.drainCommands();
    s.drainEvents();
    for (const id of [4, 8, 12]) s.receiveStreamData(id, Uint8Array.from([...v(0x41), 0x00, 1]), false);
    expect(ofType(s.drainEvents(), 'stream-opened').map((e) => e.streamId)).toEqual([4, 8]);
    expect(s.drainCommands()).toContainEqual({
      type: 'stream-reset',
      streamId: 12,
      code: H3ErrorCode.H3_REQUEST_REJECTED,
    });
    expect(() => s.openStream(0, true)).toThrow(/maxStreamsPerSession/);
    void p;
  });

  it('local misuse throws; peer input never does', () => {
    const s = server();
    expect(() => s.sendStreamData(1001, new Uint8Array(1), false)).toThrow();
    expect(() => s.openStream(4, true)).toThrow();
    expect(() => s.acceptSession(3)).toThrow(RangeError);
    expect(() => s.resetStream(0, -1)).toThrow(RangeError);
  });
});

describe('H3 core: edge cases', () => {
  it('HEADERS and a DATA frame in one chunk, as Chromium sends its CONNECT, are not a frame-order error', () => {
    const s = server();
    const grease = 0x1fn * 0x1234n + 0x21n;
    const chromium = [
      ...frame(
        0x01,
        literalBlock([
          [':scheme', 'https'],
          [':method', 'CONNECT'],
          [':authority', '127.0.0.1:4433'],
          [':path', '/echo'],
          [':protocol', 'webtransport'],
          ['sec-webtransport-http3-draft02', '1'],
          ['origin', 'http://127.0.0.1:8080'],
        ]),
      ),
      ...frame(0x00, [...v(grease), 0x02, 0xaa, 0xbb]),
    ];
    s.receiveStreamData(0, Uint8Array.from(chromium), false);
    const events = s.drainEvents();
    expect(ofType(events, 'connection-error')).toEqual([]);
    expect(ofType(events, 'session-request').map((e) => e.sessionId)).toEqual([0]);
    // And the client side: a 200 and a DRAIN capsule in one chunk.
    const c = createH3Connection({ role: 'client' });
    c.start();
    c.receiveStreamData(3, Uint8Array.from([0x00, ...frame(0x04, [0xab, 0x60, 0x37, 0x42, 0x01])]), false);
    const id = c.connect({ authority: 'a', path: '/' });
    c.receiveStreamData(
      id,
      Uint8Array.from([
        ...frame(0x01, literalBlock([[':status', '200']])),
        ...frame(0x00, [...v(0x78ae), 0x00]),
      ]),
      false,
    );
    const ce = c.drainEvents();
    expect(ofType(ce, 'connection-error')).toEqual([]);
    expect(ofType(ce, 'session-draining').map((e) => e.sessionId)).toEqual([id]);
    // While DATA before any HEADERS, or after only an interim response, still is one.
    const d = createH3Connection({ role: 'client' });
    d.start();
    d.receiveStreamData(3, Uint8Array.from([0x00, ...frame(0x04, [0xab, 0x60, 0x37, 0x42, 0x01])]), false);
    const id2 = d.connect({ authority: 'a', path: '/' });
    d.receiveStreamData(
      id2,
      Uint8Array.from([...frame(0x01, literalBlock([[':status', '100']])), ...frame(0x00, [0])]),
      false,
    );
    expectConnectionError(d, d.drainEvents(), H3ErrorCode.H3_FRAME_UNEXPECTED);
  });

  it('a CONNECT before the client SETTINGS waits for them; a DRAIN that came with it follows the request', () => {
    const s = createH3Connection({ role: 'server' });
    s.start();
    s.receiveStreamData(
      0,
      Uint8Array.from([...frame(0x01, connectBlock()), ...frame(0x00, [...v(0x78ae), 0x00])]),
      false,
    );
    expect(s.drainEvents()).toEqual([]);
    s.receiveStreamData(2, Uint8Array.from(CLIENT_CONTROL), false);
    expect(s.drainEvents().map((e) => e.type)).toEqual(['settings', 'session-request', 'session-draining']);
  });

  it('a reserved frame type split across chunks before SETTINGS is still H3_MISSING_SETTINGS', () => {
    const s = createH3Connection({ role: 'server' });
    s.start();
    s.drainCommands();
    // 0x537 is a 2-byte varint: the stream type, then one byte of the frame type at a time.
    s.receiveStreamData(2, Uint8Array.of(0x00, 0x45), false);
    s.receiveStreamData(2, Uint8Array.of(0x37, 0x00), false);
    expectConnectionError(s, s.drainEvents(), H3ErrorCode.H3_MISSING_SETTINGS);
  });

  it('data after CLOSE_WEBTRANSPORT_SESSION is H3_MESSAGE_ERROR on the CONNECT stream (draft §6)', () => {
    const p = establishedPair(51);
    const close = [...v(0x2843), 0x04, 0, 0, 0, 9];
    p.server.conn.receiveStreamData(p.sessionId, Uint8Array.from(frame(0x00, close)), false);
    expect(ofType(p.server.conn.drainEvents(), 'session-closed')).toHaveLength(1);
    p.server.conn.drainCommands();
    p.server.conn.receiveStreamData(p.sessionId, Uint8Array.from(frame(0x00, [1, 2, 3])), false);
    const events = p.server.conn.drainEvents();
    expect(ofType(events, 'stream-error').map((e) => e.code)).toEqual([H3ErrorCode.H3_MESSAGE_ERROR]);
    expect(p.server.conn.drainCommands()).toEqual([
      { type: 'stream-stop-sending', streamId: p.sessionId, code: H3ErrorCode.H3_MESSAGE_ERROR },
    ]);
    // In the same chunk as the capsule, too.
    const q = establishedPair(53);
    q.server.conn.receiveStreamData(
      q.sessionId,
      Uint8Array.from(frame(0x00, [...close, ...v(0x1234), 0])),
      false,
    );
    expect(ofType(q.server.conn.drainEvents(), 'stream-error').map((e) => e.code)).toEqual([
      H3ErrorCode.H3_MESSAGE_ERROR,
    ]);
    // A reserved frame after the DATA frame, or the first byte of another capsule header, in the same chunk.
    for (const tail of [frame(0x21, []), [0x40]]) {
      const t = establishedPair(57);
      const bytes = tail.length === 1 ? frame(0x00, [...close, ...tail]) : [...frame(0x00, close), ...tail];
      t.server.conn.receiveStreamData(t.sessionId, Uint8Array.from(bytes), false);
      expect(ofType(t.server.conn.drainEvents(), 'stream-error').map((e) => e.code)).toEqual([
        H3ErrorCode.H3_MESSAGE_ERROR,
      ]);
    }
    // A FIN right after the capsule is the clean case.
    const r = establishedPair(55);
    r.server.conn.receiveStreamData(r.sessionId, Uint8Array.from(frame(0x00, close)), true);
    const ev = r.server.conn.drainEvents();
    expect(ofType(ev, 'stream-error')).toEqual([]);
    expect(ofType(ev, 'session-closed')).toEqual([
      { type: 'session-closed', sessionId: r.sessionId, code: 9, reason: '', abrupt: false, local: false },
    ]);
  });

  it('a client giving up before the server decides: session-closed, the request is cancelled, reject is a no-op', () => {
    const s = server();
    s.receiveStreamData(0, Uint8Array.from(frame(0x01, connectBlock())), false);
    expect(ofType(s.drainEvents(), 'session-request')).toHaveLength(1);
    s.receiveStreamData(0, new Uint8Array(0), true);
    expect(ofType(s.drainEvents(), 'session-closed').map((e) => e.sessionId)).toEqual([0]);
    expect(s.drainCommands()).toEqual([
      { type: 'stream-reset', streamId: 0, code: H3ErrorCode.H3_REQUEST_CANCELLED },
    ]);
    s.rejectSession(0, 403);
    s.acceptSession(0);
    expect(s.drainCommands()).toEqual([]);
    expect(s.getStats().sessions).toBe(0);
  });

  it('a STOP_SENDING on a buffered stream is replayed when the session is accepted', () => {
    const s = server();
    s.receiveStreamData(4, Uint8Array.from([...v(0x41), 0x00, 7]), false);
    s.receiveStopSending(4, 0x52e4a40fa8dbn + 5n);
    s.receiveStreamData(0, Uint8Array.from(frame(0x01, connectBlock())), false);
    s.acceptSession(0);
    const events = s.drainEvents().filter((e) => e.type.startsWith('stream'));
    expect(events).toEqual([
      { type: 'stream-opened', sessionId: 0, streamId: 4, bidirectional: true },
      { type: 'stream-stop-sending', streamId: 4, code: 5 },
      { type: 'stream-data', streamId: 4, data: Uint8Array.of(7), fin: false },
    ]);
  });

  it('interim 1xx responses are skipped; a DATAGRAM capsule is delivered as a datagram', () => {
    const c = createH3Connection({ role: 'client' });
    c.start();
    c.receiveStreamData(3, Uint8Array.from([0x00, ...frame(0x04, [0xab, 0x60, 0x37, 0x42, 0x01])]), false);
    const id = c.connect({ authority: 'a', path: '/' });
    c.drainEvents();
    c.receiveStreamData(id, Uint8Array.from(frame(0x01, literalBlock([[':status', '103']]))), false);
    expect(ofType(c.drainEvents(), 'session-established')).toEqual([]);
    c.receiveStreamData(id, Uint8Array.from(frame(0x01, literalBlock([[':status', '200']]))), false);
    expect(ofType(c.drainEvents(), 'session-established')).toHaveLength(1);
    c.receiveStreamData(id, Uint8Array.from(frame(0x00, [0x00, 0x02, 0x68, 0x69])), false);
    expect(ofType(c.drainEvents(), 'datagram')).toEqual([
      { type: 'datagram', sessionId: id, data: Uint8Array.of(0x68, 0x69) },
    ]);
  });

  it('no datagrams to a peer whose SETTINGS enable no HTTP Datagrams (RFC 9297 §2.1.1)', () => {
    const c = createH3Connection({ role: 'client' });
    c.start();
    // draft-02 WebTransport but neither 0x33 nor 0xffd277.
    c.receiveStreamData(3, Uint8Array.from([0x00, ...frame(0x04, [0xab, 0x60, 0x37, 0x42, 0x01])]), false);
    const id = c.connect({ authority: 'a', path: '/' });
    c.drainCommands();
    c.sendDatagram(id, Uint8Array.of(1));
    expect(c.drainCommands()).toEqual([]);
    expect(c.getStats()).toMatchObject({ datagramsSent: 0, datagramsDroppedNotNegotiated: 1 });
  });

  it('a malformed response is a stream error and a rejected session, not a connection error', () => {
    const c = createH3Connection({ role: 'client' });
    c.start();
    c.receiveStreamData(3, Uint8Array.from([0x00, ...frame(0x04, [0xab, 0x60, 0x37, 0x42, 0x01])]), false);
    const id = c.connect({ authority: 'a', path: '/' });
    c.drainEvents();
    c.receiveStreamData(id, Uint8Array.from(frame(0x01, literalBlock([[':status', '2000']]))), false);
    const events = c.drainEvents();
    expect(ofType(events, 'stream-error').map((e) => e.code)).toEqual([H3ErrorCode.H3_MESSAGE_ERROR]);
    expect(ofType(events, 'session-rejected').map((e) => e.sessionId)).toEqual([id]);
    expect(ofType(events, 'connection-error')).toEqual([]);
  });
});

describe('H3 core: garbage never throws', () => {
  it('random bytes on every kind of stream end in events, never exceptions', () => {
    const r = seededRandom(2024);
    for (let round = 0; round < 300; round++) {
      const role = round % 2 === 0 ? 'server' : 'client';
      const c = createH3Connection({ role, seed: round });
      c.start();
      const prefixes = [[0x00, 0x04, 0x00], [0x02], [0x03], [0x40, 0x54], [0x40, 0x41], [0x01], [0x00], []];
      for (let i = 0; i < 8; i++) {
        const id = Math.floor(r() * 24);
        const prefix = prefixes[Math.floor(r() * prefixes.length)];
        const junk = Array.from({ length: Math.floor(r() * 40) }, () => Math.floor(r() * 256));
        const fin = r() < 0.2;
        expect(() => c.receiveStreamData(id, Uint8Array.from([...prefix, ...junk]), fin)).not.toThrow();
        if (r() < 0.1)
          expect(() => c.receiveStreamReset(id, BigInt(Math.floor(r() * 2 ** 32)))).not.toThrow();
        if (r() < 0.1) expect(() => c.receiveStopSending(id, 0x100n)).not.toThrow();
        expect(() => c.receiveDatagram(Uint8Array.from(junk))).not.toThrow();
      }
      for (const e of c.drainEvents()) {
        if (e.type === 'connection-error') expect(e.code).toBeGreaterThan(0n);
      }
    }
  });
});
