/**
 * A Node-side {@link QuiverSession} whose every call is forwarded into a browser page, where the agent
 * (page-agent.ts) holds the real session. Tests written against `QuiverSession` (the conformance suite, the session
 * layer) thereby run unchanged against a browser's native `WebTransport` or a browser build of a Quiver client.
 *
 * Calls go Node -> page as `evaluate` of a method call on the agent; everything the page produces (data, incoming
 * streams, datagrams, ready/closed) comes back as the result of a pending (long-poll) evaluate, which the page
 * resolves when it has something: nothing polls. Each stream has at most one read and one write in flight, so
 * Node-side writes await the page-side write (backpressure) and the page reads only when Node's queue wants more.
 */
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type ConnectOptions,
  type Connector,
  type QuiverBidirectionalStream,
  type QuiverDatagramDuplexStream,
  type QuiverSession,
  QuiverTransportError,
  streamErrorCodeOf,
  type TransportName,
  type TransportReliability,
  type TransportStats,
  type WebTransportCloseInfo,
} from '@quiver/transport';
import { bundleForBrowser, bundleForBrowserCached } from './bundle.js';
import type { OpenInfo, OpenSpec, Result, WireError } from './page-agent.js';

/** What the proxy needs of a page: Playwright's and Puppeteer's `Page` both fit. */
export interface EvaluatingPage {
  evaluate(expression: string): Promise<unknown>;
}

export type ModuleSource =
  /** A file to bundle with {@link bundleForBrowser} (cached per path for the process). */
  | { entry: string }
  /** Bundled ES module source. */
  | { code: string }
  /** A URL the page can `import()`. */
  | { url: string };

export interface BrowserSessionOptions {
  /** `webtransport`: the browser's native `WebTransport`. `module`: a connector exported by `module`. */
  kind: 'webtransport' | 'module';
  /** `https://host:port/path?query`. */
  url: string;
  /**
   * Passed to the connector (native: the `WebTransport` constructor), JSON-serialised; a connector's own option
   * types extend `ConnectOptions` and pass as they are. `signal` stays on the Node side.
   */
  options?: ConnectOptions;
  /** For `kind: 'module'`. */
  module?: ModuleSource;
  /** The connector's export name in `module`. Default `connect` (falling back to the default export). */
  exportName?: string;
  /** Reported by `transport` until the page has answered (for `module`). */
  transport?: TransportName;
}

export interface BrowserSession extends QuiverSession {
  /** Resolves once the page holds the session (before `ready`); rejects if it could not be created. */
  readonly opened: Promise<void>;
}

const AGENT_GLOBAL = 'globalThis.__quiverAgent';

let agentCode: Promise<string> | undefined;
function loadAgentCode(): Promise<string> {
  if (!agentCode) {
    // src/*.ts under the quiver-source condition, dist/*.js after a build.
    const here = fileURLToPath(import.meta.url);
    const file = join(dirname(here), here.endsWith('.ts') ? 'page-agent.ts' : 'page-agent.js');
    agentCode = bundleForBrowser(file, { format: 'iife', sourcemap: false });
    agentCode.catch(() => {
      agentCode = undefined;
    });
  }
  return agentCode;
}

/** Thrown by the RPC layer when the page (or the browser) is gone. */
class PageGoneError extends QuiverTransportError {
  constructor(cause: unknown) {
    super(`browser page unavailable: ${cause instanceof Error ? cause.message : String(cause)}`, {
      source: 'session',
    });
  }
}

function fromWire(w: WireError): Error {
  if (w.name === 'WebTransportError' || w.source !== undefined) {
    return new QuiverTransportError(w.message, {
      source: w.source ?? 'stream',
      streamErrorCode: w.streamErrorCode,
    });
  }
  const Ctor = w.name === 'TypeError' ? TypeError : w.name === 'RangeError' ? RangeError : Error;
  const e = new Ctor(w.message);
  if (e.name !== w.name) e.name = w.name;
  return e;
}

function toBase64(chunk: unknown): string {
  if (chunk instanceof Uint8Array)
    return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('base64');
  if (ArrayBuffer.isView(chunk))
    return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('base64');
  if (chunk instanceof ArrayBuffer) return Buffer.from(chunk).toString('base64');
  throw new TypeError('chunk must be a BufferSource');
}

function fromBase64(b64: string): Uint8Array {
  // A copy into its own ArrayBuffer: Buffer.from may return a view into a shared pool.
  return new Uint8Array(Buffer.from(b64, 'base64'));
}

