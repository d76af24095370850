/**
 * Validation of HTTP/3 header sections (RFC 9114 §4.2, §4.3) for the one kind of request this core serves,
 * extended CONNECT (RFC 9220 §3, RFC 8441 §4), and for responses.
 */

import type { HeaderField } from './api.js';

export interface RequestHead {
  method: string;
  scheme: string | undefined;
  authority: string | undefined;
  path: string | undefined;
  protocol: string | undefined;
}

const REQUEST_PSEUDO = new Set([':method', ':scheme', ':authority', ':path', ':protocol']);
/** RFC 9114 §4.2: connection-specific fields are malformed in HTTP/3. */
const CONNECTION_SPECIFIC = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
]);
// RFC 9110 §5.1 token characters, lower case only (RFC 9114 §4.2: upper case names are malformed).
const FIELD_NAME = /^[a-z0-9!#$%&'*+\-.^_`|~]+$/;
// RFC 9110 §5.5: no NUL, CR or LF anywhere, no leading or trailing whitespace.
const BAD_VALUE = /[\0\r\n]|^[ \t]|[ \t]$/;

/** Checks what every header section must satisfy; returns a reason when malformed (RFC 9114 §4.1.2). */
function checkFields(fields: readonly HeaderField[], allowedPseudo: ReadonlySet<string>): string | undefined {
  let regularSeen = false;
  const seen = new Set<string>();
  for (const [name, value] of fields) {
    if (BAD_VALUE.test(value)) return `invalid value for ${name}`;
    if (name.startsWith(':')) {
      if (regularSeen) return `pseudo-header ${name} after a regular field (RFC 9114 §4.3)`;
      if (!allowedPseudo.has(name)) return `pseudo-header ${name} not allowed here (RFC 9114 §4.3)`;
      if (seen.has(name)) return `duplicate pseudo-header ${name} (RFC 9114 §4.3)`;
      seen.add(name);
      continue;
    }
    regularSeen = true;
    if (!FIELD_NAME.test(name)) return `invalid field name ${JSON.stringify(name)} (RFC 9114 §4.2)`;
    if (CONNECTION_SPECIFIC.has(name)) return `connection-specific field ${name} (RFC 9114 §4.2)`;
    if (name === 'te' && value !== 'trailers') return 'te other than trailers (RFC 9114 §4.2)';
  }
  return undefined;
}

/**
 * Parses request pseudo-headers. Returns the reason on a malformed request (RFC 9114 §4.1.2: stream error
 * H3_MESSAGE_ERROR). Plain CONNECT (RFC 9114 §4.4) and other methods are well-formed here; the caller answers them.
 */
export function parseRequestHead(fields: readonly HeaderField[]): RequestHead | string {
  const bad = checkFields(fields, REQUEST_PSEUDO);
  if (bad) return bad;
  const get = (n: string) => fields.find((f) => f[0] === n)?.[1];
  const method = get(':method');
  const scheme = get(':scheme');
  const authority = get(':authority');
  const path = get(':path');
  const protocol = get(':protocol');
  if (method === undefined || method === '') return 'missing :method (RFC 9114 §4.3.1)';
  if (protocol !== undefined) {
    // RFC 9220 §3 / RFC 8441 §4: extended CONNECT carries all of :scheme, :path and :authority.
    if (method !== 'CONNECT') return ':protocol on a non-CONNECT request (RFC 9220 §3)';
    if (!scheme || !path || !authority)
      return 'extended CONNECT without :scheme, :path or :authority (RFC 9220 §3)';
  } else if (method === 'CONNECT') {
    // RFC 9114 §4.4: plain CONNECT has only :authority.
    if (scheme !== undefined || path !== undefined) return 'CONNECT with :scheme or :path (RFC 9114 §4.4)';
    if (!authority) return 'CONNECT without :authority (RFC 9114 §4.4)';
  } else {
    if (!scheme || !path) return 'missing :scheme or :path (RFC 9114 §4.3.1)';
  }
  return { method, scheme, authority, path, protocol };
}

/** Parses a response section: exactly one 3-digit :status first (RFC 9114 §4.3.2). */
export function parseResponseStatus(fields: readonly HeaderField[]): number | string {
  const bad = checkFields(fields, new Set([':status']));
  if (bad) return bad;
  const status = fields.find((f) => f[0] === ':status')?.[1];
  if (status === undefined || !/^[1-9][0-9]{2}$/.test(status))
    return 'missing or invalid :status (RFC 9114 §4.3.2)';
  return Number(status);
}

/** Extra header fields an application passes in must not smuggle pseudo-headers or invalid fields (local misuse). */
export function assertValidExtraFields(fields: readonly HeaderField[]): void {
  const bad = checkFields(fields, new Set());
  if (bad) throw new TypeError(bad);
}
