/**
 * `npx tsx --conditions=quiver-source bench/sync-encode.ts [rounds = 5] [seconds = 10] [case numbers, e.g. 0,3]`: the
 * encode rows of the `sync` suite alone (its own `runScale` and cases, the full run's sizes by default), for measuring
 * the encoder without the byte scenes (each case after one unmeasured warm-up round, as in the suite). Timing: run it under `flock /tmp/quiver-heavy.lock`.
 */
import { HZ } from './suites/_sync-scenes.ts';
import { runScale, SCALE_CASES, summariseRounds, warmUpScale } from './suites/sync.ts';

const rounds = Number(process.argv[2] ?? 5);
const seconds = Number(process.argv[3] ?? 10);
const only = process.argv[4]?.split(',').map(Number);
const seed = 1;
const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
for (const [i, [name, clients, loss, all]] of SCALE_CASES.entries()) {
  if (only && !only.includes(i)) continue;
  const runs = [];
  warmUpScale(seed, seconds * HZ, clients, loss, all);
  for (let r = 0; r < rounds; r++) runs.push(runScale(seed, seconds * HZ, clients, loss, all));
  const s = summariseRounds(runs);
  const perClient = (ms: number) => ((ms / clients) * 1000).toFixed(1);
  console.log(
    `${clients}x1000 ${name}: CPU ${s.cpuMs.toFixed(3)} ms/tick (rounds ${s.roundCpuMs.map((v) => v.toFixed(3)).join(' ')}); ` +
      `wall mean ${s.ms.toFixed(3)} (rounds ${s.roundMs.map((v) => v.toFixed(3)).join(' ')}), median tick ` +
      `${s.p50Ms.toFixed(3)}; per client ${perClient(s.cpuMs)} us CPU, ${perClient(s.ms)} wall; shared ` +
      `${median(runs.map((x) => x.shared)).toFixed(3)}`,
  );
}
