/**
 * The fuzz loop and its watchdog.
 *
 * Input `i` of a run is a pure function of (seed, i), so any input can be regenerated from the seed alone and a
 * run can resume after a hang. The loop runs in a worker thread; before each input it copies the bytes into
 * shared memory and bumps a heartbeat. The parent polls the heartbeat: an input that does not return within
 * `hangMs` is an infinite loop (or close enough), so the parent reads the input back from shared memory,
 * terminates the worker and resumes in a new one from the next input. Inputs that return but take longer than
 * `slowMs` are findings too: parsers must stay linear in their input. A worker that dies inside an input (out of
 * its memory limit, say) is a `crash` finding, recorded and resumed the same way.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { mutate } from './mutate.js';
import { Rng } from './rng.js';
import type { FuzzTarget } from './targets.js';

export interface Finding {
  kind: 'exception' | 'hang' | 'slow' | 'crash';
  target: string;
  /** The input's index in the run: `--seed S` regenerates it. */
  iteration: number;
  input: Uint8Array;
  /** `name: message` and the top stack frames. */
  error: string;
  /** Groups findings with the same cause. */
  signature: string;
}

export interface RunOptions {
  iterations: number;
  seed: number;
  /** A single input running longer than this is a hang: the worker is terminated. Default 5000 ms. */
  hangMs?: number;
  /** A single input taking longer than this (but returning) is reported as slow. Default 1000 ms. */
  slowMs?: number;
  /** Heap limit of the fuzz worker: an input that needs more is a crash finding. Default 512 MB. */
  maxHeapMb?: number;
  onProgress?: (done: number, findings: number) => void;
}

export interface RunResult {
  target: string;
  inputs: number;
  elapsedMs: number;
  findings: Finding[];
  /** Findings per signature, including those whose input was not kept. */
  counts: Map<string, number>;
}

