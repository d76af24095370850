/**
 * A WebTransport session's life (draft §3, §6): offered and accepted or rejected on the server, requested and
 * established or refused on the client, drained, closed; and the end of its CONNECT stream.
 */

import type { HeaderField } from './api.js';
import { createCapsuleParser, encodeCloseCapsule, encodeDrainCapsule } from './capsules.js';
import { FrameType, H3ErrorCode, SettingId } from './codes.js';
import { assertSessionId, type H3Context, type Session } from './context.js';
import { encodeDataFrameHeader, encodeFrame } from './frames.js';
import { assertValidExtraFields } from './headers.js';
import { encodeFieldSection } from './qpack/index.js';
import { concatBytes } from './varint.js';

/** Opens, accepts, rejects and ends sessions. */
export class SessionLifecycle {
  constructor(private readonly c: H3Context) {}

  /**
   * The session if it is live; `undefined` if it existed and ended (callers treat that as a no-op, since the
   * application may act on a session before it drained the event saying it closed); throws if it never existed.
   */
  liveSession(sessionId: number, what: string): Session | undefined {
    assertSessionId(sessionId);
    const session = this.c.sessions.get(sessionId);
    if (session && session.state !== 'awaiting-settings') return session;
    if (this.c.endedSessions.has(sessionId)) return undefined;
    throw new Error(`${what}: no session ${sessionId}`);
  }

  /** Raises the request once the client's SETTINGS tell which WebTransport it speaks (draft §3.1). */
  offerSession(session: Session): void {
    if (this.c.control.draft === 'none') {
      // The client never enabled WebTransport, so a `webtransport` upgrade cannot be honoured.
      this.c.sessions.delete(session.id);
      const s = this.c.inStreams.get(session.id);
      if (s?.kind === 'request') s.session = undefined;
      this.c.endedSessions.add(session.id);
      this.c.buffer.rejectEarly(session.id, H3ErrorCode.WT_SESSION_GONE);
      this.c.requests.respondAndStop(session.id, 400);
      return;
    }
    const live = [...this.c.sessions.values()].filter((x) => x.state !== 'awaiting-settings').length;
    if (live >= this.c.control.sessionLimit()) {
      // The limit may have shrunk once the SETTINGS told the draft (current draft §5.2: H3_REQUEST_REJECTED).
      this.c.stats.requestsRejected++;
      this.c.sessions.delete(session.id);
      this.c.endedSessions.add(session.id);
      this.c.buffer.rejectEarly(session.id, H3ErrorCode.WT_SESSION_GONE);
      this.c.refuseStream(session.id, H3ErrorCode.H3_REQUEST_REJECTED, true);
      return;
    }
    session.state = 'requested';
    this.c.events.push({
      type: 'session-request',
      sessionId: session.id,
      headers: session.requestHeaders ?? [],
    });
    if (session.drainReceived) this.c.events.push({ type: 'session-draining', sessionId: session.id });
  }

  /** The peer finished or reset its side of a CONNECT stream: close ours too (draft §6). */
  finishConnectStream(session: Session): void {
    if (!session.sendOpen) return;
    session.sendOpen = false;
    if (this.c.role === 'server' && session.state !== 'established') {
      // No response was sent, and a bare FIN would be a response without HEADERS (RFC 9114 §4.1): cancel it.
      this.c.commands.push({
        type: 'stream-reset',
        streamId: session.id,
        code: H3ErrorCode.H3_REQUEST_CANCELLED,
      });
      return;
    }
    this.c.write(session.id, new Uint8Array(0), true);
    this.c.closes.sent(session.id);
  }

