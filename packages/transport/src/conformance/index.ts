/**
 * The transport conformance suite: one set of vitest cases that every Quiver transport must pass.
 *
 * Usage, in a transport's test file:
 *
 * ```ts
 * import { runConformanceSuite } from '@quiver/transport/conformance';
 * runConformanceSuite({
 *   name: 'websocket',
 *   listen: () => listenWebSocket({ host: '127.0.0.1', port: 0 }),
 *   connect: (listener, path) => connectWebSocket(`ws://127.0.0.1:${listener.address.port}${path}`),
 *   capabilities: { unreliableDatagrams: false },
 * });
 * ```
 *
 * ## What a harness must provide ({@link ConformanceHarness})
 * - `listen()`: a fresh, bound {@link TransportListener} (127.0.0.1, port 0). The suite calls it once for the whole
 *   suite and once more for the leak test, and closes every listener it got (`listener.close()`), so `close()` must
 *   release every socket and timer.
 * - `connect(listener, path, options)`: a client {@link QuiverSession} to that listener. `path` starts with `/` and
 *   carries a query string (`/echo?cid=7`) which must reach the server unchanged: the suite's server matches requests
 *   to tests by the `cid` query parameter and chooses its behaviour by `request.path`. The client may live anywhere
 *   (a Node client, or a proxy into a browser page): the suite only uses the {@link QuiverSession} interface on the
 *   client side, moves bulk data in 64 KiB chunks and never relies on a client call being cheap.
 * - The server side always runs in this process: the suite reads `listener.incomingSessions` itself and calls
 *   `accept()` / `reject()`; tests also drive and inspect the server session directly.
 * - Optional: `capabilities` (see {@link ConformanceCapabilities}), `leakCheck()` (called after the leak test has closed
 *   everything: throw if the transport still holds anything, e.g. timers of a tracked clock, sockets of a pool),
 *   `bulkBytes` (default 16 MiB), `timeoutMs` (per test, default 30 s), `bulkTimeoutMs` (default 180 s),
 *   `setup()` / `teardown()` (run in `beforeAll` / `afterAll`, e.g. to launch and close a browser),
 *   `checkActiveResources` (default true: compare `process.getActiveResourcesInfo()` before and after the leak test).
 *
 * ## Server paths (what the suite's server does per `request.path`)
 * - `/echo`: accept; echo every client bidi stream on itself (FIN and resets propagate), answer every client uni
 *   stream with a new server uni stream carrying the same bytes, echo every datagram.
 * - `/manual`: accept and do nothing; the test drives the server session.
 * - `/reject`: `reject(403, 'conformance: forbidden')`, then checks that a later `accept()` throws.
 * - `/server-streams`: accept, then at once open a bidi stream carrying `server-bidi` + FIN (recording what the client
 *   answers on it) and a uni stream carrying `server-uni` + FIN.
 * - `/close?code=<n>&reason=<text>`: accept, then at once close with that code and reason.
 * - anything else: `reject(404)`.
 *
 * ## Cleanup
 * Every session a test opens, on either side, is closed in `afterEach` even when the test failed, and the suite waits
 * (bounded) for each `closed` to settle. Rejections of `ready`/`closed` are marked handled by the suite.
 */
import { createHash } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRng } from '../clock.js';
import { QuiverTransportError } from '../errors.js';
import type {
  ConnectOptions,
  IncomingSession,
  QuiverBidirectionalStream,
  QuiverSession,
  SessionRequest,
  TransportListener,
  TransportStats,
  WebTransportCloseInfo,
} from '../types.js';

export interface ConformanceCapabilities {
  /**
   * The transport may lose datagrams: its sessions report `reliability: 'supports-unreliable'` and the datagram test
   * only requires that most datagrams arrive. Default false: `reliable-only`, every datagram must arrive.
   */
  unreliableDatagrams?: boolean;
  /** The server can open bidi and uni streams toward the client. Default true. */
  serverInitiatedStreams?: boolean;
  /** Datagrams are supported at all. Default true. */
  datagrams?: boolean;
  /**
   * The client's `getStats()` fills byte and packet counters and the datagram drop counters (a proxy to a browser's
   * native stats may not). Default true. Server stats are always checked.
   */
  clientStats?: boolean;
  /**
   * A rejected client sees the HTTP status in the error of `ready`/`closed` or in the `closed` reason. Default true;
   * browsers hide it (W3C WebTransport exposes no status), so browser-backed harnesses set false.
   */
  rejectStatusVisible?: boolean;
  /**
   * When the server closes a session while stream data is in flight, the client's `closed` resolves with the
   * server's code and reason. Default true. Chromium (156) occasionally rejects `closed` with "Connection lost"
   * there although its network service read the close capsule and FIN (about 1 close in 10 with data in flight on a
   * loaded machine, per its net-log); the only server-side order that avoided it, resetting the session's streams
   * after the peer answered the close, crashes Chromium's renderer for sessions in a Worker. Harnesses for it set
   * false: the case then still requires that `closed` settles, as resolved with the code or rejected as a session
   * error, and checks everything else.
   */
  serverCloseInfoWithDataInFlight?: boolean;
  /**
   * The mirror case: when the client closes a session while stream data is in flight, the server's `closed`
   * resolves with the client's code and reason. Default true. From Firefox ESR 153 the server once (1 run in 16 on a
   * loaded machine) saw the connection closed (H3_NO_ERROR) without the capsule: Firefox closes the QUIC connection
   * right after its session, probably before a capsule queued behind stream data left. False: the server's `closed`
   * must still settle, with the code or as a session error.
   */
  clientCloseInfoWithDataInFlight?: boolean;
  /**
   * A client read of a stream the server reset rejects with `source: 'stream'` and the server's code (W3C
   * WebTransport §9). Default true. False (Firefox ESR 153: a plain `TypeError` without `streamErrorCode`): the
   * read must still reject rather than end or hang, and a code, if the error carries one, must be the server's.
   */
  resetCodesVisibleToReader?: boolean;
  /**
   * The client's `readable.cancel(reason)` sends STOP_SENDING with the reason's code, so the server's writes
   * reject with it. Default true. False (Firefox ESR 153 sends none): `cancel()` must still settle, the server's
   * further writes and FIN must complete, and the stream's other direction and the session must keep working.
   */
  cancelSendsStopSending?: boolean;
}

