/** The sans-IO HTTP/3 + WebTransport core: no sockets, no timers, runs in Node and in browsers. */
export type {
  H3Connection,
  H3ConnectionOptions,
  H3Event,
  H3Limits,
  H3Stats,
  HeaderField,
  QuicCommand,
  Role,
} from './api.js';
export {
  CapsuleType,
  FrameType,
  H3ErrorCode,
  SettingId,
  StreamType,
  WT_BIDI_SIGNAL,
  WT_UNI_STREAM_TYPE,
  httpCodeToWebTransport,
  isReservedCodepoint,
  webTransportCodeToHttp,
} from './codes.js';
export { BUFFERED_STREAM_OVERHEAD, DEFAULT_H3_LIMITS, createH3Connection } from './connection.js';
export {
  ByteReader,
  ByteWriter,
  NeedMoreData,
  VarintRangeError,
  decodeVarint,
  decodeVarintBig,
  encodeVarint,
  varintLength,
} from './varint.js';
export {
  FieldSectionTooLargeError,
  QpackDecompressionError,
  STATIC_TABLE,
  decodeFieldSection,
  encodeFieldSection,
  huffmanDecode,
  huffmanEncode,
} from './qpack/index.js';
