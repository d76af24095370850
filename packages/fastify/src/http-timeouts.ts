/** Deadlines of the app's HTTP server that bound how long a stalled client (a slow WebSocket upgrade) holds it. */

/** Deadlines of the app's Node HTTP server, which bound how long a stalled client can hold a connection. */
export interface QuiverHttpTimeouts {
  /** Node `server.headersTimeout`: the whole request head must arrive within this. Default 10 000 ms. */
  headersTimeoutMs?: number;
  /** Node `server.requestTimeout`: the whole request (head and body) must arrive within this. Default 30 000 ms. */
  requestTimeoutMs?: number;
  /**
   * Node `server.connectionsCheckingInterval`: how often the two deadlines above are checked, hence how late past
   * them a stalled connection may be freed. Read when the server starts listening. Default 1000 ms.
   */
  checkIntervalMs?: number;
}

/** The defaults of {@link QuiverHttpTimeouts}: 10 s for the head, 30 s for the request, checked every second. */
export const HTTP_TIMEOUT_DEFAULTS: Required<QuiverHttpTimeouts> = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  checkIntervalMs: 1000,
};

/**
 * Applies {@link QuiverHttpTimeouts} to a Node HTTP server. The WebSocket upgrade is a plain HTTP request until its
 * head is complete, so these are its deadlines; once complete, the WebSocket listener's `requestTimeoutMs` (a
 * verdict) and `handshakeTimeoutMs` (the peer's SETTINGS) take over.
 */
export function applyHttpTimeouts(
  server: { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval?: number },
  options: QuiverHttpTimeouts = {},
): void {
  // 0 means "no limit" to Node: a default replaces it, and otherwise only a stricter value does.
  const tighten = (current: number | undefined, given: number | undefined, fallback: number) => {
    if (given !== undefined) {
      if (!Number.isSafeInteger(given) || given < 1)
        throw new RangeError(`HTTP timeouts must be >= 1 ms, got ${given}`);
      return given;
    }
    return current && current > 0 ? Math.min(current, fallback) : fallback;
  };
  const d = HTTP_TIMEOUT_DEFAULTS;
  server.requestTimeout = tighten(server.requestTimeout, options.requestTimeoutMs, d.requestTimeoutMs);
  // Node requires headersTimeout <= requestTimeout.
  server.headersTimeout = Math.min(
    tighten(server.headersTimeout, options.headersTimeoutMs, d.headersTimeoutMs),
    server.requestTimeout,
  );
  server.connectionsCheckingInterval = tighten(
    server.connectionsCheckingInterval,
    options.checkIntervalMs,
    d.checkIntervalMs,
  );
}
