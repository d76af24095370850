/**
 * Fuzz CLI: `npm run fuzz -w packages/webtransport -- --target <name|all> --iterations N --seed S`
 * (or `npx tsx --conditions=quiver-source packages/webtransport/fuzz/run.ts ...`).
 *
 * Prints progress and a summary per target (inputs, time, inputs/s, findings). Each distinct finding's input is
 * written as hex with its error to `packages/webtransport/.fuzz/` (git-ignored). Exits 1 when anything was found.
 * After each target the run is recorded (seed, inputs, duration, findings, commit) in `fuzz/results.json` and
 * `fuzz/RESULTS.md` (tracked: the evidence the README cites); `--record <file.json>` elsewhere, `--no-record` not.
 * `--replay <file.hex>` runs one saved input in-process and prints what it does.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { findingId, fuzzTarget, runOne } from './engine.js';
import { type RunRecord, recordRun, renderRecords, runContext } from './record.js';
import { getTarget, TARGETS } from './targets.js';

const { values } = parseArgs({
  options: {
    target: { type: 'string', default: 'all' },
    iterations: { type: 'string', default: '100000' },
    seed: { type: 'string', default: '1' },
    'hang-ms': { type: 'string', default: '5000' },
    'slow-ms': { type: 'string', default: '1000' },
    out: { type: 'string' },
    record: { type: 'string', default: fileURLToPath(new URL('./results.json', import.meta.url)) },
    'no-record': { type: 'boolean', default: false },
    render: { type: 'boolean', default: false },
    replay: { type: 'string' },
    list: { type: 'boolean', default: false },
    quiet: { type: 'boolean', default: false },
  },
});

if (values.list) {
  for (const t of TARGETS) console.log(`${t.name.padEnd(20)} ${t.description}`);
  process.exit(0);
}

if (values.render) {
  // Only re-renders RESULTS.md from the records.
  renderRecords(values.record!);
  process.exit(0);
}

if (values.replay) {
  const target = getTarget(values.target === 'all' ? '' : values.target!);
  const hex = readFileSync(values.replay, 'utf8').replace(/[^0-9a-f]/gi, '');
  const input = new Uint8Array(Buffer.from(hex, 'hex'));
  const t0 = performance.now();
  const failure = runOne(target, input);
  const dt = performance.now() - t0;
  console.log(failure ? `FINDING (${dt.toFixed(1)} ms)\n  ${failure.error}` : `ok (${dt.toFixed(1)} ms)`);
  process.exit(failure ? 1 : 0);
}

const iterations = Number(values.iterations);
const seed = Number(values.seed);
if (!Number.isSafeInteger(iterations) || iterations < 1)
  throw new Error('--iterations must be a positive integer');
if (!Number.isSafeInteger(seed)) throw new Error('--seed must be an integer');
const outDir = values.out ?? fileURLToPath(new URL('../.fuzz/', import.meta.url));
const targets = values.target === 'all' ? TARGETS : values.target!.split(',').map(getTarget);

let totalFindings = 0;
const rows: string[] = [];
const context = runContext();
for (const target of targets) {
  let lastPrint = 0;
  const startedAt = new Date().toISOString();
  const started = performance.now();
  const result = await fuzzTarget(target, {
    iterations,
    seed,
    hangMs: Number(values['hang-ms']),
    slowMs: Number(values['slow-ms']),
    onProgress: (done, findings) => {
      const now = performance.now();
      if (values.quiet || now - lastPrint < 2000) return;
      lastPrint = now;
      const rate = Math.round(done / ((now - started) / 1000));
      process.stderr.write(
        `  ${target.name}: ${done}/${iterations} inputs, ${rate} inputs/s, ${findings} findings\n`,
      );
    },
  });
  const seconds = result.elapsedMs / 1000;
  const rate = Math.round(result.inputs / seconds);
  rows.push(
    `${target.name.padEnd(20)} ${String(result.inputs).padStart(10)} inputs ${seconds.toFixed(1).padStart(8)} s ${String(rate).padStart(8)} inputs/s ${String(result.findings.length).padStart(4)} findings`,
  );
  if (result.findings.length > 0) {
    mkdirSync(outDir, { recursive: true });
    for (const f of result.findings) {
      const base = `${outDir}${f.target}-${f.kind}-${findingId(f)}`;
      const hex = Buffer.from(f.input).toString('hex');
      writeFileSync(`${base}.hex`, `${hex}\n`);
      writeFileSync(
        `${base}.txt`,
        `target ${f.target}, ${f.kind}, input ${f.iteration} of seed ${seed}, seen ${result.counts.get(f.signature)} times\n` +
          `replay: npm run fuzz -w packages/webtransport -- --target ${f.target} --replay ${base}.hex\n${f.error}\ninput: ${hex}\n`,
      );
      console.log(
        `FINDING ${f.target} ${f.kind} x${result.counts.get(f.signature)} -> ${base}.hex\n  ${f.error}\n  input: ${hex.slice(0, 200)}`,
      );
    }
  }
  totalFindings += result.findings.length;
  if (!values['no-record']) {
    const record: RunRecord = {
      ...context,
      started: startedAt,
      target: target.name,
      seed,
      iterations,
      inputs: result.inputs,
      durationS: Math.round(seconds * 10) / 10,
      inputsPerS: rate,
      findings: result.findings.map((f) => ({
        kind: f.kind,
        iteration: f.iteration,
        count: result.counts.get(f.signature) ?? 1,
        error: f.error.split('\n')[0],
      })),
    };
    // Per target, so that a run stopped part way still leaves what it did.
    recordRun(values.record!, record);
  }
}
console.log(`\nfuzz summary (seed ${seed}):\n${rows.join('\n')}`);
process.exit(totalFindings > 0 ? 1 : 0);
