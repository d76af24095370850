import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BenchSuite, type EnvironmentInfo, goalMet, type SuiteResult } from './harness.js';
import { renderChart } from './svg.js';

export const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'results');

export interface StoredResult extends SuiteResult {
  suite: string;
  description: string;
  quick: boolean;
  args: Record<string, string | boolean>;
  env: EnvironmentInfo;
  durationMs: number;
}

function num(v: unknown): string {
  if (typeof v !== 'number') return v === undefined ? '' : String(v);
  if (!Number.isFinite(v)) return '–';
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1000) return v.toFixed(0);
  if (a >= 100) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  return v.toPrecision(3);
}

export function markdownFor(r: StoredResult): string {
  const lines: string[] = [];
  lines.push(`## ${r.suite}${r.quick ? ' (quick)' : ''}`, '', r.description, '');
  lines.push(
    `Node ${r.env.node}, ${r.env.cpu} × ${r.env.cores}, ${r.env.memoryGiB} GiB, ${r.env.date}, ${(r.durationMs / 1000).toFixed(1)} s.`,
  );
  if (r.link) lines.push('', `Link: \`${JSON.stringify(r.link)}\``);
  const ratioNames = Object.keys(r.ratios);
  if (ratioNames.length) {
    lines.push('', '| headline ratio | value | goal | met |', '| --- | ---: | --- | --- |');
    for (const k of ratioNames) {
      const g = r.goals?.[k];
      const met = g ? (goalMet(r.ratios[k], g) ? 'yes' : 'no') : '';
      lines.push(
        `| \`${k}\` | ${num(r.ratios[k])} | ${g ? `${g.op} ${g.value}${g.note ? ` (${g.note})` : ''}` : ''} | ${met} |`,
      );
    }
  }
  const extraCols = [...new Set(r.rows.flatMap((row) => Object.keys(row.extra ?? {})))];
  const hasDist = r.rows.some((row) => row.p50 !== undefined);
  lines.push('');
  const head = ['group', 'name', 'unit', ...(hasDist ? ['n', 'p50', 'p90', 'p99', 'max'] : []), ...extraCols];
  lines.push(`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`);
  for (const row of r.rows) {
    const cells = [
      row.group ?? '',
      row.name,
      row.unit,
      ...(hasDist ? [num(row.samples), num(row.p50), num(row.p90), num(row.p99), num(row.max)] : []),
      ...extraCols.map((c) => num(row.extra?.[c])),
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  for (const c of r.charts ?? []) lines.push('', `![${c.title}](${c.file})`);
  if (r.notes?.length) lines.push('', ...r.notes.map((n) => `- ${n}`));
  lines.push('');
  return lines.join('\n');
}

export function writeResult(
  suite: BenchSuite,
  result: SuiteResult,
  meta: Omit<StoredResult, keyof SuiteResult | 'suite' | 'description'>,
): { json: string; md: string; svgs: string[] } {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const charts = (result.charts ?? []).map((c) => ({
    ...c,
    file: `${suite.name}-${c.file.replace(/\.svg$/, '')}.svg`,
  }));
  const stored: StoredResult = {
    suite: suite.name,
    description: suite.description,
    ...meta,
    ...result,
    charts,
  };
  const json = join(RESULTS_DIR, `${suite.name}.json`);
  writeFileSync(json, `${JSON.stringify(stored, null, 2)}\n`);
  const svgs: string[] = [];
  for (const c of charts) {
    const file = join(RESULTS_DIR, c.file);
    writeFileSync(file, renderChart(c));
    svgs.push(file);
  }
  const md = join(RESULTS_DIR, `${suite.name}.md`);
  writeFileSync(md, markdownFor(stored));
  return { json, md, svgs };
}
