import { SessionRejectedError } from '@quiver/transport';
import WebSocket from 'ws';
import { violation, WsErrorCode } from './codes.js';
import type { SocketAdapter, SocketHandlers } from './socket.js';

/** `ws` errors that mean the peer broke RFC 6455 itself, mapped to the Quiver error they amount to. */
function mapWsError(error: Error): Error {
  const code = (error as { code?: string }).code;
  if (code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH')
    return violation(WsErrorCode.FRAME_SIZE_ERROR, error.message);
  if (typeof code === 'string' && code.startsWith('WS_ERR_')) {
    return violation(WsErrorCode.FRAME_ENCODING_ERROR, `WebSocket: ${error.message}`);
  }
  return error;
}

/** A `ws` WebSocket (client or server side) as a {@link SocketAdapter}. */
export class NodeSocketAdapter implements SocketAdapter {
  readonly emitsDrain = true;
  private error: Error | undefined;
  private handlers: SocketHandlers | undefined;
  // One callback for every send: ws calls it once the message is written to the TCP socket.
  private readonly onSent = (): void => {
    this.handlers?.drain();
  };

  constructor(
    /** The `ws` socket adapted; the adapter installs its listeners on it in `listen`. */
    readonly ws: WebSocket,
  ) {}

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  listen(h: SocketHandlers): void {
    this.handlers = h;
    const ws = this.ws;
    ws.on('open', () => h.open());
    // RFC 6455 §5.5.2 asks for a pong per ping; the session first checks that the peer reads what we send, so a
    // peer that pings but never reads gets a typed EXCESSIVE_LOAD rather than an unbounded pong backlog.
    ws.on('ping', (data) => {
      if (h.control() && ws.readyState === WebSocket.OPEN) ws.pong(data);
    });
    ws.on('message', (data, isBinary) => {
      if (!isBinary) {
        h.textMessage();
        return;
      }
      const buf = data as Buffer;
      h.message(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
    });
    // A refused upgrade (RFC 6455 §4.1: any status but 101): keep the status for `ready`'s error. With a listener
    // here `ws` leaves the aborting to us; `terminate()` does what it would have done.
    ws.on('unexpected-response', (_req, res) => {
      const status = res.statusCode ?? 0;
      this.error ??= new SessionRejectedError(`Unexpected server response: ${status}`, status);
      res.resume();
      ws.terminate();
    });
    ws.on('error', (e) => {
      this.error ??= mapWsError(e);
    });
    ws.on('close', (code, reason) => h.close(code, reason.toString(), this.error));
  }

  send(data: Uint8Array): void {
    this.ws.send(data, { binary: true }, this.onSent);
  }

  close(code: number, reason: string): void {
    const ws = this.ws;
    if (ws.readyState === WebSocket.CLOSING || ws.readyState === WebSocket.CLOSED) return;
    if (ws.readyState === WebSocket.CONNECTING) {
      ws.terminate();
      return;
    }
    ws.close(code, reason);
  }

  terminate(): void {
    this.ws.terminate();
  }
}
