/**
 * Prometheus metrics of the session server, read from its plain-data metrics when scraped: sessions, messages,
 * RTT and link quality, the clients' own telemetry, and per-transport statistics.
 */

import { rttBucketsSeconds, type SessionServer } from '@quiver/session';
import type { TransportStats } from '@quiver/transport';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Builds prom-client metrics that read the session server's plain-data metrics when scraped. */
export function createPrometheusMetrics(server: SessionServer, registry = new Registry()): Registry {
  const m = server.metrics;
  const counterFrom = (
    name: string,
    help: string,
    labelNames: string[],
    read: () => [Record<string, string>, number][],
  ) =>
    new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        // Counters are kept by the session server; the scrape copies them (reset + inc keeps prom-client's type).
        this.reset();
        for (const [labels, value] of read()) if (value > 0) this.inc(labels, value);
      },
    });
  new Gauge({
    name: 'quiver_sessions_active',
    help: 'Sessions with a connected transport, by transport',
    labelNames: ['transport'],
    registers: [registry],
    collect() {
      this.reset();
      for (const t of ['webtransport', 'websocket', 'http']) this.set({ transport: t }, 0);
      for (const [transport, n] of Object.entries(m.sessionsActive)) this.set({ transport }, n);
    },
  });
  new Gauge({
    name: 'quiver_sessions_disconnected',
    help: 'Sessions whose transport dropped, waiting for a resume',
    registers: [registry],
    collect() {
      this.set(m.sessionsDisconnected);
    },
  });
  new Gauge({
    name: 'quiver_handshakes_pending',
    help: 'Connections past the request checks whose HELLO is not yet validated (pre-authentication slots held)',
    registers: [registry],
    collect() {
      this.set(server.handshakesPending);
    },
  });
  const byDirection = (rec: { in: Record<string, number>; out: Record<string, number> }) =>
    (['in', 'out'] as const).flatMap((direction) =>
      Object.entries(rec[direction]).map(
        ([channel, v]) => [{ channel, direction }, v] as [Record<string, string>, number],
      ),
    );
  counterFrom('quiver_messages_total', 'Messages by channel and direction', ['channel', 'direction'], () =>
    byDirection(m.messages),
  );
  counterFrom('quiver_bytes_total', 'Payload bytes by channel and direction', ['channel', 'direction'], () =>
    byDirection(m.bytes),
  );
  counterFrom('quiver_drops_total', 'Messages dropped by the session layer, by reason', ['reason'], () =>
    Object.entries(m.drops).map(([reason, v]) => [{ reason }, v]),
  );
  counterFrom('quiver_reconnects_total', 'Resume attempts (reconnects carrying a resume token)', [], () => [
    [{}, m.reconnects],
  ]);
  counterFrom('quiver_recoveries_total', 'Reconnects that resumed their session without loss', [], () => [
    [{}, m.recoveries],
  ]);
  counterFrom('quiver_sessions_total', 'Sessions created', [], () => [[{}, m.sessionsTotal]]);
  counterFrom(
    'quiver_rejections_total',
    'Refused session requests and handshakes, by reason',
    ['reason'],
    () => Object.entries(m.rejections).map(([reason, v]) => [{ reason }, v]),
  );
  counterFrom('quiver_errors_total', 'Errors reported to onError, by kind', ['kind'], () =>
    Object.entries(m.errors).map(([kind, v]) => [{ kind }, v]),
  );
  const rtt = new Histogram({
    name: 'quiver_rtt_seconds',
    help: 'Heartbeat round-trip times measured by the server',
    buckets: rttBucketsSeconds,
    registers: [registry],
  });
  m.rttListeners.add((ms) => rtt.observe(ms / 1000));
  counterFrom(
    'quiver_trace_context_invalid_total',
    'Received trace contexts that were malformed and ignored (their messages were delivered)',
    [],
    () => [[{}, m.traceContextInvalid]],
  );
  const quality = {
    rtt: new Histogram({
      name: 'quiver_transport_rtt_seconds',
      help: 'Heartbeat round-trip times, by transport',
      labelNames: ['transport'],
      buckets: rttBucketsSeconds,
      registers: [registry],
    }),
    jitter: new Histogram({
      name: 'quiver_transport_jitter_seconds',
      help: "The session's RTT variation (RFC 6298 RTTVAR) at each heartbeat, by transport",
      labelNames: ['transport'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5],
      registers: [registry],
    }),
    loss: new Histogram({
      name: 'quiver_transport_loss_ratio',
      help: "The session's heartbeat loss (EWMA, 0..1) at each heartbeat, by transport; 0 where datagrams are reliable",
      labelNames: ['transport'],
      buckets: [0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1],
      registers: [registry],
    }),
  };
  m.qualityListeners.add((q) => {
    quality.rtt.observe({ transport: q.transport }, q.rttMs / 1000);
    quality.jitter.observe({ transport: q.transport }, q.jitterMs / 1000);
    quality.loss.observe({ transport: q.transport }, q.loss);
  });
  new Gauge({
    name: 'quiver_send_buffered_bytes',
    help: 'Bytes sessions hold for sending: queued plus in flight (the replay buffers), all sessions',
    registers: [registry],
    collect() {
      let n = 0;
      for (const s of server.sessions.values()) n += s.bufferedBytes;
      this.set(n);
    },
  });
  new Gauge({
    name: 'quiver_send_queue_messages',
    help: 'Reliable messages waiting to be sent (not yet in flight), all sessions',
    registers: [registry],
    collect() {
      let n = 0;
      for (const s of server.sessions.values()) n += s.queuedMessages;
      this.set(n);
    },
  });
  registerClientTelemetry(server, registry);
  registerTransportStats(server, registry);
  return registry;
}