export interface ConformanceHarness {
  /** Shown in the describe block: `transport conformance: <name>`. */
  name: string;
  /** A fresh listener bound to 127.0.0.1 and an OS-chosen port (or the transport's equivalent). */
  listen(): Promise<TransportListener>;
  /** A client session for `path` (with its query string, e.g. `/echo?cid=3`) on `listener`. */
  connect(
    listener: TransportListener,
    path: string,
    options?: ConnectOptions,
  ): QuiverSession | Promise<QuiverSession>;
  capabilities?: ConformanceCapabilities;
  /** Called at the end of the leak test, after every session and the listener closed; throw on a leak. */
  leakCheck?: () => Promise<void> | void;
  /** Bytes sent each way in the bulk test. Default 16 MiB. */
  bulkBytes?: number;
  /** Per-test timeout in ms. Default 30 000. */
  timeoutMs?: number;
  /** Timeout of the bulk test in ms. Default 180 000. */
  bulkTimeoutMs?: number;
  /** Compare `process.getActiveResourcesInfo()` before and after the leak test. Default true. */
  checkActiveResources?: boolean;
  /** Runs in `beforeAll`, before the suite's listener exists. */
  setup?: () => Promise<void> | void;
  /** Runs in `afterAll`, after the suite's listener closed. */
  teardown?: () => Promise<void> | void;
}

/** What the suite's server knows of one request (matched to a test by the `cid` query parameter). */
export interface ServerSide {
  request: SessionRequest;
  session?: QuiverSession;
  rejected?: { status: number; reason: string };
  /** For `/reject`: whether `accept()` after `reject()` threw, as it must. */
  acceptAfterRejectThrew?: boolean;
  /** For `/server-streams`: what the client answered on the server's bidi stream. */
  serverStreamsReply?: Promise<string>;
  /** For `/echo`: one promise per echo loop; they always resolve (errors are recorded in `echoErrors`). */
  echoTasks: Promise<void>[];
  echoErrors: unknown[];
  /** For `/echo`: where each bidi echo is (`reading`, `closing`: the peer's FIN came and ours is being written, `closed`). */
  echoStages: string[];
}

const CHUNK = 64 * 1024;
const noop = (): void => {};

const encoder = new TextEncoder();
const decoder = new TextDecoder();
export const utf8 = (s: string): Uint8Array => encoder.encode(s);
export const fromUtf8 = (b: Uint8Array): string => decoder.decode(b);

/** Deterministic bytes: the same (seed, length) always gives the same content. */
export function patternBytes(seed: number, length: number): Uint8Array {
  const rng = createRng(seed);
  const out = new Uint8Array(length);
  const view = new DataView(out.buffer);
  let i = 0;
  for (; i + 4 <= length; i += 4) view.setUint32(i, rng.uint32());
  for (; i < length; i++) out[i] = rng.int(256);
  return out;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const c of chunks) total += c.byteLength;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Rejects with a descriptive error when `promise` does not settle within `ms` (the timer is always cleared). */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };
async function settle<T>(p: Promise<T>): Promise<Settled<T>> {
  try {
    return { ok: true, value: await p };
  } catch (error) {
    return { ok: false, error };
  }
}

export async function readAll(readable: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const reader = readable.getReader();
  const chunks: Uint8Array[] = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
  }
  release(reader);
  return concat(chunks);
}

export async function writeAll(writable: WritableStream<Uint8Array>, data: Uint8Array): Promise<void> {
  const writer = writable.getWriter();
  for (let offset = 0; offset < data.byteLength; offset += CHUNK) {
    await writer.write(data.slice(offset, offset + CHUNK));
  }
  await writer.close();
}

/** Reads until a read rejects and returns that rejection; rejects itself if the stream ends cleanly. */
async function readUntilError(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<unknown> {
  for (;;) {
    let done: boolean | undefined;
    try {
      ({ done } = await reader.read());
    } catch (error) {
      return error;
    }
    if (done) throw new Error('the stream ended cleanly where an error was expected');
  }
}

function describeError(error: unknown): string {
  if (error && typeof error === 'object') {
    const e = error as { name?: unknown; message?: unknown; source?: unknown; streamErrorCode?: unknown };
    return `${String(e.name)}: ${String(e.message)} (source=${String(e.source)}, streamErrorCode=${String(e.streamErrorCode)})`;
  }
  return String(error);
}

/** A stream error as W3C WebTransport §9 defines it: `source: 'stream'` and the peer's application code. */
function expectStreamError(error: unknown, code: number): void {
  expect(error, describeError(error)).toBeTypeOf('object');
  const e = error as { source?: unknown; streamErrorCode?: unknown };
  expect(e.source, describeError(error)).toBe('stream');
  expect(e.streamErrorCode, describeError(error)).toBe(code);
}

function expectSaneStats(stats: TransportStats, what: string, minBytes: number): void {
  const nonNegative = (v: unknown, field: string) => {
    expect(typeof v === 'number' && Number.isFinite(v) && v >= 0, `${what}.${field} = ${String(v)}`).toBe(
      true,
    );
  };
  nonNegative(stats.timestamp, 'timestamp');
  nonNegative(stats.smoothedRtt, 'smoothedRtt');
  nonNegative(stats.rttVariation, 'rttVariation');
  nonNegative(stats.minRtt, 'minRtt');
  nonNegative(stats.packetsLost, 'packetsLost');
  expect(stats.bytesSent, `${what}.bytesSent`).toBeGreaterThanOrEqual(minBytes);
  expect(stats.bytesReceived, `${what}.bytesReceived`).toBeGreaterThanOrEqual(minBytes);
  expect(stats.packetsSent, `${what}.packetsSent`).toBeGreaterThan(0);
  expect(stats.packetsReceived, `${what}.packetsReceived`).toBeGreaterThan(0);
  nonNegative(stats.datagrams.sent, 'datagrams.sent');
  nonNegative(stats.datagrams.received, 'datagrams.received');
  for (const [reason, n] of Object.entries(stats.datagrams.droppedOutgoing)) {
    expect(Number.isInteger(n) && (n as number) >= 0, `${what} droppedOutgoing.${reason} = ${n}`).toBe(true);
  }
  for (const [reason, n] of Object.entries(stats.datagrams.droppedIncoming)) {
    expect(Number.isInteger(n) && (n as number) >= 0, `${what} droppedIncoming.${reason} = ${n}`).toBe(true);
  }
}

function markHandled(session: QuiverSession): void {
  session.ready.catch(noop);
  session.closed.catch(noop);
}

/** Releases a reader or writer lock; with a read still pending some runtimes throw, which must not mask a failure. */
function release(lock: { releaseLock(): void }): void {
  try {
    lock.releaseLock();
  } catch {
    // the lock goes away with the stream
  }
}

async function readOne<T>(readable: ReadableStream<T>, what: string, ms: number): Promise<T> {
  const reader = readable.getReader();
  try {
    const { value, done } = await withTimeout(reader.read(), ms, what);
    if (done) throw new Error(`${what}: the stream of incoming items ended`);
    return value;
  } finally {
    release(reader);
  }
}

/** Reads a readable to its end in the background, swallowing errors; for echo loops. */
function consume<T>(readable: ReadableStream<T>, each: (item: T) => void | Promise<void>): Promise<void> {
  return (async () => {
    const reader = readable.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      await each(value);
    }
  })();
}

