/**
 * `npm run bench -- <suite> [--quick] [--seed N] [--key value ...]`, or `all`.
 * Runs bench/suites/<suite>.ts and writes bench/results/<suite>.{json,md} and its SVG plots.
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { type BenchContext, type BenchSuite, environment, goalMet } from './lib/harness.js';
import { markdownFor, writeResult } from './lib/output.js';

const here = dirname(fileURLToPath(import.meta.url));
const suitesDir = join(here, 'suites');

/** Suite names, and the options suites read (`ctx.args`); an unknown option is an error. */
function parseCommandLine(argv: string[]): { suites: string[]; args: Record<string, string | boolean> } {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      quick: { type: 'boolean' },
      seed: { type: 'string' },
      duration: { type: 'string' },
      rt: { type: 'string' },
      // faults: lifecycle events of the clients on stderr.
      log: { type: 'boolean' },
      // browser-busy: the Worker thread's event-loop gaps; every echo's timestamps as JSON to this file.
      gaps: { type: 'boolean' },
      raw: { type: 'string' },
      // Read by suites through numArg (bench/lib/pair.ts).
      ...Object.fromEntries(
        [
          'clients',
          'count',
          'hz',
          'idle',
          'kill-every',
          'lifetime',
          'resume',
          'rounds',
          'rtt',
          'sample',
          'seconds',
          'sessions',
          'size',
          'spread',
          'warm',
          'wt',
          'engines',
          'engine',
          'backlog',
          'kinds',
          'prof',
          'pin',
          'levels',
          'snapshots',
          'nice',
          // faults: the faults whose names contain one of these words; micro: codecs or tracing.
          'only',
          'batch',
          // cluster
          'agents',
          'agent-nice',
          'per-ip',
          'shout-hz',
          'idle-shout-hz',
          'probe-seconds',
          'ab-check',
        ].map((k) => [k, { type: 'string' as const }]),
      ),
    },
  });
  const args: Record<string, string | boolean> = {};
  for (const [k, v] of Object.entries(values)) if (v !== undefined) args[k] = v;
  return { suites: positionals, args };
}

function available(): string[] {
  return readdirSync(suitesDir)
    .filter((f) => f.endsWith('.ts') && !f.startsWith('_'))
    .map((f) => f.slice(0, -3))
    .sort();
}

async function main(): Promise<void> {
  const { suites, args } = parseCommandLine(process.argv.slice(2));
  const names = suites.length === 0 || suites.includes('all') ? available() : suites;
  if (suites.length === 0) {
    process.stderr.write(
      `usage: npm run bench -- <suite|all> [--quick] [--seed N]\nsuites: ${available().join(', ')}\n`,
    );
    process.exitCode = 2;
    return;
  }
  let failed = 0;
  for (const name of names) {
    if (!available().includes(name)) {
      process.stderr.write(`unknown suite "${name}"; suites: ${available().join(', ')}\n`);
      failed++;
      continue;
    }
    const mod = (await import(pathToFileURL(join(suitesDir, `${name}.ts`)).href)) as { default: BenchSuite };
    const suite = mod.default;
    const started = performance.now();
    const ctx: BenchContext = {
      quick: args.quick === true,
      args,
      seed: typeof args.seed === 'string' ? Number(args.seed) : 1,
      env: environment(),
      progress: (m) =>
        process.stderr.write(`[${suite.name} ${((performance.now() - started) / 1000).toFixed(1)}s] ${m}\n`),
    };
    ctx.progress(`starting${ctx.quick ? ' (quick)' : ''}`);
    try {
      const result = await suite.run(ctx);
      const durationMs = performance.now() - started;
      const files = writeResult(suite, result, { quick: ctx.quick, args, env: ctx.env, durationMs });
      const stored = JSON.parse(
        JSON.stringify({ suite: suite.name, description: suite.description, ...result }),
      );
      process.stdout.write(
        markdownFor({ ...stored, quick: ctx.quick, args, env: ctx.env, durationMs, charts: [] }) + '\n',
      );
      for (const [k, v] of Object.entries(result.ratios)) {
        const g = result.goals?.[k];
        if (g && !goalMet(v, g)) ctx.progress(`goal not met: ${k} = ${v} (goal ${g.op} ${g.value})`);
      }
      ctx.progress(
        `wrote ${files.json}, ${files.md}${files.svgs.length ? `, ${files.svgs.length} plot(s)` : ''}`,
      );
    } catch (err) {
      failed++;
      process.stderr.write(
        `[${suite.name}] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
    }
  }
  // Suites must release their sockets; a forced exit would hide leaks, so only set the code.
  process.exitCode = failed ? 1 : 0;
}

await main();