function reasonMessage(reason: unknown): string {
  return reason instanceof Error ? reason.message : reason === undefined ? '' : String(reason);
}

function codeOrNull(reason: unknown): number | null {
  return reason && typeof reason === 'object' && 'streamErrorCode' in reason
    ? streamErrorCodeOf(reason)
    : null;
}

function moduleKey(src: ModuleSource): string {
  if ('entry' in src) return `entry:${src.entry}`;
  if ('url' in src) return `url:${src.url}`;
  return `code:${createHash('sha256').update(src.code).digest('hex')}`;
}

/** Serialises `ConnectOptions` for the page: `serverCertificateHashes` values become arrays of bytes. */
function wireOptions(options: BrowserSessionOptions['options']): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options ?? {})) {
    if (k === 'signal' || v === undefined) continue;
    if (k === 'serverCertificateHashes') {
      out[k] = (v as { algorithm: string; value: BufferSource }[]).map((h) => ({
        algorithm: h.algorithm,
        value: [
          ...(h.value instanceof ArrayBuffer
            ? new Uint8Array(h.value)
            : new Uint8Array(h.value.buffer, h.value.byteOffset, h.value.byteLength)),
        ],
      }));
    } else {
      out[k] = v;
    }
  }
  return out;
}

/** W3C WebTransport §6.13 `WebTransportConnectionStats` (native) to Quiver's {@link TransportStats}. */
export function mapNativeStats(raw: Record<string, unknown>): TransportStats {
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  const dg = (raw.datagrams ?? {}) as Record<string, unknown>;
  const agent = (raw.agentDatagrams ?? {}) as Record<string, unknown>;
  const droppedOutgoing: TransportStats['datagrams']['droppedOutgoing'] = {};
  const droppedIncoming: TransportStats['datagrams']['droppedIncoming'] = {};
  if (num(agent.tooLarge)) droppedOutgoing['too-large'] = num(agent.tooLarge);
  if (num(dg.expiredOutgoing)) droppedOutgoing.expired = num(dg.expiredOutgoing);
  if (num(dg.lostOutgoing)) droppedOutgoing.lost = num(dg.lostOutgoing);
  if (num(dg.droppedIncoming)) droppedIncoming['receive-queue-full'] = num(dg.droppedIncoming);
  if (num(dg.expiredIncoming)) droppedIncoming.expired = num(dg.expiredIncoming);
  return {
    timestamp: typeof raw.timestamp === 'number' ? raw.timestamp : Date.now(),
    smoothedRtt: num(raw.smoothedRtt),
    rttVariation: num(raw.rttVariation),
    minRtt: num(raw.minRtt),
    bytesSent: num(raw.bytesSent),
    bytesReceived: num(raw.bytesReceived),
    packetsSent: num(raw.packetsSent),
    packetsReceived: num(raw.packetsReceived),
    packetsLost: num(raw.packetsLost),
    datagrams: { sent: num(agent.sent), received: num(agent.received), droppedOutgoing, droppedIncoming },
  };
}

let nextSessionId = 1;

class PageSession implements BrowserSession {
  readonly opened: Promise<void>;
  readonly ready: Promise<void>;
  readonly closed: Promise<WebTransportCloseInfo>;
  readonly incomingBidirectionalStreams: ReadableStream<QuiverBidirectionalStream>;
  readonly incomingUnidirectionalStreams: ReadableStream<ReadableStream<Uint8Array>>;
  readonly datagrams: QuiverDatagramDuplexStream;

  private readonly sid = nextSessionId++;
  private transportName: TransportName;
  private reliabilityClass: TransportReliability;
  private maxDatagram = 0;
  /** Set once the page is unreachable or the session has ended: further calls fail at once. */
  private ended: Error | undefined;

