import type { TransportName } from '@quiver/transport';
import type { ClientQuality } from './telemetry.js';

/** RTT histogram bucket upper bounds in seconds (Prometheus convention: seconds, cumulative `le`). */
export const rttBucketsSeconds = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** A Prometheus-style histogram of values in seconds. */
export interface Histogram {
  /** Upper bounds in seconds. */
  buckets: number[];
  /** Non-cumulative counts per bucket, plus one last entry for +Inf. */
  counts: number[];
  /** Sum of all observed values, in seconds. */
  sum: number;
  /** Number of observations. */
  count: number;
}

/**
 * The session server's metrics as plain data (the fastify plugin exports them with prom-client). Counters only
 * grow; `sessionsActive` is computed when read.
 */
export interface SessionMetrics {
  /** Sessions with a connected transport, by transport name (a gauge). */
  readonly sessionsActive: Record<TransportName, number>;
  /** Sessions whose transport dropped and that wait for a resume (a gauge). */
  readonly sessionsDisconnected: number;
  /** Sessions opened since the server started (resumes not counted). */
  sessionsTotal: number;
  /** Sessions ended for good since the server started. */
  sessionsClosed: number;
  /** Messages by channel name, per direction. */
  messages: {
    /** Received, by channel. */
    in: Record<string, number>;
    /** Sent, by channel. */
    out: Record<string, number>;
  };
  /** Encoded message bytes by channel name, per direction. */
  bytes: {
    /** Received, by channel. */
    in: Record<string, number>;
    /** Sent, by channel. */
    out: Record<string, number>;
  };
  /** Session-layer drops by reason (see `DropReason`). */
  drops: Record<string, number>;
  /** Received trace contexts that were malformed and ignored (their messages were delivered). */
  traceContextInvalid: number;
  /** Heartbeat RTT samples of all sessions, in seconds. */
  rtt: Histogram;
  /** Resume attempts (HELLO with a resume token). */
  reconnects: number;
  /** Resume attempts that recovered the session. */
  recoveries: number;
  /** Refused requests or handshakes, by HTTP status or error kind. */
  rejections: Record<string, number>;
  /** Errors reported to `onError`, by kind. */
  errors: Record<string, number>;
  /** Records an RTT sample in ms into `rtt` and tells `rttListeners`. */
  observeRtt(ms: number): void;
  /** Called with every RTT sample in ms (exporters that keep their own histogram subscribe here). */
  readonly rttListeners: Set<(ms: number) => void>;
  /**
   * Called with every RTT sample together with the session's jitter and heartbeat loss at that moment, and the
   * transport carrying it (one of the server's listeners' names, else `unknown`): per-transport quality.
   */
  readonly qualityListeners: Set<(sample: QualitySample) => void>;
  /** Client telemetry reports: accepted, refused as invalid, refused for coming too often. */
  telemetry: { accepted: number; invalid: number; 'rate-limited': number };
  /** Called with every accepted client report and the transport label of its session. */
  readonly clientQualityListeners: Set<(quality: ClientQuality, transport: string) => void>;
}

/** One heartbeat's view of a session's link quality (see `SessionMetrics.qualityListeners`). */
export interface QualitySample {
  transport: string;
  rttMs: number;
  /** RTTVAR (RFC 6298) in ms. */
  jitterMs: number;
  /** Fraction of heartbeat probes lost (EWMA), 0..1; stays 0 where datagrams are reliable. */
  loss: number;
}

/** Creates the metrics of a session server; `sessions` yields the live sessions for the gauges. */
export function createMetrics(
  sessions: () => Iterable<{ connected: boolean; transport: TransportName | undefined; state: string }>,
): SessionMetrics {
  const rtt: Histogram = {
    buckets: rttBucketsSeconds,
    counts: new Array(rttBucketsSeconds.length + 1).fill(0),
    sum: 0,
    count: 0,
  };
  return {
    get sessionsActive() {
      const out: Record<string, number> = {};
      for (const s of sessions()) {
        if (s.connected && s.transport) out[s.transport] = (out[s.transport] ?? 0) + 1;
      }
      return out;
    },
    get sessionsDisconnected() {
      let n = 0;
      for (const s of sessions()) if (s.state === 'disconnected') n++;
      return n;
    },
    sessionsTotal: 0,
    sessionsClosed: 0,
    messages: { in: {}, out: {} },
    bytes: { in: {}, out: {} },
    drops: {},
    traceContextInvalid: 0,
    rtt,
    reconnects: 0,
    recoveries: 0,
    rejections: {},
    errors: {},
    rttListeners: new Set(),
    qualityListeners: new Set(),
    telemetry: { accepted: 0, invalid: 0, 'rate-limited': 0 },
    clientQualityListeners: new Set(),
    observeRtt(ms: number) {
      for (const l of this.rttListeners) l(ms);
      const s = ms / 1000;
      let i = rtt.buckets.findIndex((b) => s <= b);
      if (i < 0) i = rtt.buckets.length;
      rtt.counts[i]++;
      rtt.sum += s;
      rtt.count++;
    },
  };
}
