import type { WinnerStorage } from './fallback.js';
import { decodeValue, encodeValue } from './codec.js';
import type { MessageType } from './messages.js';

/**
 * Opt-in persistence of the client's offline queue: reliable messages sent while no transport is connected are also
 * written to storage (`localStorage` in browsers), so that a page reloaded before the connection came back sends them
 * on its first connect. The session's own queue bounds them while the page lives (channel `maxQueuedBytes`,
 * `maxQueuedMessages`); this store has its own bounds, and drops the oldest beyond them, counted.
 */
/**
 * The part of the Web Storage API the offline queue uses (`localStorage` has it); typed here so that Node apps need
 * no DOM types.
 */
export interface QueueStorage extends WinnerStorage {
  /** Forgets `key` (Web Storage `removeItem`). */
  removeItem(key: string): void;
}

/** Options of {@link PersistedQueue}: where the queue lives and how much it keeps. */
export interface PersistQueueOptions {
  /** Storage key, one per application and user. */
  key: string;
  /** Message types that may be restored: an entry names its type; unknown names are dropped and counted. */
  messages: MessageType<unknown>[];
  /** Default `localStorage` where it exists; `null` keeps nothing. */
  storage?: QueueStorage | null;
  /** Entries kept at most. Default 256. */
  maxMessages?: number;
  /** Encoded bytes kept at most. Default 256 KiB (well within the 5 MiB browsers give `localStorage`). */
  maxBytes?: number;
}

/** The defaults of {@link PersistQueueOptions}. */
export const PERSIST_DEFAULTS = {
  /** Entries kept at most. */
  maxMessages: 256,
  /** Encoded bytes kept at most. */
  maxBytes: 256 * 1024,
} as const;

interface Entry {
  /** Message type name. */
  t: string;
  /** Channel. */
  c: string;
  /** MessagePack payload, base64. */
  p: string;
}

function toBase64(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromBase64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** The client's opt-in offline queue in Web Storage (README "Offline queue"), bounded and counted. */
export class PersistedQueue {
  /** Entries dropped: over the bounds (oldest first), unreadable, or of a type not in `messages`. */
  dropped = 0;
  private entries: Entry[] = [];
  private bytes = 0;
  private readonly storage: QueueStorage | null;
  private readonly maxMessages: number;
  private readonly maxBytes: number;

  constructor(private readonly o: PersistQueueOptions) {
    this.storage = o.storage === undefined ? defaultStorage() : o.storage;
    this.maxMessages = o.maxMessages ?? PERSIST_DEFAULTS.maxMessages;
    this.maxBytes = o.maxBytes ?? PERSIST_DEFAULTS.maxBytes;
  }

  /** Records a reliable message sent while disconnected. */
  add(type: MessageType<unknown>, channel: string, payload: unknown): void {
    const p = toBase64(payload instanceof Uint8Array ? payload : encodeValue(payload));
    const e: Entry = { t: type.name, c: channel, p };
    this.entries.push(e);
    this.bytes += p.length;
    while (this.entries.length > this.maxMessages || this.bytes > this.maxBytes) {
      this.bytes -= this.entries.shift()!.p.length;
      this.dropped++;
    }
    this.save();
  }

  /** Everything recorded went out on a connected transport (the session's queue took over). */
  clear(): void {
    this.entries = [];
    this.bytes = 0;
    try {
      this.storage?.removeItem(this.o.key);
    } catch {
      // Storage denied: nothing was kept either.
    }
  }

  /** Reads what a previous page left, and forgets it (it is about to be sent again through the session). */
  take(): {
    /** The message type, resolved from `messages` by name. */
    type: MessageType<unknown>;
    /** The channel it was sent on. */
    channel: string;
    /** The decoded payload. */
    payload: unknown;
  }[] {
    let raw: string | null = null;
    try {
      raw = this.storage?.getItem(this.o.key) ?? null;
    } catch {
      raw = null;
    }
    this.clear();
    if (!raw) return [];
    const byName = new Map(this.o.messages.map((m) => [m.name, m]));
    const out: { type: MessageType<unknown>; channel: string; payload: unknown }[] = [];
    let list: unknown;
    try {
      list = JSON.parse(raw);
    } catch {
      this.dropped++;
      return [];
    }
    if (!Array.isArray(list)) return [];
    for (const e of list.slice(0, this.maxMessages) as Partial<Entry>[]) {
      const type = typeof e?.t === 'string' ? byName.get(e.t) : undefined;
      if (!type || typeof e.p !== 'string' || typeof e.c !== 'string') {
        this.dropped++;
        continue;
      }
      try {
        out.push({ type, channel: e.c, payload: decodeValue(fromBase64(e.p)) });
      } catch {
        this.dropped++;
      }
    }
    return out;
  }

  private save(): void {
    try {
      this.storage?.setItem(this.o.key, JSON.stringify(this.entries));
    } catch {
      // Storage full or denied: the session's own queue still holds the messages while the page lives.
    }
  }
}

function defaultStorage(): QueueStorage | null {
  try {
    return (globalThis as { localStorage?: QueueStorage }).localStorage ?? null;
  } catch {
    return null;
  }
}
