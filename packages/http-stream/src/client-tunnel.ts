import type { Clock, TimerHandle } from '@quiver/transport';
import { ProtocolViolationError, QuiverTransportError, SessionRejectedError } from '@quiver/transport';
import type { SocketAdapter, SocketHandlers } from '@quiver/websocket';
import type { EventStreamHandle, HttpCarrier, UploadEnd, UploadHandle } from './carrier.js';
import { Q, type ResolvedTunnel, withParams } from './options.js';
import { TunnelCore, type TunnelLimits } from './tunnel.js';
import {
  decodeTunnelFrames,
  encodeTunnelFrames,
  eventLength,
  fromBase64,
  HttpErrorCode,
  httpViolation,
} from './wire.js';

export interface ClientTunnelOptions {
  tunnel: ResolvedTunnel;
  limits: TunnelLimits;
  clock: Clock;
  /** POSTs in flight at once. */
  maxConcurrentPosts: number;
  /** Largest POST body sent. */
  postBatchBytes: number;
  /** An acknowledgement-only POST goes out this long after data arrived with nothing else to send. */
  ackDelayMs: number;
  /** ... or at once when this many bytes arrived unacknowledged. */
  ackThresholdBytes: number;
  /** Send upstream on one streaming request body where the carrier can (HTTP/2), POSTs otherwise. */
  uploadStream: boolean;
  /** An upload stream whose first message is not acknowledged within this long is given up for POSTs. */
  uploadConfirmMs: number;
}

/** Delays between attempts to reconnect the downstream, resend a failed POST or open another upload stream. */
const BACKOFF_MS = [0, 50, 100, 250, 500, 1000];
/** Upload streams lost in a row without any acknowledgement, after which the session keeps to POSTs. */
const MAX_UNCONFIRMED_UPLOADS = 3;

/**
 * The client end of one tunnel, as the `SocketAdapter` a `WebSocketSession` runs on: one event stream down (opened
 * again after a failure, naming the last message that arrived), batched POSTs up (each answered with an
 * acknowledgement; a failed one is sent again).
 */
export class ClientTunnel implements SocketAdapter {
  readonly emitsDrain = true;
  /** Reconnections of the downstream, POSTs sent again: for tests and stats. */
  readonly counters = {
    /** Event streams opened again after the previous one ended or failed. */
    downstreamReconnects: 0,
    /** POSTs lost (network failure, a proxy's 502, a 408 body timeout); their messages are sent again. */
    postFailures: 0,
    /** POSTs sent, including ones sent again. */
    posts: 0,
    /** Upload streams opened (README "Upload stream"). */
    uploads: 0,
    /** Upload streams lost or refused; what they carried unacknowledged went again by POST. */
    uploadFallbacks: 0,
  };
  private handlers: SocketHandlers | undefined;
  private readonly core: TunnelCore;
  private sessionId = '';
  private token = '';
  private state: 'connecting' | 'open' | 'closing' | 'closed' = 'connecting';
  private down: EventStreamHandle | undefined;
  private downGeneration = 0;
  private downFailures = 0;
  private downLostAt: number | undefined;
  private reconnectTimer: TimerHandle | undefined;
  private ackTimer: TimerHandle | undefined;
  private retryTimer: TimerHandle | undefined;
  private postFailures = 0;
  private postFailingSince: number | undefined;
  private postsInFlight = 0;
  private nextPostId = 1;
  private unackedBytesIn = 0;
  private closeFrame: { code: number; reason: string } | undefined;
  private closeSent = false;
  private readonly abort = new AbortController();
  private pumpScheduled = false;
  /** A POST was answered 410: nothing more goes up. */
  private upstreamClosed = false;
  private upload: UploadHandle | undefined;
  /** The carrier id of the upload stream (from the POSTs' numbering, so that the two never share one). */
  private uploadId = 0;
  /** The last message of the first batch on the upload stream; an acknowledgement of it confirms the stream. */
  private uploadFirstSeq = 0;
  private uploadConfirmed = false;
  /** Confirmation deadline of the open upload stream, or the pause before opening another. */
  private uploadTimer: TimerHandle | undefined;
  /** Upload streams lost in a row (the pause before the next grows with it). */
  private uploadFailures = 0;
  /** Upload streams lost in a row before any acknowledgement of what they carried. */
  private uploadUnconfirmed = 0;
  /** No more upload streams for this session: the platform or the path cannot carry them. */
  private uploadDisabled = false;
  /** The CLOSE frame went on the upload stream: its clean end means the server has it. */
  private closeOnUpload = false;

