/** The sans-IO numbering and acknowledgement core, driven by hand: no sockets, no timers. */
import { ProtocolViolationError } from '@quiver/transport';
import { describe, expect, it } from 'vitest';
import { decodeTunnelFrames, HttpErrorCode, TunnelCore } from '../src/index.js';

const limits = { maxMessageSize: 1024, receiveWindow: 4, receiveWindowBytes: 64, maxUnackedBytes: 100 };
const msg = (n: number, len = 1) => new Uint8Array(len).fill(n);
/** Moves one batch from `a` to `b`: what b delivers, in order. */
const carry = (a: TunnelCore, b: TunnelCore, carrier: number, max = 1 << 20) =>
  b.receive(decodeTunnelFrames(a.takeBatch(max, carrier, true).slice(), 1024)).messages.map((m) => m[0]);

describe('TunnelCore', () => {
  it('sends again what a lost carrier held; the receiver delivers once, in order, and counts duplicates', () => {
    const a = new TunnelCore(limits);
    const b = new TunnelCore(limits);
    for (let i = 1; i <= 3; i++) a.queue(msg(i));
    const lost = a.takeBatch(1 << 20, 1, true).slice(); // POST 1: messages 1-3, lost on the way
    a.queue(msg(4));
    expect(carry(a, b, 2)).toEqual([]); // POST 2: message 4, held behind the gap
    expect(b.stats.reordered).toBe(1);
    a.carrierLost(1);
    expect(carry(a, b, 3)).toEqual([1, 2, 3, 4]);
    // The lost POST turns up after all (a proxy delivered it late): nothing is delivered twice.
    expect(b.receive(decodeTunnelFrames(lost, 1024)).messages).toEqual([]);
    expect(b.stats.duplicates).toBe(3);
    expect(a.stats.retransmitted).toBe(3);
    // b's acknowledgement frees a's buffer.
    expect(a.bufferedBytes).toBe(4);
    a.receive(decodeTunnelFrames(b.takeAck().slice(), 1024));
    expect(a.bufferedBytes).toBe(0);
  });

  it('counts as queued only what no carrier took: bytes in flight wait for their acknowledgement, not to leave', () => {
    const a = new TunnelCore(limits);
    a.queue(msg(1, 10));
    a.queue(msg(2, 20));
    expect([a.queuedBytes, a.bufferedBytes]).toEqual([30, 30]);
    a.takeBatch(1 << 20, 1, false);
    a.queue(msg(3, 5));
    expect([a.queuedBytes, a.bufferedBytes]).toEqual([5, 35]);
    a.carrierLost(1); // back in the queue until a carrier takes them again
    expect([a.queuedBytes, a.bufferedBytes]).toEqual([35, 35]);
    a.takeBatch(1 << 20, 2, false);
    expect([a.queuedBytes, a.bufferedBytes]).toEqual([0, 35]);
    a.onAck(1);
    expect([a.queuedBytes, a.bufferedBytes]).toEqual([0, 25]);
    a.resendAll();
    expect([a.queuedBytes, a.bufferedBytes]).toEqual([25, 25]);
    a.onAck(3); // acknowledged before a carrier took them again
    expect([a.queuedBytes, a.bufferedBytes]).toEqual([0, 0]);
  });

  it('resends everything unacknowledged on a new event stream', () => {
    const a = new TunnelCore(limits);
    const b = new TunnelCore(limits);
    for (let i = 1; i <= 3; i++) a.queue(msg(i));
    expect(carry(a, b, 1)).toEqual([1, 2, 3]);
    a.onAck(1); // the reconnecting client names message 1 as its last
    a.resendAll();
    expect(carry(a, b, 2)).toEqual([]);
    expect(b.stats.duplicates).toBe(2);
  });

  it('refuses sequence numbers beyond the window, held bytes beyond their bound, acks of unsent messages', () => {
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(ProtocolViolationError);
        return (e as ProtocolViolationError).code;
      }
      return undefined;
    };
    const b = new TunnelCore(limits);
    expect(code(() => b.receive([{ type: 'data', seq: 5, data: msg(0) }]))).toBe(
      HttpErrorCode.SEQUENCE_ERROR,
    );
    const c = new TunnelCore(limits);
    expect(code(() => c.receive([{ type: 'data', seq: 2, data: msg(0, 65) }]))).toBe(
      HttpErrorCode.BUFFER_LIMIT,
    );
    expect(code(() => c.onAck(1))).toBe(HttpErrorCode.SEQUENCE_ERROR);
    const d = new TunnelCore(limits);
    d.queue(msg(0, 100));
    expect(code(() => d.queue(msg(0, 1)))).toBe(HttpErrorCode.BUFFER_LIMIT);
  });

  it('decodes with work linear in the input: a length beyond the batch is refused before allocation', () => {
    const huge = new Uint8Array([0x01, 0x01, 0x80 | 0x3f, 0xff, 0xff, 0xff]); // DATA of ~1 GiB
    expect(() => decodeTunnelFrames(huge, 1 << 30)).toThrow(ProtocolViolationError);
    expect(() => decodeTunnelFrames(new Uint8Array([0x01, 0x01, 0x44, 0x01]), 1024)).toThrow(
      /BATCH_TOO_LARGE/,
    );
  });
});