/** Mixes the run seed and the input index into the seed of that input's generator. */
export function inputSeed(seed: number, iteration: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(iteration, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
  h = Math.imul(h ^ (h >>> 12), 0x297a2d39);
  return (h ^ (h >>> 15)) >>> 0;
}

export function generateInput(
  target: FuzzTarget,
  seeds: ReadonlyArray<Uint8Array>,
  seed: number,
  i: number,
): Uint8Array {
  const rng = new Rng(inputSeed(seed, i));
  const max = target.maxInputLength ?? 4096;
  const input = target.generate ? target.generate(rng, seeds, max) : mutate(rng, seeds, max);
  // Mutations share structure with seeds: touch up a copy.
  return target.fixup ? target.fixup(input.slice(), rng) : input;
}

export function describeError(err: unknown): { error: string; signature: string } {
  if (err instanceof Error) {
    const frames = (err.stack ?? '')
      .split('\n')
      .filter((l) => l.trimStart().startsWith('at '))
      .slice(0, 6)
      .map((l) => l.trim());
    const head = `${err.name}: ${err.message}`;
    // Numbers vary between inputs with one cause: leave them out of the signature.
    const sig = `${err.name}: ${err.message.replace(/\d+/g, 'N').slice(0, 120)} @ ${frames[0] ?? '?'}`;
    return { error: [head, ...frames].join('\n  '), signature: sig };
  }
  return { error: `non-Error thrown: ${String(err)}`, signature: `non-Error: ${typeof err}` };
}

/**
 * Runs one input; returns undefined when the target returned or threw one of its documented errors.
 */
export function runOne(
  target: FuzzTarget,
  input: Uint8Array,
): { error: string; signature: string } | undefined {
  try {
    target.run(input);
    return undefined;
  } catch (err) {
    if (target.expected(err)) return undefined;
    return describeError(err);
  }
}

/** Shared memory between the fuzz worker and its watchdog. */
export const CTL_HEARTBEAT = 0; // index of the input being run, + 1 once it returned (even: running, see below)
export const CTL_CURRENT = 1; // index of the input currently running
export const CTL_LENGTH = 2; // its length in the shared input buffer
export const CTL_DONE = 3; // inputs completed
export const CTL_WORDS = 4;

export interface WorkerData {
  target: string;
  seed: number;
  start: number;
  end: number;
  slowMs: number;
  control: SharedArrayBuffer;
  input: SharedArrayBuffer;
}

export type WorkerMessage =
  | { type: 'progress'; done: number }
  | { type: 'finding'; finding: Omit<Finding, 'input'> & { input: Uint8Array } }
  | { type: 'end'; done: number };

function tsxApiUrl(): string {
  // Resolved here so the worker does not depend on its working directory. `require.resolve` finds the CommonJS
  // build, whose register() cannot run in a worker on Node 20; its ESM twin sits beside it.
  const cjs = createRequire(import.meta.url).resolve('tsx/esm/api');
  const mjs = cjs.replace(/\.cjs$/, '.mjs');
  return pathToFileURL(existsSync(mjs) ? mjs : cjs).href;
}

/**
 * Runs `iterations` inputs of a target in worker threads under the watchdog. Needs tsx (a root dev dependency):
 * the worker registers it to load the TypeScript sources, with the `quiver-source` condition.
 */
export async function fuzzTarget(target: FuzzTarget, options: RunOptions): Promise<RunResult> {
  const hangMs = options.hangMs ?? 5000;
  const slowMs = options.slowMs ?? 1000;
  const maxLength = target.maxInputLength ?? 4096;
  const findings: Finding[] = [];
  const counts = new Map<string, number>();
  const started = performance.now();
  const record = (f: Finding): void => {
    const n = counts.get(f.signature) ?? 0;
    counts.set(f.signature, n + 1);
    if (n === 0) findings.push(f);
  };
  let next = 0;
  let done = 0;
  while (next < options.iterations) {
    const control = new SharedArrayBuffer(CTL_WORDS * 4);
    const input = new SharedArrayBuffer(maxLength);
    const ctl = new Int32Array(control);
    const workerUrl = new URL('./worker.ts', import.meta.url).href;
    const code = `import(${JSON.stringify(tsxApiUrl())}).then((api) => { (api.register ?? api.default.register)(); return import(${JSON.stringify(workerUrl)}); });`;
    const data: WorkerData = {
      target: target.name,
      seed: options.seed,
      start: next,
      end: options.iterations,
      slowMs,
      control,
      input,
    };
    const base = done;
    const outcome = await new Promise<{ hung: boolean; resumeAt: number }>((resolve, reject) => {
      const worker = new Worker(code, {
        eval: true,
        workerData: data,
        execArgv: ['--conditions=quiver-source'],
        resourceLimits: { maxOldGenerationSizeMb: options.maxHeapMb ?? 512 },
      });
      let lastBeat = -1;
      let lastChange = performance.now();
      let settled = false;
      const finish = (value: { hung: boolean; resumeAt: number } | Error): void => {
        if (settled) return;
        settled = true;
        clearInterval(timer);
        if (value instanceof Error) reject(value);
        else resolve(value);
      };
      const timer = setInterval(
        () => {
          const beat = Atomics.load(ctl, CTL_HEARTBEAT);
          const now = performance.now();
          if (beat !== lastBeat) {
            lastBeat = beat;
            lastChange = now;
            return;
          }
          // Only a heartbeat stuck on a running input (odd) is a hang; the worker may still be loading (0).
          if (beat % 2 === 1 && now - lastChange > hangMs) {
            const current = Atomics.load(ctl, CTL_CURRENT);
            const len = Atomics.load(ctl, CTL_LENGTH);
            const bytes = new Uint8Array(input, 0, len).slice();
            record({
              kind: 'hang',
              target: target.name,
              iteration: current,
              input: bytes,
              error: `no return within ${hangMs} ms`,
              signature: 'hang',
            });
            done = base + Atomics.load(ctl, CTL_DONE);
            void worker.terminate();
            finish({ hung: true, resumeAt: current + 1 });
          }
        },
        Math.min(200, Math.max(10, hangMs / 10)),
      );
      worker.on('message', (m: WorkerMessage) => {
        if (m.type === 'progress') {
          done = base + m.done;
          options.onProgress?.(done, findings.length);
        } else if (m.type === 'finding') {
          record({ ...m.finding, input: new Uint8Array(m.finding.input) });
        } else {
          done = base + m.done;
          finish({ hung: false, resumeAt: options.iterations });
        }
      });
      /** The worker died: inside an input that is a finding; while loading it is a broken target. */
      const died = (why: string, err?: Error): void => {
        if (settled) return;
        const beat = Atomics.load(ctl, CTL_HEARTBEAT);
        if (beat % 2 !== 1) {
          finish(err ?? new Error(`fuzz worker ${why} outside an input`));
          return;
        }
        const current = Atomics.load(ctl, CTL_CURRENT);
        const len = Atomics.load(ctl, CTL_LENGTH);
        record({
          kind: 'crash',
          target: target.name,
          iteration: current,
          input: new Uint8Array(input, 0, len).slice(),
          error: err ? describeError(err).error : why,
          signature: `crash: ${err?.message ?? why}`.replace(/\d+/g, 'N'),
        });
        done = base + Atomics.load(ctl, CTL_DONE) + 1;
        finish({ hung: false, resumeAt: current + 1 });
      };
      worker.on('error', (err) => died('failed', err));
      worker.on('exit', (code) => died(`exited with code ${code}`));
    });
    next = outcome.resumeAt;
    if (outcome.hung) done += 1;
  }
  return { target: target.name, inputs: done, elapsedMs: performance.now() - started, findings, counts };
}

/** A short stable name for a finding's reproducer file. */
export function findingId(f: Finding): string {
  return createHash('sha256').update(f.signature).digest('hex').slice(0, 12);
}
