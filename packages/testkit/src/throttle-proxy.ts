/**
 * A deterministic bottleneck on loopback for tests of congestion and path faults: a TCP or UDP relay whose two
 * directions each pass through a serializer of `bytesPerSecond` (a packet or chunk occupies the link for
 * `bytes / rate`) behind a drop-tail (UDP) or back-pressuring (TCP) queue of `queueBytes`, as a capped access link
 * does. It can also black out (nothing passes, nothing is closed) and rebind: the relay's upstream side moves to a
 * new port, as a NAT rebinding or a switch from Wi-Fi to cellular looks to the server (UDP), or every open TCP
 * connection goes silent for good while new ones work.
 */
import dgram from 'node:dgram';
import net from 'node:net';

export interface ThrottledRelayOptions {
  /** Where the relay forwards to. */
  target: { host: string; port: number };
  protocol: 'tcp' | 'udp';
  /** Link rate per direction in bytes per second; 0 = unlimited. Default 0. */
  bytesPerSecond?: number;
  /** Bytes queued per direction (UDP: further packets are dropped; TCP: the sender is paused). Default 64 KiB. */
  queueBytes?: number;
}

export interface ThrottledRelayStats {
  /** Packets (UDP) or chunks (TCP) delivered, per direction. */
  delivered: { up: number; down: number };
  /** UDP packets dropped by the full queue or the blackout, per direction. */
  dropped: { up: number; down: number };
}

export interface ThrottledRelay {
  readonly address: { host: string; port: number };
  readonly stats: Readonly<ThrottledRelayStats>;
  /** Changes the rate of both directions from now on (0 = unlimited). */
  setRate(bytesPerSecond: number): void;
  /** While on, nothing passes: UDP packets are dropped, TCP bytes wait (a dead path, not a closed one). */
  blackout(on: boolean): void;
  /**
   * UDP: later packets reach the target from a new port. TCP: open connections go silent for good. `gapMs` (UDP):
   * for that long before the move, what the target sends is lost while the client's packets still reach it from the
   * old port, as when the client's address was removed (Linux keeps sending from a socket bound to a removed
   * address; the answers have nowhere to go) and the client has not moved yet. Default 0.
   */
  rebind(gapMs?: number): Promise<void>;
  close(): Promise<void>;
}

type Dir = 'up' | 'down';

/** One direction's serializer: FIFO, one item on the link at a time. */
class Pipe {
  private queue: { bytes: number; deliver: () => void }[] = [];
  private queued = 0;
  private busyUntil = 0;
  private timer: NodeJS.Timeout | undefined;
  paused = false;

  constructor(
    private rate: () => number,
    readonly limit: number,
    private readonly onLevel?: (queued: number) => void,
  ) {}

  get queuedBytes(): number {
    return this.queued;
  }

  /** False when the item did not fit (the caller counts the drop). */
  push(bytes: number, deliver: () => void, force = false): boolean {
    if (!force && this.queued + bytes > this.limit) return false;
    this.queue.push({ bytes, deliver });
    this.queued += bytes;
    this.onLevel?.(this.queued);
    this.pump();
    return true;
  }

  pump(): void {
    if (this.timer || this.paused) return;
    const head = this.queue[0];
    if (!head) return;
    const now = performance.now();
    const rate = this.rate();
    const start = Math.max(now, this.busyUntil);
    const end = rate > 0 ? start + (head.bytes * 1000) / rate : start;
    this.busyUntil = end;
    const go = () => {
      this.timer = undefined;
      if (this.paused) {
        this.busyUntil = 0;
        return;
      }
      this.queue.shift();
      this.queued -= head.bytes;
      this.onLevel?.(this.queued);
      head.deliver();
      this.pump();
    };
    if (end - now < 1) go();
    else this.timer = setTimeout(go, end - now);
  }

  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.queue = [];
    this.queued = 0;
  }
}

export async function startThrottledRelay(o: ThrottledRelayOptions): Promise<ThrottledRelay> {
  let rate = o.bytesPerSecond ?? 0;
  const limit = o.queueBytes ?? 64 * 1024;
  const stats: ThrottledRelayStats = { delivered: { up: 0, down: 0 }, dropped: { up: 0, down: 0 } };
  let dark = false;
  const pipes = new Set<Pipe>();
  const pipe = (onLevel?: (q: number) => void) => {
    const p = new Pipe(() => rate, limit, onLevel);
    pipes.add(p);
    return p;
  };
  const setDark = (on: boolean) => {
    dark = on;
    for (const p of pipes) {
      p.paused = on;
      if (!on) p.pump();
    }
  };
  return o.protocol === 'udp'
    ? udpRelay(
        o,
        stats,
        pipe,
        () => dark,
        setDark,
        (r) => {
          rate = r;
        },
      )
    : tcpRelay(
        o,
        stats,
        pipe,
        setDark,
        (r) => {
          rate = r;
        },
        pipes,
      );
}

