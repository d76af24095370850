import { parseCloseReason } from './codes.js';
import type { SocketAdapter, SocketHandlers } from './socket.js';

/**
 * The browser's native WebSocket as a {@link SocketAdapter}. No Node module may be imported here: this file is
 * bundled for the page.
 */
export class BrowserSocketAdapter implements SocketAdapter {
  readonly emitsDrain = false;
  private readonly ws: WebSocket;
  private errored = false;

  constructor(url: string, protocols: string[]) {
    this.ws = new WebSocket(url, protocols);
    this.ws.binaryType = 'arraybuffer';
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  listen(h: SocketHandlers): void {
    const ws = this.ws;
    ws.onopen = () => h.open();
    ws.onmessage = (ev: MessageEvent) => {
      if (typeof ev.data === 'string') h.textMessage();
      else h.message(new Uint8Array(ev.data as ArrayBuffer));
    };
    ws.onerror = () => {
      this.errored = true;
    };
    ws.onclose = (ev: CloseEvent) => {
      h.close(
        ev.code,
        ev.reason,
        this.errored && ev.code !== 1000 ? new Error(`WebSocket error (close ${ev.code})`) : undefined,
      );
    };
  }

  send(data: Uint8Array): void {
    this.ws.send(data);
  }

  /**
   * Browsers may only send 1000 and 3000-4999 (WHATWG WebSockets `close()`); other codes become 4000 plus the
   * Quiver error code from the reason (RFC 6455 §7.4.2 private-use range).
   */
  close(code: number, reason: string): void {
    if (this.ws.readyState === WebSocket.CLOSING || this.ws.readyState === WebSocket.CLOSED) return;
    let sent = code;
    if (code !== 1000 && (code < 3000 || code > 4999)) sent = 4000 + (parseCloseReason(reason)?.code ?? 0);
    this.ws.close(sent, reason);
  }

  terminate(): void {
    // Browsers have no abortive close; a close without code is the closest.
    if (this.ws.readyState === WebSocket.CLOSING || this.ws.readyState === WebSocket.CLOSED) return;
    this.ws.close();
  }
}