  constructor(
    private readonly page: EvaluatingPage,
    private readonly spec: BrowserSessionOptions,
  ) {
    this.transportName = spec.transport ?? (spec.kind === 'webtransport' ? 'webtransport' : 'unknown');
    this.reliabilityClass = spec.kind === 'webtransport' ? 'supports-unreliable' : 'reliable-only';
    this.opened = this.open();
    this.ready = this.opened.then(async () => {
      const r = await this.call<OpenInfo>('ready', this.sid);
      if (!r.ok) throw fromWire(r.error);
      this.applyInfo(r);
    });
    this.closed = this.opened.then(
      async () => {
        const r = await this.call<{ closeCode: number; reason: string }>('closed', this.sid).catch((e) => {
          this.ended ??= e as Error;
          throw e;
        });
        this.ended ??= new QuiverTransportError('session closed', { source: 'session' });
        if (!r.ok) throw fromWire(r.error);
        return { closeCode: r.closeCode, reason: r.reason };
      },
      (err) => {
        this.ended ??= err as Error;
        throw err;
      },
    );
    // Like the browser's own promises, these may reject without anyone listening; that is not a crash.
    this.ready.catch(() => {});
    this.closed.catch(() => {});
    const signal = spec.options?.signal;
    if (signal) {
      if (signal.aborted) this.close({ closeCode: 0, reason: 'aborted' });
      else
        signal.addEventListener('abort', () => this.close({ closeCode: 0, reason: 'aborted' }), {
          once: true,
        });
    }

    this.incomingBidirectionalStreams = this.acceptStream('acceptBidi', (id) => ({
      readable: this.readable(id),
      writable: this.writable(id),
    }));
    this.incomingUnidirectionalStreams = this.acceptStream('acceptUni', (id) => this.readable(id));
    const self = this;
    this.datagrams = {
      get maxDatagramSize() {
        return self.maxDatagram;
      },
      readable: new ReadableStream<Uint8Array>({
        pull: async (c) => {
          await this.opened.catch(() => {});
          const r = await this.guard(() =>
            this.call<{ chunks: string[]; done: boolean }>('readDatagrams', this.sid),
          );
          if (!r.ok) return c.error(fromWire(r.error));
          for (const b of r.chunks) c.enqueue(fromBase64(b));
          if (r.done) c.close();
        },
      }),
      writable: new WritableStream<Uint8Array>({
        write: async (chunk) => {
          await this.opened;
          const r = await this.guard(() =>
            this.call<{ maxDatagramSize: number }>('writeDatagram', this.sid, toBase64(chunk)),
          );
          if (!r.ok) throw fromWire(r.error);
          this.maxDatagram = r.maxDatagramSize;
        },
      }),
    };
  }

  get transport(): TransportName {
    return this.transportName;
  }

  get reliability(): TransportReliability {
    return this.reliabilityClass;
  }

  private applyInfo(info: OpenInfo): void {
    if (this.spec.kind === 'module' || !this.spec.transport) this.transportName = info.transport;
    if (info.reliability === 'supports-unreliable' || info.reliability === 'reliable-only') {
      this.reliabilityClass = info.reliability;
    }
    this.maxDatagram = info.maxDatagramSize;
  }

  private async open(): Promise<void> {
    await this.ensureAgent();
    let moduleKeyValue: string | undefined;
    if (this.spec.kind === 'module') {
      const src = this.spec.module;
      if (!src) throw new TypeError("kind 'module' needs `module`");
      moduleKeyValue = moduleKey(src);
      if (!(await this.eval(`${AGENT_GLOBAL}.hasModule(${JSON.stringify(moduleKeyValue)})`))) {
        const source =
          'entry' in src
            ? { code: await bundleForBrowserCached(src.entry) }
            : 'code' in src
              ? { code: src.code }
              : src;
        const r = await this.call('loadModule', moduleKeyValue, source);
        if (!r.ok) throw fromWire(r.error);
      }
    }
    const openSpec: OpenSpec = {
      kind: this.spec.kind,
      url: this.spec.url,
      options: wireOptions(this.spec.options),
      moduleKey: moduleKeyValue,
      exportName: this.spec.exportName,
    };
    const r = await this.call<OpenInfo>('open', this.sid, openSpec);
    if (!r.ok) throw fromWire(r.error);
    this.applyInfo(r);
  }

  private async ensureAgent(): Promise<void> {
    if (await this.eval(`typeof ${AGENT_GLOBAL} === 'object'`)) return;
    await this.eval(await loadAgentCode());
  }

  private async eval(expression: string): Promise<unknown> {
    try {
      return await this.page.evaluate(expression);
    } catch (err) {
      throw new PageGoneError(err);
    }
  }

  private call<T extends object = object>(method: string, ...args: unknown[]): Promise<Result<T>> {
    return this.eval(
      `${AGENT_GLOBAL}.${method}(${args.map((a) => JSON.stringify(a) ?? 'undefined').join(',')})`,
    ) as Promise<Result<T>>;
  }

  /** Fails fast after the page is gone, and turns a lost page into an error result. */
  private async guard<T extends object>(fn: () => Promise<Result<T>>): Promise<Result<T>> {
    if (this.ended instanceof PageGoneError) throw this.ended;
    try {
      return await fn();
    } catch (err) {
      if (err instanceof PageGoneError) this.ended ??= err;
      throw err;
    }
  }