async function udpRelay(
  o: ThrottledRelayOptions,
  stats: ThrottledRelayStats,
  pipe: () => Pipe,
  isDark: () => boolean,
  setDark: (on: boolean) => void,
  setRate: (r: number) => void,
): Promise<ThrottledRelay> {
  const front = dgram.createSocket('udp4');
  await new Promise<void>((r) => front.bind(0, '127.0.0.1', r));
  const up = pipe();
  const down = pipe();
  /** One upstream socket per client address; rebinding replaces them. */
  const peers = new Map<string, { socket: dgram.Socket; addr: { host: string; port: number } }>();
  const count = (dir: Dir, ok: boolean) => {
    if (ok) stats.delivered[dir]++;
    else stats.dropped[dir]++;
  };
  const upstream = async (key: string, addr: { host: string; port: number }) => {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
    socket.on('message', (msg) => {
      if (isDark() || moving || !down.push(msg.length, () => front.send(msg, addr.port, addr.host)))
        count('down', false);
      else count('down', true);
    });
    const entry = { socket, addr };
    peers.set(key, entry);
    return entry;
  };
  const pending = new Map<string, Promise<{ socket: dgram.Socket }>>();
  /** A rebind with a gap is under way: nothing passes downstream. */
  let moving = false;
  front.on('message', (msg, rinfo) => {
    const key = `${rinfo.address}:${rinfo.port}`;
    let p = pending.get(key);
    if (!p) {
      p = upstream(key, { host: rinfo.address, port: rinfo.port });
      pending.set(key, p);
    }
    if (isDark()) {
      count('up', false);
      return;
    }
    const ok = up.push(msg.length, () => {
      const e = peers.get(key);
      e?.socket.send(msg, o.target.port, o.target.host);
    });
    count('up', ok);
  });
  return {
    address: { host: '127.0.0.1', port: front.address().port },
    stats,
    setRate,
    blackout: setDark,
    async rebind(gapMs = 0) {
      const old = [...peers];
      if (gapMs > 0) {
        moving = true;
        await new Promise((r) => setTimeout(r, gapMs));
        moving = false;
      }
      for (const [key, e] of old) {
        const fresh = await upstream(key, e.addr);
        peers.set(key, fresh);
        pending.set(key, Promise.resolve(fresh));
        e.socket.close();
      }
    },
    async close() {
      up.clear();
      down.clear();
      for (const e of peers.values()) e.socket.close();
      await new Promise<void>((r) => front.close(() => r()));
    },
  };
}

async function tcpRelay(
  o: ThrottledRelayOptions,
  stats: ThrottledRelayStats,
  pipe: (onLevel?: (q: number) => void) => Pipe,
  setDark: (on: boolean) => void,
  setRate: (r: number) => void,
  pipes: Set<Pipe>,
): Promise<ThrottledRelay> {
  const live = new Set<{ a: net.Socket; b: net.Socket; pipes: Pipe[] }>();
  const server = net.createServer((a) => {
    const b = net.connect(o.target.port, o.target.host);
    a.setNoDelay(true);
    b.setNoDelay(true);
    // Back-pressure: a full queue pauses the sending side, so the sender's own buffers fill as behind a real
    // bottleneck.
    const level = (src: net.Socket, limit: number) => (q: number) => {
      if (q > limit) src.pause();
      else if (q <= limit / 2) src.resume();
    };
    const upPipe = pipe(level(a, o.queueBytes ?? 64 * 1024));
    const downPipe = pipe(level(b, o.queueBytes ?? 64 * 1024));
    const conn = { a, b, pipes: [upPipe, downPipe] };
    live.add(conn);
    const relay = (dir: Dir, p: Pipe, to: net.Socket) => (d: Buffer) => {
      p.push(
        d.length,
        () => {
          stats.delivered[dir]++;
          to.write(d);
        },
        true,
      );
    };
    a.on('data', relay('up', upPipe, b));
    b.on('data', relay('down', downPipe, a));
    const end = () => {
      live.delete(conn);
      for (const p of conn.pipes) {
        p.clear();
        pipes.delete(p);
      }
      a.destroy();
      b.destroy();
    };
    a.on('error', end);
    b.on('error', end);
    a.on('close', end);
    b.on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address() as net.AddressInfo;
  return {
    address: { host: '127.0.0.1', port: addr.port },
    stats,
    setRate,
    blackout: setDark,
    async rebind() {
      // The old path is gone without a word: no FIN, no RST, nothing more in either direction.
      for (const c of live) {
        for (const p of c.pipes) {
          p.clear();
          p.paused = true;
          pipes.delete(p);
        }
        c.a.removeAllListeners('data');
        c.b.removeAllListeners('data');
        c.a.pause();
        c.b.pause();
      }
    },
    async close() {
      for (const c of live) {
        c.a.destroy();
        c.b.destroy();
      }
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
