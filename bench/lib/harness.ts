/**
 * The bench harness contract. A suite is a module `bench/suites/<name>.ts` whose default export is a
 * {@link BenchSuite}. `npm run bench -- <suite> [--quick] [--key value ...]` runs it and writes
 * `bench/results/<suite>.json` (machine-readable), `<suite>.md` (a table) and `<suite>-*.svg` (plots).
 *
 * Headline figures are ratios measured within one run (never absolute times compared across runs): each
 * suite reports them in `ratios` and declares its goals in `goals`.
 */
import os from 'node:os';
import type { ChartSpec } from './svg.js';
import type { Summary } from './stats.js';

export type { ChartSpec, Series } from './svg.js';
export { renderChart } from './svg.js';
export type { Summary } from './stats.js';
export { percentile, summarize } from './stats.js';

export interface BenchContext {
  /** `--quick`: fewer samples and settings, for CI (must finish in a few minutes). */
  quick: boolean;
  /** Every `--key value` / `--flag` after the suite name. */
  args: Readonly<Record<string, string | boolean>>;
  /** One line of progress on stderr (stdout stays clean for the table). */
  progress(message: string): void;
  /** Seed for anything random; `--seed N`, default 1. */
  seed: number;
  env: EnvironmentInfo;
}

export interface EnvironmentInfo {
  node: string;
  platform: string;
  cpu: string;
  cores: number;
  memoryGiB: number;
  date: string;
  root: boolean;
}

/** One measured configuration: distribution figures plus any extra columns. */
export interface ResultRow extends Partial<Summary> {
  /** e.g. the transport or encoder. */
  name: string;
  /** e.g. link or scenario: rows sharing a group are compared in the table. */
  group?: string;
  /** Unit of the distribution figures (ms, MB/s, ...). */
  unit: string;
  /** Link parameters or other settings of this row. */
  params?: Record<string, string | number | boolean>;
  /** Extra scalar columns (e.g. rtt_units, drops). */
  extra?: Record<string, number | string>;
}

export interface Goal {
  op: '<=' | '>=' | '<' | '>';
  value: number;
  /** What the goal is, where it comes from. */
  note?: string;
}

export interface SuiteResult {
  /** Link emulation or loopback, and any parameters common to the run. */
  link?: Record<string, unknown>;
  rows: ResultRow[];
  ratios: Record<string, number>;
  goals?: Record<string, Goal>;
  charts?: (ChartSpec & { file: string })[];
  /** Free-form remarks printed under the table (method, caveats). */
  notes?: string[];
}

export interface BenchSuite {
  name: string;
  description: string;
  run(ctx: BenchContext): Promise<SuiteResult>;
}

export function environment(): EnvironmentInfo {
  const cpus = os.cpus();
  return {
    node: process.version,
    platform: `${process.platform} ${os.release()} ${process.arch}`,
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    date: new Date().toISOString(),
    root: typeof process.getuid === 'function' && process.getuid() === 0,
  };
}

export function goalMet(value: number, goal: Goal): boolean {
  // Not measured (NaN, stored as null in the JSON, where `null <= 3000` would hold): not met.
  if (typeof value !== 'number' || Number.isNaN(value)) return false;
  switch (goal.op) {
    case '<=':
      return value <= goal.value;
    case '>=':
      return value >= goal.value;
    case '<':
      return value < goal.value;
    case '>':
      return value > goal.value;
  }
}

/** Suites that measure over wall-clock time can use this to get a monotonic millisecond clock. */
export function nowMs(): number {
  return performance.now();
}
