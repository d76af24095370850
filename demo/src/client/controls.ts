import { css, html, LitElement } from 'lit';
import { MAX_BOTS } from '../shared/protocol.js';
import type { DemoClient, TransportMode } from './net.js';

/** The toggles: transport (reconnects), prediction, interpolation, emulated latency and loss, bots on the server. */
export class DemoControls extends LitElement {
  static override properties = { client: { attribute: false } };
  static override styles = css`
    :host {
      position: absolute;
      top: 12px;
      right: 12px;
      width: 250px;
      padding: 10px 12px;
      border-radius: 10px;
      background: rgba(12, 16, 26, 0.86);
      color: #e6ecf5;
      font: 12px/1.4 system-ui, sans-serif;
      box-shadow: 0 4px 20px rgba(0, 0, 0, 0.35);
    }
    h2 {
      margin: 0 0 8px;
      font: 600 13px system-ui, sans-serif;
    }
    label {
      display: grid;
      grid-template-columns: 100px 1fr 46px;
      align-items: center;
      gap: 6px;
      margin: 5px 0;
    }
    label.check {
      grid-template-columns: 100px 1fr;
    }
    output {
      text-align: right;
      font-family: ui-monospace, Menlo, Consolas, monospace;
    }
    select,
    input[type='number'] {
      background: #1d2433;
      color: inherit;
      border: 1px solid #3a4560;
      border-radius: 5px;
      padding: 2px 4px;
      font: inherit;
    }
    input[type='range'] {
      width: 100%;
      accent-color: #5ec8ff;
    }
    input[type='checkbox'] {
      accent-color: #5ec8ff;
      justify-self: start;
    }
  `;
  declare client: DemoClient;
  #onChange = () => this.requestUpdate();

  override connectedCallback(): void {
    super.connectedCallback();
    this.client?.addEventListener('change', this.#onChange);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.client?.removeEventListener('change', this.#onChange);
  }

  protected override render() {
    const c = this.client;
    const s = c.settings;
    const num = (e: Event) => Number((e.target as HTMLInputElement).value);
    return html`
      <h2>Toggles</h2>
      <label
        >Transport
        <select
          id="transport"
          .value=${s.transport}
          @change=${(e: Event) => c.update({ transport: (e.target as HTMLSelectElement).value as TransportMode })}
        >
          <option value="auto">auto (fallback)</option>
          <option value="webtransport">WebTransport</option>
          <option value="websocket">WebSocket</option>
          <option value="http">HTTP</option>
        </select></label
      >
      <label class="check"
        >Session in a Worker
        <input
          id="worker"
          type="checkbox"
          .checked=${s.worker}
          @change=${(e: Event) => c.update({ worker: (e.target as HTMLInputElement).checked })}
      /></label>
      <label class="check"
        >Prediction
        <input
          id="prediction"
          type="checkbox"
          .checked=${s.prediction}
          @change=${(e: Event) => c.update({ prediction: (e.target as HTMLInputElement).checked })}
      /></label>
      <label class="check"
        >Interpolation
        <input
          id="interpolation"
          type="checkbox"
          .checked=${s.interpolation}
          @change=${(e: Event) => c.update({ interpolation: (e.target as HTMLInputElement).checked })}
      /></label>
      <label
        >Latency
        <input
          id="latency"
          type="range"
          min="0"
          max="300"
          step="10"
          .value=${String(s.latencyMs)}
          @input=${(e: Event) => c.update({ latencyMs: num(e) })}
        /><output>${s.latencyMs} ms</output></label
      >
      <label
        >Loss
        <input
          id="loss"
          type="range"
          min="0"
          max="30"
          step="1"
          .value=${String(s.lossPct)}
          @input=${(e: Event) => c.update({ lossPct: num(e) })}
        /><output>${s.lossPct} %</output></label
      >
      <label
        >Bots (server)
        <input
          id="bots"
          type="range"
          min="0"
          max=${MAX_BOTS}
          step="1"
          .value=${String(c.bots)}
          @change=${(e: Event) => c.setBots(num(e))}
        /><output>${c.bots}</output></label
      >
    `;
  }
}
customElements.define('demo-controls', DemoControls);
