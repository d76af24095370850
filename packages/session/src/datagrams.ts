import type { QuiverSession } from '@quiver/transport';
import {
  BUNDLE_ENTRY_OVERHEAD,
  BUNDLE_OVERHEAD,
  bundleFrame,
  datagramFrame,
  datagramFrameWithin,
  datagramHeaderSize,
  MAX_BUNDLE_COUNT,
} from './codec.js';
import { MessageTooLargeError } from './errors.js';

/**
 * The datagram bodies of one message: one body when it fits `max`, else fragments `[...header, fragId, index,
 * count]` that each fit. Throws `MessageTooLargeError` when it does not fit and may not (or cannot) be split.
 */
export function datagramBodies(
  header: unknown[],
  payload: Uint8Array,
  max: number,
  /** How to split, asked only when the message does not fit (most never do: nothing is built for them). */
  fragmenting: () => { allowed: boolean; id: () => number; what: string; note: string },
): Uint8Array[] {
  const one = datagramFrameWithin(header, payload, max);
  if (one) return [one];
  const fragment = fragmenting();
  const fragId = fragment.allowed ? fragment.id() : 0;
  // The largest header a fragment can have: the room left is what every fragment may carry.
  const room = max - datagramHeaderSize([...header, fragId, 0xffff, 0xffff]);
  const count = room > 0 ? Math.ceil(payload.length / room) : Number.POSITIVE_INFINITY;
  if (!fragment.allowed || count > 0xffff) {
    throw new MessageTooLargeError(
      `${fragment.what} (${payload.length} bytes) does not fit a datagram of ${max} bytes${fragment.note}`,
      payload.length,
      max,
    );
  }
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    out.push(datagramFrame([...header, fragId, i, count], payload.subarray(i * room, (i + 1) * room)));
  }
  return out;
}

/**
 * Datagram bodies sent during the current event-loop turn of one link, packed: each group becomes one datagram (a
 * BUNDLE when it holds more than one body) when the turn's microtasks run. Chromium moves about one datagram per
 * turn from a page into QUIC, so a write per body would queue the surplus for seconds on a busy page.
 */
export class DatagramPacker {
  private groups: Uint8Array[][] = [];
  /** Bundled size of the last group, counting the bundle overhead even when it would go out alone. */
  private lastSize = 0;
  private flushScheduled = false;
  private writerHandle: WritableStreamDefaultWriter<Uint8Array> | null = null;

  constructor(private readonly session: QuiverSession) {}

  get writer(): WritableStreamDefaultWriter<Uint8Array> {
    if (!this.writerHandle) this.writerHandle = this.session.datagrams.writable.getWriter();
    return this.writerHandle;
  }

  /** Bytes of bodies packed this turn and not yet written. */
  get pendingBytes(): number {
    let n = 0;
    for (const g of this.groups) for (const b of g) n += b.length;
    return n;
  }

  /** Datagrams this turn will write if `bodies` are added (what the congestion check counts). */
  datagramsWith(bodies: Uint8Array[]): number {
    return this.groups.length + this.pack(bodies, true);
  }

  /**
   * Queues bodies for this turn's datagrams and makes sure they are written once the turn's code is done. `now`
   * writes at once what the turn has so far, the bodies included: a heartbeat probe carries a timestamp, and RTT is
   * measured from it, so it must not wait; whatever the turn sent before it rides along in its bundle.
   */
  queue(bodies: Uint8Array[], now = false): void {
    this.pack(bodies, false);
    if (now) {
      this.flush();
      return;
    }
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** One write per packed group: a lone body goes out as is, several as a BUNDLE. */
  flush(): void {
    const groups = this.groups;
    if (groups.length === 0) return;
    this.groups = [];
    this.lastSize = 0;
    const writer = this.writer;
    for (const g of groups) writer.write(bundleFrame(g)).catch(() => {});
  }

  /** The link is done: datagrams already accepted (and counted out) this turn still go, then the writer is let go. */
  release(): void {
    if (this.groups.length > 0) this.flush();
    this.writerHandle?.releaseLock();
  }

  /**
   * Adds bodies to the turn's datagrams, first fit into the last one, in order (so a sequenced channel's bodies
   * keep their order on the wire); returns how many datagrams it opened. `dryRun` only counts.
   */
  private pack(bodies: Uint8Array[], dryRun: boolean): number {
    const max = this.session.datagrams.maxDatagramSize;
    let opened = 0;
    let size = this.lastSize;
    let count = this.groups.at(-1)?.length ?? 0;
    for (const b of bodies) {
      const entry = BUNDLE_ENTRY_OVERHEAD + b.length;
      if (count === 0 || count >= MAX_BUNDLE_COUNT || size + entry > max) {
        opened++;
        size = BUNDLE_OVERHEAD + entry;
        count = 1;
        if (!dryRun) this.groups.push([b]);
      } else {
        size += entry;
        count++;
        if (!dryRun) this.groups[this.groups.length - 1].push(b);
      }
    }
    if (!dryRun) this.lastSize = size;
    return opened;
  }
}
