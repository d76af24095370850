/** Bounds on unreliable messages waiting for their missing fragments. */
export interface ReassemblyOptions {
  /** A partly received message is dropped this long after its first fragment. Default 2000 ms. */
  timeoutMs?: number;
  /** Bytes held across all partial messages of a session. Default 1 MiB. */
  maxBytes?: number;
  /** Partial messages held at once. Default 64. */
  maxMessages?: number;
}

interface Partial {
  /** Fragments received, by index: a map, not an array of `count` slots, so memory follows what arrived. */
  parts: Map<number, Uint8Array>;
  count: number;
  received: number;
  bytes: number;
  deadline: number;
}

export type ReassemblyDrop = 'reassembly-timeout' | 'reassembly-overflow' | 'malformed';

/**
 * Sans-IO reassembly of fragmented datagrams. Bounded in bytes and in messages; what does not fit, is malformed or
 * times out is dropped and reported through `onDrop`, so it is counted by the caller.
 */
export class Reassembler {
  private readonly partials = new Map<string, Partial>();
  private bytes = 0;
  /** The `timeoutMs` in force (default 2000 ms). */
  readonly timeoutMs: number;
  /** The `maxBytes` in force (default 1 MiB). */
  readonly maxBytes: number;
  /** The `maxMessages` in force (default 64). */
  readonly maxMessages: number;

  constructor(
    options: ReassemblyOptions,
    private readonly onDrop: (reason: ReassemblyDrop) => void,
  ) {
    this.timeoutMs = options.timeoutMs ?? 2000;
    this.maxBytes = options.maxBytes ?? 1 << 20;
    this.maxMessages = options.maxMessages ?? 64;
  }

  /** Returns the whole payload when `part` completes it. */
  add(key: string, index: number, count: number, part: Uint8Array, now: number): Uint8Array | undefined {
    this.expire(now);
    if (!Number.isInteger(count) || !Number.isInteger(index) || count < 2 || index < 0 || index >= count) {
      this.onDrop('malformed');
      return undefined;
    }
    let p = this.partials.get(key);
    if (!p) {
      if (this.partials.size >= this.maxMessages || count > 65535) {
        this.onDrop('reassembly-overflow');
        return undefined;
      }
      p = { parts: new Map(), count, received: 0, bytes: 0, deadline: now + this.timeoutMs };
      this.partials.set(key, p);
    }
    if (p.count !== count) {
      this.onDrop('malformed');
      return undefined;
    }
    if (p.parts.has(index)) return undefined; // a duplicated fragment
    if (this.bytes + part.length > this.maxBytes) {
      this.discard(key, p);
      this.onDrop('reassembly-overflow');
      return undefined;
    }
    // Copy: the fragment is a view into a datagram buffer that the transport may reuse.
    p.parts.set(index, part.slice());
    p.received++;
    p.bytes += part.length;
    this.bytes += part.length;
    if (p.received < count) return undefined;
    this.discard(key, p);
    const out = new Uint8Array(p.bytes);
    let off = 0;
    for (let i = 0; i < count; i++) {
      const x = p.parts.get(i)!;
      out.set(x, off);
      off += x.length;
    }
    return out;
  }

  /** Drops partial messages whose deadline passed. */
  expire(now: number): void {
    for (const [key, p] of this.partials) {
      if (p.deadline <= now) {
        this.discard(key, p);
        this.onDrop('reassembly-timeout');
      }
    }
  }

  /** Fragment bytes held now, all partial messages together. */
  get bufferedBytes(): number {
    return this.bytes;
  }

  /** Partial messages held now. */
  get pendingMessages(): number {
    return this.partials.size;
  }

  /** Forgets every partial message without reporting drops. */
  clear(): void {
    this.partials.clear();
    this.bytes = 0;
  }

  private discard(key: string, p: Partial): void {
    this.partials.delete(key);
    this.bytes -= p.bytes;
  }
}

/** Receive-side state of a reliable channel: cumulative seq plus the set above it (for unordered delivery). */
export class ReceiveTracker {
  /** Cumulative ack: every sequence number up to this one was received (0: none yet; sequences start at 1). */
  cum = 0;
  private readonly above = new Set<number>();

  /** True if `seq` is new (and records it); false for a duplicate. */
  accept(seq: number): boolean {
    if (seq <= this.cum || this.above.has(seq)) return false;
    if (seq === this.cum + 1) {
      this.cum = seq;
      while (this.above.delete(this.cum + 1)) this.cum++;
    } else {
      this.above.add(seq);
    }
    return true;
  }

  /** Sequence numbers received above `cum`, waiting for the gap below them to fill. */
  get outOfOrder(): number {
    return this.above.size;
  }
}
