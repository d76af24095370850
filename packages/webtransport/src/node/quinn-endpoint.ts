/**
 * One endpoint of the quinn engine: a UDP socket and its I/O thread in the native addon, and the JavaScript
 * objects of its connections. Events arrive as one Buffer of records per wake-up of the JS thread (stream chunks,
 * datagrams, stream and connection events of every connection, in order); this class decodes them and calls each
 * connection's handler, then gives each connection that was touched its flush turn (`onFlush`), once.
 */
import type { Host, QuicCloseInfo } from './engine.js';
import { QuinnConnection } from './quinn-connection.js';

/** The addon's functions (native/quinn/src/api.rs). Handles and connection ids are small integers. */
export interface QuinnAddon {
  /** JSON: addon and crate versions, `engineReady`. */
  info(): string;
  /** JSON: `handshakeMs`, `maxDatagramSize`, `serverHalfRtt`; throws when the loopback round fails. */
  selfTest(certPem: string, keyPem: string): string;
  createServer(
    host: string,
    port: number,
    params: Float64Array,
    certPem: string,
    keyPem: string,
    /** The 0.5-RTT stream contents: (u32 little-endian length, bytes) per stream; see `halfRttStreams`. */
    preamble: Uint8Array | null,
    onEvents: (batch: Buffer) => void,
  ): number;
  createClient(
    host: string,
    params: Float64Array,
    caPem: string | null,
    verifyPeer: boolean,
    ipLiteral: boolean,
    onEvents: (batch: Buffer) => void,
  ): number;
  connect(h: number, host: string, port: number, serverName: string): number;
  kick(h: number): void;
  write(h: number, c: number, stream: number, data: Uint8Array, fin: boolean): number;
  resetStream(h: number, c: number, stream: number, code: bigint): void;
  stopSending(h: number, c: number, stream: number, code: bigint): void;
  setPaused(h: number, c: number, stream: number, paused: boolean): void;
  sendDatagram(h: number, c: number, data: Uint8Array): number;
  maxDatagram(h: number, c: number): number;
  /** Bytes free in the connection's outgoing datagram buffer. */
  datagramSpace(h: number, c: number): number;
  /**
   * Writes the smoothed RTT (ms), the congestion window and the datagram buffer's free bytes into `out` (3
   * elements); 1 when written, 0 when the connection is gone. Optional: an addon built before it lacks it.
   */
  pathEstimate?(h: number, c: number, out: Float64Array): number;
  streamsLeft(h: number, c: number, bidi: boolean): number;
  peerCerts(h: number, c: number): Uint8Array[] | null;
  stats(h: number, c: number): string | null;
  remoteAddress(h: number, c: number): string | null;
  close(h: number, c: number, code: number, reason: string, isApp: boolean, abandon: boolean): void;
  destroy(h: number, c: number): void;
  localAddress(h: number): string;
  counters(h: number): string | null;
  closeEndpoint(h: number): void;
  /** Whether the endpoint keeps the Node process alive (it does from creation). */
  holdsProcess(h: number, yes: boolean): void;
}

// Event record types, as in native/quinn/src/engine.rs.
const EV_NEW = 1;
const EV_HALF_RTT = 2;
const EV_CONNECTED = 3;
const EV_DATA = 4;
const EV_RESET = 5;
const EV_STOP = 6;
const EV_DGRAM = 7;
const EV_WRITABLE = 8;
const EV_AVAILABLE = 9;
const EV_CLOSED = 10;
const EV_FINISHED = 11;

export function parseHost(text: string): Host {
  const i = text.lastIndexOf(':');
  let host = text.slice(0, i);
  if (host.startsWith('[')) host = host.slice(1, -1);
  return { host, port: Number(text.slice(i + 1)) };
}

export class QuinnEndpoint {
  handle = -1;
  readonly connections = new Map<number, QuinnConnection>();
  /** Server: a connection arrived; false refuses it. */
  onNew: ((conn: QuinnConnection) => boolean) | undefined;
  /** A connection was closed and forgotten. */
  onRelease: ((conn: QuinnConnection) => void) | undefined;
  /** Events that named a connection we no longer have (it was destroyed while they were in flight). */
  strayEvents = 0;
  /** Connections `onNew` refused. */
  refused = 0;
  private kickScheduled = false;
  private readonly flushQueue = new Set<QuinnConnection>();
  private flushScheduled = false;
  private closedP: Promise<void> | undefined;
  private readonly touched = new Set<QuinnConnection>();

  constructor(
    readonly addon: QuinnAddon,
    readonly isServer: boolean,
    private readonly highWaterMark: number,
    /** Server: what the addon writes on each connection's first unidirectional streams at 0.5-RTT. */
    readonly preamble: readonly Uint8Array[] = [],
    /** The outgoing datagram buffer's size in bytes (the transport parameters' `dgram_send_bytes`). */
    readonly datagramSendBytes = 0,
  ) {}

  /** The out parameter of `addon.pathEstimate`, shared by the endpoint's connections (read right after each call). */
  readonly pathOut = new Float64Array(3);

  get local(): Host {
    return parseHost(this.addon.localAddress(this.handle));
  }

