/**
 * The connection's own and the peer's control stream (RFC 9114 §6.2.1, §7.2): our SETTINGS and GOAWAY, the peer's
 * SETTINGS (and with them which WebTransport draft is spoken), GOAWAY, MAX_PUSH_ID and CANCEL_PUSH; and the peer's
 * QPACK encoder and decoder streams, which carry nothing valid while no dynamic table is used (RFC 9204 §4.2).
 */

import type { H3ConnectionOptions } from './api.js';
import { FrameType, H3ErrorCode, SettingId, StreamType } from './codes.js';
import { bufferWithinLimit, type Draft, type H3Context, type InStream, otherFrame } from './context.js';
import {
  decodeSettings,
  decodeSingleVarint,
  encodeFrame,
  encodeGoaway,
  encodeSettings,
  type FrameAction,
  type FrameItem,
  FrameParser,
} from './frames.js';
import { createRandom, greaseCodepoint } from './random.js';
import { concatBytes, encodeVarint } from './varint.js';

/** What we advertise in the current draft's WT_MAX_SESSIONS settings (see `start()`). */
export const WT_MAX_SESSIONS_ADVERTISED = 1n;

/** The control and QPACK streams of one connection. */
export class ControlStreams {
  readonly random: () => number;
  readonly extraSettings: ReadonlyArray<readonly [bigint, bigint]>;
  started = false;
  controlStreamId = -1;
  ownCriticalStreams = new Set<number>();
  peerSettings: Map<bigint, bigint> | undefined;
  draft: Draft | undefined;
  goawaySentId: number | undefined;
  goawayReceivedId: bigint | undefined;
  private maxPushIdReceived: bigint | undefined;

  constructor(
    private readonly c: H3Context,
    options: H3ConnectionOptions,
  ) {
    this.random = createRandom(options.seed ?? 0x9e3779b9);
    this.extraSettings = options.extraSettings ?? [];
  }

  start(): void {
    if (this.started) throw new Error('start() called twice');
    this.started = true;
    const settings: Array<readonly [bigint, bigint]> = [
      // RFC 9204 §5: no dynamic table and no blocked streams, so QPACK needs no state across sections.
      [SettingId.QPACK_MAX_TABLE_CAPACITY, 0n],
      [SettingId.QPACK_BLOCKED_STREAMS, 0n],
      [SettingId.MAX_FIELD_SECTION_SIZE, BigInt(this.c.limits.maxFieldSectionSize)],
    ];
    // RFC 9220 §3: only a server advertises that it accepts extended CONNECT.
    if (this.c.role === 'server') settings.push([SettingId.ENABLE_CONNECT_PROTOCOL, 1n]);
    settings.push(
      [SettingId.H3_DATAGRAM, 1n],
      [SettingId.H3_DATAGRAM_DRAFT04, 1n],
      [SettingId.ENABLE_WEBTRANSPORT_DRAFT02, 1n],
      // Current draft §5.1: a value above 1 on both sides turns on its session flow control (WT_MAX_STREAMS,
      // WT_MAX_DATA capsules), which this core does not implement; 1 keeps it off. Browsers speak draft-02, which
      // ignores these settings, so `maxSessions` still applies to them.
      [SettingId.WT_MAX_SESSIONS, WT_MAX_SESSIONS_ADVERTISED],
      [SettingId.WT_MAX_SESSIONS_DRAFT07, WT_MAX_SESSIONS_ADVERTISED],
      [greaseCodepoint(this.random), BigInt(Math.floor(this.random() * 0x100000000))],
    );
    const ids = new Set(settings.map((s) => s[0]));
    for (const [id, value] of this.extraSettings) {
      if (ids.has(id)) throw new RangeError(`extra setting 0x${id.toString(16)} duplicates a built-in one`);
      ids.add(id);
      settings.push([id, value]);
    }
    this.controlStreamId = this.c.allocUni();
    // RFC 9114 §6.2.1: stream type, then SETTINGS as the first frame; then a reserved frame type (§7.2.8) so
    // peers that choke on unknown frames are found early.
    const grease = encodeFrame(greaseCodepoint(this.random), new Uint8Array(0));
    this.c.write(
      this.controlStreamId,
      concatBytes([encodeVarint(StreamType.CONTROL), encodeSettings(settings), grease]),
    );
    const encoder = this.c.allocUni();
    const decoder = this.c.allocUni();
    // RFC 9204 §4.2: the streams carry nothing while the peer's table capacity is unused by us.
    this.c.write(encoder, encodeVarint(StreamType.QPACK_ENCODER));
    this.c.write(decoder, encodeVarint(StreamType.QPACK_DECODER));
    this.ownCriticalStreams = new Set([this.controlStreamId, encoder, decoder]);
  }

