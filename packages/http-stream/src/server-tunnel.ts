import type { Clock, TimerHandle } from '@quiver/transport';
import { ProtocolViolationError, QuiverTransportError } from '@quiver/transport';
import { closeReasonFor, type SocketAdapter, type SocketHandlers, wsCloseCodeFor } from '@quiver/websocket';
import type { ResolvedTunnel } from './options.js';
import { TunnelCore, type TunnelLimits } from './tunnel.js';
import {
  decodeTunnelFrames,
  encodeEvent,
  encodeTunnelFrames,
  HttpErrorCode,
  httpViolation,
  KEEPALIVE_EVENT,
  type TunnelFrame,
} from './wire.js';

/** The part of a Node `ServerResponse` / `Http2ServerResponse` the tunnel writes to (both have it). */
export interface EventResponse {
  write(chunk: string): boolean;
  end(): void;
  destroy(): void;
  once(event: 'drain' | 'close', fn: () => void): unknown;
  off(event: 'drain' | 'close', fn: () => void): unknown;
  readonly writableEnded: boolean;
  readonly destroyed: boolean;
}

export interface ServerTunnelOptions {
  tunnel: ResolvedTunnel;
  limits: TunnelLimits;
  clock: Clock;
  /** Ends a downstream response after this many bytes so that the client reconnects (0: never). */
  maxDownstreamBytes: number;
  /** Largest batch in one event (at least one message goes). */
  maxEventBytes: number;
  /** A comment event after this long without output keeps proxies from timing the stream out (0: never). */
  keepAliveMs: number;
  /**
   * Called once the tunnel is finished, to drop it from the listener's table; with a tombstone when the client may
   * not have received the close (messages were still unacknowledged).
   */
  onFinished(tombstone: Tombstone | undefined): void;
}

/**
 * What is left of a closed session for a client whose event stream was cut just before the close reached it: its
 * resume gets the session's last message (CLOSE_SESSION, numbered as the next one it expects: what was still in
 * flight before it is abandoned, as a closing WebTransport session abandons it) and the tunnel's CLOSE.
 */
export interface Tombstone {
  token: string;
  lastMessage: Uint8Array | undefined;
  code: number;
  reason: string;
}

/**
 * The server end of one tunnel, as the `SocketAdapter` a `WebSocketSession` runs on: messages go out as events on
 * whichever downstream response is attached, and come in from POST bodies. A lost response is replaced by the
 * client's next GET, which names the last message it has; everything after it is sent again.
 */
export class ServerTunnel implements SocketAdapter {
  readonly emitsDrain = true;
  private handlers: SocketHandlers | undefined;
  private readonly core: TunnelCore;
  private res: EventResponse | undefined;
  private resId = 0;
  private resBytes = 0;
  private blocked = false;
  private flushScheduled = false;
  private state: 'open' | 'closing' | 'closed' = 'open';
  private closeInfo: { code: number; reason: string } = { code: 1000, reason: '' };
  /** The last message queued, kept for a tombstone (the session's CLOSE_SESSION when it closes). */
  private lastQueued: Uint8Array | undefined;
  private finalMessage: Uint8Array | undefined;
  private reconnectTimer: TimerHandle | undefined;
  /** The client's upload stream, when it has one (ended when the session finishes). */
  private upload: { end(): void } | undefined;
  private keepAliveTimer: TimerHandle | undefined;
  /** Events written and POSTs handled, for stats. */
  downstreamConnections = 0;

  constructor(
    readonly sessionId: string,
    readonly token: string,
    private readonly o: ServerTunnelOptions,
  ) {
    this.core = new TunnelCore(o.limits);
  }

  get bufferedAmount(): number {
    return this.core.bufferedBytes;
  }

