/**
 * The Worker side of `@quiver/session/worker`: the whole client session (transport race, channels, reliability,
 * heartbeats, clock sync, reconnection with resumption) runs here, off the page's main thread, so that a page busy
 * rendering delays neither heartbeats (the RTT measured is the network's) nor what the transport reads and writes.
 */
import type { Connector } from '@quiver/transport';
import { type ClientOptions, ClientSession } from '../client.js';
import { CloseCode, SessionClosedError } from '../errors.js';
import type { TransportCandidate, WinnerMemory } from '../fallback.js';
import type { MessageType } from '../messages.js';
import type { AttachCommand, PageToWorker, PortLike, Snapshot, WireType, WorkerToPage } from './protocol.js';
import { toWireError } from './protocol.js';

/** Options of {@link hostSessions}. */
export interface WorkerHostOptions {
  /**
   * Connectors by transport name (`webtransport`, `websocket`, `http`): the page names its candidates, and their
   * connectors (functions, which cannot cross `postMessage`) are looked up here.
   */
  connectors: Record<string, Connector>;
  /**
   * How often, in ms, the Worker reports the session's state (RTT, clock offset, counters) while nothing else is
   * posted; each report also measures how long the page's main thread kept it waiting. Default 100.
   */
  reportIntervalMs?: number;
  /** Where `attach` commands arrive. Default the Worker's global scope. */
  scope?: PortLike;
}

/** A client session whose received messages go to the page instead of handlers in the Worker. */
class HostedSession extends ClientSession {
  forward: (name: string, payload: unknown) => void = () => {};

  // Every message goes to the page, handled there or counted `unhandled` there.
  protected override dispatch(name: string, payload: unknown): boolean {
    this.forward(name, payload);
    return true;
  }

  snapshot(): Snapshot {
    return {
      state: this.state,
      sessionId: this.sessionId,
      transport: this.transport,
      connected: this.connected,
      recovered: this.recovered,
      reconnects: this.reconnects,
      rtt: this.rtt,
      jitter: this.jitter,
      loss: this.loss,
      minRtt: this.minRtt,
      clockOffset: this.liveness.clockSync.offset,
      clockError: this.clockError,
      bufferedBytes: this.bufferedBytes,
      stats: this.stats,
      transportAttempts: this.transportAttempts,
    };
  }

  now(): number {
    return this.clock.now();
  }
}

/** One session and the port it talks to the page on. */
class Bridge {
  private readonly session: HostedSession;
  private batch: [string, unknown][] = [];
  private transfer: ArrayBuffer[] = [];
  private flushQueued = false;
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly types = new Map<string, MessageType>();
  private readonly tokens = new Map<number, { resolve: (t: string) => void; reject: (e: Error) => void }>();
  private nextToken = 1;

  constructor(
    private readonly port: PortLike,
    cmd: AttachCommand,
    connectors: Record<string, Connector>,
    private readonly reportIntervalMs: number,
  ) {
    const remembered = { ...cmd.remembered };
    const memory: WinnerMemory = {
      get: (origin) => remembered[origin],
      set: (origin, winner) => {
        remembered[origin] = { name: winner.name, at: winner.at };
        this.post({ q: 'remember', origin, winner: remembered[origin] });
      },
    };
    const transports: TransportCandidate[] = cmd.transports.map((c) => ({
      ...c,
      connector:
        connectors[c.name] ??
        (() => {
          throw new Error(`no connector named '${c.name}' in the Worker`);
        }),
    }));
    const given = cmd.options as ClientOptions;
    const options: ClientOptions = {
      ...given,
      transports,
      messages: cmd.messages.map((t) => this.typeOf(t)),
      fallback: { ...given.fallback, memory: given.fallback?.memory === false ? false : memory },
      token: cmd.tokenFunction ? () => this.askToken() : given.token,
      onDrop: (reason, info) => this.post({ q: 'drop', reason, info }),
    };
    this.session = new HostedSession(cmd.url, options);
    const s = this.session;
    s.forward = (name, payload) => this.forward(name, payload);
    s.on('open', (info) => this.post({ q: 'open', ...info, first: false }));
    s.on('reconnecting', (info) => this.post({ q: 'reconnecting', ...info }));
    s.on('error', (err) => this.post({ q: 'error', error: toWireError(err) }));
    s.on('close', (info) => {
      this.post({ q: 'close', code: info.code, reason: info.reason });
      this.stop();
    });
    port.addEventListener('message', this.onMessage);
    port.start?.();
    this.connect();
  }

