/**
 * A UDP socket carrying many QUIC connections, routed by destination connection id (RFC 9000 §5.2).
 *
 * Batching: `node:dgram` delivers every datagram libuv read in one poll phase as separate 'message' events;
 * each is handed to quiche at once, and the connection is flushed (streams read, packets built and sent) once
 * in the following check phase (`setImmediate`), so a burst of packets costs one flush, not one per packet.
 */
import dgram from 'node:dgram';
import type { QuicConnection, QuicTransmitter } from './quic-connection.js';
import type { Host } from './quiche.js';
import { parseDcid, SCID_LEN } from './quiche.js';

export interface EndpointCounters {
  /** UDP datagrams read from the socket, malformed ones included. */
  packetsReceived: number;
  /** UDP datagrams (QUIC packets) handed to the socket. */
  packetsSent: number;
  /** Bytes of the UDP payloads read from the socket. */
  bytesReceived: number;
  /** Bytes of the UDP payloads handed to the socket. */
  bytesSent: number;
  /** Datagrams that could not be QUIC packets (too short, bad header). */
  droppedMalformed: number;
  /** Packets for a connection id we do not know that could not start a connection (RFC 9000 §5.2.2). */
  droppedUnknownConnection: number;
  /** Initial packets refused (e.g. maxConnections reached, unsupported version). */
  droppedRefused: number;
  /** Socket errors and packets the QUIC engine failed to produce; the connection recovers by retransmission. */
  sendErrors: number;
}

export interface EndpointOptions {
  host: string;
  port: number;
  /** SO_RCVBUF and SO_SNDBUF. Loopback bulk transfers lose packets with the default buffers. */
  socketBufferBytes: number;
  /** Connect the socket to this peer (client): saves the per-packet address lookup in `send`. */
  connectTo?: Host;
  /**
   * Room handed to quiche for each packet: at least the configured max_udp_payload_size, else quiche cannot use
   * a larger value (RFC 9000 §14). Default 1500.
   */
  maxPacketBytes?: number;
}

export type AcceptHook = (
  packet: Buffer,
  parsed: NonNullable<ReturnType<typeof parseDcid>>,
  from: Host,
) => QuicConnection | undefined;

function identityLookup(
  address: string,
  _family: unknown,
  cb: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  cb(null, address, address.includes(':') ? 6 : 4);
}

/** Size of the memory slab packets are built in; slices stay alive until `send` completed with them. */
const SLAB_BYTES = 256 * 1024;
const DEFAULT_PACKET_ROOM = 1500;

export class QuicEndpoint implements QuicTransmitter {
  readonly counters: EndpointCounters = {
    packetsReceived: 0,
    packetsSent: 0,
    bytesReceived: 0,
    bytesSent: 0,
    droppedMalformed: 0,
    droppedUnknownConnection: 0,
    droppedRefused: 0,
    sendErrors: 0,
  };
  readonly connections = new Set<QuicConnection>();
  local: Host = { host: '', port: 0 };
  onAccept: AcceptHook | undefined;
  /** Called when a connection was released (closed and unrouted). */
  onRelease: ((conn: QuicConnection) => void) | undefined;
  private readonly routes = new Map<string, QuicConnection>();
  private dirty = new Set<QuicConnection>();
  /** The other half of a double buffer for `dirty`: a flush swaps them instead of copying the set. */
  private flushing = new Set<QuicConnection>();
  private scheduled: NodeJS.Immediate | undefined;
  private slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
  private slabOff = 0;
  /** Where the next packet is built; kept while sends complete synchronously (see sendPackets). */
  private out: Buffer | undefined;
  private closedP: Promise<void> | undefined;
  private connected = false;
  private readonly packetRoom: number;

  /** A send failed on the socket (e.g. EINVAL once its source address was removed); the error is counted first. */
  onSendError: ((error: NodeJS.ErrnoException) => void) | undefined;

  private constructor(
    public socket: dgram.Socket,
    maxPacketBytes: number,
    private readonly opts: EndpointOptions,
  ) {
    this.packetRoom = Math.max(DEFAULT_PACKET_ROOM, maxPacketBytes);
  }

