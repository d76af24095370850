/**
 * The in-page half of the session proxy (see session-proxy.ts). It is bundled by esbuild and evaluated in the page,
 * where it holds the real session (a native W3C `WebTransport`, or one made by a connector module) and answers the
 * Node side's calls. Every method resolves with a JSON value and never throws, so that the Node side can tell an
 * error of the session (`{ error }`) from the loss of the page (a rejected evaluate).
 *
 * Data crosses as base64 strings: the one binary encoding both Playwright (CDP) and Puppeteer (WebDriver BiDi)
 * carry unchanged.
 */

/** An error as it crosses to Node. */
export interface WireError {
  name: string;
  message: string;
  source?: 'stream' | 'session';
  streamErrorCode?: number | null;
}

export type Result<T> = ({ ok: true } & T) | { ok: false; error: WireError };

export interface OpenSpec {
  kind: 'webtransport' | 'module';
  url: string;
  /** JSON options; `serverCertificateHashes[].value` as arrays of bytes. */
  options: Record<string, unknown>;
  /** For `kind: 'module'`: key of a module loaded with `loadModule`. */
  moduleKey?: string;
  exportName?: string;
}

export interface OpenInfo {
  transport: string;
  reliability: string;
  maxDatagramSize: number;
}

interface AnySession {
  ready: Promise<void>;
  closed: Promise<{ closeCode?: number; reason?: string }>;
  close(info?: { closeCode?: number; reason?: string }): void;
  createBidirectionalStream(): Promise<{
    readable: ReadableStream<Uint8Array>;
    writable: WritableStream<Uint8Array>;
  }>;
  createUnidirectionalStream(): Promise<WritableStream<Uint8Array>>;
  incomingBidirectionalStreams: ReadableStream<{
    readable: ReadableStream<Uint8Array>;
    writable: WritableStream<Uint8Array>;
  }>;
  incomingUnidirectionalStreams: ReadableStream<ReadableStream<Uint8Array>>;
  datagrams: {
    readable: ReadableStream<Uint8Array>;
    writable?: WritableStream<Uint8Array>;
    createWritable?: () => WritableStream<Uint8Array>;
    maxDatagramSize: number;
  };
  reliability?: string;
  transport?: string;
  getStats?: () => Promise<Record<string, unknown>>;
}

type ErrorCtor = new (
  message?: string,
  init?: { source?: 'stream' | 'session'; streamErrorCode?: number | null },
) => Error;

type MakeError = (message: string, streamErrorCode: number | null) => Error;

function classErrors(cls: ErrorCtor): MakeError {
  return (message, code) => new cls(message, { source: 'stream', streamErrorCode: code });
}

/**
 * The browser's `WebTransportError`, whichever constructor it has. The current W3C text (§9.1) has
 * `(message, { source, streamErrorCode })`; Chromium 156 and Firefox 153 still implement the older
 * `({ message, streamErrorCode })` with an octet code, so codes above 255 are clamped to 255 by the browser.
 */
function nativeErrors(): MakeError | undefined {
  const WTE = (globalThis as { WebTransportError?: unknown }).WebTransportError;
  if (typeof WTE !== 'function') return undefined;
  const C = WTE as new (...args: unknown[]) => Error & { streamErrorCode?: number | null };
  try {
    if (new C('probe', { source: 'stream', streamErrorCode: 1 }).streamErrorCode === 1) {
      return (message, code) => new C(message, { source: 'stream', streamErrorCode: code ?? undefined });
    }
  } catch {
    // The older dictionary-only constructor throws on a string argument.
  }
  return (message, code) => new C(code === null ? { message } : { message, streamErrorCode: code });
}

/** A reader that can hand over several already-queued chunks at once without waiting for more. */
class BatchReader<T> {
  private pending: Promise<ReadableStreamReadResult<T>> | undefined;
  constructor(readonly reader: ReadableStreamDefaultReader<T>) {}