  /** Concurrent sessions allowed: `maxSessions`, or what we advertised when the current draft is spoken. */
  sessionLimit(): number {
    return this.draft === 'current'
      ? Math.min(this.c.limits.maxSessions, Number(WT_MAX_SESSIONS_ADVERTISED))
      : this.c.limits.maxSessions;
  }

  newControlParser(): FrameParser {
    let first = true;
    return new FrameParser((type, length): FrameAction => {
      // RFC 9114 §6.2.1: the first frame must be SETTINGS, even before an unknown or reserved frame; checked at
      // its header so a skipped frame cannot slip in first.
      if (first && type !== FrameType.SETTINGS) {
        return {
          kind: 'error',
          code: H3ErrorCode.H3_MISSING_SETTINGS,
          reason: `first control frame is 0x${type.toString(16)} (RFC 9114 §6.2.1)`,
        };
      }
      first = false;
      switch (type) {
        case FrameType.SETTINGS:
          return bufferWithinLimit('SETTINGS', length, this.c.limits.maxFramePayload);
        case FrameType.GOAWAY:
        case FrameType.MAX_PUSH_ID:
        case FrameType.CANCEL_PUSH:
          // §7.2.3, §7.2.6, §7.2.7: exactly one varint, at most 8 bytes.
          if (length > 8)
            return { kind: 'error', code: H3ErrorCode.H3_FRAME_ERROR, reason: 'oversized control frame' };
          return { kind: 'buffer' };
        case FrameType.DATA:
        case FrameType.HEADERS:
        case FrameType.PUSH_PROMISE:
          return {
            kind: 'error',
            code: H3ErrorCode.H3_FRAME_UNEXPECTED,
            reason: `frame 0x${type.toString(16)} on the control stream (RFC 9114 §7.2)`,
          };
        case FrameType.WT_STREAM:
          return {
            kind: 'error',
            code: H3ErrorCode.H3_FRAME_ERROR,
            reason: 'WT_STREAM on the control stream (draft §4.3)',
          };
        default:
          return otherFrame(type);
      }
    });
  }

  controlInput(s: Extract<InStream, { kind: 'control' }>, data: Uint8Array, fin: boolean): void {
    const items: FrameItem[] = [];
    s.parser.push(data, items);
    for (const item of items) {
      if (this.c.failed) return;
      if (item.kind === 'error') {
        this.c.connectionError(item.code, item.reason);
        return;
      }
      if (item.kind !== 'frame') continue;
      if (!s.settingsSeen) {
        if (item.type !== FrameType.SETTINGS) {
          this.c.connectionError(
            H3ErrorCode.H3_MISSING_SETTINGS,
            'first control frame is not SETTINGS (RFC 9114 §6.2.1)',
          );
          return;
        }
        s.settingsSeen = true;
        this.onSettings(item.payload);
        continue;
      }
      this.onControlFrame(item.type, item.payload);
    }
    if (fin && !this.c.failed) {
      this.c.connectionError(
        H3ErrorCode.H3_CLOSED_CRITICAL_STREAM,
        'control stream closed (RFC 9114 §6.2.1)',
      );
    }
  }

