/**
 * The seam between the sans-IO HTTP/3 + WebTransport core (driven by {@link WtConnection}) and a QUIC library.
 * The listener and the client only use {@link QuicEngine}; {@link WtConnection} only uses
 * {@link QuicEngineConnection}. The quiche engine (`quiche-engine.ts`) is one implementation; an engine is chosen
 * by name through {@link resolveEngine}.
 */

/** A UDP address. */
/** The path figures a send estimate reads (see `QuicEngineConnection.pathEstimate`). */
export interface PathEstimate {
  smoothedRttMs: number;
  congestionWindow: number;
  /** Bytes per second, 0 when the engine has no measure. */
  deliveryRate: number;
}

export interface Host {
  host: string;
  port: number;
}

export interface QuicCloseInfo {
  /** Whether we closed it (true) or the peer or the idle timer did. */
  local: boolean;
  /** The CONNECTION_CLOSE was an application close (frame type 0x1d, RFC 9000 §19.19). */
  isApp: boolean;
  code: number;
  reason: string;
  timedOut: boolean;
}

/** What an engine connection reports to the HTTP/3 glue, in order, on the event loop. */
export interface QuicConnectionHandler {
  /** The handshake completed (RFC 9001 §4.1.1). */
  onEstablished(): void;
  onStreamData(streamId: number, data: Uint8Array, fin: boolean): void;
  onStreamReset(streamId: number, code: bigint): void;
  onStopSending(streamId: number, code: bigint): void;
  onDatagram(data: Uint8Array): void;
  /** A stream's send queue fell to or below its low-water mark (write backpressure released). */
  onStreamDrained(streamId: number): void;
  /**
   * The peer acknowledged everything we sent on the stream, FIN included (RFC 9000 §3.1 "Data Recvd"), or stopped
   * it. Only engines that track it call this (quinn: `StreamEvent::Finished`; quiche 0.18 cannot tell).
   */
  onStreamAcked?(streamId: number): void;
  /** Called once per batch of input, after it was delivered and before packets are built. */
  onFlush(): void;
  /** The peer's CONNECTION_CLOSE arrived or we closed: no more I/O. Called once. */
  onClosed(info: QuicCloseInfo): void;
}

/** Why a DATAGRAM was not queued (RFC 9221), as the session counts it. */
export type DatagramRefusal = 'congestion' | 'too-large' | 'closed';

/** Path and connection figures for `getStats()` (bytes, bytes/s, milliseconds). */
export interface QuicTransportStats {
  smoothedRttMs: number;
  minRttMs: number;
  rttVariationMs: number;
  bytesSent: number;
  bytesReceived: number;
  packetsSent: number;
  packetsReceived: number;
  packetsLost: number;
  packetsRetransmitted: number;
  congestionWindow: number;
  deliveryRate: number;
}

/** One QUIC connection as the HTTP/3 glue sees it: streams, datagrams, close. No packets. */
export interface QuicEngineConnection {
  /** Set once by the glue before any event is delivered. */
  handler: QuicConnectionHandler;
  readonly closed: boolean;
  /** The peer's current address (it may change with NAT rebinding, RFC 9000 §9). */
  readonly peer: Host;
  /** Queue bytes (and FIN) on a stream; a new local stream id opens that stream (RFC 9000 §2.1). */
  write(streamId: number, data: Uint8Array, fin: boolean): void;
  /** Bytes accepted by `write` and not yet taken by the QUIC library. */
  queuedBytes(streamId: number): number;
  /**
   * True once `write` drops what it is given for the stream: the peer stopped it (RFC 9000 §3.5), the library
   * refused it, or the connection closed. The event that says why (STOP_SENDING, the close) may come later.
   */
  sendRefused(streamId: number): boolean;
  /** Ask for `onStreamDrained` once the stream's queue falls to half its high-water mark. */
  waitDrained(streamId: number): void;
  /** Watch a stream we send on for STOP_SENDING while it is idle. */
  trackSend(streamId: number): void;
  resetStream(streamId: number, code: bigint): void;
  stopSending(streamId: number, code: bigint): void;
  /** Stop (and resume) reading a stream: QUIC flow control then holds the peer back (RFC 9000 §4.1). */
  pauseRead(streamId: number): void;
  resumeRead(streamId: number): void;
  /** Both sides of the stream are done for the glue. */
  forget(streamId: number): void;
  /** `null` when queued, else why not. */
  sendDatagram(data: Uint8Array): DatagramRefusal | null;
  /**
   * Bytes of DATAGRAM frames queued and not yet sent (RFC 9221 §5: they are congestion controlled, so they wait
   * for the congestion window). Optional: an engine without it gives no send estimate beyond RTT inflation.
   */
  datagramQueueBytes?(): number;
  /** The largest DATAGRAM payload the path allows now, 0 when the peer did not enable them (RFC 9221 §3). */
  maxDatagramPayload(): number;
  /** How many more streams of that kind the peer's limit lets us open now (RFC 9000 §4.6). */
  peerStreamsLeft(bidi: boolean): number;
  /** The peer's certificate chain, leaf first (DER), once the handshake completed. */
  peerCertChain(): Uint8Array[] | null;
  stats(): QuicTransportStats | undefined;
  /**
   * What a datagram send estimate needs (smoothed RTT in ms, congestion window, delivery rate), cheaper than
   * `stats()`: asked for every datagram sent. Optional: without it the estimate takes them from `stats()`.
   */
  pathEstimate?(): PathEstimate | undefined;
  /** Ask for a flush soon (commands were queued outside an event). */
  schedule(): void;
  /** CONNECTION_CLOSE (RFC 9000 §10.2); with `abandon` no draining period follows. */
  close(code: number, reason: string, abandon?: boolean, isApp?: boolean): void;
  /** Send what is queued now (a closing listener's last flush). */
  flushNow(): void;
  /** Drop the connection without sending anything. */
  destroy(): void;
}

