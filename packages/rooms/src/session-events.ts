import type { ServerSession, SessionCloseInfo } from '@quiver/session';
import { RoomCloseCode } from './protocol.js';

export interface SessionWatch {
  /** The transport dropped; the session waits for a resume. */
  disconnected(): void;
  /** The session resumed on a new transport. */
  resumed(): void;
  /** The session ended for good; `consented` when the client closed it on purpose with a normal code. */
  closed(consented: boolean, info: SessionCloseInfo): void;
}

/** Follows a session's life through the session server's public events (`disconnected`, `resumed`, `closed`). */
export function watchSession(session: ServerSession, watch: SessionWatch): void {
  session.on('disconnected', () => watch.disconnected());
  session.on('resumed', () => watch.resumed());
  session.on('closed', (info) => watch.closed(consented(info), info));
}

/** A client that closed its session deliberately, with a normal code, left on purpose. */
export function consented(info: SessionCloseInfo): boolean {
  return (
    info.initiator === 'client' && info.deliberate && (info.code === 0 || info.code === RoomCloseCode.LEFT)
  );
}