  constructor(
    private readonly url: string,
    private readonly carrier: HttpCarrier,
    private readonly o: ClientTunnelOptions,
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

  /** The reliability core's message counters. */
  get stats() {
    return this.core.stats;
  }

  listen(handlers: SocketHandlers): void {
    this.handlers = handlers;
    this.openDownstream(withParams(this.url, { [Q.op]: 'open' }));
  }

  send(data: Uint8Array): void {
    if (this.state !== 'open') return;
    try {
      this.core.queue(data);
    } catch (e) {
      this.finish(1006, '', e as Error);
      return;
    }
    this.schedulePump();
  }

  close(code: number, reason: string): void {
    if (this.state === 'closed' || this.closeFrame) return;
    if (this.state === 'connecting') {
      this.finish(code, reason, undefined);
      return;
    }
    this.state = 'closing';
    this.closeFrame = { code, reason };
    this.schedulePump();
  }

  terminate(): void {
    this.finish(1006, '', undefined);
  }

  // ---- downstream ----

  private openDownstream(url: string): void {
    const generation = ++this.downGeneration;
    const current = () => generation === this.downGeneration && this.state !== 'closed';
    const handle = this.carrier.openEvents(
      url,
      {
        event: (data) => {
          if (!current()) return;
          this.onEvent(data);
        },
        end: (error) => {
          if (!current()) return;
          this.down = undefined;
          if (error instanceof ProtocolViolationError) this.finish(1006, '', error);
          else this.downstreamLost();
        },
      },
      eventLength(this.o.tunnel.maxBatchBytes),
    );
    this.down = handle;
    handle.response.then(
      ({ status, body }) => {
        if (!current()) return;
        if (status === 200) {
          this.downFailures = 0;
          return;
        }
        this.down = undefined;
        handle.cancel();
        if (this.state === 'connecting') {
          this.finish(
            1006,
            '',
            status === 0
              ? new QuiverTransportError('session request failed', { source: 'session' })
              : new SessionRejectedError(`session rejected with ${status}${body ? `: ${body}` : ''}`, status),
          );
        } else if (status >= 500 || status === 408) this.downstreamLost();
        else this.gone(`downstream refused with ${status}`);
      },
      (e: unknown) => {
        if (!current()) return;
        this.down = undefined;
        if (this.state === 'connecting') {
          this.finish(
            1006,
            '',
            new QuiverTransportError(`session request failed: ${e instanceof Error ? e.message : e}`, {
              source: 'session',
            }),
          );
        } else this.downstreamLost();
      },
    );
  }

  private onEvent(data: string): void {
    let result: ReturnType<TunnelCore['receive']>;
    try {
      const batch = fromBase64(data);
      result = this.core.receive(decodeTunnelFrames(batch, this.o.limits.maxMessageSize));
    } catch (e) {
      this.finish(
        1006,
        '',
        e instanceof ProtocolViolationError ? e : httpViolation(HttpErrorCode.MALFORMED, String(e)),
      );
      return;
    }
    if (result.hello) {
      if (this.state !== 'connecting') {
        this.finish(1006, '', httpViolation(HttpErrorCode.MALFORMED, 'HELLO on an open session'));
        return;
      }
      this.sessionId = result.hello.sessionId;
      this.token = result.hello.token;
      this.state = 'open';
      this.openUpload();
      this.handlers?.open();
    } else if (this.state === 'connecting') {
      this.finish(1006, '', httpViolation(HttpErrorCode.MALFORMED, 'first event is not HELLO'));
      return;
    }
    for (const m of result.messages) {
      if (this.state === 'closed') return;
      this.unackedBytesIn += m.length;
      this.handlers?.message(m);
    }
    if (result.close) {
      this.finish(result.close.code, result.close.reason, undefined);
      return;
    }
    if (result.acked) {
      this.checkUploadConfirmed();
      this.handlers?.drain();
    }
    if (this.core.ackDue) this.scheduleAck();
  }

  private downstreamLost(): void {
    if (this.state === 'closed') return;
    const now = this.o.clock.now();
    this.downLostAt ??= now;
    if (now - this.downLostAt >= this.o.tunnel.reconnectTimeoutMs) {
      this.finish(
        1006,
        '',
        new QuiverTransportError(`downstream lost for ${this.o.tunnel.reconnectTimeoutMs} ms`, {
          source: 'session',
        }),
      );
      return;
    }
    const delay = BACKOFF_MS[Math.min(this.downFailures++, BACKOFF_MS.length - 1)];
    this.o.clock.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = this.o.clock.setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.state === 'closed') return;
      this.counters.downstreamReconnects++;
      this.downLostAt = undefined;
      this.openDownstream(
        withParams(this.url, {
          [Q.op]: 'down',
          [Q.sid]: this.sessionId,
          [Q.token]: this.token,
          [Q.ack]: this.core.ack,
        }),
      );
    }, delay);
  }

  // ---- upstream ----

  private scheduleAck(): void {
    // On an upload stream an acknowledgement is a few bytes on a request already open: no reason to wait.
    if (this.unackedBytesIn >= this.o.ackThresholdBytes || (this.upload && this.uploadConfirmed)) {
      this.schedulePump();
      return;
    }
    if (this.ackTimer !== undefined) return;
    this.ackTimer = this.o.clock.setTimeout(() => {
      this.ackTimer = undefined;
      this.pump();
    }, this.o.ackDelayMs);
  }

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    queueMicrotask(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.upstreamClosed) return;
    if (this.upload && (this.state === 'open' || this.state === 'closing')) {
      // Until the stream is confirmed, acknowledgements alone still go by POST: one that a buffering intermediary
      // held back would leave the server's messages unacknowledged, and nothing here would notice.
      if (this.uploadConfirmed || this.core.hasUnsent || this.closeFrame) {
        this.pumpUpload(this.upload);
        return;
      }
    }
    if (this.retryTimer !== undefined) return;
    while (
      this.postsInFlight < this.o.maxConcurrentPosts &&
      (this.state === 'open' || this.state === 'closing')
    ) {
      const closing = this.closeFrame !== undefined && !this.closeSent;
      if (!this.core.hasUnsent && !this.core.ackDue && !closing) return;
      // CLOSE goes last, alone after every POST before it has been answered, so nothing of the session is behind it.
      if (!this.core.hasUnsent && closing && this.postsInFlight > 0) return;
      const id = this.nextPostId++;
      let body = this.core.takeBatch(this.o.postBatchBytes, id, true);
      const withClose = closing && !this.core.hasUnsent && this.postsInFlight === 0;
      if (withClose && this.closeFrame) {
        const close = encodeTunnelFrames([{ type: 'close', ...this.closeFrame }]);
        const joined = new Uint8Array(body.length + close.length);
        joined.set(body);
        joined.set(close, body.length);
        body = joined;
        this.closeSent = true;
      } else body = body.slice();
      this.unackedBytesIn = 0;
      this.o.clock.clearTimeout(this.ackTimer);
      this.ackTimer = undefined;
      this.postsInFlight++;
      this.counters.posts++;
      const url = withParams(this.url, { [Q.op]: 'up', [Q.sid]: this.sessionId, [Q.token]: this.token });
      this.carrier.post(url, body, this.abort.signal).then(
        (r) => this.onPostDone(id, withClose, r.status, r.body),
        () => this.onPostDone(id, withClose, 0, new Uint8Array(0)),
      );
    }
  }

  /** Writes everything unsent (and the acknowledgement) to the upload stream, then the CLOSE once nothing precedes it. */
  private pumpUpload(up: UploadHandle): void {
    // After the CLOSE the body is ended: nothing more of the session goes up.
    if (this.closeOnUpload) return;
    while (this.core.hasUnsent || this.core.ackDue) {
      const batch = this.core.takeBatch(this.o.postBatchBytes, this.uploadId, true);
      if (this.uploadFirstSeq === 0 && this.core.lastTaken > this.core.peerAck) {
        this.uploadFirstSeq = this.core.lastTaken;
        this.armUploadConfirm();
      }
      this.unackedBytesIn = 0;
      this.o.clock.clearTimeout(this.ackTimer);
      this.ackTimer = undefined;
      up.write(batch);
    }
    // As with POSTs, CLOSE goes after every POST before it was answered, so nothing of the session is behind it.
    if (this.closeFrame && !this.closeSent && this.postsInFlight === 0) {
      up.write(encodeTunnelFrames([{ type: 'close', ...this.closeFrame }]));
      this.closeSent = true;
      this.closeOnUpload = true;
      up.finish();
      // Its clean end confirms it; a stream held by an intermediary must not hold the close back for ever.
      this.armUploadConfirm();
    }
  }

  private armUploadConfirm(): void {
    if (this.uploadConfirmed || this.uploadTimer !== undefined) return;
    const id = this.uploadId;
    this.uploadTimer = this.o.clock.setTimeout(() => {
      this.uploadTimer = undefined;
      this.uploadLost(id, 'unconfirmed');
    }, this.o.uploadConfirmMs);
  }

  /** Opens an upload stream if the carrier can and none is open (README "Upload stream"). */
  private openUpload(): void {
    if (this.upload || this.uploadDisabled || !this.o.uploadStream || this.state !== 'open') return;
    const id = this.nextPostId++;
    this.uploadId = id;
    const url = withParams(this.url, { [Q.op]: 'stream', [Q.sid]: this.sessionId, [Q.token]: this.token });
    let handle: UploadHandle | undefined;
    try {
      handle = this.carrier.openUpload?.(url, (r) => this.onUploadEnd(id, r));
    } catch {
      handle = undefined;
    }
    if (!handle) {
      this.uploadDisabled = true;
      return;
    }
    this.upload = handle;
    this.uploadFirstSeq = 0;
    this.uploadConfirmed = false;
    this.counters.uploads++;
    this.schedulePump();
  }

  private checkUploadConfirmed(): void {
    if (!this.upload || this.uploadConfirmed || this.uploadFirstSeq === 0) return;
    if (this.core.peerAck < this.uploadFirstSeq) return;
    this.uploadConfirmed = true;
    this.uploadFailures = 0;
    this.uploadUnconfirmed = 0;
    this.o.clock.clearTimeout(this.uploadTimer);
    this.uploadTimer = undefined;
  }

  private onUploadEnd(id: number, r: UploadEnd): void {
    if (id !== this.uploadId || !this.upload || this.state === 'closed') return;
    if (this.closeOnUpload && !r.error && r.status === 200 && this.closeFrame) {
      this.finish(this.closeFrame.code, this.closeFrame.reason, undefined);
      return;
    }
    if (r.status === 410) {
      this.dropUpload();
      this.upstreamClosed = true;
      return;
    }
    if (r.status === 403 || r.status === 404) {
      this.gone(`upload stream refused with ${r.status}`);
      return;
    }
    // A clean end the client did not ask for: the server is closing the session (the close comes downstream).
    this.uploadLost(id, r.status >= 400 ? 'refused' : r.error ? 'lost' : 'ended');
  }

  /**
   * The upload stream `id` was refused with a status, reset or cut (`lost`), never confirmed, or ended by the server
   * (`ended`, not counted as a fallback: the session is closing there): what it carried
   * unacknowledged goes again by POST. A stream refused, or never acknowledged within `uploadConfirmMs` (an
   * intermediary holding the body back), is not tried again in this session; a lost one is opened again after a
   * pause, up to `MAX_UNCONFIRMED_UPLOADS` in a row that never got an acknowledgement.
   */
  private uploadLost(id: number, why: 'refused' | 'lost' | 'unconfirmed' | 'ended'): void {
    if (id !== this.uploadId || !this.upload) return;
    if (!this.uploadConfirmed) this.uploadUnconfirmed++;
    if (why === 'unconfirmed') this.upload.cancel();
    this.dropUpload();
    if (why !== 'ended') this.counters.uploadFallbacks++;
    this.core.carrierLost(id);
    this.core.ackLost();
    if (this.closeOnUpload) {
      this.closeOnUpload = false;
      this.closeSent = false;
    }
    if (why !== 'lost' || this.uploadUnconfirmed >= MAX_UNCONFIRMED_UPLOADS) this.uploadDisabled = true;
    else {
      const delay = BACKOFF_MS[Math.min(this.uploadFailures++, BACKOFF_MS.length - 1)];
      this.uploadTimer = this.o.clock.setTimeout(() => {
        this.uploadTimer = undefined;
        this.openUpload();
      }, delay);
    }
    this.schedulePump();
  }

  private dropUpload(): void {
    this.upload = undefined;
    this.uploadConfirmed = false;
    this.o.clock.clearTimeout(this.uploadTimer);
    this.uploadTimer = undefined;
  }

  private onPostDone(id: number, withClose: boolean, status: number, body: Uint8Array): void {
    this.postsInFlight--;
    if (this.state === 'closed') return;
    if (status === 200) {
      this.postFailures = 0;
      this.postFailingSince = undefined;
      let acked = false;
      try {
        acked = this.core.receive(decodeTunnelFrames(body, this.o.limits.maxMessageSize)).acked;
      } catch (e) {
        this.finish(1006, '', e as Error);
        return;
      }
      if (withClose && this.closeFrame) {
        this.finish(this.closeFrame.code, this.closeFrame.reason, undefined);
        return;
      }
      if (acked) {
        this.checkUploadConfirmed();
        this.handlers?.drain();
      }
      this.schedulePump();
      return;
    }
    if (status === 410) {
      // The session closed on the server; the close itself comes on the event stream (reconnecting if need be).
      this.upstreamClosed = true;
      return;
    }
    if (status === 404 || status === 403) {
      this.gone(`POST refused with ${status}`);
      return;
    }
    if (status === 400 || status === 413) {
      // The server found a violation in what we sent; its CLOSE on the downstream says which.
      this.finish(
        1006,
        '',
        new QuiverTransportError(`server refused a batch with ${status}`, { source: 'session' }),
      );
      return;
    }
    // Lost: a network failure, a proxy's 502, a 408 body timeout. The batch goes again after a pause.
    this.counters.postFailures++;
    this.core.carrierLost(id);
    this.core.ackLost();
    if (withClose) this.closeSent = false;
    const now = this.o.clock.now();
    this.postFailingSince ??= now;
    if (now - this.postFailingSince >= this.o.tunnel.reconnectTimeoutMs) {
      this.finish(
        1006,
        '',
        new QuiverTransportError(`upstream POSTs failing for ${this.o.tunnel.reconnectTimeoutMs} ms`, {
          source: 'session',
        }),
      );
      return;
    }
    const delay = BACKOFF_MS[Math.min(++this.postFailures, BACKOFF_MS.length - 1)];
    if (this.retryTimer !== undefined) return;
    this.retryTimer = this.o.clock.setTimeout(() => {
      this.retryTimer = undefined;
      this.pump();
    }, delay);
  }

  private gone(detail: string): void {
    this.finish(
      1006,
      '',
      new QuiverTransportError(`session gone on the server (${detail})`, { source: 'session' }),
    );
  }

  private finish(code: number, reason: string, error: Error | undefined): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.downGeneration++;
    this.down?.cancel();
    this.down = undefined;
    this.upload?.cancel();
    this.upload = undefined;
    const clock = this.o.clock;
    clock.clearTimeout(this.reconnectTimer);
    clock.clearTimeout(this.ackTimer);
    clock.clearTimeout(this.retryTimer);
    clock.clearTimeout(this.uploadTimer);
    this.reconnectTimer = this.ackTimer = this.retryTimer = this.uploadTimer = undefined;
    this.abort.abort();
    this.carrier.close();
    this.handlers?.close(code, reason, error);
  }
}
