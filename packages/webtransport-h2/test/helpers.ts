import { type DevCertificate, generateCertificate } from '@quiver/devcert';
import type { IncomingSession, QuiverSession } from '@quiver/transport';
import {
  connectH2WebTransport,
  createH2WebTransportListener,
  type H2WebTransportConnectOptions,
  type H2WebTransportListener,
  type H2WebTransportListenerOptions,
} from '../src/index.js';

export interface Rig {
  cert: DevCertificate;
  listener: H2WebTransportListener;
  /** Requests in arrival order. */
  next(): Promise<IncomingSession>;
  connect(path: string, options?: H2WebTransportConnectOptions): QuiverSession;
  close(): Promise<void>;
}

/** A listener on 127.0.0.1:0 with a fresh pinned certificate, and a connector to it. */
export async function rig(options: Partial<H2WebTransportListenerOptions> = {}): Promise<Rig> {
  const cert = await generateCertificate();
  const listener = await createH2WebTransportListener({ cert: cert.certPem, key: cert.keyPem, ...options });
  const reader = listener.incomingSessions.getReader();
  return {
    cert,
    listener,
    async next() {
      const { value, done } = await reader.read();
      if (done) throw new Error('listener closed');
      return value;
    },
    connect: (path, connectOptions = {}) => {
      const session = connectH2WebTransport(`https://127.0.0.1:${listener.address.port}${path}`, {
        serverCertificateHashes: [{ algorithm: 'sha-256', value: new Uint8Array(cert.hash) }],
        ...connectOptions,
      });
      session.ready.catch(() => {});
      session.closed.catch(() => {});
      return session;
    },
    async close() {
      await listener.close();
      await reader.cancel().catch(() => {});
    },
  };
}

export async function readAllBytes(readable: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const reader = readable.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

export async function readError(readable: ReadableStream<Uint8Array>): Promise<unknown> {
  const reader = readable.getReader();
  try {
    for (;;) {
      const { done } = await reader.read();
      if (done) return undefined;
    }
  } catch (error) {
    return error;
  }
}