  /** Client: the CONNECT did not lead to a session. */
  failConnecting(session: Session, status: number, reason: string, resetCode: bigint | undefined): void {
    this.c.sessions.delete(session.id);
    this.c.endedSessions.add(session.id);
    if (session.heldRequest) {
      // Never sent: the stream does not exist on the wire, so there is nothing to close or to wait for.
      session.heldRequest = undefined;
      session.sendOpen = false;
      this.c.inStreams.delete(session.id);
    }
    if (session.sendOpen) {
      session.sendOpen = false;
      if (resetCode !== undefined)
        this.c.commands.push({ type: 'stream-reset', streamId: session.id, code: resetCode });
      else this.c.write(session.id, new Uint8Array(0), true);
    }
    const s = this.c.inStreams.get(session.id);
    if (s) {
      this.c.inStreams.delete(session.id);
      if (resetCode !== undefined)
        this.c.commands.push({ type: 'stream-stop-sending', streamId: session.id, code: resetCode });
      this.c.discarding.add(session.id);
    }
    this.c.streams.closeSessionStreams(session);
    this.c.events.push({ type: 'session-rejected', sessionId: session.id, status, reason });
  }

  /** Ends a session that was offered or established (draft §6): its streams are reset, then one event. */
  endSession(session: Session, code: number, reason: string, abrupt: boolean, local = false): void {
    if (this.c.sessions.get(session.id) !== session) return;
    this.c.sessions.delete(session.id);
    this.c.endedSessions.add(session.id);
    this.c.streams.closeSessionStreams(session);
    if (session.state === 'awaiting-settings') return; // never shown to the adapter
    this.c.events.push({ type: 'session-closed', sessionId: session.id, code, reason, abrupt, local });
  }

  connect(request: { authority: string; path: string; origin?: string; headers?: HeaderField[] }): number {
    if (this.c.role !== 'client') throw new Error('connect() is for clients');
    if (!this.c.control.started) throw new Error('connect() before start()');
    if (this.c.failed) throw new Error('connection failed');
    if (this.c.control.goawayReceivedId !== undefined)
      throw new Error('the server sent GOAWAY: open a new connection (draft §4.7)');
    if (!request.authority || !request.path?.startsWith('/'))
      throw new TypeError('authority and an absolute path are required');
    const peerMax =
      this.c.control.peerSettings && this.c.control.draft === 'current'
        ? Number(
            this.c.control.peerSettings.get(SettingId.WT_MAX_SESSIONS) ??
              this.c.control.peerSettings.get(SettingId.WT_MAX_SESSIONS_DRAFT07) ??
              0n,
          )
        : Number.POSITIVE_INFINITY;
    if (this.c.sessions.size >= Math.min(this.c.control.sessionLimit(), peerMax)) {
      throw new Error(`session limit reached (${this.c.sessions.size})`);
    }
    const extra = request.headers ?? [];
    assertValidExtraFields(extra);
    // RFC 9220 §3 extended CONNECT, draft §3.2: :scheme https, :authority, :path, :protocol, Origin.
    const fields: HeaderField[] = [
      [':method', 'CONNECT'],
      [':scheme', 'https'],
      [':authority', request.authority],
      [':path', request.path],
      [':protocol', 'webtransport'],
      // draft-02 §3.2 as sent by browsers; harmless to current-draft servers.
      ['sec-webtransport-http3-draft02', '1'],
    ];
    if (request.origin !== undefined) fields.push(['origin', request.origin]);
    fields.push(...extra);
    // Encode now so that bad input throws here, not when the SETTINGS arrive.
    encodeFieldSection(fields);
    const id = this.c.allocBidi();
    const session: Session = {
      id,
      state: 'connecting',
      streams: new Set(),
      capsules: createCapsuleParser(this.c.limits.maxCapsuleSize),
      sendOpen: true,
      heldRequest: fields,
    };
    this.c.sessions.set(id, session);
    const s = this.c.requests.newRequestStream(id, session);
    this.c.inStreams.set(id, s);
    // draft §3.1: no CONNECT before the server's SETTINGS say which WebTransport it speaks.
    if (this.c.control.peerSettings) this.sendHeldRequest(session);
    return id;
  }