/** The suite's server: reads the listener's requests and applies the behaviour of their path. */
class ConformanceServer {
  readonly seen: SessionRequest[] = [];
  readonly sides = new Map<string, ServerSide>();
  readonly done: Promise<void>;
  #waiters = new Map<string, (side: ServerSide) => void>();
  #reader: ReadableStreamDefaultReader<IncomingSession>;

  constructor(readonly listener: TransportListener) {
    this.#reader = listener.incomingSessions.getReader();
    this.done = this.#run();
  }

  expect(cid: string): Promise<ServerSide> {
    const existing = this.sides.get(cid);
    if (existing) return Promise.resolve(existing);
    return new Promise((resolve) => this.#waiters.set(cid, resolve));
  }

  forget(cid: string): void {
    this.#waiters.delete(cid);
  }

  async #run(): Promise<void> {
    for (;;) {
      let next: ReadableStreamReadResult<IncomingSession>;
      try {
        next = await this.#reader.read();
      } catch {
        return;
      }
      if (next.done) return;
      try {
        this.#handle(next.value);
      } catch {
        // A transport throwing from accept()/reject() fails the test that waits for this side (it never arrives).
      }
    }
  }

  #handle(incoming: IncomingSession): void {
    const request = incoming.request;
    this.seen.push(request);
    const cid = request.query.get('cid') ?? '';
    const side: ServerSide = { request, echoTasks: [], echoErrors: [], echoStages: [] };
    switch (request.path) {
      case '/echo': {
        side.session = incoming.accept();
        markHandled(side.session);
        startEcho(side.session, side);
        break;
      }
      case '/manual': {
        side.session = incoming.accept();
        markHandled(side.session);
        break;
      }
      case '/server-streams': {
        const session = incoming.accept();
        side.session = session;
        markHandled(session);
        const reply = (async () => {
          const bidi = await session.createBidirectionalStream();
          const answer = readAll(bidi.readable);
          await writeAll(bidi.writable, utf8('server-bidi'));
          await writeAll(await session.createUnidirectionalStream(), utf8('server-uni'));
          return fromUtf8(await answer);
        })();
        reply.catch(noop);
        side.serverStreamsReply = reply;
        break;
      }
      case '/close': {
        side.session = incoming.accept();
        markHandled(side.session);
        side.session.close({
          closeCode: Number(request.query.get('code') ?? 0),
          reason: request.query.get('reason') ?? '',
        });
        break;
      }
      case '/reject': {
        incoming.reject(403, 'conformance: forbidden');
        side.rejected = { status: 403, reason: 'conformance: forbidden' };
        try {
          const wrong = incoming.accept();
          markHandled(wrong);
          wrong.close();
          side.acceptAfterRejectThrew = false;
        } catch {
          side.acceptAfterRejectThrew = true;
        }
        break;
      }
      default:
        incoming.reject(404, 'conformance: no such path');
        side.rejected = { status: 404, reason: 'conformance: no such path' };
    }
    if (cid && !this.sides.has(cid)) this.sides.set(cid, side);
    const waiter = this.#waiters.get(cid);
    this.#waiters.delete(cid);
    waiter?.(side);
  }

  async close(): Promise<void> {
    for (const side of this.sides.values()) {
      if (side.session) {
        try {
          side.session.close({ closeCode: 0, reason: 'conformance: listener closing' });
        } catch {
          // already closed
        }
      }
    }
    await withTimeout(this.listener.close(), 10_000, 'listener.close()');
    await this.#reader.cancel().catch(noop);
    await withTimeout(this.done, 5_000, 'the server loop to end after listener.close()').catch(noop);
  }
}

function startEcho(session: QuiverSession, side: ServerSide): void {
  const record = (p: Promise<void>) =>
    side.echoTasks.push(
      p.catch((error) => {
        side.echoErrors.push(error);
      }),
    );
  record(
    consume(session.incomingBidirectionalStreams, (stream) => {
      const i = side.echoStages.push('reading') - 1;
      record(echoBidi(stream, (st) => (side.echoStages[i] = st)));
    }),
  );
  record(
    consume(session.incomingUnidirectionalStreams, (readable) => void record(echoUni(session, readable))),
  );
  record(echoDatagrams(session));
}

async function echoBidi(stream: QuiverBidirectionalStream, stage: (s: string) => void): Promise<void> {
  const reader = stream.readable.getReader();
  const writer = stream.writable.getWriter();
  try {
    let echoed = 0;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      await writer.write(value);
      echoed += value.byteLength;
      stage(`reading, ${echoed} B echoed`);
    }
    stage(`closing after ${echoed} B`);
    await writer.close();
    stage(`closed after ${echoed} B`);
  } catch (error) {
    // Propagate the peer's reset (with its code) back, and stop the peer's sending if our side failed.
    writer.abort(error).catch(noop);
    reader.cancel(error).catch(noop);
    throw error;
  }
}

async function echoUni(session: QuiverSession, readable: ReadableStream<Uint8Array>): Promise<void> {
  const data = await readAll(readable);
  const writable = await session.createUnidirectionalStream();
  await writeAll(writable, data);
}