  private async connect(): Promise<void> {
    const s = this.session;
    try {
      await s.connectOnce();
    } catch (err) {
      this.post({ q: 'failed', error: toWireError(err) });
      this.stop();
      await s.close(err instanceof SessionClosedError ? err.code : CloseCode.NORMAL, String(err));
      return;
    }
    this.post({ q: 'open', recovered: s.recovered, transport: s.transport ?? '', first: true });
    this.timer = setInterval(() => this.post({ q: 'tick' }), this.reportIntervalMs);
  }

  private typeOf([name, id, channel]: WireType): MessageType {
    let t = this.types.get(name);
    if (!t) {
      t = { name, id, channel };
      this.types.set(name, t);
    }
    return t;
  }

  private askToken(): Promise<string> {
    const id = this.nextToken++;
    return new Promise<string>((resolve, reject) => {
      this.tokens.set(id, { resolve, reject });
      this.post({ q: 'token', id });
    });
  }

  private readonly onMessage = (ev: { data: unknown }): void => {
    const m = ev.data as PageToWorker;
    const s = this.session;
    switch (m.q) {
      case 'send':
        for (const [type, payload, channel, key] of m.b) {
          try {
            s.send(this.typeOf(type), payload, { channel, key });
          } catch (err) {
            this.post({ q: 'error', error: toWireError(err) });
          }
        }
        return;
      case 'close':
        void s.close(m.code, m.reason);
        return;
      case 'drained':
        void s.drained(m.bytes).then(() => this.post({ q: 'drained', id: m.id }));
        return;
      case 'token': {
        const p = this.tokens.get(m.id);
        this.tokens.delete(m.id);
        if (m.token !== undefined) p?.resolve(m.token);
        else p?.reject(new Error(m.error ?? 'no token'));
        return;
      }
    }
  };

  /**
   * Messages delivered in one turn (a bundle of datagrams, a burst on a stream) cross in one post. A byte payload
   * is copied once here, off the main thread, into a buffer of its own that is then transferred, not copied again.
   */
  private forward(name: string, payload: unknown): void {
    if (payload instanceof Uint8Array) {
      const own = payload.slice();
      this.transfer.push(own.buffer);
      payload = own;
    }
    this.batch.push([name, payload]);
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => this.flush());
    }
  }

  private flush(): void {
    this.flushQueued = false;
    if (this.batch.length === 0) return;
    const b = this.batch;
    const transfer = this.transfer;
    this.batch = [];
    this.transfer = [];
    this.post({ q: 'msgs', b }, transfer);
  }

  private post(m: DistributiveOmit<WorkerToPage, 'at' | 's'>, transfer: ArrayBuffer[] = []): void {
    // Messages already received go first, so that the page sees them before a close or an error.
    if (m.q !== 'msgs' && this.batch.length > 0) this.flush();
    const full = { ...m, at: this.session.now(), s: this.session.snapshot() } as WorkerToPage;
    try {
      this.port.postMessage(full, transfer);
    } catch (err) {
      // A payload the structured clone cannot copy (a function inside a decoded value cannot occur, but a
      // page-side port closed early can): reported, never thrown into the session's read loop.
      if (m.q !== 'error') this.post({ q: 'error', error: toWireError(err) });
    }
  }

  private stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    for (const p of this.tokens.values()) p.reject(new SessionClosedError('session closed'));
    this.tokens.clear();
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/**
 * Runs in a dedicated Worker: hosts the sessions the page opens with `connect()` of `@quiver/session/worker`.
 * Returns a function that stops accepting new ones.
 */
export function hostSessions(options: WorkerHostOptions): () => void {
  const scope = options.scope ?? (globalThis as unknown as PortLike);
  const interval = options.reportIntervalMs ?? 100;
  const listener = (ev: { data: unknown }) => {
    const cmd = ev.data as Partial<AttachCommand> | null;
    if (cmd?.q !== 'attach' || !cmd.port) return;
    new Bridge(cmd.port, cmd as AttachCommand, options.connectors, interval);
  };
  scope.addEventListener('message', listener);
  return () => scope.removeEventListener('message', listener);
}
