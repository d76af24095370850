/**
 * Join storm and abrupt disconnects on loopback: N clients join within a few seconds (WebTransport sessions, then
 * our WebSocket transport's), the server's RSS and CPU are sampled throughout, then the client process is killed
 * (no CLOSE_WEBTRANSPORT_SESSION, no CONNECTION_CLOSE, no WebSocket close frame) and the server must notice and
 * clean every session up: its live-session count has to return to 0. WebTransport notices through the QUIC idle
 * timeout (RFC 9000 §10.1), set short here; WebSocket through the TCP reset the kernel sends for the dead process.
 */
import type { BenchContext, BenchSuite, ResultRow, SuiteResult } from '../lib/harness.js';
import { loopback } from '../lib/network.js';
import { CLIENTS, numArg, startPair } from '../lib/pair.js';
import type { SessionTransport, StormResult } from '../lib/roles/clients.js';
import { distRow, round } from '../lib/suite-util.js';

const LABEL: Partial<Record<SessionTransport, string>> = {
  wt: 'WebTransport (h3)',
  qws: 'Quiver WebSocket transport (TLS)',
};

const suite: BenchSuite = {
  name: 'load',
  description:
    'Join storm (time to ready), server RSS and CPU, then every client killed at once: time until the server has cleaned all sessions up.',
  async run(ctx: BenchContext): Promise<SuiteResult> {
    const clients = numArg(ctx.args, 'clients', ctx.quick ? 100 : 500);
    const spreadS = numArg(ctx.args, 'spread', 5);
    const idleMs = numArg(ctx.args, 'idle', 5000);
    const notes: string[] = [
      `${clients} clients started evenly over ${spreadS} s from one client process, loopback, each sending a 16-byte heartbeat datagram every second once ready; the WebTransport server's QUIC idle timeout is ${idleMs} ms.`,
      'RSS KB per session: server RSS after a full GC with all sessions held, minus before the storm, per live session. drain: from SIGKILL of the client process until the server reports 0 live sessions (and 0 QUIC connections); `left` is what remained at the deadline (must be 0).',
    ];
    const net = loopback();
    const pair = await startPair(net, { idleTimeoutMs: idleMs });
    const rows: ResultRow[] = [];
    const ratios: Record<string, number> = {};
    const rssChart: number[] = [];
    try {
      const base = await pair.snapshot();
      for (const kind of ['wt', 'qws'] as SessionTransport[]) {
        const agent = await net.agent('client');
        const start = await pair.snapshot(true);
        let peakRss = start.rssBytes;
        let sampling = true;
        const sampler = (async () => {
          while (sampling) {
            const s = await pair.snapshot();
            peakRss = Math.max(peakRss, s.rssBytes);
            await new Promise((r) => setTimeout(r, 250));
          }
        })();
        ctx.progress(`${kind}: join storm of ${clients} in ${spreadS} s`);
        const storm = await agent.call<StormResult>(
          CLIENTS,
          'joinStorm',
          kind,
          pair.target,
          clients,
          spreadS * 1000,
        );
        await new Promise((r) => setTimeout(r, 1000));
        const held = await pair.snapshot(true);
        sampling = false;
        await sampler;
        ctx.progress(
          `${kind}: ${storm.ready}/${clients} ready, ${held.liveSessions} live on the server; killing the clients`,
        );
        const killedAt = performance.now();
        agent.kill();
        let last = held;
        const deadline = killedAt + idleMs + 15_000;
        while (performance.now() < deadline) {
          last = await pair.snapshot();
          if (last.liveSessions === 0 && last.wtConnections === 0 && last.qwsSessions === 0) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        const drainMs = performance.now() - killedAt;
        const left = last.liveSessions + last.wtConnections + last.qwsSessions;
        if (storm.firstError)
          notes.push(`${kind}: ${storm.failed} failed joins, first error: ${storm.firstError}`);
        if (left)
          notes.push(
            `${kind}: ${left} session(s)/connection(s) still open ${round(drainMs / 1000, 1)} s after the kill`,
          );
        const cpuMs = (held.cpuUs - start.cpuUs) / 1000;
        rows.push(
          distRow(
            `${LABEL[kind]} join: time to ready`,
            `${clients} clients / ${spreadS} s`,
            storm.readyMs,
            'ms',
            {
              ready: storm.ready,
              failed: storm.failed,
              live_on_server: held.liveSessions,
              'server CPU ms per join': round(cpuMs / Math.max(1, storm.ready), 2),
              'peak RSS MB': round(peakRss / 2 ** 20, 1),
              'RSS KB per session': round(
                (held.rssBytes - start.rssBytes) / 1024 / Math.max(1, held.liveSessions),
                1,
              ),
              'drain ms': left ? 'timeout' : round(drainMs, 0),
              left,
            },
            { transport: kind, clients, spread_s: spreadS },
          ),
        );
        ratios[`${kind}_sessions_left_after_kill`] = left;
        ratios[`${kind}_join_success`] = round(storm.ready / clients, 4);
        // Every joined session must still be alive on the server before the kill (heartbeats keep them busy).
        ratios[`${kind}_live_over_joined`] = round(held.liveSessions / Math.max(1, storm.ready), 4);
        rssChart.push(round(peakRss / 2 ** 20, 1));
      }
      notes.push(`server RSS before the storms: ${round(base.rssBytes / 2 ** 20, 1)} MB.`);
    } finally {
      await pair.close();
      await net.close();
    }
    return {
      link: { loopback: true, clients, spreadS, idleMs },
      rows,
      ratios,
      goals: {
        wt_sessions_left_after_kill: { op: '<=', value: 0, note: 'all cleaned up' },
        qws_sessions_left_after_kill: { op: '<=', value: 0, note: 'all cleaned up' },
        wt_join_success: { op: '>=', value: 1 },
        wt_live_over_joined: { op: '>=', value: 1, note: 'no session lost while held' },
        qws_live_over_joined: { op: '>=', value: 1, note: 'no session lost while held' },
        qws_join_success: { op: '>=', value: 1 },
      },
      charts: [
        {
          file: 'rss',
          title: `Server peak RSS during a storm of ${clients} joins`,
          categories: ['WebTransport', 'Quiver WebSocket'],
          unit: 'MB',
          series: [{ name: 'peak RSS', values: rssChart }],
        },
      ],
      notes,
    };
  },
};
export default suite;
