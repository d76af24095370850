import { describe, expect, it } from 'vitest';
import { fuzzTarget, generateInput, runOne } from '../fuzz/engine.js';
import { getTarget, SELFTEST_TARGETS, TARGETS } from '../fuzz/targets.js';

/**
 * Keeps every parser honest against the fuzzer in CI: each target runs a fixed, seeded set of inputs in a worker
 * under the hang watchdog, and must produce no finding. The long runs (10^6 inputs per target) are manual:
 * `npm run fuzz -w packages/webtransport -- --iterations 1000000`.
 */
describe('fuzz targets (seeded, short)', () => {
  for (const target of TARGETS) {
    it(`${target.name}: ${target.ciIterations} inputs, no finding`, async () => {
      const result = await fuzzTarget(target, {
        iterations: target.ciIterations,
        seed: 20261128,
        hangMs: 20_000,
      });
      const report = result.findings.map(
        (f) => `${f.kind} #${f.iteration}: ${f.error}\n  input ${Buffer.from(f.input).toString('hex')}`,
      );
      expect(report).toEqual([]);
      expect(result.inputs).toBe(target.ciIterations);
    });
  }
});

describe('fuzz harness', () => {
  it('derives every input from (seed, index) alone', () => {
    const t = getTarget('qpack');
    const seeds = t.seeds();
    const a = Array.from({ length: 50 }, (_, i) => generateInput(t, seeds, 7, i));
    const b = Array.from({ length: 50 }, (_, i) => generateInput(t, seeds, 7, i));
    expect(b).toEqual(a);
    expect(generateInput(t, seeds, 8, 3)).not.toEqual(a[3]);
    // Mutations actually change inputs.
    const distinct = new Set(a.map((x) => Buffer.from(x).toString('hex')));
    expect(distinct.size).toBeGreaterThan(40);
  });

  it('reports an unexpected exception with its input, and accepts documented errors', async () => {
    const target = SELFTEST_TARGETS.find((t) => t.name === 'selftest-crash')!;
    const result = await fuzzTarget(target, { iterations: 3000, seed: 1 });
    expect(result.inputs).toBe(3000);
    expect(result.findings).toHaveLength(1);
    const [f] = result.findings;
    expect(f.kind).toBe('exception');
    expect(f.error).toMatch(/TypeError: selftest crash/);
    expect(f.input[0]).toBe(0x42);
    expect(result.counts.get(f.signature)).toBeGreaterThan(1);
    // The reproducer replays, and regenerates from the seed.
    expect(runOne(target, f.input)?.error).toMatch(/selftest crash/);
    expect(generateInput(target, target.seeds(), 1, f.iteration)).toEqual(f.input);
    expect(runOne(target, new Uint8Array([0x43]))).toBeUndefined();
  });

  it('terminates an input that never returns, reports it as a hang and resumes', async () => {
    const target = SELFTEST_TARGETS.find((t) => t.name === 'selftest-hang')!;
    const seeds = target.seeds();
    // Find the first hanging input so the run can stop shortly after it.
    let first = 0;
    while (true) {
      const x = generateInput(target, seeds, 3, first);
      if (x[0] === 0x42 && x[1] === 0x42) break;
      first++;
    }
    const iterations = first + 50;
    const result = await fuzzTarget(target, { iterations, seed: 3, hangMs: 300 });
    const hangs = result.findings.filter((f) => f.kind === 'hang');
    expect(hangs.length).toBe(1);
    expect(hangs[0].iteration).toBe(first);
    expect(Array.from(hangs[0].input.subarray(0, 2))).toEqual([0x42, 0x42]);
    // Every input was accounted for, those after the hang(s) included.
    expect(result.inputs).toBe(iterations);
  });
});
