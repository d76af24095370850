/**
 * Client telemetry: what the player experiences, measured where it happens. A client with `telemetry` set reports,
 * at a low rate on the unreliable channel, its RTT, jitter and heartbeat loss, and the frame time and interpolation
 * delay the application measures. The server validates each report against fixed bounds, rate-limits it per
 * session, keeps the last one as the session's quality, feeds the metrics and tells the application when the
 * quality crosses its thresholds (so it can, e.g., switch a player to a lighter update rate).
 */
import type { Clock, TimerHandle } from './clock.js';
import { defineMessage } from './messages.js';

/** `[rttMs, jitterMs, loss, frameTimeMs | null, interpolationDelayMs | null]`: five numbers, 5 to 45 bytes. */
export type TelemetryReport = [number, number, number, number | null, number | null];

/** The reserved message a client's telemetry travels as. */
export const TelemetryMessage = /* @__PURE__ */ defineMessage<TelemetryReport>('quiver.telemetry', {
  channel: 'unreliable',
});

/** Client option: what to report and how often. */
export interface TelemetryOptions {
  /** Interval between reports. Default 2000 ms; the server refuses reports closer than its `minIntervalMs`. */
  intervalMs?: number;
  /** The application's own figures, read at each report (e.g. from its render loop and interpolation buffer). */
  sample?: () => { frameTimeMs?: number; interpolationDelayMs?: number };
}

/** A session's quality as its client last reported it. */
export interface ClientQuality {
  rttMs: number;
  jitterMs: number;
  /** 0..1. */
  loss: number;
  frameTimeMs: number | undefined;
  interpolationDelayMs: number | undefined;
  /** When the server accepted the report (its clock, ms). */
  at: number;
  /** `poor` once a figure is over its threshold; `good` again once all are under 80 % of theirs. */
  state: 'good' | 'poor';
}

/** Server option: limits on reports and the thresholds of "poor" quality. */
export interface QualityOptions {
  /** Reports closer together than this are refused and counted (`rate-limited`). Default 500 ms. */
  minIntervalMs?: number;
  /** A session is `poor` when any reported figure exceeds its threshold. Default none: never poor. */
  thresholds?: {
    rttMs?: number;
    jitterMs?: number;
    loss?: number;
    frameTimeMs?: number;
    interpolationDelayMs?: number;
  };
}

/** Upper bounds of a plausible report: above them the report is refused as invalid (never clamped into the data). */
const MAX_MS = 60_000;

/** Parses a report; null when it is not five numbers within their bounds. */
export function parseTelemetry(p: unknown): Omit<ClientQuality, 'at' | 'state'> | null {
  if (!Array.isArray(p) || p.length !== 5) return null;
  const ms = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= MAX_MS;
  const opt = (v: unknown) => v === null || ms(v);
  const [rtt, jitter, loss, frame, interp] = p;
  if (!ms(rtt) || !ms(jitter) || !opt(frame) || !opt(interp)) return null;
  if (typeof loss !== 'number' || !(loss >= 0 && loss <= 1)) return null;
  return {
    rttMs: rtt,
    jitterMs: jitter,
    loss,
    frameTimeMs: frame ?? undefined,
    interpolationDelayMs: interp ?? undefined,
  };
}

/** Hysteresis: a poor session is good again only once every figure is under this share of its threshold. */
const RECOVER = 0.8;

/** The server's view of one session's reports: validation, rate limit, state and its changes. */
export class QualityTracker {
  quality: ClientQuality | undefined;
  private lastAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly options: QualityOptions = {}) {}

  /** Takes a report: `invalid`, `rate-limited`, `accepted`, or `changed` when the state crossed a threshold. */
  accept(payload: unknown, now: number): 'invalid' | 'rate-limited' | 'accepted' | 'changed' {
    const r = parseTelemetry(payload);
    if (!r) return 'invalid';
    if (now - this.lastAt < (this.options.minIntervalMs ?? 500)) return 'rate-limited';
    this.lastAt = now;
    const before = this.quality?.state ?? 'good';
    const state = this.stateOf(r, before);
    this.quality = { ...r, at: now, state };
    return state !== before ? 'changed' : 'accepted';
  }

  private stateOf(r: Omit<ClientQuality, 'at' | 'state'>, before: 'good' | 'poor'): 'good' | 'poor' {
    const t = this.options.thresholds;
    if (!t) return 'good';
    const over = (v: number | undefined, limit: number | undefined, share: number) =>
      v !== undefined && limit !== undefined && v > limit * share;
    const figures: [number | undefined, number | undefined][] = [
      [r.rttMs, t.rttMs],
      [r.jitterMs, t.jitterMs],
      [r.loss, t.loss],
      [r.frameTimeMs, t.frameTimeMs],
      [r.interpolationDelayMs, t.interpolationDelayMs],
    ];
    if (figures.some(([v, l]) => over(v, l, 1))) return 'poor';
    if (before === 'poor' && figures.some(([v, l]) => over(v, l, RECOVER))) return 'poor';
    return 'good';
  }
}

/** What a client's telemetry reads of its session. */
export interface TelemetrySource {
  readonly rtt: number;
  readonly jitter: number;
  readonly loss: number;
  readonly connected: boolean;
  send(type: typeof TelemetryMessage, report: TelemetryReport): boolean;
}

/** A client's telemetry, made by {@link clientTelemetry} (the `telemetry` client option). */
export interface ClientTelemetry {
  /** The message reports travel as (announced at the handshake). */
  readonly message: typeof TelemetryMessage;
  /** Starts the reports of `session`; returns what stops them. */
  start(session: TelemetrySource, clock: Clock): () => void;
}

/**
 * The `telemetry` client option: every `intervalMs` while connected the client sends its RTT, jitter, loss, frame
 * time and interpolation delay on the `unreliable` channel (`quiver.telemetry`, about 20 bytes). A function rather
 * than a flag so that a client without telemetry bundles none of it.
 */
export function clientTelemetry(options: TelemetryOptions = {}): ClientTelemetry {
  return {
    message: TelemetryMessage,
    start(session, clock) {
      const interval = Math.max(options.intervalMs ?? 2000, 100);
      const n = (v: number | undefined) => (v !== undefined && Number.isFinite(v) ? Math.max(0, v) : null);
      const r = (v: number) => Math.round(v * 100) / 100;
      let timer: TimerHandle | undefined;
      const tick = () => {
        // Only while connected: a report has no value later, and a send now would count a 'disconnected' drop.
        if (session.connected) {
          const s = options.sample?.() ?? {};
          session.send(TelemetryMessage, [
            r(session.rtt),
            r(session.jitter),
            r(session.loss),
            n(s.frameTimeMs),
            n(s.interpolationDelayMs),
          ]);
        }
        timer = clock.setTimeout(tick, interval);
      };
      timer = clock.setTimeout(tick, interval);
      return () => clock.clearTimeout(timer);
    },
  };
}