  private acceptStream<T>(method: 'acceptBidi' | 'acceptUni', make: (id: number) => T): ReadableStream<T> {
    return new ReadableStream<T>({
      pull: async (c) => {
        try {
          await this.opened;
        } catch (err) {
          return c.error(err);
        }
        const r = await this.guard(() => this.call<{ ids: number[]; done: boolean }>(method, this.sid));
        if (!r.ok) return c.error(fromWire(r.error));
        for (const id of r.ids) c.enqueue(make(id));
        if (r.done) c.close();
      },
    });
  }

  private readable(id: number): ReadableStream<Uint8Array> {
    let cancelled = false;
    return new ReadableStream<Uint8Array>({
      pull: async (c) => {
        const r = await this.guard(() => this.call<{ chunks: string[]; done: boolean }>('read', id));
        // A cancel while this read was in flight has already closed the stream.
        if (cancelled) return;
        if (!r.ok) return c.error(fromWire(r.error));
        for (const b of r.chunks) c.enqueue(fromBase64(b));
        if (r.done) c.close();
      },
      cancel: async (reason) => {
        cancelled = true;
        await this.guard(() => this.call('cancel', id, codeOrNull(reason), reasonMessage(reason))).catch(
          () => {},
        );
      },
    });
  }

  private writable(id: number): WritableStream<Uint8Array> {
    let finished = false;
    return new WritableStream<Uint8Array>({
      start: (c) => {
        // The page-side writable can fail on its own (peer STOP_SENDING, session end): surface that without
        // waiting for the next write.
        this.guard(() => this.call('writerClosed', id)).then(
          (r) => {
            if (!r.ok && !finished) c.error(fromWire(r.error));
          },
          (err) => {
            if (!finished) c.error(err);
          },
        );
      },
      write: async (chunk) => {
        const r = await this.guard(() => this.call('write', id, toBase64(chunk)));
        if (!r.ok) throw fromWire(r.error);
      },
      close: async () => {
        finished = true;
        const r = await this.guard(() => this.call('end', id));
        if (!r.ok) throw fromWire(r.error);
      },
      abort: async (reason) => {
        finished = true;
        await this.guard(() => this.call('abort', id, codeOrNull(reason), reasonMessage(reason))).catch(
          () => {},
        );
      },
    });
  }

  close(closeInfo?: WebTransportCloseInfo): void {
    this.opened
      .then(() => this.guard(() => this.call('close', this.sid, closeInfo ?? {})))
      .catch(() => {
        // Nothing to close: the session never opened or the page is gone; `closed` reports that.
      });
  }

  private async newStream(method: 'createBidi' | 'createUni'): Promise<number> {
    await this.opened;
    const r = await this.guard(() => this.call<{ id: number }>(method, this.sid));
    if (!r.ok) throw fromWire(r.error);
    return r.id;
  }

  async createBidirectionalStream(): Promise<QuiverBidirectionalStream> {
    const id = await this.newStream('createBidi');
    return { readable: this.readable(id), writable: this.writable(id) };
  }

  async createUnidirectionalStream(): Promise<WritableStream<Uint8Array>> {
    return this.writable(await this.newStream('createUni'));
  }

  async getStats(): Promise<TransportStats> {
    await this.opened;
    const r = await this.guard(() =>
      this.call<{ stats: Record<string, unknown>; info: OpenInfo }>('getStats', this.sid),
    );
    if (!r.ok) throw fromWire(r.error);
    this.applyInfo(r.info);
    return this.spec.kind === 'webtransport'
      ? mapNativeStats(r.stats)
      : (r.stats as unknown as TransportStats);
  }
}

/**
 * Opens a session inside `page` and returns its Node-side proxy at once (like a `Connector`): the page-side
 * session is created asynchronously; `opened` tells when, `ready` when it is established.
 */
export function openBrowserSession(page: EvaluatingPage, options: BrowserSessionOptions): BrowserSession {
  return new PageSession(page, options);
}

/** A {@link Connector} whose sessions live in `page`. */
export function browserConnector(
  page: EvaluatingPage,
  options: Omit<BrowserSessionOptions, 'url' | 'options'> & { defaults?: ConnectOptions },
): Connector {
  const { defaults, ...rest } = options;
  return (url, connectOptions) =>
    openBrowserSession(page, { ...rest, url, options: { ...defaults, ...connectOptions } });
}
