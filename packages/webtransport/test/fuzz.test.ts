import { describe, expect, it } from 'vitest';
import { fuzzTarget, generateInput, runOne } from '../fuzz/engine.js';
import { FuzzPropertyError } from '../fuzz/errors.js';
import { Checker, CONNECT_FIELDS, drive, Script, wire } from '../fuzz/h3-driver.js';
import { getTarget, SELFTEST_TARGETS, TARGETS } from '../fuzz/targets.js';
import type { H3Connection, H3Event, H3Limits, H3Stats, QuicCommand } from '../src/core/index.js';
import { createH3Connection, DEFAULT_H3_LIMITS } from '../src/core/index.js';
import { encodeVarint } from '../src/core/varint.js';

const concat = (...parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));

/**
 * The seed of the short CI runs rotates daily (the UTC date as YYYYMMDD) so that CI explores new inputs over time;
 * `QUIVER_FUZZ_SEED=<n>` pins it. It is printed, so a failure replays with
 * `npm run fuzz -w packages/webtransport -- --target <name> --iterations <n> --seed <seed>`.
 */
const ciSeed = ((): number => {
  const pinned = Number(process.env.QUIVER_FUZZ_SEED);
  if (process.env.QUIVER_FUZZ_SEED && Number.isSafeInteger(pinned)) return pinned;
  return Number(new Date().toISOString().slice(0, 10).replaceAll('-', ''));
})();
console.log(`fuzz CI seed ${ciSeed} (QUIVER_FUZZ_SEED=${ciSeed} replays this run)`);

/**
 * Keeps every parser honest against the fuzzer in CI: each target runs a seeded set of inputs in a worker under
 * the hang watchdog, and must produce no finding. The long runs (10^6 inputs per target) are made with
 * `npm run fuzz -w packages/webtransport -- --iterations 1000000`, recorded in fuzz/results.json.
 */
