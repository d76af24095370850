import { QuiverTransportError } from '@quiver/transport';
import { describe, expect, it } from 'vitest';
import { type CoreEvents, decodeFrames, SessionCore, type WireSettings } from '../src/index.js';

const SETTINGS: WireSettings = {
  maxMessageSize: 1 << 20,
  initialMaxStreamsBidi: 100,
  initialMaxStreamsUni: 100,
  initialMaxStreamData: 256 * 1024,
  maxDatagramSize: 1200,
};

interface Recorded {
  data: Map<number, number>;
  fins: Set<number>;
  incoming: number[];
  credit: number;
  datagrams: Uint8Array[];
}

function makeCore(role: 'client' | 'server', local: Partial<WireSettings> = {}, frame = 16 * 1024) {
  const rec: Recorded = { data: new Map(), fins: new Set(), incoming: [], credit: 0, datagrams: [] };
  const events: CoreEvents = {
    ready: () => {},
    incomingStream: (id) => rec.incoming.push(id),
    streamData: (id, data, fin) => {
      rec.data.set(id, (rec.data.get(id) ?? 0) + data.length);
      if (fin) rec.fins.add(id);
    },
    streamReset: () => {},
    stopSending: () => {},
    streamCredit: () => rec.credit++,
    datagram: (d) => rec.datagrams.push(d),
    closeReceived: () => {},
  };
  const core = new SessionCore(
    {
      role,
      local: { ...SETTINGS, ...local },
      maxStreamFrameSize: frame,
      maxOutgoingMessageSize: 64 * 1024,
      maxQueuedControlBytes: 64 * 1024,
    },
    events,
  );
  return { core, rec };
}

/** Moves every pending message from `a` to `b` (and back) until both are quiet; returns the messages a sent. */
function pump(a: SessionCore, b: SessionCore, now = 0): Uint8Array[] {
  const sent: Uint8Array[] = [];
  for (let moved = true; moved; ) {
    moved = false;
    for (let m = a.nextMessage(); m; m = a.nextMessage()) {
      sent.push(m.slice());
      b.receive(m, now);
      moved = true;
    }
    for (let m = b.nextMessage(); m; m = b.nextMessage()) {
      a.receive(m, now);
      moved = true;
    }
  }
  return sent;
}

function connected(server: Partial<WireSettings> = {}, frame = 16 * 1024) {
  const c = makeCore('client', {}, frame);
  const s = makeCore('server', server, frame);
  pump(c.core, s.core);
  expect(c.core.ready && s.core.ready).toBe(true);
  return { c, s };
}

