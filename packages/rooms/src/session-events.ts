import type { ServerSession } from '@quiver/session';

export interface SessionWatch {
  /** The transport dropped; the session waits for a resume. */
  disconnected(): void;
  /** The session resumed on a new transport. */
  resumed(): void;
  /** The session ended for good. */
  closed(code: number, reason: string): void;
}

/** Follows a session's life through the session server's public events. */
export function watchSession(session: ServerSession, watch: SessionWatch): void {
  session.on('close', (code, reason) => watch.closed(code, reason));
}