  private onControlFrame(type: bigint, payload: Uint8Array): void {
    switch (type) {
      case FrameType.SETTINGS:
        this.c.connectionError(H3ErrorCode.H3_FRAME_UNEXPECTED, 'second SETTINGS frame (RFC 9114 §7.2.4)');
        return;
      case FrameType.GOAWAY: {
        const id = decodeSingleVarint(payload, 'GOAWAY');
        if (typeof id !== 'bigint') {
          this.c.connectionError(id.code, id.reason);
          return;
        }
        this.onGoaway(id);
        return;
      }
      case FrameType.MAX_PUSH_ID: {
        const id = decodeSingleVarint(payload, 'MAX_PUSH_ID');
        if (typeof id !== 'bigint') {
          this.c.connectionError(id.code, id.reason);
          return;
        }
        // §7.2.7: only clients send it, and it never decreases.
        if (this.c.role === 'client') {
          this.c.connectionError(
            H3ErrorCode.H3_FRAME_UNEXPECTED,
            'MAX_PUSH_ID from a server (RFC 9114 §7.2.7)',
          );
          return;
        }
        if (this.maxPushIdReceived !== undefined && id < this.maxPushIdReceived) {
          this.c.connectionError(H3ErrorCode.H3_ID_ERROR, 'MAX_PUSH_ID decreased (RFC 9114 §7.2.7)');
          return;
        }
        this.maxPushIdReceived = id;
        return;
      }
      case FrameType.CANCEL_PUSH: {
        const id = decodeSingleVarint(payload, 'CANCEL_PUSH');
        if (typeof id !== 'bigint') {
          this.c.connectionError(id.code, id.reason);
          return;
        }
        // §7.2.3: we never promise pushes and never allow them (no MAX_PUSH_ID), so every push id is unknown.
        this.c.connectionError(
          H3ErrorCode.H3_ID_ERROR,
          `CANCEL_PUSH for push ${id} never allowed (RFC 9114 §7.2.3)`,
        );
        return;
      }
    }
  }

  private onSettings(payload: Uint8Array): void {
    const settings = decodeSettings(payload);
    if (!(settings instanceof Map)) {
      this.c.connectionError(settings.code, settings.reason);
      return;
    }
    for (const id of [SettingId.ENABLE_CONNECT_PROTOCOL, SettingId.H3_DATAGRAM]) {
      const v = settings.get(id);
      // RFC 9220 §3, RFC 9297 §2.1.1: these are booleans; other values are H3_SETTINGS_ERROR.
      if (v !== undefined && v > 1n) {
        this.c.connectionError(H3ErrorCode.H3_SETTINGS_ERROR, `setting 0x${id.toString(16)} = ${v}`);
        return;
      }
    }
    this.peerSettings = settings;
    // Negotiation (draft "Negotiating the Draft Version"): browsers speak draft-02, identified by its own setting;
    // otherwise a WT_MAX_SESSIONS setting (either code point) > 0 selects the current draft.
    let draft: Draft = 'none';
    if (settings.get(SettingId.ENABLE_WEBTRANSPORT_DRAFT02) === 1n) draft = 'draft02';
    else if (
      (settings.get(SettingId.WT_MAX_SESSIONS) ?? 0n) > 0n ||
      (settings.get(SettingId.WT_MAX_SESSIONS_DRAFT07) ?? 0n) > 0n
    ) {
      draft = 'current';
    }
    this.draft = draft;
    this.c.events.push({ type: 'settings', settings, webTransportDraft: draft });
    if (this.c.role === 'server') {
      for (const session of [...this.c.sessions.values()]) {
        if (session.state === 'awaiting-settings') this.c.lifecycle.offerSession(session);
      }
    } else {
      for (const session of [...this.c.sessions.values()]) {
        if (session.heldRequest) this.c.lifecycle.sendHeldRequest(session);
      }
    }
  }

