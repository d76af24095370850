/**
 * The platform part of the client: how one event stream is read and one POST is sent. Everything else (numbering,
 * acknowledgements, retransmission, reconnection) is shared (`ClientTunnel`). Node uses `node:http`/`node:https`/
 * `node:http2` with an agent per session (so closing the session releases every socket); browsers use `fetch` or
 * `EventSource`.
 */

export interface EventStreamHandlers {
  /** The `data` of one event. May throw (a violation): the carrier then stops reading. */
  event(data: string): void;
  /** The stream ended or failed; not called after `cancel()`. */
  end(error?: Error): void;
}

export interface EventStreamHandle {
  /**
   * Resolves with the response status once headers arrived (0 where the platform hides it, as EventSource does),
   * and the body text for a non-200 status where the platform has it. Rejects on a network failure.
   */
  readonly response: Promise<{
    /** The HTTP status code; 0 where the platform hides it. */
    status: number;
    /** The response body for a non-200 status, where the platform exposes it; otherwise empty. */
    body: string;
  }>;
  /** Stops reading and releases the request; `end` is not called afterwards. */
  cancel(): void;
}

/** How an upload stream ended (once; not after `cancel()`). */
export interface UploadEnd {
  /** The response status, 0 when none arrived. */
  status: number;
  /** Set when the stream failed (reset, network error, refused by the platform) rather than ended. */
  error?: Error;
}

/** One upload stream: a request body written as the session goes (README "Upload stream"). */
export interface UploadHandle {
  /** Appends tunnel frames to the body. */
  write(chunk: Uint8Array): void;
  /** Ends the body; the server then ends its response and `end` reports it. */
  finish(): void;
  /** Abandons the request; `end` is not called afterwards. */
  cancel(): void;
}

export interface HttpCarrier {
  /**
   * Opens an upload stream to `url`, where the platform can stream a request body over HTTP/2; undefined where it
   * cannot (the tunnel uses POSTs). `end` reports its end or failure once.
   */
  openUpload?(url: string, end: (result: UploadEnd) => void): UploadHandle | undefined;
  /** GETs `url` as an event stream; events longer than `maxEventBytes` are a violation (`end(error)`). */
  openEvents(url: string, handlers: EventStreamHandlers, maxEventBytes: number): EventStreamHandle;
  /** POSTs `body`; resolves with the status and the response body, rejects on a network failure or `signal`. */
  post(
    url: string,
    body: Uint8Array,
    signal: AbortSignal,
  ): Promise<{
    /** The HTTP status code. */
    status: number;
    /** The response body (empty when there is none). */
    body: Uint8Array;
  }>;
  /** Releases connections and agents. */
  close(): void;
}