  static async bind(opts: EndpointOptions): Promise<QuicEndpoint> {
    const ep = new QuicEndpoint(
      await QuicEndpoint.openSocket(opts),
      opts.maxPacketBytes ?? DEFAULT_PACKET_ROOM,
      opts,
    );
    ep.adopt(ep.socket);
    return ep;
  }

  /**
   * Client: moves to a fresh socket on a fresh port, connected to the same peer, so that the kernel picks the source
   * address of the current route (the old socket stays tied to an address that may be gone). Returns the new local
   * address; the caller migrates its connections to it (RFC 9000 §9.2).
   */
  async rebind(): Promise<Host> {
    const fresh = await QuicEndpoint.openSocket({ ...this.opts, port: 0 });
    const old = this.socket;
    this.socket = fresh;
    this.out = undefined;
    this.adopt(fresh);
    old.removeAllListeners('message');
    old.close();
    return this.local;
  }

  private adopt(socket: dgram.Socket): void {
    this.connected = this.opts.connectTo !== undefined;
    // Errors after bind (e.g. ICMP port unreachable on a connected socket) must not crash the process.
    socket.on('error', (e: NodeJS.ErrnoException) => {
      this.counters.sendErrors++;
      if (socket === this.socket) this.onSendError?.(e);
    });
    const a = socket.address();
    this.local = { host: a.address, port: a.port };
    socket.on('message', this.onMessage);
  }

