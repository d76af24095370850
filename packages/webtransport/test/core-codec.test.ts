import * as transport from '@quiver/transport';
import { describe, expect, it } from 'vitest';
import * as core from '../src/core/index.js';
import { type FrameItem, FrameParser, decodeSettings, encodeSettings } from '../src/core/frames.js';
import {
  ByteReader,
  ByteWriter,
  createH3Connection,
  decodeVarint,
  H3ErrorCode,
  NeedMoreData,
  SettingId,
} from '../src/index.js';
import { hex, ofType, seededRandom } from './core-harness.js';

// The varint codec's own cases are in packages/transport/test/varint.test.ts (it lives in @quiver/transport).
describe('byte cursors over varints (RFC 9000 §16)', () => {
  it('the core re-exports the one codec of @quiver/transport', () => {
    expect(core.encodeVarint).toBe(transport.encodeVarint);
    expect(core.decodeVarint).toBe(transport.decodeVarint);
    expect(core.decodeVarintBig).toBe(transport.decodeVarintBig);
    expect(core.varintLength).toBe(transport.varintLength);
    expect(core.VarintRangeError).toBe(transport.VarintRangeError);
  });

  it('ByteReader throws NeedMoreData at the end, ByteWriter sizes exactly', () => {
    const w = new ByteWriter().varint(0x2843).uint32(0xdeadbeef).bytes(Uint8Array.of(1, 2));
    const buf = w.finish();
    expect(buf.length).toBe(w.length);
    const r = new ByteReader(buf);
    expect(r.readVarint()).toBe(0x2843);
    expect(r.readUint32()).toBe(0xdeadbeef);
    expect(() => r.readBytes(3)).toThrow(NeedMoreData);
    expect([...r.readBytes(2)]).toEqual([1, 2]);
    expect(() => r.readVarintBig()).toThrow(NeedMoreData);
  });
});

