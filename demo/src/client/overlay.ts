import { css, html, LitElement } from 'lit';
import { type DemoClient, HISTORY, type NetFigures } from './net.js';
import './sparkline.js';

const fmt = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : '–');

interface Row {
  key: keyof NetFigures;
  label: string;
  value: (f: NetFigures) => string;
  color: string;
  min: number;
  scale?: number;
}

const ROWS: Row[] = [
  { key: 'rttMs', label: 'RTT', value: (f) => `${fmt(f.rttMs)} ms`, color: '#5ec8ff', min: 5 },
  { key: 'jitterMs', label: 'Jitter', value: (f) => `${fmt(f.jitterMs)} ms`, color: '#9d8cff', min: 2 },
  { key: 'loss', label: 'Loss', value: (f) => `${fmt(f.loss * 100)} %`, color: '#ff6b8b', min: 0.05 },
  { key: 'kbpsIn', label: 'In', value: (f) => `${fmt(f.kbpsIn)} kbit/s`, color: '#4fe0a8', min: 10 },
  { key: 'kbpsOut', label: 'Out', value: (f) => `${fmt(f.kbpsOut)} kbit/s`, color: '#ffc857', min: 10 },
  {
    key: 'correctionsPerSec',
    label: 'Corrections',
    value: (f) => `${fmt(f.correctionsPerSec, 0)} /s`,
    color: '#ff9f43',
    min: 2,
  },
  {
    key: 'interpDelayMs',
    label: 'Interp. delay',
    value: (f) => `${fmt(f.interpDelayMs, 0)} ms`,
    color: '#c3f584',
    min: 50,
  },
];

/** Why the session runs on the transport it does: the fallback's attempts, in order. */
export function describeAttempts(client: DemoClient): string {
  if (client.attempts.length === 0) return client.status === 'connecting' ? 'connecting…' : client.error;
  return client.attempts
    .map(
      (a) =>
        `${a.name} ${a.outcome}${a.outcome === 'skipped' ? '' : ` ${Math.round(a.ms)} ms`}${a.error ? ` (${a.error})` : ''}`,
    )
    .join(' · ');
}

/** The network overlay: what carries the session, why, and how it is doing, with 30 s sparklines. */
export class NetOverlay extends LitElement {
  static override properties = { client: { attribute: false } };
  static override styles = css`
    :host {
      position: absolute;
      top: 12px;
      left: 12px;
      width: 360px;
      padding: 10px 12px;
      border-radius: 10px;
      background: rgba(12, 16, 26, 0.86);
      color: #e6ecf5;
      font: 12px/1.35 ui-monospace, 'SFMono-Regular', Menlo, Consolas, monospace;
      box-shadow: 0 4px 20px rgba(0, 0, 0, 0.35);
      pointer-events: none;
    }
    h2 {
      margin: 0 0 6px;
      font: 600 13px system-ui, sans-serif;
      letter-spacing: 0.02em;
    }
    .transport {
      font-weight: 700;
      text-transform: uppercase;
    }
    .transport.webtransport {
      color: #4fe0a8;
    }
    .transport.websocket {
      color: #ffc857;
    }
    .why {
      color: #9aa7bd;
      font-size: 11px;
      margin-bottom: 6px;
      word-break: break-word;
    }
    .row {
      display: grid;
      grid-template-columns: 100px 1fr 96px;
      align-items: center;
      gap: 6px;
      height: 24px;
    }
    .label {
      color: #9aa7bd;
    }
    .value {
      text-align: right;
      padding-right: 6px;
    }
    .foot {
      margin-top: 6px;
      color: #9aa7bd;
      font-size: 11px;
    }
    .foot b {
      color: #e6ecf5;
      font-weight: 600;
    }
    .status-open {
      color: #4fe0a8;
    }
    .status-connecting,
    .status-reconnecting {
      color: #ffc857;
    }
    .status-error,
    .status-closed {
      color: #ff6b8b;
    }
  `;
  declare client: DemoClient;
  #off: (() => void)[] = [];

  override connectedCallback(): void {
    super.connectedCallback();
    const up = () => this.requestUpdate();
    for (const ev of ['sample', 'change', 'server']) {
      this.client.addEventListener(ev, up);
      this.#off.push(() => this.client.removeEventListener(ev, up));
    }
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    for (const off of this.#off) off();
    this.#off = [];
  }

  protected override render() {
    const c = this.client;
    const f = c.figures;
    const transport = c.session?.transport ?? '';
    const server = c.serverSessions;
    const entities = [...c.latest.values()];
    const bots = entities.filter((e) => e.avatar?.bot).length;
    const players = entities.filter((e) => e.avatar && !e.avatar.bot).length;
    return html`
      <h2>
        Quiver · <span class="transport ${transport}" data-k="transport">${transport || '—'}</span>
        <span class="status-${c.status}" data-k="status">${c.status}</span>
      </h2>
      <div class="why" data-k="why">${c.settings.transport === 'auto' ? 'auto: ' : `forced ${c.settings.transport}: `}${describeAttempts(c)}</div>
      ${ROWS.map(
        (r) => html`<div class="row">
          <span class="label">${r.label}</span>
          <span class="value" data-k=${r.key}>${r.value(f)}</span>
          <spark-line .values=${[...c.history[r.key]].slice(-HISTORY).map((v) => (r.key === 'loss' ? v * 100 : v))} color=${r.color} min=${r.key === 'loss' ? 5 : r.min}></spark-line>
        </div>`,
      )}
      <div class="foot">
        room <b data-k="room">${c.roomId || '—'}</b> · clients <b data-k="room-clients">${c.roomClients}</b>
      </div>
      <div class="foot">
        tick <b data-k="tick">${c.sync.tick}</b> · entities <b data-k="entities">${entities.length}</b> · bots
        <b data-k="bots">${bots}</b> · players <b>${players}</b>
      </div>
      <div class="foot">
        page: ${fmt(f.fps, 0)} fps · main thread busy up to <b data-k="stall">${fmt(f.stallMs, 0)} ms</b> at a time
      </div>
      <div class="foot">
        session on <b data-k="session-thread">${c.settings.worker ? 'a Worker' : 'the main thread'}</b> ·
        ${
          c.settings.worker
            ? html`messages waited up to <b data-k="wait">${fmt(f.waitMs, 0)} ms</b> for the main thread (not in the RTT)`
            : html`messages wait for the main thread too (inside the RTT)`
        }
      </div>
      <div class="foot">
        emulated: +${c.settings.latencyMs} ms, ${c.settings.lossPct} % loss (dropped ${c.shaperStats.droppedIn} in /
        ${c.shaperStats.droppedOut} out) · prediction ${c.settings.prediction ? 'on' : 'off'} · interpolation
        ${c.settings.interpolation ? 'on' : 'off'}
      </div>
      <div class="foot" data-k="server">
        server /metrics: sessions webtransport <b data-k="server-webtransport">${server.webtransport ?? '–'}</b> ·
        websocket <b data-k="server-websocket">${server.websocket ?? '–'}</b>
      </div>
    `;
  }
}
customElements.define('net-overlay', NetOverlay);
