import type { EventStreamHandle, EventStreamHandlers, HttpCarrier } from './carrier.js';
import { EventStreamParser } from './wire.js';

const MAX_ERROR_BODY = 4096;

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