  sendHeldRequest(session: Session): void {
    const fields = session.heldRequest;
    if (!fields) return;
    session.heldRequest = undefined;
    if (this.c.control.draft === 'none') {
      session.sendOpen = false;
      this.failConnecting(
        session,
        0,
        'the server does not support WebTransport (no WebTransport SETTINGS)',
        undefined,
      );
      return;
    }
    this.c.write(session.id, encodeFrame(FrameType.HEADERS, encodeFieldSection(fields)));
  }

  acceptSession(sessionId: number, headers: HeaderField[] = []): void {
    if (this.c.role !== 'server') throw new Error('acceptSession() is for servers');
    const session = this.liveSession(sessionId, 'acceptSession');
    if (!session || this.c.failed) return;
    if (session.state !== 'requested')
      throw new Error(`acceptSession: session ${sessionId} is ${session.state}`);
    assertValidExtraFields(headers);
    const fields: HeaderField[] = [[':status', '200']];
    // draft-02 §3.3 response header; Chromium does not require it, older servers sent it.
    if (this.c.control.draft === 'draft02') fields.push(['sec-webtransport-http3-draft', 'draft02']);
    fields.push(...headers);
    if (!session.sendOpen) {
      // The client stopped reading the CONNECT stream before our answer: the session cannot work.
      this.endSession(session, 0, 'CONNECT stream stopped by the client', true, true);
      return;
    }
    this.c.write(sessionId, encodeFrame(FrameType.HEADERS, encodeFieldSection(fields)));
    session.state = 'established';
    this.c.buffer.flushEarly(session);
  }

  rejectSession(sessionId: number, status: number): void {
    if (this.c.role !== 'server') throw new Error('rejectSession() is for servers');
    if (!Number.isInteger(status) || status < 300 || status > 599)
      throw new RangeError(`rejectSession needs a 3xx-5xx status, got ${status}`);
    const session = this.liveSession(sessionId, 'rejectSession');
    if (!session || this.c.failed) return;
    if (session.state !== 'requested')
      throw new Error(`rejectSession: session ${sessionId} is ${session.state}`);
    this.c.sessions.delete(sessionId);
    this.c.endedSessions.add(sessionId);
    this.c.streams.closeSessionStreams(session);
    if (session.sendOpen) this.c.requests.respondAndStop(sessionId, status);
    else if (this.c.inStreams.delete(sessionId)) this.c.discarding.add(sessionId);
  }

  closeSession(sessionId: number, code: number, reason: string): void {
    if (!Number.isInteger(code) || code < 0 || code > 0xffffffff)
      throw new RangeError(`close code must be a u32, got ${code}`);
    const session = this.liveSession(sessionId, 'closeSession');
    if (!session || this.c.failed) return;
    if (session.state === 'requested')
      throw new Error('closeSession: session not accepted yet; use rejectSession');
    if (session.state === 'connecting') {
      // No response yet: the capsule protocol is not in use, so cancel the request (RFC 9114 §4.1.1).
      this.failConnecting(
        session,
        0,
        reason || 'closed before the response',
        session.heldRequest ? undefined : H3ErrorCode.H3_REQUEST_CANCELLED,
      );
      return;
    }
    if (session.sendOpen) {
      // draft §6: CLOSE_WEBTRANSPORT_SESSION, then FIN at once.
      session.sendOpen = false;
      const capsule = encodeCloseCapsule(code, reason);
      this.c.write(sessionId, concatBytes([encodeDataFrameHeader(capsule.length), capsule]), true);
      this.c.closes.sent(sessionId);
    }
    // We keep reading the CONNECT stream only to see its end; its capsules no longer matter.
    if (this.c.inStreams.delete(sessionId)) this.c.discarding.add(sessionId);
    this.endSession(session, code, reason, false, true);
  }

  drainSession(sessionId: number): void {
    const session = this.liveSession(sessionId, 'drainSession');
    if (!session || this.c.failed || session.state !== 'established' || !session.sendOpen) return;
    const capsule = encodeDrainCapsule();
    this.c.write(sessionId, concatBytes([encodeDataFrameHeader(capsule.length), capsule]));
  }
}
