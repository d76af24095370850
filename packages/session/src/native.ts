import type {
  ConnectOptions,
  Connector,
  QuiverBidirectionalStream,
  QuiverDatagramDuplexStream,
  QuiverSession,
  TransportStats,
  WebTransportCloseInfo,
} from '@quiver/transport';

/** The subset of a browser's native `WebTransport` the wrapper touches. */
interface NativeWebTransport {
  readonly ready: Promise<void>;
  readonly closed: Promise<WebTransportCloseInfo>;
  close(info?: WebTransportCloseInfo): void;
  createBidirectionalStream(): Promise<QuiverBidirectionalStream>;
  createUnidirectionalStream(): Promise<WritableStream<Uint8Array>>;
  readonly incomingBidirectionalStreams: ReadableStream<QuiverBidirectionalStream>;
  readonly incomingUnidirectionalStreams: ReadableStream<ReadableStream<Uint8Array>>;
  readonly datagrams: {
    readonly readable: ReadableStream<Uint8Array>;
    readonly writable?: WritableStream<Uint8Array>;
    createWritable?(): WritableStream<Uint8Array>;
    readonly maxDatagramSize: number;
    outgoingMaxAge?: number | null;
  };
  getStats?(): Promise<Record<string, unknown>>;
}

/**
 * Turns a browser's native `WebTransport` into a `QuiverSession`, so the session layer runs on it unchanged.
 * Newer browsers replace `datagrams.writable` by `datagrams.createWritable()` (W3C WebTransport §5); both work.
 */
export function wrapNativeWebTransport(wt: NativeWebTransport): QuiverSession {
  let writable: WritableStream<Uint8Array> | undefined;
  const datagrams: QuiverDatagramDuplexStream = {
    get readable() {
      return wt.datagrams.readable;
    },
    get writable() {
      if (!writable)
        writable = wt.datagrams.createWritable ? wt.datagrams.createWritable() : wt.datagrams.writable!;
      return writable;
    },
    get maxDatagramSize() {
      return wt.datagrams.maxDatagramSize;
    },
  };
  // W3C WebTransport §5: where the browser has `outgoingMaxAge`, the session's age limit is handed to it.
  if ('outgoingMaxAge' in wt.datagrams) {
    Object.defineProperty(datagrams, 'outgoingMaxAge', {
      enumerable: true,
      get: () => wt.datagrams.outgoingMaxAge,
      set: (v: number | null) => {
        wt.datagrams.outgoingMaxAge = v;
      },
    });
  }
  const num = (v: unknown) => (typeof v === 'number' ? v : 0);
  return {
    transport: 'webtransport',
    reliability: 'supports-unreliable',
    ready: wt.ready,
    closed: wt.closed,
    close: (info) => wt.close(info),
    createBidirectionalStream: () => wt.createBidirectionalStream(),
    createUnidirectionalStream: () => wt.createUnidirectionalStream(),
    incomingBidirectionalStreams: wt.incomingBidirectionalStreams,
    incomingUnidirectionalStreams: wt.incomingUnidirectionalStreams,
    datagrams,
    async getStats(): Promise<TransportStats> {
      const s = (await wt.getStats?.()) ?? {};
      const d = (s.datagrams ?? {}) as Record<string, unknown>;
      return {
        timestamp: Date.now(),
        smoothedRtt: num(s.smoothedRtt),
        rttVariation: num(s.rttVariation),
        minRtt: num(s.minRtt),
        bytesSent: num(s.bytesSent),
        bytesReceived: num(s.bytesReceived),
        packetsSent: num(s.packetsSent),
        packetsReceived: num(s.packetsReceived),
        packetsLost: num(s.packetsLost),
        datagrams: {
          sent: 0,
          received: 0,
          droppedOutgoing: { expired: num(d.expiredOutgoing), lost: num(d.lostOutgoing) },
          droppedIncoming: { 'receive-queue-full': num(d.droppedIncoming) },
        },
      };
    },
  };
}

/**
 * A connector on the browser's native `WebTransport`. Throws at once where the platform has none, which
 * `connect()` records as `unsupported` and falls back from.
 */
export const nativeWebTransportConnector: Connector = (url: string, options: ConnectOptions = {}) => {
  const Native = (globalThis as { WebTransport?: new (url: string, init?: object) => NativeWebTransport })
    .WebTransport;
  if (typeof Native === 'undefined') throw new Error('WebTransport is not available in this environment');
  const init: Record<string, unknown> = {};
  if (options.serverCertificateHashes) init.serverCertificateHashes = options.serverCertificateHashes;
  const wt = new Native(url, init);
  if (options.connectTimeoutMs !== undefined) {
    const t = setTimeout(
      () => wt.close({ closeCode: 0, reason: 'connect timeout' }),
      options.connectTimeoutMs,
    );
    wt.ready.then(
      () => clearTimeout(t),
      () => clearTimeout(t),
    );
  }
  options.signal?.addEventListener('abort', () => wt.close());
  return wrapNativeWebTransport(wt);
};
