/**
 * The quiche engine: Cloudflare quiche 0.18 through the N-API binding of `@matrixai/quic`, with UDP I/O on
 * `node:dgram` ({@link QuicEndpoint}) and stream queues, reads and timers in JavaScript ({@link QuicConnection}).
 */
import { randomBytes } from 'node:crypto';
import { buildQuicheConfig } from './config.js';
import { QuicEndpoint } from './endpoint.js';
import type { EngineClientOptions, EngineServerOptions, QuicEngine } from './engine.js';
import { migrateOnPathLoss } from './migration.js';
import { QuicConnection } from './quic-connection.js';
import { quiche, SCID_LEN } from './quiche.js';

export const quicheEngine: QuicEngine = {
  name: 'quiche',

  async listen(o: EngineServerOptions) {
    const config = buildQuicheConfig({ cert: o.cert, key: o.key, verifyPeer: false }, o.transport);
    const endpoint = await QuicEndpoint.bind({
      host: o.host,
      port: o.port,
      socketBufferBytes: o.socketBufferBytes,
      maxPacketBytes: o.transport.maxUdpPayloadSize,
    });
    endpoint.onAccept = (_packet, parsed, from) => {
      const scid = randomBytes(SCID_LEN);
      let qc: ReturnType<typeof quiche.Connection.accept>;
      try {
        qc = quiche.Connection.accept(scid, null, endpoint.local, from, config);
      } catch {
        return undefined;
      }
      const quic = new QuicConnection(qc, endpoint, from, o.streamHighWaterMark);
      quic.tailHoldMs = o.streamTailHoldMs;
      if (!o.accept(quic)) return undefined;
      // RFC 9000 §7.2: the client keeps using its chosen DCID until it sees ours.
      endpoint.route(scid.toString('latin1'), quic);
      endpoint.route(parsed.key, quic);
      return quic;
    };
    return {
      address: endpoint.local,
      get counters() {
        return { ...endpoint.counters };
      },
      close: () => {
        endpoint.onAccept = undefined;
        return endpoint.close();
      },
    };
  },

  async connect(o: EngineClientOptions) {
    const config = buildQuicheConfig({ ca: o.ca, verifyPeer: o.verifyPeer }, o.transport);
    const v6 = o.remote.host.includes(':');
    const endpoint = await QuicEndpoint.bind({
      host: v6 ? '::' : '0.0.0.0',
      port: 0,
      socketBufferBytes: o.socketBufferBytes,
      connectTo: o.remote,
      maxPacketBytes: o.transport.maxUdpPayloadSize,
    });
    const scid = randomBytes(SCID_LEN);
    let qc: ReturnType<typeof quiche.Connection.connect>;
    try {
      qc = quiche.Connection.connect(o.serverName, scid, endpoint.local, o.remote, config);
    } catch (e) {
      await endpoint.close();
      throw e;
    }
    const quic = new QuicConnection(qc, endpoint, o.remote, o.streamHighWaterMark);
    quic.tailHoldMs = o.streamTailHoldMs;
    endpoint.route(scid.toString('latin1'), quic);
    migrateOnPathLoss(endpoint, quic);
    // The first flight leaves once the caller has set the handler (this turn).
    quic.schedule();
    return {
      conn: quic,
      release: async () => {
        if (endpoint.connections.size === 0) await endpoint.close();
      },
    };
  },
};