  /** Waits for one chunk, then takes whatever else is already queued, up to the limits. */
  async read(maxChunks: number, maxBytes: number): Promise<{ chunks: T[]; done: boolean }> {
    const first = await (this.pending ?? this.reader.read());
    this.pending = undefined;
    if (first.done) return { chunks: [], done: true };
    const chunks = [first.value];
    let bytes = byteLength(first.value);
    const idle = Symbol('idle');
    while (chunks.length < maxChunks && bytes < maxBytes) {
      const next = this.reader.read();
      // A read of a queued chunk is already settled, so it wins the race against a resolved marker; otherwise
      // keep the read for the next call (a read, once issued, cannot be taken back).
      const r = await Promise.race([next, Promise.resolve(idle)]);
      if (r === idle) {
        // Its failure is reported by the next call; until then it must not count as unhandled.
        next.catch(() => {});
        this.pending = next;
        break;
      }
      const res = r as ReadableStreamReadResult<T>;
      if (res.done) {
        // Report the chunks now; the next call sees done again.
        this.pending = Promise.resolve(res);
        break;
      }
      chunks.push(res.value);
      bytes += byteLength(res.value);
    }
    return { chunks, done: false };
  }

  cancel(reason: unknown): Promise<void> {
    return this.reader.cancel(reason);
  }
}

function byteLength(v: unknown): number {
  return v instanceof Uint8Array ? v.byteLength : 1;
}

function toBase64(bytes: Uint8Array): string {
  const u8 = bytes as Uint8Array & { toBase64?: () => string };
  if (typeof u8.toBase64 === 'function') return u8.toBase64();
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000) as unknown as number[]);
  }
  return btoa(s);
}

