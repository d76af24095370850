import { css, html, LitElement, type PropertyValues } from 'lit';

/** A small canvas line chart of the last values (newest on the right), scaled to its own maximum. */
export class SparkLine extends LitElement {
  static override properties = {
    values: { attribute: false },
    color: { type: String },
    min: { type: Number },
  };
  static override styles = css`
    :host {
      display: inline-block;
      width: 96px;
      height: 22px;
    }
    canvas {
      width: 100%;
      height: 100%;
      display: block;
    }
  `;
  // Reactive properties are declared, not defined as class fields: a field would shadow Lit's accessor and
  // changes would not re-render.
  declare values: number[];
  declare color: string;
  /** Smallest top of the scale, so that noise around zero does not fill the chart. */
  declare min: number;

  constructor() {
    super();
    this.values = [];
    this.color = '#7cf';
    this.min = 1;
  }

  protected override render() {
    return html`<canvas></canvas>`;
  }

  protected override updated(_changed: PropertyValues): void {
    const canvas = this.renderRoot.querySelector('canvas');
    if (!canvas) return;
    const dpr = Math.min(2, globalThis.devicePixelRatio || 1);
    const w = Math.max(1, Math.round(canvas.clientWidth * dpr));
    const h = Math.max(1, Math.round(canvas.clientHeight * dpr));
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    const g = canvas.getContext('2d');
    if (!g) return;
    g.clearRect(0, 0, w, h);
    const v = this.values;
    if (v.length < 2) return;
    const top = Math.max(this.min, ...v) * 1.1;
    const step = w / (120 - 1);
    const x0 = w - (v.length - 1) * step;
    const y = (n: number) => h - 1 - (Math.max(0, n) / top) * (h - 2);
    g.beginPath();
    g.moveTo(x0, h);
    for (let i = 0; i < v.length; i++) g.lineTo(x0 + i * step, y(v[i]));
    g.lineTo(w, h);
    g.closePath();
    g.fillStyle = `${this.color}33`;
    g.fill();
    g.beginPath();
    g.moveTo(x0, y(v[0]));
    for (let i = 1; i < v.length; i++) g.lineTo(x0 + i * step, y(v[i]));
    g.strokeStyle = this.color;
    g.lineWidth = dpr;
    g.stroke();
  }
}
customElements.define('spark-line', SparkLine);
