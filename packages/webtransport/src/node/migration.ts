/**
 * QUIC connection migration with quiche (RFC 9000 §9): spare connection ids for the peer, and the client's move to a
 * new socket when its address is gone.
 */
import { randomBytes } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import type { QuicEndpoint } from './endpoint.js';
import type { QuicConnection } from './quic-connection.js';
import { type Connection, SCID_LEN } from './quiche.js';

/** Spare ids issued at most (the peer's active_connection_id_limit caps it further, RFC 9000 §5.1.1). */
const MAX_SPARE_IDS = 2;

/**
 * RFC 9000 §5.1.1, §9.5: an endpoint that moves to a new path must use a connection id the peer has not seen on the
 * old one, so each end hands the other spare ids (NEW_CONNECTION_ID) once the handshake is done; `route` makes
 * packets to them reach this connection.
 */
export function issueSpareConnectionIds(conn: Connection, route: (key: string) => void): void {
  try {
    for (let i = 0; i < MAX_SPARE_IDS && conn.sourceCidsLeft() > 0; i++) {
      const scid = randomBytes(SCID_LEN);
      // RFC 9000 §10.3: a 128-bit stateless reset token per id. We never send stateless resets, but the frame needs one.
      const token = BigInt(`0x${randomBytes(16).toString('hex')}`);
      conn.newSourceCid(scid, token, false);
      route(scid.toString('latin1'));
    }
  } catch {
    // An id quiche refuses leaves the connection without a spare: it can still run, only not migrate.
  }
}

/** Send errors that mean the socket's source address or route is gone, not a transient condition. */
const PATH_GONE = new Set(['EINVAL', 'EADDRNOTAVAIL', 'ENETUNREACH', 'EHOSTUNREACH', 'ENETDOWN', 'EPERM']);
/** At most one move per this many ms (errors come per packet). */
const MIN_INTERVAL_MS = 250;

/**
 * Client: when a send fails because the path is gone, or the socket's local address no longer exists on any
 * interface (it was removed, as on a switch from Wi-Fi to cellular), the endpoint moves to a new socket, whose source address the kernel picks from the current routes, and
 * the connection migrates to it (RFC 9000 §9.2, quiche `migrate_source`); the server validates the new path (§8.2).
 * Counted in `migrations` (and `migrationsFailed` when quiche cannot, e.g. before the handshake is confirmed).
 */
export function migrateOnPathLoss(endpoint: QuicEndpoint, quic: QuicConnection): void {
  let busy = false;
  let last = Number.NEGATIVE_INFINITY;
  const move = () => {
    if (busy || quic.closed) return;
    const now = performance.now();
    if (now - last < MIN_INTERVAL_MS) return;
    last = now;
    busy = true;
    endpoint.rebind().then(
      (local) => {
        busy = false;
        if (quic.migrateTo(local)) quic.counters.migrations++;
        else quic.counters.migrationsFailed++;
      },
      () => {
        busy = false;
        quic.counters.migrationsFailed++;
      },
    );
  };
  endpoint.onSendError = (e) => {
    if (PATH_GONE.has(e.code ?? '')) move();
  };
  // Linux keeps sending from a connected socket whose source address was removed, without an error: the address
  // itself is watched too (Node's analogue of a browser's network-change event).
  const timer = setInterval(() => {
    if (quic.closed) {
      clearInterval(timer);
      return;
    }
    if (!hasAddress(endpoint.local.host)) move();
  }, ADDRESS_CHECK_MS);
  timer.unref();
}

/** How often a client checks that its socket's local address still exists (one getifaddrs call). */
const ADDRESS_CHECK_MS = 250;

/** Whether `host` is an address of one of this host's interfaces (unspecified addresses always are). */
function hasAddress(host: string): boolean {
  if (host === '0.0.0.0' || host === '::' || host === '') return true;
  const bare = host.startsWith('::ffff:') ? host.slice(7) : host;
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.address === bare || a.address === host) return true;
  }
  return false;
}
