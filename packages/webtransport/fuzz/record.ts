/**
 * The fuzz run's evidence: each target's latest long run (seed, inputs, duration, findings, the commit it ran on)
 * kept in a tracked JSON file, with a Markdown table rendered beside it, so a claim such as "10^6 inputs per target,
 * no findings" points at a record rather than at a command someone once ran.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { TARGETS } from './targets.js';

export interface RunContext {
  /** `git rev-parse HEAD`, `-dirty` when .ts files under packages/webtransport/{src,fuzz} had uncommitted changes. */
  commit: string;
  /** ISO time the run started. */
  started: string;
  node: string;
  cpu: string;
}

export interface RunRecord extends RunContext {
  target: string;
  seed: number;
  iterations: number;
  inputs: number;
  durationS: number;
  inputsPerS: number;
  findings: Array<{ kind: string; iteration: number; count: number; error: string }>;
}

export interface RecordFile {
  about: string;
  targets: Record<string, RunRecord>;
}

export function runContext(): RunContext {
  const git = (...args: string[]): string => {
    try {
      return execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return '';
    }
  };
  const head = git('rev-parse', 'HEAD') || 'unknown';
  // Only changes to code (the parsers, the fuzzer) make the commit an inexact description of what ran.
  const dirty = git('status', '--porcelain', '--', 'packages/webtransport/src', 'packages/webtransport/fuzz');
  const changed = dirty.split('\n').filter((l) => /\.ts$/.test(l));
  return {
    commit: changed.length > 0 ? `${head}-dirty` : head,
    started: new Date().toISOString(),
    node: process.version,
    cpu: `${cpus()[0]?.model ?? 'unknown'} × ${cpus().length}`,
  };
}

/** Stores `record` as its target's latest run in `file` (JSON) and re-renders `RESULTS.md` beside it. */
export function recordRun(file: string, record: RunRecord): void {
  const data: RecordFile = existsSync(file)
    ? (JSON.parse(readFileSync(file, 'utf8')) as RecordFile)
    : { about: '', targets: {} };
  data.about =
    'Latest run of each fuzz target, written by `npm run fuzz -w packages/webtransport` (fuzz/run.ts). Inputs of a run are a pure function of (seed, index): `--seed` replays it.';
  data.targets[record.target] = record;
  const order = TARGETS.map((t) => t.name);
  const sorted = Object.fromEntries(
    Object.entries(data.targets).sort(([a], [b]) => order.indexOf(a) - order.indexOf(b)),
  );
  writeFileSync(file, `${JSON.stringify({ ...data, targets: sorted }, null, 2)}\n`);
  writeFileSync(join(dirname(file), 'RESULTS.md'), renderMarkdown(Object.values(sorted)));
}

/** Re-renders `RESULTS.md` beside `file` from the records (after the list of targets changed, for instance). */
export function renderRecords(file: string): void {
  const data = JSON.parse(readFileSync(file, 'utf8')) as RecordFile;
  writeFileSync(join(dirname(file), 'RESULTS.md'), renderMarkdown(Object.values(data.targets)));
}

export function renderMarkdown(records: RunRecord[]): string {
  const out = [
    '# Fuzz results',
    '',
    'Generated from [results.json](results.json) by the fuzz command (`fuzz/run.ts`) after each target it runs: the',
    'latest run of each target. Replay a run with the same `--seed` and `--iterations`; a finding is replayed from',
    'its input index. CI runs short seeded runs of every target (`test/fuzz.test.ts`, seed printed in the log).',
    '',
    '| target | seed | inputs | duration (s) | inputs/s | findings | commit | started | machine |',
    '| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |',
  ];
  for (const r of records) {
    out.push(
      `| \`${r.target}\` | ${r.seed} | ${r.inputs.toLocaleString('en-US')} | ${r.durationS} | ${r.inputsPerS} | ${r.findings.length} | \`${r.commit.slice(0, 12)}${r.commit.endsWith('-dirty') ? '-dirty' : ''}\` | ${r.started} | Node ${r.node}, ${r.cpu} |`,
    );
  }
  const found = records.flatMap((r) => r.findings.map((f) => ({ target: r.target, ...f })));
  const missing = TARGETS.map((t) => t.name).filter((n) => !records.some((r) => r.target === n));
  out.push('');
  if (missing.length > 0)
    out.push(
      `No recorded run yet (only the short CI runs of \`test/fuzz.test.ts\`): ${missing.map((n) => `\`${n}\``).join(', ')}.`,
      '',
    );
  if (found.length === 0) out.push('No findings in these runs.');
  else {
    out.push('## Findings', '');
    for (const f of found)
      out.push(`- \`${f.target}\` ${f.kind} at input ${f.iteration} (×${f.count}): ${f.error}`);
  }
  out.push('');
  return out.join('\n');
}
