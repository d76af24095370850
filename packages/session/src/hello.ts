import { DecodeError, UnknownMessageError } from './errors.js';
import type { DeliveryMode } from './messages.js';
import type { HandshakeTables } from './peer.js';

/** Bounds on what a HELLO may announce: the peer's tables are kept per session. */
export const MAX_HELLO_CHANNELS = 256;
export const MAX_HELLO_MESSAGES = 0xffff;

const MODES: ReadonlySet<string> = new Set([
  'reliable-ordered',
  'reliable-unordered',
  'unreliable',
  'unreliable-sequenced',
]);

export interface Hello {
  tables: HandshakeTables;
  resume?: { id: unknown; token: unknown };
}

/**
 * Checks a client's HELLO completely, before the server creates anything for it: every table entry well formed,
 * counts bounded, and every channel one the server defined with the same mode (a channel name becomes a metric
 * label, and only the server's configuration may name those). Throws `DecodeError` (4400) for malformed tables,
 * `UnknownMessageError` (4404) for a channel the server does not have.
 */
export function parseHello(h: Record<string, unknown>, channels: ReadonlyMap<string, DeliveryMode>): Hello {
  const messages = list(h.messages, 'messages', MAX_HELLO_MESSAGES);
  const chans = list(h.channels, 'channels', MAX_HELLO_CHANNELS);
  const acks = list(h.acks, 'acks', MAX_HELLO_CHANNELS);
  const tables: HandshakeTables = { messages: [], channels: [], acks: [] };
  for (const e of messages) {
    if (!Array.isArray(e) || typeof e[0] !== 'string' || !isId(e[1]))
      throw new DecodeError('HELLO messages entry is not [name, id]');
    tables.messages.push([e[0], e[1]]);
  }
  for (const e of chans) {
    if (!Array.isArray(e) || typeof e[0] !== 'string' || !isId(e[1]) || !MODES.has(e[2]))
      throw new DecodeError('HELLO channels entry is not [name, id, mode]');
    const mode = channels.get(e[0]);
    if (mode === undefined) throw new UnknownMessageError(`unknown channel '${e[0].slice(0, 64)}'`);
    if (mode !== e[2])
      throw new UnknownMessageError(`channel '${e[0]}' is ${mode} here, announced as ${String(e[2])}`);
    tables.channels.push([e[0], e[1], e[2] as DeliveryMode]);
  }
  for (const e of acks) {
    if (!Array.isArray(e) || typeof e[0] !== 'string' || !isSeq(e[1]))
      throw new DecodeError('HELLO acks entry is not [channel, seq]');
    tables.acks.push([e[0], e[1]]);
  }
  const resume = h.resume;
  if (resume !== undefined && (resume === null || typeof resume !== 'object'))
    throw new DecodeError('HELLO resume is not an object');
  return { tables, resume: resume as Hello['resume'] };
}

function list(v: unknown, what: string, max: number): unknown[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new DecodeError(`HELLO ${what} is not a list`);
  if (v.length > max) throw new DecodeError(`HELLO announces more than ${max} ${what}`);
  return v;
}

function isId(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffff;
}

function isSeq(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