/** Histograms of what clients report (`telemetry` client option), the reports' outcomes and the poor sessions. */
function registerClientTelemetry(server: SessionServer, registry: Registry): void {
  const m = server.metrics;
  const ms = [0.001, 0.0025, 0.005, 0.01, 0.016, 0.025, 0.033, 0.05, 0.1, 0.25, 0.5, 1];
  const histogram = (name: string, help: string, buckets: number[]) =>
    new Histogram({ name, help, labelNames: ['transport'], buckets, registers: [registry] });
  const h = {
    rtt: histogram(
      'quiver_client_rtt_seconds',
      'RTT as clients measure it, from their reports',
      rttBucketsSeconds,
    ),
    jitter: histogram('quiver_client_jitter_seconds', 'RTT variation as clients measure it', ms),
    loss: histogram(
      'quiver_client_loss_ratio',
      'Heartbeat loss as clients measure it (0..1)',
      [0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1],
    ),
    frame: histogram('quiver_client_frame_seconds', 'Frame time clients report', ms),
    interpolation: histogram(
      'quiver_client_interpolation_delay_seconds',
      'Interpolation delay clients report (how far behind the server the rendered state is)',
      [0.016, 0.033, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1],
    ),
  };
  m.clientQualityListeners.add((q, transport) => {
    h.rtt.observe({ transport }, q.rttMs / 1000);
    h.jitter.observe({ transport }, q.jitterMs / 1000);
    h.loss.observe({ transport }, q.loss);
    if (q.frameTimeMs !== undefined) h.frame.observe({ transport }, q.frameTimeMs / 1000);
    if (q.interpolationDelayMs !== undefined)
      h.interpolation.observe({ transport }, q.interpolationDelayMs / 1000);
  });
  new Counter({
    name: 'quiver_client_reports_total',
    help: 'Client telemetry reports, by outcome (accepted, invalid, rate-limited)',
    labelNames: ['outcome'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [outcome, n] of Object.entries(m.telemetry)) if (n > 0) this.inc({ outcome }, n);
    },
  });
  new Gauge({
    name: 'quiver_sessions_poor_quality',
    help: 'Sessions whose last client report was over the quality thresholds',
    registers: [registry],
    collect() {
      let n = 0;
      for (const s of server.sessions.values()) if (s.quality?.state === 'poor') n++;
      this.set(n);
    },
  });
}

/** What one scrape reads of the live sessions' transports (`getStats()` through the transport interface). */
interface TransportSnapshot {
  transport: string;
  stats: TransportStats;
}