  private onGoaway(id: bigint): void {
    // §5.2: a server's GOAWAY carries a client-initiated bidi stream id; a client's a push id. Never increasing.
    if (this.c.role === 'client' && id % 4n !== 0n) {
      this.c.connectionError(
        H3ErrorCode.H3_ID_ERROR,
        `GOAWAY id ${id} is not a request stream (RFC 9114 §5.2)`,
      );
      return;
    }
    if (this.goawayReceivedId !== undefined && id > this.goawayReceivedId) {
      this.c.connectionError(H3ErrorCode.H3_ID_ERROR, 'GOAWAY id increased (RFC 9114 §5.2)');
      return;
    }
    this.goawayReceivedId = id;
    this.c.events.push({ type: 'goaway', id });
    if (this.c.role === 'client') {
      // Requests at or above the id were not and will not be processed: they may be retried elsewhere.
      for (const session of [...this.c.sessions.values()]) {
        if (session.state === 'connecting' && BigInt(session.id) >= id) {
          this.c.lifecycle.failConnecting(
            session,
            0,
            'GOAWAY: request not processed (RFC 9114 §5.2)',
            H3ErrorCode.H3_REQUEST_CANCELLED,
          );
        }
      }
    }
  }

  encoderInput(data: Uint8Array, fin: boolean): void {
    // RFC 9204 §4.3 with our capacity 0: only "Set Dynamic Table Capacity" to 0 (0b001 + 5-bit 0 = 0x20) is
    // valid; every insert or duplicate would exceed the table (§4.3.1: QPACK_ENCODER_STREAM_ERROR).
    for (const b of data) {
      if (b !== 0x20) {
        this.c.connectionError(
          H3ErrorCode.QPACK_ENCODER_STREAM_ERROR,
          `encoder instruction 0x${b.toString(16)} with table capacity 0 (RFC 9204 §4.3)`,
        );
        return;
      }
    }
    if (fin)
      this.c.connectionError(
        H3ErrorCode.H3_CLOSED_CRITICAL_STREAM,
        'QPACK encoder stream closed (RFC 9204 §4.2)',
      );
  }

  decoderInput(s: Extract<InStream, { kind: 'qpack-decoder' }>, data: Uint8Array, fin: boolean): void {
    // RFC 9204 §4.4: we never reference the dynamic table, so Section Acknowledgment and Insert Count Increment
    // are errors (§4.4.1, §4.4.3); Stream Cancellation ('01' + 6-bit prefix stream id) is fine and skipped.
    for (const b of data) {
      if (s.continuation >= 0) {
        if (b & 0x80) {
          if (++s.continuation > 8) {
            this.c.connectionError(
              H3ErrorCode.QPACK_DECODER_STREAM_ERROR,
              'overlong integer (RFC 9204 §4.1.1)',
            );
            return;
          }
        } else s.continuation = -1;
        continue;
      }
      if ((b & 0xc0) === 0x40) {
        if ((b & 0x3f) === 0x3f) s.continuation = 0;
        continue;
      }
      this.c.connectionError(
        H3ErrorCode.QPACK_DECODER_STREAM_ERROR,
        `decoder instruction 0x${b.toString(16)} without dynamic table use (RFC 9204 §4.4)`,
      );
      return;
    }
    if (fin)
      this.c.connectionError(
        H3ErrorCode.H3_CLOSED_CRITICAL_STREAM,
        'QPACK decoder stream closed (RFC 9204 §4.2)',
      );
  }

  goaway(): void {
    if (!this.started) throw new Error('goaway() before start()');
    if (this.c.failed) return;
    let id: number;
    if (this.c.role === 'server') {
      // §5.2: the first client bidi stream id we will not process; requests below it still complete.
      id = this.c.inbound.maxPeerBidiSeen < 0 ? 0 : this.c.inbound.maxPeerBidiSeen + 4;
      if (this.goawaySentId !== undefined) id = Math.min(id, this.goawaySentId);
      this.goawaySentId = id;
    } else {
      // §5.2: a client's GOAWAY carries a push id; we allow no pushes.
      id = 0;
    }
    this.c.write(this.controlStreamId, encodeGoaway(id));
  }
}
