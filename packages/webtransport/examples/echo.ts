/**
 * The echo application used by the example server and the tests: bidirectional streams are echoed on the same
 * stream (FIN included), unidirectional streams on a new unidirectional stream of ours, datagrams as datagrams.
 */
import type { QuiverSession } from '@quiver/transport';

export function serveEcho(session: QuiverSession): void {
  void (async () => {
    const reader = session.incomingBidirectionalStreams.getReader();
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true as const }));
      if (done || !value) return;
      // pipeTo carries FIN (close), a reset (abort) and a STOP_SENDING (cancel) through to the other side.
      value.readable.pipeTo(value.writable).catch(() => {});
    }
  })();
  void (async () => {
    const reader = session.incomingUnidirectionalStreams.getReader();
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true as const }));
      if (done || !value) return;
      session
        .createUnidirectionalStream()
        .then((out) => value.pipeTo(out))
        .catch(() => {});
    }
  })();
  void (async () => {
    const reader = session.datagrams.readable.getReader();
    const writer = session.datagrams.writable.getWriter();
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true as const }));
      if (done || !value) return;
      // Not awaited: a datagram that cannot be sent is dropped and counted, it never blocks the loop.
      writer.write(value).catch(() => {});
    }
  })();
}