describe('SessionCore (sans-IO)', () => {
  it('interleaves streams round-robin so a bulk stream cannot starve a later one', () => {
    const { c, s } = connected({}, 1000);
    const a = c.core.openStream(true)!;
    const b = c.core.openStream(true)!;
    c.core.write(a, new Uint8Array(100_000), () => {});
    c.core.write(b, new Uint8Array(5_000), () => {});
    const first = c.core.nextMessage()!;
    const order = decodeFrames(first)
      .filter((f) => f.type === 'stream' && f.data.length > 0)
      .map((f) => (f as { streamId: number }).streamId);
    // Stream b was written after 100 kB were queued on a, yet its frames alternate with a's from the start.
    expect(order.slice(0, 4)).toEqual([a, b, a, b]);
    s.core.receive(first, 0);
    pump(c.core, s.core);
    expect(s.rec.data.get(b)).toBe(5_000);
  });

  it('never sends beyond the granted credit and slides the window as the reader consumes', () => {
    const { c, s } = connected({ initialMaxStreamData: 1000 });
    const id = c.core.openStream(false)!;
    let done = false;
    c.core.write(id, new Uint8Array(5000), () => {
      done = true;
    });
    c.core.finish(id, () => {});
    pump(c.core, s.core);
    expect(s.rec.data.get(id)).toBe(1000);
    expect(done).toBe(false);
    for (let i = 0; i < 10 && !s.rec.fins.has(id); i++) {
      // The application reads everything received so far.
      s.core.consumed(id, s.rec.data.get(id) ?? 0);
      s.rec.data.set(id, 0);
      pump(c.core, s.core);
    }
    expect(s.rec.fins.has(id)).toBe(true);
    expect(done).toBe(true);
  });

  it('holds stream opening at the peer limit until MAX_STREAMS, released when a stream ends both ways', () => {
    const { c, s } = connected({ initialMaxStreamsBidi: 1 });
    const id = c.core.openStream(true)!;
    expect(c.core.openStream(true)).toBeUndefined();
    c.core.write(id, new Uint8Array(10), () => {});
    c.core.finish(id, () => {});
    pump(c.core, s.core);
    expect(s.rec.fins.has(id)).toBe(true);
    s.core.finish(id, () => {});
    pump(c.core, s.core);
    // Both directions ended, but the server application has not read the 10 bytes: the stream still counts.
    expect(c.rec.credit).toBe(0);
    s.core.consumed(id, 10);
    pump(c.core, s.core);
    expect(c.rec.credit).toBe(1);
    expect(c.core.openStream(true)).toBe(4);
  });

  it('counts data that crosses a STOP_SENDING as discarded, then releases the stream on the RESET_STREAM answer', () => {
    const { c, s } = connected({ initialMaxStreamsBidi: 1 });
    const id = c.core.openStream(true)!;
    c.core.write(id, new Uint8Array(100), () => {});
    pump(c.core, s.core);
    expect(s.rec.data.get(id)).toBe(100);
    s.core.consumed(id, 100);
    c.core.write(id, new Uint8Array(50), () => {});
    const inFlight = c.core.nextMessage()!;
    s.core.stopSending(id, 1);
    s.core.receive(inFlight, 0);
    expect(s.core.stats.discardedStreamBytes).toBe(50);
    expect(s.rec.data.get(id)).toBe(100);
    s.core.finish(id, () => {});
    pump(c.core, s.core);
    // The client answered STOP_SENDING with RESET_STREAM: the stream is gone and a new one may open.
    expect(s.core.streamCount).toBe(0);
    expect(c.core.openStream(true)).toBe(4);
  });

  it('samples RTT from PING/PONG with the injected time (RFC 9002 §5.3)', () => {
    const { c, s } = connected();
    c.core.ping(1000);
    const ping = c.core.nextMessage()!;
    s.core.receive(ping, 1010);
    c.core.receive(s.core.nextMessage()!, 1040);
    expect(c.core.stats.smoothedRtt).toBe(40);
    expect(c.core.stats.rttVariation).toBe(20);
    c.core.ping(2000);
    s.core.receive(c.core.nextMessage()!, 2000);
    c.core.receive(s.core.nextMessage()!, 2080);
    expect(c.core.stats.smoothedRtt).toBe(0.875 * 40 + 0.125 * 80);
    expect(c.core.stats.minRtt).toBe(40);
  });

  it('uses the smaller of both datagram limits and refuses larger datagrams before they are queued', () => {
    const { c, s } = connected({ maxDatagramSize: 500 });
    expect(c.core.maxDatagramSize).toBe(500);
    expect(c.core.sendDatagram(new Uint8Array(501))).toBe('too-large');
    expect(c.core.sendDatagram(new Uint8Array(500))).toBeUndefined();
    pump(c.core, s.core);
    expect(s.rec.datagrams.map((d) => d.length)).toEqual([500]);
  });

  it('sends a lone datagram as its own frame, and batches it with whatever else is pending', () => {
    const { c, s } = connected();
    const before = c.core.stats.messagesSent;
    expect(c.core.sendDatagram(new Uint8Array([7, 8, 9]))).toBeUndefined();
    const lone = c.core.nextMessage()!;
    expect(decodeFrames(lone)).toEqual([{ type: 'datagram', data: new Uint8Array([7, 8, 9]) }]);
    expect(c.core.nextMessage()).toBeUndefined();
    expect(c.core.queuedDatagramBytes).toBe(0);
    expect(c.core.stats.datagrams.sent).toBe(1);
    // A PING and two datagrams pending at once leave in one message, control first.
    c.core.ping(0);
    c.core.sendDatagram(new Uint8Array([1]));
    c.core.sendDatagram(new Uint8Array([2]));
    const batched = c.core.nextMessage()!;
    expect(decodeFrames(batched).map((f) => f.type)).toEqual(['ping', 'datagram', 'datagram']);
    expect(c.core.nextMessage()).toBeUndefined();
    expect(c.core.stats.messagesSent - before).toBe(2);
    expect(c.core.stats.bytesSent).toBeGreaterThan(lone.length + batched.length);
    s.core.receive(lone, 0);
    s.core.receive(batched, 0);
    expect(s.rec.datagrams.map((d) => Array.from(d))).toEqual([[7, 8, 9], [1], [2]]);
  });

  it('fails writes queued when the session closes and sends nothing after CLOSE_SESSION', () => {
    const { c } = connected({ initialMaxStreamData: 10 });
    const id = c.core.openStream(true)!;
    let error: Error | undefined;
    c.core.write(id, new Uint8Array(100), (e) => {
      error = e;
    });
    c.core.close(5, 'done');
    const last = decodeFrames(c.core.nextMessage()!);
    expect(last.map((f) => f.type)).toEqual(['close']);
    expect(c.core.nextMessage()).toBeUndefined();
    expect(error).toBeInstanceOf(QuiverTransportError);
    expect(error).toMatchObject({ message: 'session closed', source: 'session', streamErrorCode: null });
  });
});

