/**
 * WebTransport over HTTP/3 client for Node. One QUIC connection (and UDP socket) per session, like Firefox;
 * the server's certificate is checked either by TLS against CA certificates or, as W3C WebTransport §6.2
 * `serverCertificateHashes`, by the SHA-256 of the leaf certificate after the handshake.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { ConnectOptions, QuiverSession } from '@quiver/transport';
import { QuiverTransportError } from '@quiver/transport';
import type { H3Limits, HeaderField } from '../core/api.js';
import { createH3Connection } from './h3.js';
import type { QuicTransportOptions } from './config.js';
import {
  checkCloseDeliveryTimeout,
  DEFAULT_CLOSE_DELIVERY_TIMEOUT_MS,
  defaultQuicTransportOptions,
  validateTransportOptions,
} from './config.js';
import type { EngineClientConnection, EngineName, QuicConnectionHandler } from './engine.js';
import { resolveEngine } from './engine.js';
import type { SessionLimits } from './session.js';
import { defaultSessionLimits, WtSession } from './session.js';
import { WtConnection } from './wt-connection.js';

export interface WebTransportConnectOptions extends ConnectOptions, Partial<QuicTransportOptions> {
  /** PEM CA certificates for TLS validation (used when `serverCertificateHashes` is absent). */
  ca?: string | Uint8Array;
  /** File to read `ca` from when `ca` is not given. */
  caPath?: string;
  /** `origin` request header (browsers always send one; the server may check it). Default none. */
  origin?: string;
  /** Overrides of the HTTP/3 core's limits (`DEFAULT_H3_LIMITS`). */
  limits?: Partial<H3Limits>;
  /** Overrides of the per-session limits (`defaultSessionLimits`). */
  sessionLimits?: Partial<SessionLimits>;
  /** SO_RCVBUF/SO_SNDBUF of the client's socket. Default 8 MiB. */
  socketBufferBytes?: number;
  /** Delay between the session's end and the CONNECTION_CLOSE (see the listener's `lingerMs`). Default 50 ms. */
  lingerMs?: number;
  /**
   * After `lingerMs`, how long the connection waits for the session's close to be delivered before it is closed
   * anyway (see the listener's option; counted in `webTransportClientCounters().closesUndelivered`). Default 1 000 ms.
   */
  closeDeliveryTimeoutMs?: number;
  /**
   * QUIC engine, as the listener's `engine` option. Default: the one `QUIVER_QUIC_ENGINE` names, else quinn when
   * built, else quiche.
   */
  engine?: EngineName;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** Running totals of the Node client, for the process (a session's own figures are in its `getStats()`). */
export interface WebTransportClientCounters {
  /**
   * Client connections closed before the server confirmed the session's close: it neither answered with its FIN
   * nor acknowledged ours within `closeDeliveryTimeoutMs`.
   */
  closesUndelivered: number;
}

const clientCounters: WebTransportClientCounters = { closesUndelivered: 0 };
const countUndelivered = (): void => {
  clientCounters.closesUndelivered++;
};

/** A snapshot of the Node client's counters since the process started. */
export function webTransportClientCounters(): Readonly<WebTransportClientCounters> {
  return { ...clientCounters };
}
/** W3C WebTransport §6.2 "custom certificate requirements": at most 2 weeks of validity. */
const MAX_PINNED_VALIDITY_MS = 14 * 24 * 60 * 60 * 1000;
/** TLS alert bad_certificate (RFC 8446 §6.2) as a QUIC CRYPTO_ERROR (RFC 9001 §4.8). */
const CRYPTO_BAD_CERTIFICATE = 0x100 + 42;

/** Opens a WebTransport session to `https://host:port/path?query`. The session's `ready` says when it is up. */
export function connectWebTransport(url: string, options: WebTransportConnectOptions = {}): QuiverSession {
  const sessionLimits: SessionLimits = { ...defaultSessionLimits, ...options.sessionLimits };
  const holder = new ClientAttempt(url, options, sessionLimits);
  return holder.session;
}

class ClientAttempt {
  readonly session: WtSession;
  private endpoint: EngineClientConnection | undefined;
  private conn: WtConnection | undefined;
  private timer: NodeJS.Timeout | undefined;
  private linger: NodeJS.Timeout | undefined;
  private done = false;
  private readonly onAbort = (): void => {
    this.fail(new QuiverTransportError('connection aborted by the signal', { source: 'session' }));
  };

  constructor(
    private readonly url: string,
    private readonly o: WebTransportConnectOptions,
    sessionLimits: SessionLimits,
  ) {
    // The session exists before its connection (the Connector contract is synchronous); see attach().
    this.session = new WtSession(undefined, sessionLimits);
    this.start().catch((e: unknown) => {
      this.fail(
        e instanceof QuiverTransportError
          ? e
          : new QuiverTransportError(e instanceof Error ? e.message : String(e), { source: 'session' }),
      );
    });
    this.session.closed.then(
      () => this.release(),
      () => this.release(),
    );
  }

  private async start(): Promise<void> {
    const o = this.o;
    const u = new URL(this.url);
    if (u.protocol !== 'https:') throw new TypeError(`WebTransport needs an https: URL, got ${u.protocol}`);
    if (o.signal?.aborted)
      throw new QuiverTransportError('connection aborted by the signal', { source: 'session' });
    o.signal?.addEventListener('abort', this.onAbort, { once: true });
    this.timer = setTimeout(() => {
      this.fail(new QuiverTransportError('WebTransport connect timed out', { source: 'session' }));
    }, o.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
    const hostname = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
    const port = u.port ? Number(u.port) : 443;
    const address = isIP(hostname) ? hostname : (await lookup(hostname)).address;
    if (this.done) return;
    const transport: QuicTransportOptions = { ...defaultQuicTransportOptions };
    for (const k of Object.keys(defaultQuicTransportOptions) as (keyof QuicTransportOptions)[]) {
      if (o[k] !== undefined) (transport as unknown as Record<string, unknown>)[k] = o[k];
    }
    validateTransportOptions(transport);
    checkCloseDeliveryTimeout(o.closeDeliveryTimeoutMs ?? DEFAULT_CLOSE_DELIVERY_TIMEOUT_MS);
    const pinned = o.serverCertificateHashes && o.serverCertificateHashes.length > 0;
    const ca = o.ca ?? (o.caPath ? readFileSync(o.caPath) : undefined);
    const engine = await resolveEngine(o.engine);
    if (this.done) return;
    const remote = { host: address, port };
    const endpoint = await engine.connect({
      remote,
      // SNI and TLS host checks need a DNS name; IP literals are checked against the certificate's IP SANs below.
      serverName: isIP(hostname) ? null : hostname,
      ca,
      verifyPeer: !pinned,
      transport,
      socketBufferBytes: o.socketBufferBytes ?? 8 * 1024 * 1024,
      streamHighWaterMark: this.session.limits.streamWriteHighWaterMark,
      streamTailHoldMs: this.session.limits.streamTailHoldMs,
    });
    this.endpoint = endpoint;
    const quic = endpoint.conn;
    if (this.done) {
      // Failed or aborted while the socket was being bound: drop the connection before it sent anything.
      quic.handler = IGNORE_EVENTS;
      quic.destroy();
      await endpoint.release();
      return;
    }
    const authority = u.host;
    const path = `${u.pathname || '/'}${u.search}`;
    const extraHeaders: HeaderField[] = Object.entries(o.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]);
    const conn = new WtConnection(quic, createH3Connection({ role: 'client', limits: o.limits }), {
      onHandshake: (c) => this.verify(c, hostname, !!pinned, !pinned && ca === undefined),
      onStarted: (c) => {
        const sid = c.h3.connect({ authority, path, origin: o.origin, headers: extraHeaders });
        this.session.bind(sid);
      },
      onSessionResponse: () => {
        if (this.timer) clearTimeout(this.timer);
        this.timer = undefined;
      },
      onIdle: (c) => {
        if (this.linger) return;
        this.linger = setTimeout(() => {
          this.linger = undefined;
          c.closeWhenDelivered(
            true,
            o.closeDeliveryTimeoutMs ?? DEFAULT_CLOSE_DELIVERY_TIMEOUT_MS,
            countUndelivered,
          );
        }, o.lingerMs ?? 50);
        this.linger.unref();
      },
      onClosed: (_c, info) => {
        // Before the session existed (TLS failure, refused connection, timeout) nothing else reports the end.
        if (!this.done)
          this.fail(
            new QuiverTransportError(
              info.timedOut
                ? 'QUIC handshake or idle timeout'
                : `connection closed by the ${info.local ? 'client' : 'server'} (${info.isApp ? 'application' : 'transport'} code ${info.code}${info.reason ? `: ${info.reason}` : ''})`,
              { source: 'session' },
            ),
          );
        void this.releaseEndpoint();
      },
    });
    this.session.attach(conn);
    this.conn = conn;
    conn.schedule();
  }

  /** W3C WebTransport §6.2: verify a pinned certificate; also the IP SAN when the URL names an IP. */
  private verify(c: WtConnection, hostname: string, pinned: boolean, noVerification: boolean): boolean {
    const chain = c.peerCertChain();
    const leaf = chain?.[0];
    let problem: string | undefined;
    if (!leaf) problem = 'the server sent no certificate';
    else if (pinned) {
      const digest = createHash('sha256').update(leaf).digest();
      const ok = this.o.serverCertificateHashes!.some(
        (h) => h.algorithm === 'sha-256' && Buffer.from(toU8(h.value)).equals(digest),
      );
      if (!ok) problem = 'the server certificate does not match serverCertificateHashes';
      else {
        const { from, to, ec } = pinnedFacts(digest, leaf);
        const now = Date.now();
        if (to - from > MAX_PINNED_VALIDITY_MS)
          problem = 'a pinned certificate must be valid for at most 14 days';
        else if (now < from || now > to) problem = 'the pinned certificate is not currently valid';
        else if (!ec) problem = 'a pinned certificate must use ECDSA';
      }
    } else if (noVerification) {
      problem = 'no serverCertificateHashes and no CA: refusing an unverified server';
    } else if (isIP(hostname)) {
      const x = new X509Certificate(leaf);
      if (!x.checkIP(hostname)) problem = `the certificate is not valid for ${hostname}`;
    }
    if (!problem) return true;
    this.fail(new QuiverTransportError(problem, { source: 'session' }), CRYPTO_BAD_CERTIFICATE);
    return false;
  }

  private fail(err: QuiverTransportError, transportCode?: number): void {
    if (this.done) return;
    this.done = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.session.finish(undefined, err);
    const conn = this.conn;
    if (conn && !conn.isClosed) {
      // Closed one turn later: the flush in progress first sends our handshake Finished, without which the
      // server (quiche) cannot act on the CONNECTION_CLOSE and would keep the connection until its idle timeout.
      setImmediate(() => {
        if (transportCode !== undefined) conn.close(true, transportCode, '', false);
        else conn.close(true);
      });
    } else void this.releaseEndpoint();
  }

  private release(): void {
    this.done = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.o.signal?.removeEventListener('abort', this.onAbort);
    // The connection closes through onIdle (after the linger) or has closed already.
    if (!this.conn) void this.releaseEndpoint();
  }

  private async releaseEndpoint(): Promise<void> {
    if (this.linger) clearTimeout(this.linger);
    this.linger = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.o.signal?.removeEventListener('abort', this.onAbort);
    await this.endpoint?.release();
  }
}

interface PinnedFacts {
  from: number;
  to: number;
  ec: boolean;
}
/** Facts of pinned certificates by SHA-256, so that reconnecting to a server does not parse its leaf again. */
const pinnedCache = new Map<string, PinnedFacts>();
const PINNED_CACHE_SIZE = 32;

/**
 * Validity and key type of a pinned leaf (W3C WebTransport §6.2). Parsing it (`X509Certificate`) costs about as
 * much CPU as the rest of a session's setup; the facts depend only on the certificate's bytes, named by `digest`.
 */
function pinnedFacts(digest: Buffer, leaf: Uint8Array): PinnedFacts {
  const key = digest.toString('latin1');
  let f = pinnedCache.get(key);
  if (!f) {
    const x = new X509Certificate(leaf);
    f = {
      from: Date.parse(x.validFrom),
      to: Date.parse(x.validTo),
      ec: x.publicKey.asymmetricKeyType === 'ec',
    };
    if (pinnedCache.size >= PINNED_CACHE_SIZE) pinnedCache.delete(pinnedCache.keys().next().value!);
    pinnedCache.set(key, f);
  }
  return f;
}

const IGNORE_EVENTS: QuicConnectionHandler = {
  onEstablished() {},
  onStreamData() {},
  onStreamReset() {},
  onStopSending() {},
  onDatagram() {},
  onStreamDrained() {},
  onFlush() {},
  onClosed() {},
};

function toU8(v: BufferSource): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  return new Uint8Array(v);
}
