/**
 * Minimal dependency-free SVG charts for bench reports: grouped bars and lines. Good enough to look at, small
 * enough to commit next to REPORT.md.
 */
export interface Series {
  name: string;
  values: number[];
}

export interface ChartSpec {
  title: string;
  /** Category labels along the x axis. */
  categories: string[];
  series: Series[];
  unit: string;
  kind?: 'bar' | 'line';
  logY?: boolean;
}

const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmt(v: number): string {
  if (!Number.isFinite(v)) return '–';
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toPrecision(3);
}

export function renderChart(spec: ChartSpec): string {
  const width = Math.max(640, 90 + spec.categories.length * Math.max(60, spec.series.length * 18 + 20));
  const height = 360;
  const left = 70;
  const right = 20;
  const top = 40;
  const bottom = 90;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const all = spec.series.flatMap((s) => s.values).filter((v) => Number.isFinite(v));
  const logY = spec.logY === true && all.every((v) => v > 0);
  const maxV = niceMax(Math.max(0, ...all));
  const minLog = logY ? Math.floor(Math.log10(Math.min(...all))) : 0;
  const maxLog = logY ? Math.ceil(Math.log10(Math.max(...all))) : 0;
  const y = (v: number): number => {
    if (!Number.isFinite(v)) return top + plotH;
    if (logY) return top + plotH - ((Math.log10(v) - minLog) / Math.max(1, maxLog - minLog)) * plotH;
    return top + plotH - (v / maxV) * plotH;
  };
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="11">`,
  );
  out.push(`<title>${esc(spec.title)}</title>`);
  out.push(`<rect width="100%" height="100%" fill="#fff"/>`);
  out.push(
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="600">${esc(spec.title)}</text>`,
  );
  const ticks = logY
    ? Array.from({ length: maxLog - minLog + 1 }, (_, i) => 10 ** (minLog + i))
    : [0, 0.25, 0.5, 0.75, 1].map((f) => f * maxV);
  for (const t of ticks) {
    const ty = y(t);
    out.push(`<line x1="${left}" x2="${width - right}" y1="${ty}" y2="${ty}" stroke="#ddd"/>`);
    out.push(`<text x="${left - 6}" y="${ty + 4}" text-anchor="end" fill="#555">${fmt(t)}</text>`);
  }
  out.push(
    `<text transform="translate(16 ${top + plotH / 2}) rotate(-90)" text-anchor="middle" fill="#333">${esc(spec.unit)}</text>`,
  );
  const groupW = plotW / Math.max(1, spec.categories.length);
  spec.categories.forEach((c, i) => {
    const cx = left + groupW * (i + 0.5);
    out.push(
      `<text transform="translate(${cx} ${top + plotH + 14}) rotate(25)" text-anchor="start" fill="#333">${esc(c)}</text>`,
    );
  });
  if ((spec.kind ?? 'bar') === 'bar') {
    const barW = Math.min(28, (groupW - 10) / Math.max(1, spec.series.length));
    spec.series.forEach((s, si) => {
      s.values.forEach((v, i) => {
        if (!Number.isFinite(v)) return;
        const x = left + groupW * i + (groupW - barW * spec.series.length) / 2 + si * barW;
        const yy = y(v);
        out.push(
          `<rect x="${x.toFixed(1)}" y="${yy.toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(top + plotH - yy).toFixed(1)}" fill="${PALETTE[si % PALETTE.length]}"><title>${esc(`${s.name} ${spec.categories[i]}: ${fmt(v)} ${spec.unit}`)}</title></rect>`,
        );
      });
    });
  } else {
    spec.series.forEach((s, si) => {
      const pts = s.values
        .map((v, i) =>
          Number.isFinite(v) ? `${(left + groupW * (i + 0.5)).toFixed(1)},${y(v).toFixed(1)}` : '',
        )
        .filter(Boolean);
      out.push(
        `<polyline fill="none" stroke="${PALETTE[si % PALETTE.length]}" stroke-width="2" points="${pts.join(' ')}"/>`,
      );
      for (const p of pts) {
        const [px, py] = p.split(',');
        out.push(`<circle cx="${px}" cy="${py}" r="3" fill="${PALETTE[si % PALETTE.length]}"/>`);
      }
    });
  }
  spec.series.forEach((s, si) => {
    const lx = left + 10 + (si % 4) * ((plotW - 20) / 4);
    const ly = height - 22 + Math.floor(si / 4) * 14 - (spec.series.length > 4 ? 10 : 0);
    out.push(`<rect x="${lx}" y="${ly - 9}" width="10" height="10" fill="${PALETTE[si % PALETTE.length]}"/>`);
    out.push(`<text x="${lx + 14}" y="${ly}" fill="#333">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}
