import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type {
  EventStreamHandle,
  EventStreamHandlers,
  HttpCarrier,
  UploadEnd,
  UploadHandle,
} from './carrier.js';
import { EventStreamParser } from './wire.js';

/** Options of the Node carrier: TLS, headers and HTTP version of every request. */
export interface NodeCarrierOptions {
  /** TLS for `https:`: trusted CA certificates (PEM), or `rejectUnauthorized: false` for tests only. */
  tls?: {
    /** CA certificates (PEM) trusted in place of Node's default roots. */
    ca?: string | Buffer | (string | Buffer)[];
    /** False accepts any server certificate: for tests only. Default true. */
    rejectUnauthorized?: boolean;
  };
  /** Extra headers on every request. */
  headers?: Record<string, string>;
  /** Speak HTTP/2 (over TLS by ALPN, or prior knowledge for `http:`) on one connection. Default false. */
  http2?: boolean;
}

/** Error bodies are read up to this many bytes (the reason of a rejection); the rest is dropped. */
const MAX_ERROR_BODY = 4096;
/** A POST answer is an acknowledgement of a few bytes; anything longer is cut. */
const MAX_POST_ANSWER = 64 * 1024;

type Response = {
  status: number;
  on(event: 'data', fn: (chunk: Buffer) => void): unknown;
  on(event: 'end' | 'close', fn: () => void): unknown;
  on(event: 'error', fn: (e: Error) => void): unknown;
};

/**
 * The Node carrier: HTTP/1.1 through an agent of this session only (closing the session closes its sockets), or
 * HTTP/2 on one connection.
 */
export class NodeCarrier implements HttpCarrier {
  private readonly agent: http.Agent | undefined;
  private h2: http2.ClientHttp2Session | undefined;
  private readonly live = new Set<{ destroy(): void }>();
  private closed = false;

  constructor(
    private readonly origin: URL,
    private readonly o: NodeCarrierOptions,
  ) {
    if (!o.http2) {
      const agentOptions = { keepAlive: true, ca: o.tls?.ca, rejectUnauthorized: o.tls?.rejectUnauthorized };
      this.agent =
        origin.protocol === 'https:' ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
    }
  }