  readonly onEvents = (batch: Buffer): void => {
    const dv = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
    const touched = this.touched;
    let o = 0;
    while (o + 5 <= batch.length) {
      const ty = batch[o];
      const id = dv.getUint32(o + 1, true);
      o += 5;
      let c = this.connections.get(id);
      switch (ty) {
        case EV_NEW: {
          const n = dv.getUint16(o, true);
          const peer = parseHost(batch.toString('latin1', o + 2, o + 2 + n));
          o += 2 + n;
          c = new QuinnConnection(this, id, peer, this.highWaterMark);
          this.connections.set(id, c);
          if (!this.onNew?.(c)) {
            // Refused (maxConnections, closing): RFC 9000 §20.1 CONNECTION_REFUSED, without a closing period.
            c.handler = IGNORE;
            this.refused++;
            this.addon.close(this.handle, id, 0x2, 'refused', false, true);
            c.onClosedEvent({ local: true, isApp: false, code: 0x2, reason: 'refused', timedOut: false });
          }
          continue;
        }
        case EV_HALF_RTT:
        case EV_CONNECTED:
          if (ty === EV_HALF_RTT) {
            // How many bytes of each preamble stream the addon wrote; the glue's identical writes confirm them.
            const n = batch[o];
            if (c && !c.closed) {
              for (let i = 0; i < n && i < this.preamble.length; i++)
                c.presetStream(3 + 4 * i, this.preamble[i].subarray(0, dv.getUint32(o + 1 + 4 * i, true)));
            }
            o += 1 + 4 * n;
          }
          if (c && !c.closed && !c.established && (ty === EV_CONNECTED) !== this.isServer) {
            // Server: the handshake flight is out and 1-RTT keys are ready, so SETTINGS and the stream
            // preambles leave in the 0.5-RTT flight. Client: the handshake completed (RFC 9001 §4.1.1).
            c.established = true;
            c.handler.onEstablished();
          }
          break;
        case EV_DATA: {
          const stream = Number(dv.getBigUint64(o, true));
          const fin = batch[o + 8] === 1;
          const n = dv.getUint32(o + 9, true);
          const at = o + 13;
          o = at + n;
          if (c && !c.closed)
            c.handler.onStreamData(stream, new Uint8Array(batch.buffer, batch.byteOffset + at, n), fin);
          break;
        }
        case EV_RESET:
        case EV_STOP: {
          const stream = Number(dv.getBigUint64(o, true));
          const code = dv.getBigUint64(o + 8, true);
          o += 16;
          if (c && !c.closed) {
            if (ty === EV_RESET) c.handler.onStreamReset(stream, code);
            else c.onStopped(stream, code);
          }
          break;
        }
        case EV_DGRAM: {
          const n = dv.getUint32(o, true);
          const at = o + 4;
          o = at + n;
          if (c && !c.closed) {
            c.counters.datagramsReceived++;
            c.handler.onDatagram(new Uint8Array(batch.buffer, batch.byteOffset + at, n));
          }
          break;
        }
        case EV_WRITABLE: {
          const stream = Number(dv.getBigUint64(o, true));
          o += 8;
          if (c && !c.closed) c.onWritable(stream);
          break;
        }
        case EV_AVAILABLE:
          if (c && !c.closed) c.onAvailable();
          break;
        case EV_FINISHED: {
          const stream = Number(dv.getBigUint64(o, true));
          o += 8;
          if (c && !c.closed) c.handler.onStreamAcked?.(stream);
          break;
        }
        case EV_CLOSED: {
          const local = batch[o] === 1;
          const isApp = batch[o + 1] === 1;
          const timedOut = batch[o + 2] === 1;
          const code = Number(dv.getBigUint64(o + 3, true));
          const n = dv.getUint16(o + 11, true);
          const reason = batch.toString('utf8', o + 13, o + 13 + n);
          o += 13 + n;
          const info: QuicCloseInfo = { local, isApp, code, reason, timedOut };
          if (c) {
            touched.delete(c);
            c.onClosedEvent(info);
          }
          continue;
        }
        default:
          // A record type this code does not know: the rest of the batch cannot be framed.
          o = batch.length;
          continue;
      }
      if (c) touched.add(c);
      else this.strayEvents++;
    }
    for (const t of touched) t.afterBatch();
    touched.clear();
  };

  /** Ask the I/O thread to build and send what was queued, once per JS turn. */
  kickSoon(): void {
    if (this.kickScheduled || this.handle < 0) return;
    this.kickScheduled = true;
    setImmediate(this.kick);
  }

  private readonly kick = (): void => {
    this.kickScheduled = false;
    if (this.handle >= 0 && !this.closedP) this.addon.kick(this.handle);
  };

  /** The glue asked for a flush turn outside an event batch (commands queued from application code). */
  scheduleFlush(c: QuinnConnection): void {
    this.flushQueue.add(c);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(this.flushAll);
  }

  private readonly flushAll = (): void => {
    this.flushScheduled = false;
    const list = [...this.flushQueue];
    this.flushQueue.clear();
    for (const c of list) c.flushJs();
  };

  release(c: QuinnConnection): void {
    if (this.connections.get(c.id) === c) this.connections.delete(c.id);
    this.flushQueue.delete(c);
    this.onRelease?.(c);
  }

  /** Stops the I/O thread (it sends what is queued first), closes the socket, forgets every connection. */
  close(): Promise<void> {
    if (!this.closedP) {
      for (const c of [...this.connections.values()]) c.destroy();
      if (this.handle >= 0) this.addon.closeEndpoint(this.handle);
      this.handle = -1;
      this.closedP = Promise.resolve();
    }
    return this.closedP;
  }
}

const IGNORE = {
  onEstablished() {},
  onStreamData() {},
  onStreamReset() {},
  onStopSending() {},
  onDatagram() {},
  onStreamDrained() {},
  onFlush() {},
  onClosed() {},
};
