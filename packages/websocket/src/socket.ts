/**
 * The platform-specific part of the transport: one WebSocket, as `ws` (Node) or the native `WebSocket` (browsers)
 * provides it. Everything else (framing, streams, flow control) is shared.
 */

/** What a {@link SocketAdapter} reports to the session, one callback per socket event. */
export interface SocketHandlers {
  /** The WebSocket opening handshake completed (RFC 6455 §4). */
  open(): void;
  /** A binary message. */
  message(data: Uint8Array): void;
  /** A text message (not part of the framing). */
  textMessage(): void;
  /** The socket is closed; `error` is what went wrong locally, if anything did. */
  close(code: number, reason: string, error?: Error): void;
  /** The socket's send buffer shrank (only called when `emitsDrain` is true). */
  drain(): void;
  /** A WebSocket ping arrived; the adapter answers it only if this returns true (the session is still healthy). */
  control(): boolean;
}

/** One platform WebSocket, reduced to what the session needs. */
export interface SocketAdapter {
  /** Bytes handed to send() but not yet written to the network (WebSocket `bufferedAmount`). */
  readonly bufferedAmount: number;
  /**
   * Of `bufferedAmount`, the bytes still waiting to leave, when that differs: a tunnel's `bufferedAmount` also counts
   * bytes already sent and not yet acknowledged, which wait for no one (the RTT shows their path). The datagram send
   * estimate uses this one; flow control and the buffer limit keep `bufferedAmount`. Absent: `bufferedAmount`.
   */
  readonly queuedAmount?: number;
  /** True while the socket is in the OPEN state (RFC 6455 §4.1): sends reach the peer. */
  readonly isOpen: boolean;
  /** Whether the adapter calls `drain`; otherwise the session polls `bufferedAmount`. */
  readonly emitsDrain: boolean;
  /** Registers the session's handlers; called once, before the socket can open. */
  listen(handlers: SocketHandlers): void;
  /** Sends one binary message; never blocks, the bytes count in `bufferedAmount` until written. */
  send(data: Uint8Array): void;
  /**
   * Starts the WebSocket closing handshake. `code` is an RFC 6455 §7.4 code; adapters that cannot send it (browsers
   * only allow 1000 and 3000-4999) map it as documented in the README.
   */
  close(code: number, reason: string): void;
  /** Drops the connection without a closing handshake. */
  terminate(): void;
}

/** The WebSocket subprotocol (RFC 6455 §1.9) naming this framing and its version. */
export const SUBPROTOCOL = 'quiver.v1';