/** QUIC settings every engine takes; see `QuicTransportOptions` for the meaning and defaults. */
export interface EngineTransportOptions {
  idleTimeoutMs: number;
  connectionWindowBytes: number;
  streamWindowBytes: number;
  maxBidiStreams: number;
  maxUniStreams: number;
  datagramRecvQueue: number;
  datagramSendQueue: number;
  maxUdpPayloadSize: number;
  congestionControl: 'cubic' | 'reno' | 'bbr';
}

export interface EngineServerOptions {
  host: string;
  port: number;
  cert: string | Uint8Array;
  key: string | Uint8Array;
  transport: EngineTransportOptions;
  socketBufferBytes: number;
  /** Bytes queued per stream above which writers wait. */
  streamHighWaterMark: number;
  streamTailHoldMs: number;
  /**
   * What the glue writes first on every connection, on its first unidirectional streams in order (the HTTP/3
   * control stream with SETTINGS, the QPACK streams: RFC 9114 §6.2, RFC 9204 §4.2), identical for all
   * connections of the listener. An engine may send these bytes itself in its 0.5-RTT flight, before the glue's
   * first turn; the glue's own writes of the same bytes then only confirm them (a difference closes the
   * connection with H3_INTERNAL_ERROR). Engines may ignore it.
   */
  halfRttStreams?: readonly Uint8Array[];
  /**
   * A new connection arrives: return false to refuse it (no state is kept). The connection's handler must be
   * set before this returns.
   */
  accept(conn: QuicEngineConnection): boolean;
}

export interface EngineServer {
  readonly address: Host;
  /** Endpoint counters (packets, bytes, drops), engine-specific names allowed. */
  readonly counters: Readonly<Record<string, number>>;
  /** Closes the socket; connections must have been closed or destroyed before. */
  close(): Promise<void>;
}

export interface EngineClientOptions {
  /** Resolved address of the server. */
  remote: Host;
  /** SNI / certificate name, or null for an IP literal. */
  serverName: string | null;
  /** PEM CA certificates; with none (or `verifyPeer` false) TLS does not verify the server. */
  ca?: string | Uint8Array;
  verifyPeer: boolean;
  transport: EngineTransportOptions;
  socketBufferBytes: number;
  streamHighWaterMark: number;
  streamTailHoldMs: number;
}

export interface EngineClientConnection {
  conn: QuicEngineConnection;
  /** Closes the client's socket once the connection is gone. */
  release(): Promise<void>;
}

export interface QuicEngine {
  /** 'quiche' or 'quinn'. */
  readonly name: string;
  listen(o: EngineServerOptions): Promise<EngineServer>;
  /** Opens the connection; its handler must be set in the same turn (events start on a later one). */
  connect(o: EngineClientOptions): Promise<EngineClientConnection>;
}

/** A QUIC implementation the Node adapter can run on: `quiche` (always available) or `quinn` (native addon, when built). */
export type EngineName = 'quiche' | 'quinn';

type EngineLoader = () => Promise<QuicEngine | undefined>;

const loaders: Record<EngineName, EngineLoader> = {
  quiche: async () => (await import('./quiche-engine.js')).quicheEngine,
  // Present only when `npm run build:native` built it.
  quinn: async () => (await import('./quinn-engine.js')).loadQuinnEngine(),
};

const loaded = new Map<EngineName, Promise<QuicEngine | undefined>>();

function load(name: EngineName): Promise<QuicEngine | undefined> {
  let p = loaded.get(name);
  if (!p) {
    p = loaders[name]().catch(() => undefined);
    loaded.set(name, p);
  }
  return p;
}

/**
 * Engines this installation can run, the default first: quinn when `npm run build:native` built it (session
 * ready in 2 round trips, native I/O), then quiche, which is always there (`npm install && npm start` needs no
 * native build).
 */
export async function availableEngines(): Promise<EngineName[]> {
  const out: EngineName[] = [];
  for (const name of ['quinn', 'quiche'] as EngineName[]) if (await load(name)) out.push(name);
  return out;
}

/**
 * The named engine, else the one `QUIVER_QUIC_ENGINE` names, else the default available one. An explicitly
 * named engine that is not available is an error (never a silent fallback).
 */
export async function resolveEngine(name?: EngineName): Promise<QuicEngine> {
  if (name !== undefined) {
    if (!(name in loaders)) throw new TypeError(`unknown QUIC engine "${name}" (quiche or quinn)`);
    const e = await load(name);
    if (!e)
      throw new Error(
        `QUIC engine "${name}" is not available${name === 'quinn' ? ' (build it with `npm run build:native`)' : ''}`,
      );
    return e;
  }
  // An operator (or a bench run comparing engines) may pin the default without touching code.
  const env = process.env.QUIVER_QUIC_ENGINE;
  if (env !== undefined && env !== '') return resolveEngine(env as EngineName);
  const [first] = await availableEngines();
  if (!first) throw new Error('no QUIC engine is available');
  return (await load(first)) as QuicEngine;
}