/**
 * Gauges and scrape-time histograms of the transports' own figures: QUIC loss, retransmissions, congestion window
 * and delivery rate (what pacing follows), transport-level datagram drops. They sum or describe the sessions live at
 * the scrape (a session's counters leave with it), so they are gauges, not counters.
 */
function registerTransportStats(server: SessionServer, registry: Registry): void {
  let cached: { at: number; snapshot: Promise<TransportSnapshot[]> } | undefined;
  // One round of getStats() per scrape, shared by the metrics below (a scrape collects them within milliseconds).
  const snapshot = (): Promise<TransportSnapshot[]> => {
    const now = Date.now();
    if (cached && now - cached.at < 1000) return cached.snapshot;
    const known = new Set(['webtransport', 'websocket', 'http', 'memory']);
    const reads: Promise<TransportSnapshot | undefined>[] = [];
    for (const s of server.sessions.values()) {
      const p = s.transportStats();
      const transport = s.transport && known.has(s.transport) ? s.transport : 'unknown';
      if (p)
        reads.push(
          p.then(
            (stats) => ({ transport, stats }),
            () => undefined,
          ),
        );
    }
    const all = Promise.all(reads).then((r) => r.filter((x): x is TransportSnapshot => x !== undefined));
    cached = { at: now, snapshot: all };
    return all;
  };
  const sumGauge = (name: string, help: string, read: (s: TransportStats) => number | undefined) =>
    new Gauge({
      name,
      help,
      labelNames: ['transport'],
      registers: [registry],
      async collect() {
        this.reset();
        // The plugin's transports always have a series (0 without sessions), as quiver_sessions_active does.
        const sums = new Map<string, number>([
          ['webtransport', 0],
          ['websocket', 0],
          ['http', 0],
        ]);
        for (const { transport, stats } of await snapshot()) {
          const v = read(stats);
          if (v !== undefined) sums.set(transport, (sums.get(transport) ?? 0) + v);
        }
        for (const [transport, v] of sums) this.set({ transport }, v);
      },
    });
  sumGauge(
    'quiver_transport_packets_sent',
    'Packets (QUIC) or frames sent by the transports of the live sessions',
    (s) => s.packetsSent,
  );
  sumGauge(
    'quiver_transport_packets_lost',
    'Packets the transports of the live sessions detected as lost (QUIC loss detection; 0 for TCP-based ones)',
    (s) => s.packetsLost,
  );
  sumGauge(
    'quiver_transport_packets_retransmitted',
    'Packets retransmitted by the transports of the live sessions (QUIC only)',
    (s) => s.packetsRetransmitted,
  );
  const perSession = (
    name: string,
    help: string,
    buckets: number[],
    read: (s: TransportStats) => number | undefined,
  ) =>
    new Histogram({
      name,
      help,
      labelNames: ['transport'],
      buckets,
      registers: [registry],
      async collect() {
        this.reset();
        for (const { transport, stats } of await snapshot()) {
          const v = read(stats);
          if (v !== undefined && v > 0) this.observe({ transport }, v);
        }
      },
    });
  const kib = [16, 32, 64, 128, 256, 512, 1024, 4096].map((k) => k * 1024);
  perSession(
    'quiver_transport_congestion_window_bytes',
    "Congestion window of each live session's QUIC connection at the scrape",
    kib,
    (s) => s.congestionWindow,
  );
  perSession(
    'quiver_transport_delivery_rate_bytes_per_second',
    "Delivery rate estimate (what pacing follows) of each live session's QUIC connection at the scrape",
    [8, 32, 128, 512, 2048, 8192].map((k) => k * 1024),
    (s) => s.deliveryRate,
  );
  new Gauge({
    name: 'quiver_transport_datagrams_dropped',
    help: 'Datagrams the transports of the live sessions dropped before the wire or the application, by direction and reason',
    labelNames: ['transport', 'direction', 'reason'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const { transport, stats } of await snapshot()) {
        for (const [direction, table] of [
          ['outgoing', stats.datagrams.droppedOutgoing],
          ['incoming', stats.datagrams.droppedIncoming],
        ] as const) {
          for (const [reason, n] of Object.entries(table)) {
            if (n) this.inc({ transport, direction, reason }, n);
          }
        }
      }
    },
  });
}
