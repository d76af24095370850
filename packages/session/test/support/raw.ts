import type { ConnectOptions, QuiverSession } from '@quiver/transport';
import { Kind, streamFrame } from '../../src/index.js';

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
