import { datagramFrame, type Frame, Kind } from './codec.js';
import { DecodeError } from './errors.js';
import type { Link } from './link.js';
import type { Liveness } from './liveness.js';

/** What handling the shared control frames needs of the session. */
export interface ControlHost {
  readonly liveness: Liveness;
  now(): number;
  /** An RTT sample from an answered probe. */
  rtt(sample: number): void;
  /** The peer acknowledged everything up to `cum` on this end's channel `channelId`. */
  ack(channelId: number, cum: number): void;
  /** An ACK frame was applied: the window may have room again. */
  acked(): void;
  /** The peer sent CLOSE. */
  closed(link: Link, code: number, reason: string, reconnect: boolean): void;
  /** Control frames other than the shared ones (the handshake frames of client and server). */
  other(link: Link, frame: Frame): void;
}

/**
 * Handles one control frame of the session protocol: answers probes, measures their answers, applies
 * acknowledgements and the peer's CLOSE; what is not shared goes to `host.other`.
 */
export function handleControl(host: ControlHost, link: Link, frame: Frame, viaDatagram: boolean): void {
  const h = frame.header;
  switch (h[0]) {
    case Kind.PING: {
      const pong = [Kind.PONG, h[1], h[2], host.now()];
      if (viaDatagram) {
        // Probes are tiny and rare: they are written even when the datagram queue is momentarily full, and ride
        // this turn's bundle rather than costing a datagram write of their own.
        link.dgram.queue([datagramFrame(pong)], true);
      } else link.control.write(pong);
      return;
    }
    case Kind.PONG: {
      const sample = host.liveness.answer(link, h, host.now());
      if (sample !== null) host.rtt(sample);
      return;
    }
    case Kind.ACK: {
      if (!Array.isArray(h[1])) throw new DecodeError('bad ACK');
      for (const entry of h[1] as unknown[]) {
        if (!Array.isArray(entry)) throw new DecodeError('bad ACK entry');
        if (typeof entry[0] === 'number' && typeof entry[1] === 'number') host.ack(entry[0], entry[1]);
      }
      host.acked();
      return;
    }
    case Kind.CLOSE: {
      const code = typeof h[1] === 'number' ? h[1] : 0;
      const reason = typeof h[2] === 'string' ? h[2] : '';
      host.closed(link, code, reason, h[3] === true);
      return;
    }
    default:
      host.other(link, frame);
  }
}