  private static async openSocket(opts: EndpointOptions): Promise<dgram.Socket> {
    const v6 = opts.host.includes(':');
    const socket = dgram.createSocket({
      type: v6 ? 'udp6' : 'udp4',
      recvBufferSize: opts.socketBufferBytes,
      sendBufferSize: opts.socketBufferBytes,
      // '::' also accepts IPv4 (mapped addresses) unless the OS forbids dual-stack.
      ipv6Only: false,
      // We only ever send to IP literals (from received packets): an identity lookup saves the per-packet
      // deferral through dns.lookup that node:dgram does for unconnected sends.
      lookup: identityLookup,
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(opts.port, opts.host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    if (opts.connectTo) {
      const to = opts.connectTo;
      try {
        await new Promise<void>((resolve, reject) => {
          socket.once('error', reject);
          // node:dgram hands a failed connect (no route to the peer, e.g. while the network changes) to this
          // callback, not to 'error'; the socket then stays unconnected.
          socket.connect(to.port, to.host, (err?: Error) => {
            socket.off('error', reject);
            if (err) reject(err);
            else resolve();
          });
        });
      } catch (e) {
        socket.close();
        throw e;
      }
    }
    return socket;
  }

  route(key: string, conn: QuicConnection): void {
    this.routes.set(key, conn);
    conn.keys.push(key);
    this.connections.add(conn);
  }

  private readonly onMessage = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
    this.counters.packetsReceived++;
    this.counters.bytesReceived += msg.length;
    // Fast path for the bulk of traffic, 1-RTT short-header packets (RFC 9000 §17.3) to a known connection:
    // route by our fixed-length connection id without building the parse result (its object and DCID view
    // were per-packet garbage).
    let conn: QuicConnection | undefined;
    let parsed: ReturnType<typeof parseDcid>;
    if ((msg[0] & 0x80) === 0 && msg.length > SCID_LEN) {
      conn = this.routes.get(msg.toString('latin1', 1, 1 + SCID_LEN));
    }
    if (!conn) {
      parsed = parseDcid(msg);
      if (!parsed) {
        this.counters.droppedMalformed++;
        return;
      }
      conn = this.routes.get(parsed.key);
    }
    let from: Host;
    if (conn) {
      from = conn.peer;
      if (from.port !== rinfo.port || from.host !== rinfo.address) {
        // RFC 9000 §9: a new peer address (NAT rebinding); quiche validates the path.
        from = { host: rinfo.address, port: rinfo.port };
        conn.peer = from;
      }
    } else {
      from = { host: rinfo.address, port: rinfo.port };
      if (!parsed) {
        this.counters.droppedMalformed++;
        return;
      }
      // RFC 9000 §14.1: a client Initial fills a datagram of at least 1200 bytes; anything else for an unknown
      // connection id is dropped without a reply (no stateless reset: we keep no reset tokens).
      if (!this.onAccept || !parsed.initial || msg.length < 1200) {
        this.counters.droppedUnknownConnection++;
        return;
      }
      conn = this.onAccept(msg, parsed, from);
      if (!conn) {
        this.counters.droppedRefused++;
        return;
      }
      if (!conn.recv(msg, from)) {
        // An Initial quiche cannot open (bad token, undecryptable): keep no state for it (RFC 9000 §5.2.2).
        this.counters.droppedMalformed++;
        conn.destroy();
        return;
      }
      this.schedule(conn);
      return;
    }
    conn.recv(msg, from);
    this.schedule(conn);
  };

  schedule(conn: QuicConnection): void {
    this.dirty.add(conn);
    if (!this.scheduled) this.scheduled = setImmediate(this.flushAll);
  }

  private readonly flushAll = (): void => {
    this.scheduled = undefined;
    // A flush may schedule further work (a handler writes): that lands in the next turn, which keeps one
    // turn's work bounded.
    const conns = this.dirty;
    this.dirty = this.flushing;
    this.flushing = conns;
    for (const c of conns) c.flush();
    conns.clear();
  };

  /**
   * Builds every packet quiche has for the connection and sends each (no sendmmsg in node:dgram).
   *
   * node:dgram first tries a synchronous send (uv_udp_try_send) and then keeps no reference to the buffer; only
   * a send that had to be queued (EAGAIN, or earlier sends still queued) holds on to it. So packets are built in
   * the same memory until a send stays queued, and only then does the slab move on: a fresh slab per few
   * packets was external memory for the GC to reclaim, most of a profile's GC time with large packets.
   */
  sendPackets(conn: QuicConnection): void {
    const q = conn.conn;
    for (;;) {
      let out = this.out;
      if (!out) {
        if (this.slab.length - this.slabOff < this.packetRoom) {
          this.slab = Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, this.packetRoom * 8));
          this.slabOff = 0;
        }
        out = this.slab.subarray(this.slabOff, this.slabOff + this.packetRoom);
        this.out = out;
      }
      let r: ReturnType<typeof q.send>;
      try {
        r = q.send(out);
      } catch {
        this.counters.sendErrors++;
        return;
      }
      if (r === null) return;
      const n = r[0];
      const pkt = out.subarray(0, n);
      this.counters.packetsSent++;
      this.counters.bytesSent += n;
      // No callback: with one, node:dgram schedules a nextTick per packet even when the send completed at
      // once. Send errors surface as 'error' events, counted below.
      try {
        if (this.connected) this.socket.send(pkt);
        else this.socket.send(pkt, r[1].to.port, r[1].to.host);
      } catch (e) {
        // node:dgram throws (rather than emitting 'error') on a socket it does not consider connected. A lost
        // packet, counted; QUIC recovers it.
        this.counters.sendErrors++;
        this.onSendError?.(e as NodeJS.ErrnoException);
        this.out = undefined;
        return;
      }
      if (this.socket.getSendQueueCount() > 0) {
        // Queued: libuv still reads these bytes. The slab is never rewritten there, only moved past.
        this.slabOff += (n + 7) & ~7;
        this.out = undefined;
      }
    }
  }

  release(conn: QuicConnection): void {
    for (const k of conn.keys) if (this.routes.get(k) === conn) this.routes.delete(k);
    this.connections.delete(conn);
    this.dirty.delete(conn);
    this.onRelease?.(conn);
  }

  /** Closes the socket; connections must have been closed or destroyed before. */
  close(): Promise<void> {
    if (!this.closedP) {
      for (const c of [...this.connections]) c.destroy();
      if (this.scheduled) clearImmediate(this.scheduled);
      this.scheduled = undefined;
      this.closedP = new Promise<void>((resolve) => {
        this.socket.close(() => resolve());
      });
    }
    return this.closedP;
  }
}