  /** What no carrier took yet: the rest of `bufferedAmount` is in flight, waiting only for its acknowledgement. */
  get queuedAmount(): number {
    return this.core.queuedBytes;
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  get stats() {
    return this.core.stats;
  }

  listen(handlers: SocketHandlers): void {
    this.handlers = handlers;
  }

  send(data: Uint8Array): void {
    if (this.state !== 'open') return;
    try {
      this.core.queue(data);
    } catch (e) {
      this.failWith(e as ProtocolViolationError);
      return;
    }
    this.lastQueued = data;
    this.scheduleFlush();
  }

  close(code: number, reason: string): void {
    if (this.state !== 'open') return;
    this.state = 'closing';
    this.closeInfo = { code, reason };
    this.finalMessage = this.lastQueued;
    // Without a downstream the close waits for the client's reconnection (or the reconnect timeout).
    if (this.res) this.finishDownstream();
  }

  terminate(): void {
    if (this.state === 'closed') return;
    this.res?.destroy();
    this.finish(1006, '', undefined);
  }

  /** A new event stream for this session: `ack` is the last message the client has. */
  attachDownstream(res: EventResponse, ack: number, hello: TunnelFrame | undefined): void {
    if (this.state === 'closed') {
      res.end();
      return;
    }
    const old = this.res;
    this.detach();
    old?.end();
    try {
      this.core.onAck(ack);
    } catch (e) {
      this.res = res;
      this.failWith(e as ProtocolViolationError);
      return;
    }
    // Whatever went out on earlier responses may not have arrived: send everything unacknowledged again.
    this.core.resendAll();
    this.core.ackLost();
    this.o.clock.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.res = res;
    this.resId++;
    this.resBytes = 0;
    this.blocked = false;
    this.downstreamConnections++;
    const id = this.resId;
    const onClose = () => {
      if (this.resId !== id || this.res !== res) return;
      this.detach();
      this.startReconnectTimer();
    };
    res.once('close', onClose);
    if (hello) this.write(encodeEvent(encodeTunnelFrames([hello])));
    if (this.state === 'closing') this.finishDownstream();
    else {
      this.flush();
      this.armKeepAlive();
    }
    this.handlers?.drain();
  }

  /** Starts the clock for a session whose downstream has not connected yet (or just went away). */
  startReconnectTimer(): void {
    if (this.state === 'closed' || this.reconnectTimer !== undefined) return;
    this.reconnectTimer = this.o.clock.setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.res) return;
      if (this.state === 'closing') this.finish(this.closeInfo.code, this.closeInfo.reason, undefined);
      else
        this.finish(
          1006,
          '',
          new QuiverTransportError(
            `downstream not reconnected within ${this.o.tunnel.reconnectTimeoutMs} ms`,
            { source: 'session' },
          ),
        );
    }, this.o.tunnel.reconnectTimeoutMs);
  }

  /**
   * One upstream POST body. Returns the acknowledgement to answer with; throws the ProtocolViolationError that
   * failed the session (the caller answers 400 or 413).
   */
  onPost(body: Uint8Array): Uint8Array {
    if (this.state === 'closed') throw new QuiverTransportError('session closed', { source: 'session' });
    let frames: TunnelFrame[];
    try {
      frames = decodeTunnelFrames(body, this.o.limits.maxMessageSize);
    } catch (e) {
      throw this.violated(e);
    }
    this.receive(frames);
    return this.core.takeAck();
  }

  /**
   * Frames from the upload stream (README "Upload stream"). Their acknowledgement goes down the event stream, since
   * the upload's own response may only be seen by the client once its body has ended. Throws as `onPost`.
   */
  onUploadFrames(frames: TunnelFrame[]): void {
    if (this.state === 'closed') throw new QuiverTransportError('session closed', { source: 'session' });
    this.receive(frames);
    if (this.core.ackDue) this.scheduleFlush();
  }

  /**
   * Makes `upload` the session's upload stream; an earlier one is ended (a client has one at a time, and a new one
   * means the old one is lost to it). Returns false when the session is closed.
   */
  attachUpload(upload: { end(): void }): boolean {
    if (this.state === 'closed') return false;
    const old = this.upload;
    this.upload = upload;
    old?.end();
    return true;
  }

  /** The upload stream `upload` ended or failed. */
  detachUpload(upload: { end(): void }): void {
    if (this.upload === upload) this.upload = undefined;
  }

  /** A batch the peer could not have sent correctly: fails the session and returns the typed error to throw. */
  violated(e: unknown): ProtocolViolationError {
    const err = e instanceof ProtocolViolationError ? e : httpViolation(HttpErrorCode.MALFORMED, String(e));
    this.failWith(err);
    return err;
  }

  private receive(frames: TunnelFrame[]): void {
    let result: ReturnType<TunnelCore['receive']>;
    try {
      result = this.core.receive(frames);
    } catch (e) {
      throw this.violated(e);
    }
    for (const m of result.messages) {
      if (this.isClosed()) break;
      this.handlers?.message(m);
    }
    if (result.close && !this.isClosed()) {
      this.res?.end();
      this.finish(result.close.code, result.close.reason, undefined);
    } else if (result.acked) {
      this.handlers?.drain();
      this.scheduleFlush();
    }
  }

  /** Fails on the tunnel's own violation: CLOSE with the error goes downstream, the session's `closed` rejects. */
  failWith(error: ProtocolViolationError): void {
    if (this.state === 'closed') return;
    const code = wsCloseCodeFor(error.code);
    const reason = closeReasonFor(error.code, error.message.replace(/^[A-Z_]+: /, ''));
    this.writeClose(code, reason);
    this.finish(code, reason, error);
  }

  /** A method, so that the compiler does not narrow `state` across the handlers' re-entrant calls. */
  private isClosed(): boolean {
    return this.state === 'closed';
  }

  private finishDownstream(): void {
    // The session's last messages (CLOSE_SESSION) go out whatever the socket's backpressure.
    this.flush(true);
    this.writeClose(this.closeInfo.code, this.closeInfo.reason);
    this.finish(this.closeInfo.code, this.closeInfo.reason, undefined);
  }

  private writeClose(code: number, reason: string): void {
    const res = this.res;
    if (!res || res.writableEnded || res.destroyed) return;
    res.write(encodeEvent(encodeTunnelFrames([{ type: 'close', code, reason }])));
    res.end();
  }

  private finish(code: number, reason: string, error: Error | undefined): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.detach();
    this.upload?.end();
    this.upload = undefined;
    const clock = this.o.clock;
    clock.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.o.onFinished(
      this.core.unacked > 0
        ? { token: this.token, lastMessage: error ? undefined : this.finalMessage, code, reason }
        : undefined,
    );
    this.handlers?.close(code, reason, error);
  }

  private detach(): void {
    this.res = undefined;
    this.o.clock.clearTimeout(this.keepAliveTimer);
    this.keepAliveTimer = undefined;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      this.flushScheduled = false;
      if (this.state === 'open') this.flush();
    });
  }

  /** Writes unsent messages as events while the response takes them (or all of them when `force`). */
  private flush(force = false): void {
    const res = this.res;
    if (!res) return;
    const max = this.o.maxEventBytes;
    while ((force || !this.blocked) && (this.core.hasUnsent || this.core.ackDue)) {
      const batch = this.core.takeBatch(max, this.resId, this.core.ackDue);
      if (batch.length === 0) break;
      this.write(encodeEvent(batch));
      if (this.res !== res) return;
    }
    const limit = this.o.maxDownstreamBytes;
    if (limit > 0 && this.resBytes >= limit && !force) {
      // The client reconnects at once and names what it has; the rest is sent again on the new response.
      this.detach();
      res.end();
      this.startReconnectTimer();
    }
  }

  private write(event: string): void {
    const res = this.res;
    if (!res || res.writableEnded || res.destroyed) return;
    this.resBytes += event.length;
    if (!res.write(event) && !this.blocked) {
      this.blocked = true;
      res.once('drain', () => {
        if (this.res !== res) return;
        this.blocked = false;
        this.flush();
      });
    }
    this.armKeepAlive();
  }

  private armKeepAlive(): void {
    const ms = this.o.keepAliveMs;
    if (ms <= 0 || !this.res) return;
    this.o.clock.clearTimeout(this.keepAliveTimer);
    this.keepAliveTimer = this.o.clock.setTimeout(() => {
      this.keepAliveTimer = undefined;
      this.write(KEEPALIVE_EVENT);
    }, ms);
  }
}
