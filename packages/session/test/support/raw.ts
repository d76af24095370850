import type { ConnectOptions, QuiverSession } from '@quiver/transport';
import { FrameReader, Kind, parseBody, streamFrame } from '../../src/index.js';

/** A hand-driven client speaking the wire format directly: to misbehave on purpose (or to never read). */
export async function rawClient(
  connector: (url: string, o?: ConnectOptions) => QuiverSession,
  url = 'https://game.test/q',
  options: ConnectOptions = {},
) {
  const session = connector(url, options);
  await session.ready;
  const control = await session.createBidirectionalStream();
  const writer = control.writable.getWriter();
  const closed = session.closed;
  return {
    session,
    control,
    closed,
    async frame(header: unknown[], payload?: Uint8Array) {
      for (const c of streamFrame(header, payload)) await writer.write(c);
    },
    async bytes(b: Uint8Array) {
      await writer.write(b);
    },
    async hello(extra: Record<string, unknown> = {}) {
      await this.frame([
        Kind.HELLO,
        { v: 1, messages: [], channels: [['reliable', 1, 'reliable-ordered']], ...extra },
      ]);
    },
    /** Reads and discards everything on the control stream (so only data streams stall). */
    drainControl() {
      const r = control.readable.getReader();
      (async () => {
        try {
          for (;;) if ((await r.read()).done) return;
        } catch {
          // closed
        }
      })();
    },
  };
}

/** Reads frames from a readable (the control stream) one at a time. */
export function frameReader(readable: ReadableStream<Uint8Array>) {
  const reader = readable.getReader();
  const frames = new FrameReader(1 << 20);
  let queued: Uint8Array[] = [];
  return async (): Promise<{ header: unknown[]; payload: Uint8Array } | null> => {
    for (;;) {
      const body = queued.shift();
      if (body) return parseBody(body);
      const { value, done } = await reader.read();
      if (done) return null;
      queued = frames.push(value);
    }
  };
}