async function echoDatagrams(session: QuiverSession): Promise<void> {
  const writer = session.datagrams.writable.getWriter();
  try {
    await consume(session.datagrams.readable, async (datagram) => {
      await writer.ready;
      await writer.write(datagram);
    });
  } finally {
    release(writer);
  }
}

function resourceCounts(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const type of process.getActiveResourcesInfo()) counts.set(type, (counts.get(type) ?? 0) + 1);
  return counts;
}

function resourceExcess(baseline: Map<string, number>): string[] {
  const excess: string[] = [];
  for (const [type, n] of resourceCounts()) {
    const base = baseline.get(type) ?? 0;
    if (n > base) excess.push(`${type}: ${n} > ${base}`);
  }
  return excess;
}

/** Registers the conformance cases for `harness` as a vitest `describe` block. */
export function runConformanceSuite(harness: ConformanceHarness): void {
  const caps = {
    unreliableDatagrams: false,
    serverInitiatedStreams: true,
    datagrams: true,
    clientStats: true,
    rejectStatusVisible: true,
    serverCloseInfoWithDataInFlight: true,
    clientCloseInfoWithDataInFlight: true,
    resetCodesVisibleToReader: true,
    cancelSendsStopSending: true,
    ...harness.capabilities,
  };
  const timeoutMs = harness.timeoutMs ?? 30_000;
  const bulkTimeoutMs = harness.bulkTimeoutMs ?? 180_000;
  const bulkBytes = harness.bulkBytes ?? 16 * 1024 * 1024;
  // Inner waits give up before vitest does, so a hang fails with a message naming what hung.
  const waitMs = Math.max(1_000, Math.floor(timeoutMs * 0.8));

  describe(`transport conformance: ${harness.name}`, () => {
    let listener: TransportListener | undefined;
    let server: ConformanceServer | undefined;
    let cidSeq = 0;
    const opened: QuiverSession[] = [];

    beforeAll(async () => {
      await harness.setup?.();
      listener = await harness.listen();
      server = new ConformanceServer(listener);
    }, timeoutMs);

    afterAll(async () => {
      try {
        await server?.close();
      } finally {
        await harness.teardown?.();
      }
    }, timeoutMs);

    afterEach(async () => {
      const sessions = opened.splice(0);
      for (const session of sessions) {
        try {
          session.close({ closeCode: 0, reason: 'conformance: test cleanup' });
        } catch {
          // closing a closed session may throw on some transports; it is closed either way
        }
      }
      await Promise.all(
        sessions.map((s) =>
          withTimeout(settle(s.closed), waitMs, 'a session to close after the test').catch(noop),
        ),
      );
    }, timeoutMs);

    function track(session: QuiverSession): QuiverSession {
      markHandled(session);
      opened.push(session);
      return session;
    }

    type Path = '/echo' | '/manual' | '/reject' | '/server-streams' | '/close';
    async function connectRaw(path: Path, on = { listener, server }, query = '') {
      const cid = String(++cidSeq);
      const side = on.server!.expect(cid);
      let client: QuiverSession;
      try {
        client = track(await harness.connect(on.listener!, `${path}?cid=${cid}${query}`));
      } catch (error) {
        on.server!.forget(cid);
        throw error;
      }
      return { cid, client, side };
    }

    /** Connects to `path`, waits for both ends, and returns the client and the server session. */
    async function open(path: '/echo' | '/manual' | '/server-streams', on = { listener, server }) {
      const { cid, client, side } = await connectRaw(path, on);
      const serverSide = await withTimeout(side, waitMs, `the server to see request ${path}?cid=${cid}`);
      const session = track(serverSide.session!);
      await withTimeout(client.ready, waitMs, 'client.ready');
      await withTimeout(session.ready, waitMs, 'server session ready');
      return { client, server: session, side: serverSide };
    }

    it(
      'opens a session: ready on both ends, request fields, transport name and reliability',
      async () => {
        const { client, server: s, side } = await open('/echo');
        expect(side.request.path).toBe('/echo');
        expect(side.request.url.startsWith('/echo?')).toBe(true);
        expect(side.request.query.get('cid')).toBeTruthy();
        expect(side.request.transport).toBe(listener!.transport);
        expect(s.transport).toBe(listener!.transport);
        const reliability = caps.unreliableDatagrams ? 'supports-unreliable' : 'reliable-only';
        expect(s.reliability).toBe(reliability);
        expect(client.reliability).toBe(reliability);
        if (caps.datagrams) {
          expect(client.datagrams.maxDatagramSize).toBeGreaterThan(0);
          expect(s.datagrams.maxDatagramSize).toBeGreaterThan(0);
        }
      },
      timeoutMs,
    );

    it(
      'echoes a bidirectional stream and ends it with FIN',
      async () => {
        const { client } = await open('/echo');
        const stream = await client.createBidirectionalStream();
        const writer = stream.writable.getWriter();
        const echoed = readAll(stream.readable);
        await writer.write(utf8('hello, '));
        await writer.write(utf8('quiver ✓'));
        await writer.close();
        expect(fromUtf8(await withTimeout(echoed, waitMs, 'the echo and its FIN'))).toBe('hello, quiver ✓');
      },
      timeoutMs,
    );

    it(
      'carries a unidirectional stream from client to server',
      async () => {
        const { client, server: s } = await open('/manual');
        const writable = await client.createUnidirectionalStream();
        const sent = patternBytes(11, 100_000);
        const writing = writeAll(writable, sent);
        const readable = await readOne(
          s.incomingUnidirectionalStreams,
          'the server to get the uni stream',
          waitMs,
        );
        const received = await withTimeout(readAll(readable), waitMs, 'the uni stream to end at the server');
        await writing;
        expect(equalBytes(received, sent)).toBe(true);
      },
      timeoutMs,
    );

    it.skipIf(!caps.serverInitiatedStreams)(
      'carries a unidirectional stream from server to client',
      async () => {
        const { client, server: s } = await open('/manual');
        const writable = await s.createUnidirectionalStream();
        const sent = patternBytes(12, 100_000);
        const writing = writeAll(writable, sent);
        const readable = await readOne(
          client.incomingUnidirectionalStreams,
          'the client to get the uni stream',
          waitMs,
        );
        const received = await withTimeout(readAll(readable), waitMs, 'the uni stream to end at the client');
        await writing;
        expect(equalBytes(received, sent)).toBe(true);
      },
      timeoutMs,
    );

    it(
      'answers a client unidirectional stream with a server unidirectional stream (echo)',
      async () => {
        const { client } = await open('/echo');
        const writable = await client.createUnidirectionalStream();
        await writeAll(writable, utf8('uni echo'));
        const readable = await readOne(client.incomingUnidirectionalStreams, 'the echoed uni stream', waitMs);
        expect(fromUtf8(await withTimeout(readAll(readable), waitMs, 'the echoed uni stream to end'))).toBe(
          'uni echo',
        );
      },
      timeoutMs,
    );

    it.skipIf(!caps.serverInitiatedStreams)(
      'opens a server-initiated bidirectional stream',
      async () => {
        const { client, server: s } = await open('/manual');
        const stream = await s.createBidirectionalStream();
        const serverGot = readAll(stream.readable);
        await writeAll(stream.writable, utf8('ping from server'));
        const incoming = await readOne(
          client.incomingBidirectionalStreams,
          'the client to get the bidi stream',
          waitMs,
        );
        expect(fromUtf8(await withTimeout(readAll(incoming.readable), waitMs, 'ping'))).toBe(
          'ping from server',
        );
        await writeAll(incoming.writable, utf8('pong from client'));
        expect(fromUtf8(await withTimeout(serverGot, waitMs, 'pong'))).toBe('pong from client');
      },
      timeoutMs,
    );

    it.skipIf(!caps.serverInitiatedStreams)(
      'receives streams the server opens at the moment it accepts',
      async () => {
        const { client, side } = await open('/server-streams');
        const bidi = await readOne(client.incomingBidirectionalStreams, 'the server bidi stream', waitMs);
        expect(fromUtf8(await withTimeout(readAll(bidi.readable), waitMs, 'server-bidi'))).toBe(
          'server-bidi',
        );
        await writeAll(bidi.writable, utf8('client-reply'));
        const uni = await readOne(client.incomingUnidirectionalStreams, 'the server uni stream', waitMs);
        expect(fromUtf8(await withTimeout(readAll(uni), waitMs, 'server-uni'))).toBe('server-uni');
        expect(await withTimeout(side.serverStreamsReply!, waitMs, 'the reply at the server')).toBe(
          'client-reply',
        );
      },
      timeoutMs,
    );

    it.skipIf(!caps.datagrams)(
      'exchanges datagrams both ways (echo)',
      async () => {
        const { client, server: s } = await open('/echo');
        const n = 64;
        const size = 200;
        const make = (i: number) => {
          const d = patternBytes(1000 + i, size);
          new DataView(d.buffer).setUint32(0, i);
          return d;
        };
        const reader = client.datagrams.readable.getReader();
        const writer = client.datagrams.writable.getWriter();
        const got = new Set<number>();
        const checkEcho = (d: Uint8Array) => {
          expect(d.byteLength).toBe(size);
          const i = new DataView(d.buffer, d.byteOffset, d.byteLength).getUint32(0);
          expect(i).toBeLessThan(n);
          expect(equalBytes(d, make(i)), `datagram ${i} corrupted`).toBe(true);
          got.add(i);
        };
        if (!caps.unreliableDatagrams) {
          for (let i = 0; i < n; i++) {
            await writer.ready;
            await writer.write(make(i));
          }
          while (got.size < n) {
            const { value, done } = await withTimeout(
              reader.read(),
              waitMs,
              `datagram echoes (${got.size}/${n} so far)`,
            );
            if (done) throw new Error(`datagram readable ended after ${got.size}/${n}`);
            checkEcho(value);
          }
          expect(got.size).toBe(n);
        } else {
          // Stop-and-wait with a short per-datagram wait: losses cost time but never hang the test.
          let pendingRead: Promise<ReadableStreamReadResult<Uint8Array>> | undefined;
          for (let i = 0; i < n; i++) {
            await writer.ready;
            await writer.write(make(i));
            const deadline = Date.now() + 250;
            while (!got.has(i) && Date.now() < deadline) {
              pendingRead ??= reader.read();
              const r = await Promise.race([
                pendingRead,
                sleep(Math.max(1, deadline - Date.now())).then(() => null),
              ]);
              if (r === null) break;
              pendingRead = undefined;
              if (r.done) throw new Error('datagram readable ended');
              checkEcho(r.value);
            }
          }
          // Echoes that were merely late (a loaded machine) still count: drain for a while before judging.
          const drainUntil = Date.now() + waitMs / 2;
          while (got.size < n && Date.now() < drainUntil) {
            pendingRead ??= reader.read();
            const r = await Promise.race([
              pendingRead,
              sleep(Math.max(1, drainUntil - Date.now())).then(() => null),
            ]);
            if (r === null) break;
            pendingRead = undefined;
            if (r.done) throw new Error('datagram readable ended');
            checkEcho(r.value);
          }
          expect(got.size, `only ${got.size}/${n} datagrams made the round trip`).toBeGreaterThanOrEqual(
            n / 2,
          );
        }
        const stats = await s.getStats();
        expect(stats.datagrams.received).toBeGreaterThanOrEqual(got.size);
        expect(stats.datagrams.sent).toBeGreaterThanOrEqual(got.size);
        release(reader);
        release(writer);
      },
      timeoutMs,
    );

    it.skipIf(!caps.datagrams)(
      'drops datagrams larger than maxDatagramSize and counts them as too-large',
      async () => {
        const { client, server: s } = await open('/manual');
        const serverWriter = s.datagrams.writable.getWriter();
        const clientWriter = client.datagrams.writable.getWriter();
        const reader = client.datagrams.readable.getReader();
        // A too-large write may resolve (W3C: silently dropped) or reject; it must not hang nor be delivered.
        await withTimeout(
          settle(serverWriter.write(new Uint8Array(s.datagrams.maxDatagramSize + 1))),
          waitMs,
          'a too-large server datagram write to settle',
        );
        await withTimeout(
          settle(clientWriter.write(new Uint8Array(client.datagrams.maxDatagramSize + 1))),
          waitMs,
          'a too-large client datagram write to settle',
        );
        const marker = utf8('small enough');
        let first: Uint8Array | undefined;
        const read = reader.read();
        const until = Date.now() + waitMs / 2;
        while (!first && Date.now() < until) {
          await serverWriter.write(marker);
          const r = await Promise.race([read, sleep(20).then(() => null)]);
          if (r?.done) throw new Error('datagram readable ended');
          if (r) first = r.value;
        }
        expect(first, 'no datagram reached the client').toBeDefined();
        expect(fromUtf8(first!)).toBe('small enough');
        const serverStats = await s.getStats();
        expect(serverStats.datagrams.droppedOutgoing['too-large']).toBeGreaterThanOrEqual(1);
        if (caps.clientStats) {
          const clientStats = await client.getStats();
          expect(clientStats.datagrams.droppedOutgoing['too-large']).toBeGreaterThanOrEqual(1);
        }
        release(reader);
        release(serverWriter);
        release(clientWriter);
      },
      timeoutMs,
    );

    it(
      `transfers ${bulkBytes} bytes each way on one stream with matching SHA-256`,
      async () => {
        const { client } = await open('/echo');
        const stream = await client.createBidirectionalStream();
        const sentHash = createHash('sha256');
        const receivedHash = createHash('sha256');
        let receivedBytes = 0;
        const receiving = (async () => {
          const reader = stream.readable.getReader();
          for (;;) {
            const { value, done } = await reader.read();
            if (done) return;
            receivedHash.update(value);
            receivedBytes += value.byteLength;
          }
        })();
        const writer = stream.writable.getWriter();
        const rng = createRng(0xb01c);
        for (let offset = 0; offset < bulkBytes; offset += CHUNK) {
          // A fresh buffer per write: a transport may hold on to what it was given until it is sent.
          const chunk = new Uint8Array(Math.min(CHUNK, bulkBytes - offset));
          const view = new DataView(chunk.buffer);
          for (let i = 0; i + 4 <= chunk.byteLength; i += 4) view.setUint32(i, rng.uint32());
          sentHash.update(chunk);
          await writer.write(chunk);
        }
        await writer.close();
        await withTimeout(receiving, bulkTimeoutMs, 'the bulk echo to end');
        expect(receivedBytes).toBe(bulkBytes);
        expect(receivedHash.digest('hex')).toBe(sentHash.digest('hex'));
      },
      bulkTimeoutMs,
    );

    it(
      'echoes 100 concurrent streams, each with its own data',
      async () => {
        const { client, side } = await open('/echo');
        // Where each stream is, so that a timeout names the stage that stalled (opened, written, echoed).
        const stage = Array.from({ length: 100 }, () => 'opening');
        const got = Array.from({ length: 100 }, () => 0);
        const results = await withTimeout(
          Promise.all(
            Array.from({ length: 100 }, async (_, i) => {
              const stream = await client.createBidirectionalStream();
              stage[i] = 'open';
              const sent = patternBytes(5000 + i, 1000 + i * 97);
              const [, received] = await Promise.all([
                writeAll(stream.writable, sent).then(() => {
                  stage[i] = stage[i] === 'open' ? 'written' : 'done';
                }),
                (async () => {
                  const chunks: Uint8Array[] = [];
                  const reader = stream.readable.getReader();
                  for (;;) {
                    const { value, done } = await reader.read();
                    if (done) break;
                    chunks.push(value);
                    got[i] += value.byteLength;
                  }
                  stage[i] = stage[i] === 'open' ? 'echoed before written' : 'done';
                  return concat(chunks);
                })(),
              ]);
              return equalBytes(received, sent);
            }),
          ),
          waitMs,
          '100 concurrent echoes',
        ).catch((err: Error) => {
          const by = new Map<string, number[]>();
          stage.forEach((st, i) => {
            by.set(st, [...(by.get(st) ?? []), i]);
          });
          const summary = [...by].map(
            ([st, ids]) =>
              `${st}: ${ids.length} (${ids
                .slice(0, 8)
                .map((i) => (st === 'done' ? i : `${i}: ${got[i]}/${1000 + i * 97} B back`))
                .join(',')})`,
          );
          throw new Error(
            `${err.message}; streams by stage: ${summary.join('; ')}; server echo loops: ${side.echoTasks.length}, errors: ${side.echoErrors.length}, server echoes by stage: ${JSON.stringify(
              side.echoStages.filter((st) => !st.startsWith('closed')),
            )}`,
          );
        });
        expect(results.filter((ok) => !ok).length).toBe(0);
      },
      timeoutMs,
    );

    /**
     * W3C WebTransport: a STOP_SENDING errors the writable when it arrives (`writer.closed` rejects with the
     * WebTransportError, source 'stream', the peer's code), and every later write rejects with that error. The
     * writer stays idle until then: a write in flight when STOP_SENDING lands may fail with whatever the network
     * layer reports (Chromium rejects it, and can error the stream, with a generic NetworkError; Firefox with an
     * AbortError), so writing in a loop made this check depend on timing.
     */
    async function expectStoppedWriter(
      writer: WritableStreamDefaultWriter<Uint8Array>,
      code: number,
      what: string,
    ) {
      const stopped = await withTimeout(
        writer.closed.then(
          () => new Error('the writable closed without an error'),
          (e: unknown) => e,
        ),
        waitMs,
        what,
      );
      expectStreamError(stopped, code);
      expectStreamError(
        await writer.write(new Uint8Array(1024)).then(
          () => new Error('a write after STOP_SENDING succeeded'),
          (e: unknown) => e,
        ),
        code,
      );
    }

    /** A client bidi stream the server has seen, with one message each way so both ends know the stream exists. */
    async function handshakeStream(client: QuiverSession, s: QuiverSession) {
      const stream = await client.createBidirectionalStream();
      const cw = stream.writable.getWriter();
      const cr = stream.readable.getReader();
      await cw.write(utf8('x'));
      const serverStream = await readOne(
        s.incomingBidirectionalStreams,
        'the server to get the stream',
        waitMs,
      );
      const sr = serverStream.readable.getReader();
      const sw = serverStream.writable.getWriter();
      const first = await withTimeout(sr.read(), waitMs, 'the first byte at the server');
      expect(first.done).toBe(false);
      await sw.write(utf8('ack'));
      const ack = await withTimeout(cr.read(), waitMs, 'the ack at the client');
      expect(ack.done).toBe(false);
      return { cw, cr, sw, sr };
    }

    it(
      'resets a stream client to server: the server read rejects with the code',
      async () => {
        const { client, server: s } = await open('/manual');
        const { cw, sr } = await handshakeStream(client, s);
        await cw.abort(new QuiverTransportError('conformance reset', { streamErrorCode: 42 }));
        expectStreamError(await withTimeout(readUntilError(sr), waitMs, 'the reset at the server'), 42);
      },
      timeoutMs,
    );

    it(
      'resets a stream server to client: the client read rejects with the code',
      async () => {
        const { client, server: s } = await open('/manual');
        const { cr, sw } = await handshakeStream(client, s);
        await sw.abort(new QuiverTransportError('conformance reset', { streamErrorCode: 3_000_000_000 }));
        const error = await withTimeout(readUntilError(cr), waitMs, 'the reset at the client');
        if (caps.resetCodesVisibleToReader) {
          expectStreamError(error, 3_000_000_000);
        } else {
          // The read rejected (readUntilError fails on a clean end); whatever code the client does report is the server's.
          expect(error, describeError(error)).toBeTypeOf('object');
          const code = (error as { streamErrorCode?: unknown }).streamErrorCode;
          if (code !== undefined && code !== null) expectStreamError(error, 3_000_000_000);
        }
      },
      timeoutMs,
    );

    it(
      'stops sending client to server: the server writes reject with the code',
      async () => {
        const { client, server: s } = await open('/manual');
        const { cw, cr, sw, sr } = await handshakeStream(client, s);
        await withTimeout(
          cr.cancel(new QuiverTransportError('conformance stop', { streamErrorCode: 44 })),
          waitMs,
          'readable.cancel() at the client',
        );
        if (caps.cancelSendsStopSending) {
          await expectStoppedWriter(sw, 44, 'STOP_SENDING at the server');
          return;
        }
        // No STOP_SENDING: the server's writes and FIN go through (into the client's discarded readable), the
        // client's half of the stream still carries data to its end, and the session opens and echoes new streams.
        await withTimeout(
          (async () => {
            for (let i = 0; i < 4; i++) await sw.write(patternBytes(440 + i, 1024));
            await sw.close();
          })(),
          waitMs,
          'server writes and FIN after a client cancel without STOP_SENDING',
        );
        const serverGot = (async () => {
          const chunks: Uint8Array[] = [];
          for (;;) {
            const { value, done } = await sr.read();
            if (done) return fromUtf8(concat(chunks));
            chunks.push(value);
          }
        })();
        await cw.write(utf8('after cancel'));
        await cw.close();
        expect(await withTimeout(serverGot, waitMs, 'the client half after the cancel')).toBe('after cancel');
        const next = await client.createBidirectionalStream();
        const fresh = s.incomingBidirectionalStreams.getReader();
        const reply = (async () => {
          const { value, done } = await withTimeout(fresh.read(), waitMs, 'a new stream at the server');
          release(fresh);
          if (done) throw new Error('the stream of incoming bidi streams ended');
          const got = await readAll(value.readable);
          await writeAll(value.writable, got);
        })();
        const [, echoed] = await withTimeout(
          Promise.all([writeAll(next.writable, utf8('still open')), readAll(next.readable), reply]),
          waitMs,
          'a new stream after the cancel',
        );
        expect(fromUtf8(echoed)).toBe('still open');
      },
      timeoutMs,
    );

    it(
      'stops sending server to client: the client writes reject with the code',
      async () => {
        const { client, server: s } = await open('/manual');
        const { cw, sr } = await handshakeStream(client, s);
        await sr.cancel(new QuiverTransportError('conformance stop', { streamErrorCode: 45 }));
        await expectStoppedWriter(cw, 45, 'STOP_SENDING at the client');
      },
      timeoutMs,
    );

    const expectCloseInfo = async (session: QuiverSession, want: WebTransportCloseInfo, what: string) => {
      const info = await withTimeout(session.closed, waitMs, `${what}.closed`);
      expect(info.closeCode, `${what} closeCode`).toBe(want.closeCode);
      expect(info.reason, `${what} reason`).toBe(want.reason);
    };

    it(
      'closes the session from the client with a code and reason seen by both ends',
      async () => {
        const { client, server: s } = await open('/manual');
        const info = { closeCode: 4242, reason: 'client bye ✓' };
        client.close(info);
        await expectCloseInfo(client, info, 'client');
        await expectCloseInfo(s, info, 'server');
      },
      timeoutMs,
    );

    it(
      'closes the session from the server with a code and reason seen by both ends',
      async () => {
        const { client, server: s } = await open('/manual');
        const info = { closeCode: 0xfffffffe, reason: 'server bye' };
        s.close(info);
        await expectCloseInfo(s, info, 'server');
        await expectCloseInfo(client, info, 'client');
      },
      timeoutMs,
    );

    it(
      'closes without close info as code 0 and an empty reason',
      async () => {
        const { client, server: s } = await open('/manual');
        client.close();
        await expectCloseInfo(client, { closeCode: 0, reason: '' }, 'client');
        await expectCloseInfo(s, { closeCode: 0, reason: '' }, 'server');
      },
      timeoutMs,
    );

    it(
      'delivers a close the server sends right after accepting',
      async () => {
        const reason = 'closed at once';
        const { client, side } = await connectRaw(
          '/close',
          undefined,
          `&code=77&reason=${encodeURIComponent(reason)}`,
        );
        const info = await withTimeout(
          client.closed,
          waitMs,
          'client.closed after an immediate server close',
        );
        expect(info.closeCode).toBe(77);
        expect(info.reason).toBe(reason);
        const serverSide = await withTimeout(side, waitMs, 'the server to see the request');
        expect(await withTimeout(serverSide.session!.closed, waitMs, 'server closed')).toEqual({
          closeCode: 77,
          reason,
        });
      },
      timeoutMs,
    );

    for (const closer of ['client', 'server'] as const) {
      it(
        `closes from the ${closer} while data is in flight: no hang, streams error, both ends closed`,
        async () => {
          const { client, server: s, side } = await open('/echo');
          const stream = await client.createBidirectionalStream();
          const writer = stream.writable.getWriter();
          const reader = stream.readable.getReader();
          let received = 0;
          let enough: () => void = noop;
          const gotEnough = new Promise<void>((resolve) => {
            enough = resolve;
          });
          const reading = (async () => {
            for (;;) {
              const { value, done } = await reader.read();
              if (done) throw new Error('the stream ended cleanly although the session closed under it');
              received += value.byteLength;
              if (received >= 4 * CHUNK) enough();
            }
          })();
          const writing = (async () => {
            for (let i = 0; ; i++) {
              await writer.write(patternBytes(i, CHUNK));
            }
          })();
          reading.catch(noop);
          writing.catch(noop);
          await withTimeout(gotEnough, waitMs, 'some echoed data before the close');
          const info = { closeCode: 9, reason: `${closer} closed mid-flight` };
          (closer === 'client' ? client : s).close(info);
          // The closing end always knows its own close; the other end may not learn it in every browser (above).
          const expectPeerClose = async (session: QuiverSession, what: string) => {
            const closed = await withTimeout(settle(session.closed), waitMs, `${what}.closed`);
            if (closed.ok) expect(closed.value).toEqual(info);
            else
              expect((closed.error as { source?: string }).source, describeError(closed.error)).toBe(
                'session',
              );
          };
          if (closer === 'client' || caps.serverCloseInfoWithDataInFlight)
            await expectCloseInfo(client, info, 'client');
          else await expectPeerClose(client, 'client');
          if (closer === 'server' || caps.clientCloseInfoWithDataInFlight)
            await expectCloseInfo(s, info, 'server');
          else await expectPeerClose(s, 'server');
          const [r, w] = await withTimeout(
            Promise.all([settle(reading), settle(writing)]),
            waitMs,
            'the client stream to error',
          );
          expect(r.ok).toBe(false);
          expect(w.ok).toBe(false);
          await withTimeout(Promise.all(side.echoTasks), waitMs, 'the server echo loops to end');
          await expect(client.createBidirectionalStream()).rejects.toBeDefined();
        },
        timeoutMs,
      );
    }

    it(
      'rejects at request time with a status: client ready rejects, no session is produced',
      async () => {
        const { cid, client, side } = await connectRaw('/reject');
        const ready = await withTimeout(settle(client.ready), waitMs, 'client.ready after a reject');
        expect(ready.ok, 'client.ready resolved for a rejected request').toBe(false);
        const closed = await withTimeout(settle(client.closed), waitMs, 'client.closed after a reject');
        const serverSide = await withTimeout(side, waitMs, 'the server to see the request');
        expect(serverSide.rejected?.status).toBe(403);
        expect(serverSide.session).toBeUndefined();
        expect(serverSide.acceptAfterRejectThrew, 'accept() after reject() must throw').toBe(true);
        expect(server!.seen.filter((r) => r.query.get('cid') === cid).length).toBe(1);
        if (caps.rejectStatusVisible) {
          const readyError = ready.ok ? '' : describeError(ready.error);
          const text = closed.ok
            ? `${readyError} ${closed.value.closeCode} ${closed.value.reason}`
            : `${readyError} ${describeError(closed.error)}`;
          expect(text).toContain('403');
        }
      },
      timeoutMs,
    );

    it(
      'reports sane getStats() after traffic',
      async () => {
        const { client, server: s } = await open('/echo');
        const stream = await client.createBidirectionalStream();
        const sent = patternBytes(77, CHUNK);
        const [, echoed] = await withTimeout(
          Promise.all([writeAll(stream.writable, sent), readAll(stream.readable)]),
          waitMs,
          'a 64 KiB echo',
        );
        expect(echoed.byteLength).toBe(CHUNK);
        let echoedDatagrams = 0;
        if (caps.datagrams) {
          const writer = client.datagrams.writable.getWriter();
          const reader = client.datagrams.readable.getReader();
          const read = reader.read();
          const until = Date.now() + waitMs / 2;
          while (echoedDatagrams === 0 && Date.now() < until) {
            await writer.write(utf8('stats'));
            const r = await Promise.race([read, sleep(20).then(() => null)]);
            if (r && !r.done) echoedDatagrams++;
          }
          release(writer);
          release(reader);
        }
        const first = await s.getStats();
        expectSaneStats(first, 'server', CHUNK);
        if (caps.datagrams) {
          expect(echoedDatagrams).toBe(1);
          expect(first.datagrams.received).toBeGreaterThanOrEqual(1);
          expect(first.datagrams.sent).toBeGreaterThanOrEqual(1);
        }
        const second = await s.getStats();
        expect(second.timestamp).toBeGreaterThanOrEqual(first.timestamp);
        expect(second.bytesSent).toBeGreaterThanOrEqual(first.bytesSent);
        if (caps.clientStats) {
          const c = await client.getStats();
          expectSaneStats(c, 'client', CHUNK);
          if (caps.datagrams) expect(c.datagrams.sent).toBeGreaterThanOrEqual(1);
        }
      },
      timeoutMs,
    );

    it(
      'releases every handle and timer once sessions and the listener are closed',
      async () => {
        const check = harness.checkActiveResources ?? true;
        await sleep(50);
        const baseline = resourceCounts();
        const l2 = await harness.listen();
        const s2 = new ConformanceServer(l2);
        try {
          const { client, server: s } = await open('/echo', { listener: l2, server: s2 });
          const stream = await client.createBidirectionalStream();
          const [, echoed] = await Promise.all([
            writeAll(stream.writable, utf8('leak?')),
            readAll(stream.readable),
          ]);
          expect(fromUtf8(echoed)).toBe('leak?');
          if (caps.datagrams) {
            const writer = client.datagrams.writable.getWriter();
            await writer.write(utf8('leak?'));
            release(writer);
          }
          client.close({ closeCode: 1, reason: 'leak test' });
          await withTimeout(client.closed, waitMs, 'client.closed');
          await withTimeout(s.closed, waitMs, 'server closed');
        } finally {
          await s2.close();
        }
        if (check) {
          let excess = resourceExcess(baseline);
          for (let i = 0; i < 100 && excess.length > 0; i++) {
            await sleep(50);
            excess = resourceExcess(baseline);
          }
          expect(excess, 'active resources above the baseline after close').toEqual([]);
        }
        await harness.leakCheck?.();
      },
      timeoutMs,
    );
  });
}