describe(`fuzz targets (short, seed ${ciSeed})`, () => {
  for (const target of TARGETS) {
    it(`${target.name}: ${target.ciIterations} inputs, no finding`, async () => {
      // Generous watchdog limits: CI machines are shared, and a descheduled worker is not a slow parser.
      const result = await fuzzTarget(target, {
        iterations: target.ciIterations,
        seed: ciSeed,
        hangMs: 30_000,
        slowMs: 10_000,
      });
      const report = result.findings.map(
        (f) =>
          `seed ${ciSeed} ${f.kind} #${f.iteration}: ${f.error}\n  input ${Buffer.from(f.input).toString('hex')}`,
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
    const result = await fuzzTarget(target, { iterations, seed: 3, hangMs: 1500, slowMs: 1500 });
    const hangs = result.findings.filter((f) => f.kind === 'hang');
    expect(hangs.length).toBe(1);
    expect(hangs[0].iteration).toBe(first);
    expect(Array.from(hangs[0].input.subarray(0, 2))).toEqual([0x42, 0x42]);
    // Every input was accounted for, those after the hang(s) included.
    expect(result.inputs).toBe(iterations);
  });
});

describe('fuzz harness: crashes', () => {
  it('records an input that kills the worker (out of memory) and resumes after it', async () => {
    const target = SELFTEST_TARGETS.find((t) => t.name === 'selftest-oom')!;
    const seeds = target.seeds();
    let first = 0;
    while (true) {
      const x = generateInput(target, seeds, 5, first);
      if (x[0] === 0x42 && x[1] === 0x42) break;
      first++;
    }
    const iterations = first + 20;
    const result = await fuzzTarget(target, { iterations, seed: 5, maxHeapMb: 32, hangMs: 30_000 });
    const crashes = result.findings.filter((f) => f.kind === 'crash');
    expect(crashes).toHaveLength(1);
    expect(crashes[0].iteration).toBe(first);
    expect(crashes[0].error).toMatch(/memory/i);
    expect(result.inputs).toBe(iterations);
  });
});

/**
 * Inputs that once were findings (bugs in the core since fixed, or checker false positives), kept so they stay
 * fixed. Each runs through its target and must not be a finding; where it matters the outcome is asserted too.
 */
describe('fuzz regressions', () => {
  const noFinding = (target: string, input: Uint8Array): void => {
    expect(runOne(getTarget(target), input)?.error).toBeUndefined();
  };

  it('HEADERS and a DATA frame in one read (what Chromium sends) open the session', () => {
    const script = new Script(0x01)
      .data(2, wire.controlStream())
      .data(0, concat(wire.headers(CONNECT_FIELDS), wire.greaseCapsule()))
      .bytes();
    noFinding('h3-chunking-server', script);
    const { checker } = drive('server', script);
    expect(checker.failed).toBe(false);
    expect(checker.live.has(0)).toBe(true);
  });

  it('a response with capsules in the same read establishes, drains and closes the client session', () => {
    const script = new Script(0x01)
      .data(3, wire.controlStream())
      .data(0, concat(wire.headers([[':status', '200']]), wire.drain(), wire.close(3, 'x')))
      .bytes();
    noFinding('h3-chunking-client', script);
    const types = drive('client', script).checker.events.map((e) => e.type);
    expect(types).toEqual(['settings', 'session-established', 'session-draining', 'session-closed']);
  });

  it('a DRAIN capsule before the SETTINGS raises no event for a session the application never saw', () => {
    const script = new Script(0x01).data(0, concat(wire.headers(CONNECT_FIELDS), wire.drain())).bytes();
    noFinding('h3-server', script);
    expect(drive('server', script).checker.events).toEqual([]);
  });

  it('a CLOSE capsule then an empty DATA frame is handled alike in one read or two', () => {
    const script = serverPrelude()
      .data(0, concat(wire.close(7, 'bye'), new Uint8Array([0x00, 0x00])), true)
      .bytes();
    noFinding('h3-chunking-server', script);
  });

  it('a stream error on a CONNECT stream the peer already stopped and finished needs no reset', () => {
    const script = serverPrelude()
      .stop(0)
      .data(0, new Uint8Array([0x00, 0x03, 0x29, 0x05, 0x00]), true) // DATA frame ending inside a capsule
      .bytes();
    noFinding('h3-server', script);
    expect(drive('server', script).checker.events.some((e) => e.type === 'stream-error')).toBe(true);
  });
});

function serverPrelude(): Script {
  return new Script(0x01)
    .data(2, wire.controlStream())
    .data(6, encodeVarint(2))
    .data(10, encodeVarint(3))
    .data(0, wire.headers(CONNECT_FIELDS));
}

/** A connection that replays canned output, to prove the checker rejects contract violations. */
function fake(steps: Array<{ commands?: QuicCommand[]; events?: H3Event[]; stats?: Partial<H3Stats> }>): {
  conn: H3Connection;
  next(): void;
} {
  let i = -1;
  // Every counter at 0, whatever counters the connection has today.
  const zero: H3Stats = createH3Connection({ role: 'server' }).getStats();
  const conn = {
    drainCommands: () => steps[i]?.commands ?? [],
    drainEvents: () => steps[i]?.events ?? [],
    getStats: () => ({ ...zero, ...steps[i]?.stats }),
  } as unknown as H3Connection;
  return { conn, next: () => void i++ };
}

describe('h3 checker', () => {
  const limits: H3Limits = { ...DEFAULT_H3_LIMITS };
  const run = (steps: Parameters<typeof fake>[0], role: 'server' | 'client' = 'server'): void => {
    const f = fake(steps);
    const c = new Checker(f.conn, role, limits);
    for (let k = 0; k < steps.length; k++) {
      f.next();
      c.drain(true);
    }
  };

  it('accepts a well-behaved sequence', () => {
    expect(() =>
      run([
        { events: [{ type: 'session-request', sessionId: 0, headers: [] }] },
        {
          events: [{ type: 'connection-error', code: 0x101n, reason: 'x' }],
          commands: [{ type: 'connection-close', code: 0x101n, reason: 'x' }],
        },
      ]),
    ).not.toThrow();
  });

  it('rejects a connection-error without its connection-close', () => {
    expect(() => run([{ events: [{ type: 'connection-error', code: 0x101n, reason: 'x' }] }])).toThrow(
      FuzzPropertyError,
    );
  });

  it('rejects output after a connection error', () => {
    expect(() =>
      run([
        {
          events: [{ type: 'connection-error', code: 0x101n, reason: 'x' }],
          commands: [{ type: 'connection-close', code: 0x101n, reason: 'x' }],
        },
        { events: [{ type: 'goaway', id: 0n }] },
      ]),
    ).toThrow(/after a connection error/);
  });

  it('rejects stream data on a stream never opened, and streams in sessions not live', () => {
    expect(() =>
      run([{ events: [{ type: 'stream-data', streamId: 4, data: new Uint8Array(1), fin: false }] }]),
    ).toThrow(/never opened/);
    expect(() =>
      run([{ events: [{ type: 'stream-opened', sessionId: 0, streamId: 4, bidirectional: true }] }]),
    ).toThrow(/not live/);
  });

  it("rejects writes after FIN and on the peer's unidirectional streams", () => {
    const w = (streamId: number, fin: boolean): QuicCommand => ({
      type: 'stream-write',
      streamId,
      data: new Uint8Array(1),
      fin,
    });
    expect(() => run([{ commands: [w(1, true)] }, { commands: [w(1, false)] }])).toThrow(/after its FIN/);
    expect(() => run([{ commands: [w(2, false)] }])).toThrow(/peer uni stream/);
  });

  it('rejects drops that the stats do not count', () => {
    expect(() => run([{ events: [{ type: 'datagram-dropped', reason: 'malformed' }] }])).toThrow(
      /stats differ/,
    );
    expect(() =>
      run([
        {
          events: [{ type: 'datagram-dropped', reason: 'malformed' }],
          stats: { datagramsDroppedMalformed: 1 },
        },
      ]),
    ).not.toThrow();
  });
});