describe('HTTP/3 frames (RFC 9114 §7)', () => {
  /** Chromium 156's control stream: SETTINGS as in the wire notes with a GREASE setting, then a GREASE frame. */
  const CHROMIUM_SETTINGS_PAYLOAD = hex(
    '01 80010000 06 80004000 07 4064 33 01 80ffd277 01 ab603742 01 c000016a0a5efdf3 405a',
  );

  it('parses the SETTINGS payload Chromium sends, byte for byte', () => {
    const settings = decodeSettings(CHROMIUM_SETTINGS_PAYLOAD);
    expect(settings).toBeInstanceOf(Map);
    expect([...(settings as Map<bigint, bigint>)]).toEqual([
      [0x01n, 65536n],
      [0x06n, 16384n],
      [0x07n, 100n],
      [0x33n, 1n],
      [0xffd277n, 1n],
      [0x2b603742n, 1n],
      // The GREASE setting: an 8-byte id of the 0x1f * N + 0x21 form.
      [0x16a0a5efdf3n, 0x5an],
    ]);
    expect((0x16a0a5efdf3n - 0x21n) % 0x1fn).toBe(0n);
  });

  it("a server fed Chromium's control stream byte by byte negotiates draft-02", () => {
    const server = createH3Connection({ role: 'server' });
    server.start();
    const stream = Uint8Array.from([
      0x00,
      0x04,
      CHROMIUM_SETTINGS_PAYLOAD.length,
      ...CHROMIUM_SETTINGS_PAYLOAD,
      // A GREASE frame type 0x537 with 2 bytes of payload.
      0x45,
      0x37,
      0x02,
      0xab,
      0xcd,
    ]);
    for (const b of stream) server.receiveStreamData(2, Uint8Array.of(b), false);
    // Chromium's 1-byte QPACK encoder stream.
    server.receiveStreamData(6, Uint8Array.of(0x02), false);
    const events = server.drainEvents();
    expect(ofType(events, 'connection-error')).toEqual([]);
    const [ev] = ofType(events, 'settings');
    expect(ev.webTransportDraft).toBe('draft02');
    expect(ev.settings.get(SettingId.QPACK_MAX_TABLE_CAPACITY)).toBe(65536n);
  });

  it('our SETTINGS round-trip and every setting id is unique', () => {
    const c = createH3Connection({ role: 'server', seed: 3, extraSettings: [[0x1234n, 5n]] });
    c.start();
    const [w] = c.drainCommands();
    if (w.type !== 'stream-write') throw new Error('expected a write');
    expect(w.streamId).toBe(3);
    expect(w.data[0]).toBe(0x00);
    expect(w.data[1]).toBe(0x04);
    const len = decodeVarint(w.data, 2);
    if (!len) throw new Error('no length');
    const settings = decodeSettings(w.data.subarray(2 + len.length, 2 + len.length + len.value));
    expect(settings).toBeInstanceOf(Map);
    expect((settings as Map<bigint, bigint>).get(0x1234n)).toBe(5n);
    expect(() => createH3Connection({ role: 'server', extraSettings: [[0x33n, 0n]] }).start()).toThrow(
      /duplicates/,
    );
    const encoded = encodeSettings([
      [1n, 2n],
      [0x2b603742n, 1n],
    ]);
    expect(Buffer.from(encoded).toString('hex')).toBe('04070102ab60374201');
  });

  it('the frame parser yields the same frames for every chunking, streams DATA and skips unknown frames', () => {
    const stream = Uint8Array.from([
      ...[0x01, 0x03, 0xa, 0xb, 0xc], // HEADERS
      ...[0x00, 0x05, 1, 2, 3, 4, 5], // DATA
      ...[0x21, 0x02, 9, 9], // reserved frame
      ...[0x00, 0x00], // empty DATA
      ...[0x01, 0x00], // empty HEADERS
    ]);
    const classify = (type: bigint): { kind: 'buffer' | 'stream' | 'skip' } =>
      type === 0x00n ? { kind: 'stream' } : type === 0x01n ? { kind: 'buffer' } : { kind: 'skip' };
    const summarize = (items: FrameItem[]) => {
      const frames: string[] = [];
      const data: number[] = [];
      let ends = 0;
      for (const i of items) {
        if (i.kind === 'frame') frames.push(`${i.type}:${[...i.payload]}`);
        if (i.kind === 'data') {
          data.push(...i.chunk);
          if (i.end) ends++;
        }
      }
      return { frames, data, ends };
    };
    const whole: FrameItem[] = [];
    new FrameParser(classify).push(stream, whole);
    const expected = summarize(whole);
    expect(expected).toEqual({ frames: ['1:10,11,12', '1:'], data: [1, 2, 3, 4, 5], ends: 2 });
    const r = seededRandom(8);
    for (let round = 0; round < 500; round++) {
      const p = new FrameParser(classify);
      const items: FrameItem[] = [];
      for (let off = 0; off < stream.length; ) {
        const n = 1 + Math.floor(r() * 5);
        p.push(stream.slice(off, off + n), items);
        off += n;
      }
      expect(summarize(items)).toEqual(expected);
      expect(p.atFrameBoundary).toBe(true);
    }
  });

  it('the frame parser rejects at the header, before buffering, and then ignores input', () => {
    const p = new FrameParser((_t, length) =>
      length > 10
        ? { kind: 'error', code: H3ErrorCode.H3_EXCESSIVE_LOAD, reason: 'big' }
        : { kind: 'buffer' },
    );
    const items: FrameItem[] = [];
    p.push(Uint8Array.from([0x01, 0x40, 0xff]), items);
    expect(items).toEqual([{ kind: 'error', code: H3ErrorCode.H3_EXCESSIVE_LOAD, reason: 'big' }]);
    p.push(new Uint8Array(100), items);
    expect(items).toHaveLength(1);
  });
});
