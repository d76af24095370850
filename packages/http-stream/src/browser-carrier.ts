import type {
  EventStreamHandle,
  EventStreamHandlers,
  HttpCarrier,
  UploadEnd,
  UploadHandle,
} from './carrier.js';
import { EventStreamParser } from './wire.js';

const MAX_ERROR_BODY = 4096;

/**
 * Whether `fetch` takes a `ReadableStream` body (`duplex: 'half'`, Fetch §5.3 RequestInit): a browser that knows the
 * option reads it, and one that does not would turn the stream into the text "[object ReadableStream]" with a
 * `content-type`. Chromium then still refuses the request over HTTP/1.1, which the tunnel sees as a failed stream.
 */
let requestStreams: boolean | undefined;
function supportsRequestStreams(): boolean {
  if (requestStreams !== undefined) return requestStreams;
  let duplexRead = false;
  try {
    const hasContentType = new Request('http://127.0.0.1/', {
      method: 'POST',
      body: new ReadableStream(),
      get duplex() {
        duplexRead = true;
        return 'half';
      },
    } as RequestInit).headers.has('content-type');
    requestStreams = duplexRead && !hasContentType;
  } catch {
    requestStreams = false;
  }
  return requestStreams;
}

/**
 * The browser carrier: POSTs with `fetch` (a `Uint8Array` body and no custom header, so a cross-origin POST is a
 * CORS "simple request" without a preflight), and the downstream either as a streamed `fetch` response read with
 * our own event-stream parser (the default: it sees the HTTP status of a refusal) or as an `EventSource`.
 */
export class BrowserCarrier implements HttpCarrier {
  private readonly controllers = new Set<AbortController>();
  private readonly sources = new Set<EventSource>();

  constructor(private readonly downstream: 'fetch' | 'eventsource') {}

  openEvents(url: string, handlers: EventStreamHandlers, maxEventBytes: number): EventStreamHandle {
    return this.downstream === 'eventsource'
      ? this.openEventSource(url, handlers, maxEventBytes)
      : this.openFetch(url, handlers, maxEventBytes);
  }

  private openFetch(url: string, handlers: EventStreamHandlers, maxEventBytes: number): EventStreamHandle {
    const controller = new AbortController();
    this.controllers.add(controller);
    let cancelled = false;
    const response = (async () => {
      const res = await fetch(url, {
        signal: controller.signal,
        cache: 'no-store',
        headers: { accept: 'text/event-stream' },
      });
      if (res.status !== 200 || !res.body) {
        const text = (await res.text().catch(() => '')).slice(0, MAX_ERROR_BODY);
        return { status: res.status, body: text };
      }
      const reader = res.body.getReader();
      const parser = new EventStreamParser(maxEventBytes);
      void (async () => {
        try {
          for (;;) {
            const { value, done } = await reader.read();
            if (cancelled) return;
            if (done) break;
            for (const data of parser.push(value)) {
              if (cancelled) return;
              handlers.event(data);
            }
          }
          this.controllers.delete(controller);
          if (!cancelled) handlers.end();
        } catch (e) {
          this.controllers.delete(controller);
          controller.abort();
          if (!cancelled) handlers.end(e as Error);
        }
      })();
      return { status: 200, body: '' };
    })();
    response.catch(() => this.controllers.delete(controller));
    return {
      response,
      cancel: () => {
        cancelled = true;
        this.controllers.delete(controller);
        controller.abort();
      },
    };
  }

  private openEventSource(
    url: string,
    handlers: EventStreamHandlers,
    maxEventBytes: number,
  ): EventStreamHandle {
    const source = new EventSource(url);
    this.sources.add(source);
    let opened = false;
    let cancelled = false;
    const stop = () => {
      source.close();
      this.sources.delete(source);
    };
    const response = new Promise<{ status: number; body: string }>((resolve) => {
      source.onopen = () => {
        opened = true;
        resolve({ status: 200, body: '' });
      };
      source.onmessage = (e: MessageEvent<string>) => {
        if (cancelled) return;
        if (e.data.length > maxEventBytes) {
          stop();
          handlers.end(new Error(`event over ${maxEventBytes} bytes`));
          return;
        }
        try {
          handlers.event(e.data);
        } catch (err) {
          stop();
          handlers.end(err as Error);
        }
      };
      source.onerror = () => {
        // EventSource would reconnect on its own to the same URL; the tunnel reconnects itself, naming its ack.
        stop();
        if (cancelled) return;
        if (!opened) resolve({ status: 0, body: '' });
        else handlers.end(new Error('event stream lost'));
      };
    });
    return {
      response,
      cancel: () => {
        cancelled = true;
        stop();
      },
    };
  }

  /**
   * A `fetch` whose body is a `ReadableStream` fed as the session writes. With `duplex: 'half'` the response is seen
   * only after the body ends, so the tunnel learns that the stream works from acknowledgements on the event stream.
   */
  openUpload(url: string, end: (result: UploadEnd) => void): UploadHandle | undefined {
    if (!supportsRequestStreams()) return undefined;
    const controller = new AbortController();
    this.controllers.add(controller);
    let sink!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      start: (c) => {
        sink = c;
      },
    });
    let done = false;
    const report = (r: UploadEnd) => {
      if (done) return;
      done = true;
      this.controllers.delete(controller);
      end(r);
    };
    fetch(url, {
      method: 'POST',
      body,
      duplex: 'half',
      signal: controller.signal,
      cache: 'no-store',
    } as RequestInit).then(
      async (res) => {
        await res.arrayBuffer().catch(() => undefined);
        report({ status: res.status });
      },
      (e: unknown) => report({ status: 0, error: e instanceof Error ? e : new Error(String(e)) }),
    );
    return {
      write: (chunk) => {
        if (done) return;
        try {
          sink.enqueue(chunk);
        } catch {
          // The body was cancelled: the fetch reports it.
        }
      },
      finish: () => {
        try {
          sink.close();
        } catch {
          // Already closed or cancelled.
        }
      },
      cancel: () => {
        done = true;
        this.controllers.delete(controller);
        controller.abort();
      },
    };
  }

  async post(
    url: string,
    body: Uint8Array,
    signal: AbortSignal,
  ): Promise<{
    /** The HTTP status code. */
    status: number;
    /** The response body (empty when there is none). */
    body: Uint8Array;
  }> {
    const res = await fetch(url, { method: 'POST', body: body as BufferSource, signal, cache: 'no-store' });
    const bytes = new Uint8Array(await res.arrayBuffer());
    return { status: res.status, body: bytes };
  }

  close(): void {
    for (const c of this.controllers) c.abort();
    this.controllers.clear();
    for (const s of this.sources) s.close();
    this.sources.clear();
  }
}
