/** quiche configuration for WebTransport over HTTP/3: ALPN, TLS material, datagrams, windows and limits. */
import type { Config } from './quiche.js';
import { quiche } from './quiche.js';

/** QUIC transport settings shared by the listener and the client; every field is an explicit limit. */
export interface QuicTransportOptions {
  /** RFC 9000 §10.1 max_idle_timeout in milliseconds. Default 30 000. */
  idleTimeoutMs: number;
  /** initial_max_data (RFC 9000 §18.2). Default 16 MiB. */
  connectionWindowBytes: number;
  /** initial_max_stream_data_* for every stream type. Default 1 MiB. */
  streamWindowBytes: number;
  /** initial_max_streams_bidi: peer-opened bidirectional streams at once. Default 256. */
  maxBidiStreams: number;
  /** initial_max_streams_uni: peer-opened unidirectional streams at once (HTTP/3 needs 3). Default 256. */
  maxUniStreams: number;
  /** quiche's DATAGRAM receive queue (RFC 9221), in datagrams; arrivals beyond it are lost. Default 1024. */
  datagramRecvQueue: number;
  /** quiche's DATAGRAM send queue, in datagrams; sends beyond it count as `congestion` drops. Default 1024. */
  datagramSendQueue: number;
  /**
   * Largest UDP payload we send (RFC 9000 §14, §18.2 max_udp_payload_size), 1200 to 65 527. 1350 fits every
   * common path. quiche 0.18 does no path MTU discovery, so a larger value is only safe on a path known to
   * carry it (loopback: up to 65 527; a LAN with jumbo frames): there it cuts the per-packet cost, which
   * dominates CPU use, by the same factor. The peer's own max_udp_payload_size still caps it. Default 1350.
   */
  maxUdpPayloadSize: number;
  /** Congestion controller: 'cubic', 'reno' or 'bbr'. Default 'cubic'. */
  congestionControl: 'cubic' | 'reno' | 'bbr';
}

/** The defaults of {@link QuicTransportOptions}, each documented there. */
export const defaultQuicTransportOptions: QuicTransportOptions = {
  idleTimeoutMs: 30_000,
  connectionWindowBytes: 16 * 1024 * 1024,
  streamWindowBytes: 1024 * 1024,
  maxBidiStreams: 256,
  maxUniStreams: 256,
  datagramRecvQueue: 1024,
  datagramSendQueue: 1024,
  maxUdpPayloadSize: 1350,
  congestionControl: 'cubic',
};

export interface TlsMaterial {
  /** PEM certificate chain (leaf first). */
  cert?: string | Uint8Array;
  /** PEM private key. */
  key?: string | Uint8Array;
  /** PEM CA certificates to verify the peer against; with none the peer is not verified by TLS. */
  ca?: string | Uint8Array;
  verifyPeer: boolean;
}

const enc = new TextEncoder();
const bytes = (v: string | Uint8Array): Uint8Array => (typeof v === 'string' ? enc.encode(v) : v);

/** RFC 9000 §14.1 / §18.2: no smaller UDP payload is valid; 65 527 is the largest IPv4 UDP payload. */
export const MIN_UDP_PAYLOAD_SIZE = 1200;
export const MAX_UDP_PAYLOAD_SIZE = 65_527;

/**
 * How long a connection whose sessions ended waits for their close to be delivered before its CONNECTION_CLOSE
 * (`closeDeliveryTimeoutMs` of the listener and the client): several round trips and a loss recovery on an
 * Internet path, short enough that a peer that never answers holds nothing for long.
 */
export const DEFAULT_CLOSE_DELIVERY_TIMEOUT_MS = 1_000;
/** @throws RangeError unless `ms` is a finite number, 0 or more (an endless wait would let a peer hold the connection). */
export function checkCloseDeliveryTimeout(ms: number): void {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0)
    throw new RangeError(`closeDeliveryTimeoutMs must be a finite number >= 0, got ${ms}`);
}

/** Throws a RangeError for settings no engine may use. */
export function validateTransportOptions(o: QuicTransportOptions): void {
  if (
    !Number.isInteger(o.maxUdpPayloadSize) ||
    o.maxUdpPayloadSize < MIN_UDP_PAYLOAD_SIZE ||
    o.maxUdpPayloadSize > MAX_UDP_PAYLOAD_SIZE
  ) {
    throw new RangeError(
      `maxUdpPayloadSize must be an integer from ${MIN_UDP_PAYLOAD_SIZE} to ${MAX_UDP_PAYLOAD_SIZE}, got ${o.maxUdpPayloadSize}`,
    );
  }
}

export function buildQuicheConfig(tls: TlsMaterial, o: QuicTransportOptions): Config {
  validateTransportOptions(o);
  const config = quiche.Config.withBoringSslCtx(
    tls.verifyPeer,
    false,
    tls.ca ? bytes(tls.ca) : null,
    tls.key ? [bytes(tls.key)] : null,
    tls.cert ? [bytes(tls.cert)] : null,
    null,
  );
  // RFC 9114 §3.1: HTTP/3 over QUIC is ALPN "h3".
  config.setApplicationProtos(['h3']);
  config.setMaxIdleTimeout(o.idleTimeoutMs);
  config.setMaxRecvUdpPayloadSize(MAX_UDP_PAYLOAD_SIZE);
  config.setMaxSendUdpPayloadSize(o.maxUdpPayloadSize);
  config.setInitialMaxData(o.connectionWindowBytes);
  config.setInitialMaxStreamDataBidiLocal(o.streamWindowBytes);
  config.setInitialMaxStreamDataBidiRemote(o.streamWindowBytes);
  config.setInitialMaxStreamDataUni(o.streamWindowBytes);
  config.setInitialMaxStreamsBidi(o.maxBidiStreams);
  config.setInitialMaxStreamsUni(o.maxUniStreams);
  // Windows may grow (auto-tuning) up to these; keep them bounded by what we advertised times 4.
  config.setMaxStreamWindow(Math.min(quiche.MAX_STREAM_WINDOW, o.streamWindowBytes * 4));
  config.setMaxConnectionWindow(Math.min(quiche.MAX_CONNECTION_WINDOW, o.connectionWindowBytes * 4));
  // RFC 9221 §3: max_datagram_frame_size; Chromium reports maxDatagramSize 0 without it.
  config.enableDgram(true, o.datagramRecvQueue, o.datagramSendQueue);
  // RFC 9000 §9, §18.2 disable_active_migration off: clients move to a new address when theirs is gone
  // (`migration.ts`); each end issues spare connection ids for it once the handshake is done.
  config.setDisableActiveMigration(false);
  config.setCcAlgorithmName(o.congestionControl);
  config.grease(true);
  return config;
}