describe('SessionCore with random input', () => {
  it('answers any byte sequence with success or a ProtocolViolationError, never another exception', async () => {
    const { createRng, ProtocolViolationError } = await import('@quiver/transport');
    const { encodeFrames, WsErrorCode, wsErrorName } = await import('../src/index.js');
    const rng = createRng(0x5eed);
    // Valid frames to mutate, so that the fuzzing reaches past the frame type byte.
    const seeds = [
      encodeFrames([{ type: 'stream', streamId: 0, data: new Uint8Array(20), fin: false }]),
      encodeFrames([{ type: 'stream', streamId: 2, data: new Uint8Array(5), fin: true }]),
      encodeFrames([{ type: 'max-stream-data', streamId: 1, max: 1000 }]),
      encodeFrames([{ type: 'reset-stream', streamId: 0, code: 5 }]),
      encodeFrames([{ type: 'stop-sending', streamId: 0, code: 5 }]),
      encodeFrames([{ type: 'datagram', data: new Uint8Array(30) }]),
      encodeFrames([{ type: 'close', code: 1, reason: 'x' }]),
      encodeFrames([{ type: 'ping', id: 3 }]),
    ];
    let violations = 0;
    const codes = new Set<number>();
    for (let i = 0; i < 3000; i++) {
      const { s } = connected({ initialMaxStreamData: 64, initialMaxStreamsBidi: 3 });
      const parts: number[] = [];
      for (let k = 1 + rng.int(3); k > 0; k--) parts.push(...seeds[rng.int(seeds.length)]);
      const msg = Uint8Array.from(parts);
      for (let m = rng.int(4); m > 0; m--) msg[rng.int(msg.length)] = rng.int(256);
      const cut = rng.int(4) === 0 ? msg.subarray(0, rng.int(msg.length) + 1) : msg;
      try {
        s.core.receive(cut, 0);
        while (s.core.nextMessage()) {}
      } catch (e) {
        if (!(e instanceof ProtocolViolationError)) throw e;
        // A documented framing code, named in the error's kind.
        expect(Object.values(WsErrorCode)).toContain(e.code);
        expect(e.kind).toBe(wsErrorName(e.code));
        codes.add(e.code);
        violations++;
      }
    }
    // Both outcomes occur: the mutations are neither all harmless nor all fatal.
    expect(violations).toBeGreaterThan(100);
    expect(violations).toBeLessThan(3000);
    // The run is seeded, so the set of codes it trips is exact: six distinct checks, not one catch-all code.
    expect([...codes].sort((a, b) => a - b)).toEqual([
      WsErrorCode.FRAME_ENCODING_ERROR,
      WsErrorCode.FRAME_TYPE_ERROR,
      WsErrorCode.STREAM_STATE_ERROR,
      WsErrorCode.STREAM_LIMIT_ERROR,
      WsErrorCode.FRAME_SIZE_ERROR,
      WsErrorCode.SETTINGS_ERROR,
    ]);
  });
});
