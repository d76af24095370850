import type { QuiverBidirectionalStream, QuiverSession } from '@quiver/transport';
import {
  createWebSocketListener,
  type WebSocketListener,
  type WebSocketListenerOptions,
} from '../src/index.js';

export async function readAll(readable: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const c of readable) chunks.push(c);
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

export async function writeAll(
  writable: WritableStream<Uint8Array>,
  data: Uint8Array,
  chunk = 4096,
): Promise<void> {
  const w = writable.getWriter();
  for (let i = 0; i < data.length; i += chunk) await w.write(data.slice(i, i + chunk));
  await w.close();
}

export function pattern(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Serves one session: echoes bidi streams, answers each uni stream on a new uni stream, echoes datagrams. */
export async function echo(session: QuiverSession): Promise<void> {
  const tasks: Promise<unknown>[] = [];
  tasks.push(
    (async () => {
      for await (const s of session.incomingBidirectionalStreams as unknown as AsyncIterable<QuiverBidirectionalStream>) {
        tasks.push(s.readable.pipeTo(s.writable).catch(() => {}));
      }
    })().catch(() => {}),
  );
  tasks.push(
    (async () => {
      for await (const r of session.incomingUnidirectionalStreams as unknown as AsyncIterable<
        ReadableStream<Uint8Array>
      >) {
        tasks.push(
          (async () => {
            const data = await readAll(r);
            const w = await session.createUnidirectionalStream();
            await writeAll(w, data);
          })().catch(() => {}),
        );
      }
    })().catch(() => {}),
  );
  tasks.push(
    (async () => {
      const writer = session.datagrams.writable.getWriter();
      for await (const d of session.datagrams.readable as unknown as AsyncIterable<Uint8Array>)
        await writer.write(d);
    })().catch(() => {}),
  );
  await session.closed.catch(() => {});
}

export interface EchoServer {
  listener: WebSocketListener;
  url: string;
  sessions: QuiverSession[];
  close(): Promise<void>;
}

/** A listener that accepts every request and echoes. */
export async function startEchoServer(options: WebSocketListenerOptions = {}): Promise<EchoServer> {
  const listener = await createWebSocketListener({ port: 0, host: '127.0.0.1', ...options });
  const sessions: QuiverSession[] = [];
  const loop = (async () => {
    for await (const incoming of listener.incomingSessions as unknown as AsyncIterable<
      import('@quiver/transport').IncomingSession
    >) {
      const s = incoming.accept();
      sessions.push(s);
      void echo(s);
    }
  })();
  const scheme = options.tls ? 'wss' : 'ws';
  return {
    listener,
    url: `${scheme}://127.0.0.1:${listener.address.port}`,
    sessions,
    async close() {
      await listener.close();
      await loop;
    },
  };
}
