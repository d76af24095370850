import { css, html, LitElement } from 'lit';
import { type DemoClient, DemoClient as Client, type DemoSettings, type TransportMode } from './net.js';
import { describeAttempts } from './overlay.js';
import type { DemoScene } from './scene.js';
import './controls.js';
import './overlay.js';
import './scene.js';

/** Initial settings from the query string (`transport`: auto, webtransport, websocket or http): `?transport=websocket&prediction=0&interpolation=0&latency=100&loss=5&worker=0`. */
export function settingsFromQuery(search: string): Partial<DemoSettings> {
  const q = new URLSearchParams(search);
  const out: Partial<DemoSettings> = {};
  const t = q.get('transport');
  if (t === 'auto' || t === 'webtransport' || t === 'websocket' || t === 'http')
    out.transport = t as TransportMode;
  const flag = (name: string) => (q.has(name) ? q.get(name) !== '0' && q.get(name) !== 'false' : undefined);
  const prediction = flag('prediction');
  if (prediction !== undefined) out.prediction = prediction;
  const interpolation = flag('interpolation');
  if (interpolation !== undefined) out.interpolation = interpolation;
  const latency = Number(q.get('latency'));
  if (q.has('latency') && latency >= 0 && latency <= 1000) out.latencyMs = latency;
  const worker = flag('worker');
  if (worker !== undefined) out.worker = worker;
  const loss = Number(q.get('loss'));
  if (q.has('loss') && loss >= 0 && loss <= 100) out.lossPct = loss;
  return out;
}

/** The page: scene, overlay and toggles around one {@link DemoClient}. */
export class QuiverDemo extends LitElement {
  static override styles = css`
    :host {
      position: fixed;
      inset: 0;
      overflow: hidden;
      background: #10151f;
    }
  `;
  readonly client: DemoClient;

  constructor() {
    super();
    const q = new URLSearchParams(location.search);
    this.client = new Client(settingsFromQuery(location.search), q.get('name') ?? undefined);
    // `?busy=50`: the page's main thread is blocked that many ms in every 100 ms, a stand-in for a heavy scene, to
    // compare the session on the main thread with the session in a Worker (the overlay's toggle).
    const busy = Number(q.get('busy'));
    if (busy > 0 && busy < 100)
      setInterval(() => {
        const t = performance.now();
        while (performance.now() - t < busy) {
          // blocked, as by a long frame
        }
      }, 100);
    this.#exposeDebugHook();
  }

  override connectedCallback(): void {
    super.connectedCallback();
    this.client.start();
    addEventListener('pagehide', this.#leave);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    removeEventListener('pagehide', this.#leave);
    void this.client.stop();
  }

  // Closing for good tells the server at once instead of leaving a session waiting for a resume.
  #leave = () => void this.client.session?.close();

  protected override render() {
    return html`<demo-scene .client=${this.client}></demo-scene>
      <net-overlay .client=${this.client}></net-overlay>
      <demo-controls .client=${this.client}></demo-controls>`;
  }

  /** `window.__quiverDemo`: what the browser test (and a curious developer) reads. */
  #exposeDebugHook(): void {
    const c = this.client;
    const overlayText = (k: string) =>
      this.renderRoot
        .querySelector('net-overlay')
        ?.shadowRoot?.querySelector(`[data-k="${k}"]`)
        ?.textContent?.trim() ?? null;
    (globalThis as Record<string, unknown>).__quiverDemo = {
      client: c,
      /** Resolves once the session's figures (counters, RTT) are fresh: a round trip to the Worker when it runs there. */
      fresh: () => c.session?.drained(Number.POSITIVE_INFINITY),
      get transport() {
        return c.session?.connected ? c.session.transport : null;
      },
      get status() {
        return c.status;
      },
      get attempts() {
        return c.attempts.map((a) => ({ ...a }));
      },
      get why() {
        return describeAttempts(c);
      },
      get welcome() {
        return c.welcome ? { ...c.welcome } : null;
      },
      get settings() {
        return { ...c.settings };
      },
      get figures() {
        return { ...c.figures };
      },
      get counters() {
        return { ...c.counters };
      },
      get bytes() {
        return c.bytes;
      },
      get serverSessions() {
        return { ...c.serverSessions };
      },
      get framesRendered() {
        return (this as unknown as { scene: DemoScene | null }).scene?.framesRendered ?? 0;
      },
      scene: null as DemoScene | null,
      /** The replicated state as the page holds it: one row per entity. */
      entities: () =>
        [...c.latest].map(([id, v]) => ({
          id,
          kind: v.shape?.kind,
          bot: v.avatar?.bot ?? false,
          name: v.avatar?.name ?? '',
          x: v.body?.pos.x ?? 0,
          y: v.body?.pos.y ?? 0,
          z: v.body?.pos.z ?? 0,
        })),
      overlay: overlayText,
      update: (patch: Partial<DemoSettings>) => c.update(patch),
      setBots: (n: number) => c.setBots(n),
      scrapeServer: () => c.scrapeServer(),
    };
  }

  protected override firstUpdated(): void {
    const hook = (globalThis as Record<string, unknown>).__quiverDemo as { scene: DemoScene | null };
    hook.scene = this.renderRoot.querySelector('demo-scene');
  }
}
customElements.define('quiver-demo', QuiverDemo);