function fromBase64(b64: string): Uint8Array {
  const U8 = Uint8Array as unknown as { fromBase64?: (s: string) => Uint8Array };
  if (typeof U8.fromBase64 === 'function') return U8.fromBase64(b64);
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function wireError(e: unknown): WireError {
  if (e && typeof e === 'object') {
    const o = e as { name?: unknown; message?: unknown; source?: unknown; streamErrorCode?: unknown };
    const err: WireError = {
      name: typeof o.name === 'string' ? o.name : 'Error',
      message: typeof o.message === 'string' ? o.message : String(e),
    };
    if (o.source === 'stream' || o.source === 'session') err.source = o.source;
    if (typeof o.streamErrorCode === 'number' || o.streamErrorCode === null)
      err.streamErrorCode = o.streamErrorCode;
    return err;
  }
  return { name: 'Error', message: String(e) };
}

async function settle<T extends object>(fn: () => Promise<T> | T): Promise<Result<T>> {
  try {
    return { ok: true, ...(await fn()) } as Result<T>;
  } catch (e) {
    return { ok: false, error: wireError(e) };
  }
}

/** Used when the page has neither a module-supplied class nor the native `WebTransportError`. */
class AgentTransportError extends Error {
  override name = 'WebTransportError';
  readonly source: 'stream' | 'session';
  readonly streamErrorCode: number | null;
  constructor(message = '', init: { source?: 'stream' | 'session'; streamErrorCode?: number | null } = {}) {
    super(message);
    this.source = init.source ?? 'stream';
    this.streamErrorCode = init.streamErrorCode ?? null;
  }
}

interface StreamEntry {
  sid: number;
  reader?: BatchReader<Uint8Array>;
  writer?: WritableStreamDefaultWriter<Uint8Array>;
}

interface SessionEntry {
  session: AnySession;
  kind: OpenSpec['kind'];
  makeError: MakeError;
  incomingBidi: BatchReader<{ readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> }>;
  incomingUni: BatchReader<ReadableStream<Uint8Array>>;
  datagramReader?: BatchReader<Uint8Array>;
  datagramWriter?: WritableStreamDefaultWriter<Uint8Array>;
  streams: Set<number>;
  /** What went through the agent, for transports whose own stats lack datagram counts (native). */
  datagramsSent: number;
  datagramsReceived: number;
  datagramsTooLarge: number;
  closed: boolean;
}

const MAX_BATCH_CHUNKS = 64;
const MAX_BATCH_BYTES = 1 << 20;

class Agent {
  private readonly modules = new Map<string, Record<string, unknown>>();
  private readonly sessions = new Map<number, SessionEntry>();
  private readonly streams = new Map<number, StreamEntry>();
  private nextStreamId = 1;

  hasModule(key: string): boolean {
    return this.modules.has(key);
  }

  /** Imports an ES module from source (through a blob: URL) or from a URL. */
  loadModule(key: string, source: { code?: string; url?: string }): Promise<Result<object>> {
    return settle(async () => {
      if (this.modules.has(key)) return {};
      let url = source.url;
      let blobUrl: string | undefined;
      if (source.code !== undefined) {
        blobUrl = URL.createObjectURL(new Blob([source.code], { type: 'text/javascript' }));
        url = blobUrl;
      }
      if (!url) throw new TypeError('module needs code or url');
      try {
        this.modules.set(key, (await import(/* @vite-ignore */ url)) as Record<string, unknown>);
      } finally {
        if (blobUrl) URL.revokeObjectURL(blobUrl);
      }
      return {};
    });
  }

  open(sid: number, spec: OpenSpec): Promise<Result<OpenInfo>> {
    return settle(async () => {
      if (this.sessions.has(sid)) throw new TypeError(`session ${sid} exists`);
      const options: Record<string, unknown> = { ...spec.options };
      const hashes = options.serverCertificateHashes as { algorithm: string; value: number[] }[] | undefined;
      if (hashes) {
        options.serverCertificateHashes = hashes.map((h) => ({
          algorithm: h.algorithm,
          value: new Uint8Array(h.value),
        }));
      }
      let session: AnySession;
      let makeError: MakeError;
      const nativeError = nativeErrors();
      if (spec.kind === 'webtransport') {
        const WT = (globalThis as { WebTransport?: new (url: string, o: object) => AnySession }).WebTransport;
        if (!WT) throw new TypeError('this browser has no WebTransport');
        const timeoutMs = options.connectTimeoutMs;
        delete options.connectTimeoutMs;
        session = new WT(spec.url, options);
        makeError = nativeError ?? classErrors(AgentTransportError);
        if (typeof timeoutMs === 'number') {
          // W3C WebTransport has no connect timeout: closing a connecting session rejects `ready`.
          const t = setTimeout(() => session.close({ closeCode: 0, reason: 'connect timeout' }), timeoutMs);
          session.ready.then(
            () => clearTimeout(t),
            () => clearTimeout(t),
          );
        }
      } else {
        const mod = spec.moduleKey ? this.modules.get(spec.moduleKey) : undefined;
        if (!mod) throw new TypeError(`module ${spec.moduleKey} not loaded`);
        const name = spec.exportName ?? 'connect';
        const connect = (mod[name] ?? (name === 'connect' ? mod.default : undefined)) as
          | ((url: string, o: object) => AnySession)
          | undefined;
        if (typeof connect !== 'function') throw new TypeError(`module exports no function "${name}"`);
        session = connect(spec.url, options);
        const moduleError = mod.QuiverTransportError as ErrorCtor | undefined;
        makeError = moduleError
          ? classErrors(moduleError)
          : (nativeError ?? classErrors(AgentTransportError));
      }
      // Failures surface through ready/closed; these keep the page from logging unhandled rejections.
      session.ready.catch(() => {});
      session.closed.catch(() => {});
      const entry: SessionEntry = {
        session,
        kind: spec.kind,
        makeError,
        incomingBidi: new BatchReader(session.incomingBidirectionalStreams.getReader()),
        incomingUni: new BatchReader(session.incomingUnidirectionalStreams.getReader()),
        streams: new Set(),
        datagramsSent: 0,
        datagramsReceived: 0,
        datagramsTooLarge: 0,
        closed: false,
      };
      this.sessions.set(sid, entry);
      session.closed.then(
        () => this.release(sid),
        () => this.release(sid),
      );
      return this.info(entry);
    });
  }

  private info(entry: SessionEntry): OpenInfo {
    const s = entry.session;
    const native = entry.kind === 'webtransport';
    return {
      transport: native ? 'webtransport' : String(s.transport ?? 'unknown'),
      // Native sessions report 'pending' until ready; the proxy asks again once ready resolves.
      reliability: String(s.reliability ?? (native ? 'pending' : 'reliable-only')),
      maxDatagramSize: Number(s.datagrams.maxDatagramSize ?? 0),
    };
  }

  private release(sid: number): void {
    const entry = this.sessions.get(sid);
    if (!entry) return;
    entry.closed = true;
    // Streams stay registered until their own reads/writes settle (they reject once the session is gone);
    // the session entry itself is dropped a little later so that late calls still get its close reason.
    setTimeout(() => {
      for (const id of entry.streams) this.streams.delete(id);
      this.sessions.delete(sid);
    }, 5_000);
  }

  private session(sid: number): SessionEntry {
    const s = this.sessions.get(sid);
    if (!s) throw new AgentTransportError(`no session ${sid}`, { source: 'session' });
    return s;
  }

  private stream(id: number): StreamEntry {
    const s = this.streams.get(id);
    if (!s) throw new TypeError(`no stream ${id}`);
    return s;
  }

  ready(sid: number): Promise<Result<OpenInfo>> {
    return settle(async () => {
      const entry = this.session(sid);
      await entry.session.ready;
      return this.info(entry);
    });
  }

  closed(sid: number): Promise<Result<{ closeCode: number; reason: string }>> {
    return settle(async () => {
      const info = await this.session(sid).session.closed;
      return { closeCode: info?.closeCode ?? 0, reason: info?.reason ?? '' };
    });
  }

  close(sid: number, info?: { closeCode?: number; reason?: string }): Promise<Result<object>> {
    return settle(() => {
      this.session(sid).session.close(info);
      return {};
    });
  }

  private register(sid: number, e: Omit<StreamEntry, 'sid'>): number {
    const id = this.nextStreamId++;
    this.streams.set(id, { sid, ...e });
    this.session(sid).streams.add(id);
    return id;
  }

  createBidi(sid: number): Promise<Result<{ id: number }>> {
    return settle(async () => {
      const s = await this.session(sid).session.createBidirectionalStream();
      return {
        id: this.register(sid, {
          reader: new BatchReader(s.readable.getReader()),
          writer: s.writable.getWriter(),
        }),
      };
    });
  }

  createUni(sid: number): Promise<Result<{ id: number }>> {
    return settle(async () => {
      const w = await this.session(sid).session.createUnidirectionalStream();
      return { id: this.register(sid, { writer: w.getWriter() }) };
    });
  }

  /** Resolves with the ids of the next incoming bidirectional streams (at least one), or `done`. */
  acceptBidi(sid: number): Promise<Result<{ ids: number[]; done: boolean }>> {
    return settle(async () => {
      const { chunks, done } = await this.session(sid).incomingBidi.read(MAX_BATCH_CHUNKS, Infinity);
      const ids = chunks.map((s) =>
        this.register(sid, {
          reader: new BatchReader(s.readable.getReader()),
          writer: s.writable.getWriter(),
        }),
      );
      return { ids, done };
    });
  }

  acceptUni(sid: number): Promise<Result<{ ids: number[]; done: boolean }>> {
    return settle(async () => {
      const { chunks, done } = await this.session(sid).incomingUni.read(MAX_BATCH_CHUNKS, Infinity);
      const ids = chunks.map((r) => this.register(sid, { reader: new BatchReader(r.getReader()) }));
      return { ids, done };
    });
  }

  /** Waits for data on a stream; returns every chunk already queued (base64) or `done` (FIN). */
  read(id: number): Promise<Result<{ chunks: string[]; done: boolean }>> {
    return settle(async () => {
      const e = this.stream(id);
      try {
        const { chunks, done } = await e.reader!.read(MAX_BATCH_CHUNKS, MAX_BATCH_BYTES);
        if (done) this.forgetReader(id);
        return { chunks: chunks.map(toBase64), done };
      } catch (err) {
        this.forgetReader(id);
        throw err;
      }
    });
  }

  cancel(id: number, code: number | null, message: string): Promise<Result<object>> {
    return settle(async () => {
      const e = this.streams.get(id);
      if (!e?.reader) return {};
      const makeError = this.sessions.get(e.sid)?.makeError ?? classErrors(AgentTransportError);
      const reader = e.reader;
      this.forgetReader(id);
      await reader.cancel(makeError(message, code));
      return {};
    });
  }

  write(id: number, b64: string): Promise<Result<object>> {
    return settle(async () => {
      const w = this.stream(id).writer!;
      try {
        await w.write(fromBase64(b64));
      } catch (err) {
        // A write already in flight when the peer's STOP_SENDING lands can reject with a generic NetworkError
        // (Chromium 156), while the stream itself is errored with the WebTransportError that W3C WebTransport
        // specifies (source 'stream', the peer's code). `closed` rejects with that stored error: report it.
        const stored = await w.closed.then(
          () => undefined,
          (e: unknown) => e,
        );
        throw stored ?? err;
      }
      return {};
    });
  }

  /** FIN. */
  end(id: number): Promise<Result<object>> {
    return settle(async () => {
      const w = this.stream(id).writer!;
      this.forgetWriter(id);
      await w.close();
      return {};
    });
  }

  abort(id: number, code: number | null, message: string): Promise<Result<object>> {
    return settle(async () => {
      const e = this.streams.get(id);
      if (!e?.writer) return {};
      const makeError = this.sessions.get(e.sid)?.makeError ?? classErrors(AgentTransportError);
      const w = e.writer;
      this.forgetWriter(id);
      await w.abort(makeError(message, code));
      return {};
    });
  }

  /**
   * Resolves when the writable side fails on its own (the peer's STOP_SENDING, the session's end), so that the
   * Node side can error its writable without waiting for the next write.
   */
  writerClosed(id: number): Promise<Result<object>> {
    return settle(async () => {
      const w = this.streams.get(id)?.writer;
      if (w) await w.closed;
      return {};
    });
  }

  private forgetReader(id: number): void {
    const e = this.streams.get(id);
    if (!e) return;
    e.reader = undefined;
    if (!e.writer) this.forget(id);
  }

  private forgetWriter(id: number): void {
    const e = this.streams.get(id);
    if (!e) return;
    e.writer = undefined;
    if (!e.reader) this.forget(id);
  }

  private forget(id: number): void {
    const e = this.streams.get(id);
    this.streams.delete(id);
    if (e) this.sessions.get(e.sid)?.streams.delete(id);
  }

  readDatagrams(sid: number): Promise<Result<{ chunks: string[]; done: boolean }>> {
    return settle(async () => {
      const entry = this.session(sid);
      entry.datagramReader ??= new BatchReader(entry.session.datagrams.readable.getReader());
      const { chunks, done } = await entry.datagramReader.read(MAX_BATCH_CHUNKS, MAX_BATCH_BYTES);
      entry.datagramsReceived += chunks.length;
      return { chunks: chunks.map(toBase64), done };
    });
  }

  writeDatagram(sid: number, b64: string): Promise<Result<{ maxDatagramSize: number }>> {
    return settle(async () => {
      const entry = this.session(sid);
      const d = entry.session.datagrams;
      if (!entry.datagramWriter) {
        const writable = d.writable ?? d.createWritable?.();
        if (!writable) throw new TypeError('session has no datagram writable');
        entry.datagramWriter = writable.getWriter();
      }
      const bytes = fromBase64(b64);
      // Native sessions drop oversized datagrams silently (W3C WebTransport §5.4); count them here.
      if (entry.kind === 'webtransport' && bytes.byteLength > d.maxDatagramSize) entry.datagramsTooLarge++;
      else entry.datagramsSent++;
      await entry.datagramWriter.write(bytes);
      return { maxDatagramSize: d.maxDatagramSize };
    });
  }

  getStats(sid: number): Promise<Result<{ stats: Record<string, unknown>; info: OpenInfo }>> {
    return settle(async () => {
      const entry = this.session(sid);
      const s = entry.session;
      const info = this.info(entry);
      if (entry.kind === 'module') return { stats: (await s.getStats!()) as Record<string, unknown>, info };
      // Chromium 156 has no WebTransport.getStats() and Firefox 153's throws NS_ERROR_NOT_IMPLEMENTED: then only the
      // agent's own datagram counts are known.
      let raw: Record<string, unknown> = {};
      try {
        if (typeof s.getStats === 'function') raw = (await s.getStats()) as Record<string, unknown>;
      } catch {
        raw = {};
      }
      return {
        stats: {
          ...raw,
          agentDatagrams: {
            sent: entry.datagramsSent,
            received: entry.datagramsReceived,
            tooLarge: entry.datagramsTooLarge,
          },
        },
        info,
      };
    });
  }
}

const g = globalThis as { __quiverAgent?: Agent };
g.__quiverAgent ??= new Agent();
