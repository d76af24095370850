import { ProtocolViolationError } from '@quiver/transport';
import { describe, expect, it } from 'vitest';
import { ByteReader, ByteWriter, decodeFrames, encodeFrames, type Frame, WsErrorCode } from '../src/index.js';

describe('framing codec', () => {
  it('encodes varints in 1, 2, 4 and 8 bytes (RFC 9000 §16) and reads them back', () => {
    const cases: [number, number[]][] = [
      [0, [0x00]],
      [63, [0x3f]],
      [64, [0x40, 0x40]],
      [16383, [0x7f, 0xff]],
      [16384, [0x80, 0x00, 0x40, 0x00]],
      [494878333, [0x9d, 0x7f, 0x3e, 0x7d]],
      [1073741824, [0xc0, 0, 0, 0, 0x40, 0, 0, 0]],
      [Number.MAX_SAFE_INTEGER, [0xc0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]],
    ];
    for (const [v, bytes] of cases) {
      const w = new ByteWriter(1);
      w.varint(v);
      expect(Array.from(w.finish()), `encode ${v}`).toEqual(bytes);
      expect(new ByteReader(Uint8Array.from(bytes)).varint('v'), `decode ${v}`).toBe(v);
    }
    // RFC 9000 §A.1 example: 0xc2197c5eff14e88c is 151288809941952652, above 2^53 - 1: refused, not rounded.
    const big = Uint8Array.from([0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c]);
    expect(() => new ByteReader(big).varint('v')).toThrow(ProtocolViolationError);
    expect(() => new ByteWriter().varint(-1)).toThrow(RangeError);
  });

  it('round-trips every frame type', () => {
    const frames: Frame[] = [
      {
        type: 'settings',
        settings: new Map([
          [1, 4096],
          [99, 5],
        ]),
      },
      { type: 'ping', id: 7 },
      { type: 'pong', id: 7 },
      { type: 'max-streams', bidi: true, max: 300 },
      { type: 'max-streams', bidi: false, max: 2 },
      { type: 'max-stream-data', streamId: 4, max: 1 << 20 },
      { type: 'reset-stream', streamId: 8, code: 0xffffffff },
      { type: 'stop-sending', streamId: 3, code: 0 },
      { type: 'stream', streamId: 0, data: Uint8Array.from([1, 2, 3]), fin: false },
      { type: 'stream', streamId: 2, data: new Uint8Array(0), fin: true },
      { type: 'datagram', data: Uint8Array.from([9]) },
      { type: 'close', code: 4242, reason: 'bye ✓' },
    ];
    const decoded = decodeFrames(encodeFrames(frames));
    expect(decoded).toEqual(frames);
  });

  it('encodes compactly: a 3-byte STREAM frame header for a small stream id and length', () => {
    const bytes = encodeFrames([{ type: 'stream', streamId: 4, data: Uint8Array.from([0xaa]), fin: true }]);
    expect(Array.from(bytes)).toEqual([0x09, 0x04, 0x01, 0xaa]);
  });

  it('refuses truncated frames, unknown types and bad close reasons with typed errors', () => {
    const code = (bytes: number[]) => {
      try {
        decodeFrames(Uint8Array.from(bytes));
      } catch (e) {
        expect(e).toBeInstanceOf(ProtocolViolationError);
        return (e as ProtocolViolationError).code;
      }
      return undefined;
    };
    expect(code([0x08, 0x00, 0x02, 0x01])).toBe(WsErrorCode.FRAME_ENCODING_ERROR);
    expect(code([0x06, 0x00, 0x00, 0x00])).toBe(WsErrorCode.FRAME_ENCODING_ERROR);
    expect(code([0x40])).toBe(WsErrorCode.FRAME_ENCODING_ERROR);
    expect(code([0x1f])).toBe(WsErrorCode.FRAME_TYPE_ERROR);
    expect(code([0x0b, 0, 0, 0, 0, 0x02, 0xc3, 0x28])).toBe(WsErrorCode.FRAME_ENCODING_ERROR);
    expect(code([0x0b, 0, 0, 0, 0, 0x44, 0x01])).toBe(WsErrorCode.FRAME_SIZE_ERROR);
    expect(code([0x00, 0x04, 0x01, 0x01, 0x01, 0x02])).toBe(WsErrorCode.SETTINGS_ERROR);
    expect(code([0x01, 0x05])).toBeUndefined();
  });
});