  openEvents(url: string, handlers: EventStreamHandlers, maxEventBytes: number): EventStreamHandle {
    let cancelled = false;
    let destroy = () => {};
    const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = this.request(url, 'GET', { accept: 'text/event-stream' }, (res) => {
        if (res.status !== 200) {
          readLimited(res, MAX_ERROR_BODY).then(
            (b) => resolve({ status: res.status, body: b.toString() }),
            reject,
          );
          return;
        }
        resolve({ status: 200, body: '' });
        const parser = new EventStreamParser(maxEventBytes);
        let ended = false;
        const end = (e?: Error) => {
          if (ended || cancelled) return;
          ended = true;
          this.live.delete(req);
          handlers.end(e);
        };
        res.on('data', (chunk: Buffer) => {
          if (ended || cancelled) return;
          try {
            for (const data of parser.push(chunk)) {
              if (ended || cancelled) return;
              handlers.event(data);
            }
          } catch (e) {
            req.destroy();
            end(e as Error);
          }
        });
        res.on('end', () => end());
        res.on('close', () => end(new Error('event stream closed')));
        res.on('error', (e) => end(e));
      });
      destroy = () => req.destroy();
      req.on('error', (e) => reject(e));
      req.end();
    });
    response.catch(() => {});
    return {
      response,
      cancel: () => {
        cancelled = true;
        destroy();
      },
    };
  }

  post(
    url: string,
    body: Uint8Array,
    signal: AbortSignal,
  ): Promise<{
    /** The HTTP status code. */
    status: number;
    /** The response body (empty when there is none). */
    body: Uint8Array;
  }> {
    return new Promise((resolve, reject) => {
      const onAbort = () => req.destroy(new Error('aborted'));
      const req = this.request(url, 'POST', { 'content-length': String(body.length) }, (res) => {
        signal.removeEventListener('abort', onAbort);
        readLimited(res, MAX_POST_ANSWER).then(
          (b) => resolve({ status: res.status, body: new Uint8Array(b.buffer, b.byteOffset, b.byteLength) }),
          reject,
        );
      });
      signal.addEventListener('abort', onAbort, { once: true });
      req.on('error', (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      });
      req.end(body);
    });
  }

  /** An HTTP/2 request whose body stays open (HTTP/1.1 has no upload stream: intermediaries may buffer bodies). */
  openUpload(url: string, end: (result: UploadEnd) => void): UploadHandle | undefined {
    if (!this.o.http2 || this.closed) return undefined;
    const u = new URL(url);
    const stream = this.session().request(
      { ':method': 'POST', ':path': u.pathname + u.search, ...this.o.headers },
      { endStream: false },
    );
    this.live.add(stream);
    let status = 0;
    let done = false;
    const report = (r: UploadEnd) => {
      if (done) return;
      done = true;
      this.live.delete(stream);
      end(r);
    };
    stream.on('response', (h) => {
      status = Number(h[':status']);
      if (status !== 200) {
        report({ status });
        stream.close();
      }
    });
    // The answer is a status and an end; acknowledgements come on the event stream.
    stream.resume();
    let ended = false;
    stream.on('end', () => {
      ended = true;
    });
    // Judged at 'close': a reset (RST_STREAM other than NO_ERROR, RFC 9113 §8.1) may follow the response's end,
    // and Node reports CANCEL as no error.
    stream.on('close', () => {
      const clean = ended && stream.rstCode === http2.constants.NGHTTP2_NO_ERROR;
      report(
        clean ? { status } : { status, error: new Error(`upload stream reset (code ${stream.rstCode})`) },
      );
    });
    stream.on('error', (e) => report({ status, error: e }));
    return {
      write: (chunk) => {
        if (!done && !stream.destroyed && !stream.writableEnded) stream.write(chunk);
      },
      finish: () => {
        if (!done && !stream.destroyed) stream.end();
      },
      cancel: () => {
        done = true;
        this.live.delete(stream);
        stream.destroy();
      },
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const r of this.live) r.destroy();
    this.live.clear();
    this.agent?.destroy();
    this.h2?.destroy();
  }

  /** The HTTP/2 connection, opened again if it was lost. */
  private session(): http2.ClientHttp2Session {
    if (!this.h2 || this.h2.destroyed || this.h2.closed) {
      this.h2 = http2.connect(this.origin.origin, {
        ca: this.o.tls?.ca,
        rejectUnauthorized: this.o.tls?.rejectUnauthorized,
      });
      this.h2.on('error', () => {
        // Each stream reports its own failure.
      });
    }
    return this.h2;
  }

  private request(
    url: string,
    method: 'GET' | 'POST',
    headers: Record<string, string>,
    onResponse: (res: Response) => void,
  ): {
    destroy(e?: Error): void;
    on(event: 'error', fn: (e: Error) => void): unknown;
    end(body?: Uint8Array): void;
  } {
    const u = new URL(url);
    if (this.closed) throw new Error('carrier closed');
    if (this.o.http2) {
      const stream = this.session().request({
        ':method': method,
        ':path': u.pathname + u.search,
        ...this.o.headers,
        ...headers,
      });
      this.live.add(stream);
      stream.on('close', () => this.live.delete(stream));
      stream.on('response', (h) => {
        const res = stream as unknown as Response;
        res.status = Number(h[':status']);
        onResponse(res);
      });
      return stream;
    }
    const mod = u.protocol === 'https:' ? https : http;
    const req = mod.request(u, { method, agent: this.agent, headers: { ...this.o.headers, ...headers } });
    this.live.add(req);
    req.on('close', () => this.live.delete(req));
    req.on('response', (res) => {
      (res as unknown as Response).status = res.statusCode ?? 0;
      onResponse(res as unknown as Response);
    });
    return req;
  }
}

function readLimited(res: Response, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (c: Buffer) => {
      if (size >= max) return;
      chunks.push(c.subarray(0, max - size));
      size += c.length;
    });
    res.on('end', () => resolve(Buffer.concat(chunks)));
    res.on('error', reject);
    res.on('close', () => resolve(Buffer.concat(chunks)));
  });
}
