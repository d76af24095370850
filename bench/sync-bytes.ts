/**
 * `npx tsx --conditions=quiver-source bench/sync-bytes.ts [seconds = 60] [scenes, e.g. xr,cubes] [seed = 1]`: the
 * byte rows of the `sync` suite alone. It replays the suite's own scenes through the suite's `runQuiver` and
 * `runColyseus` with the suite's seeds, so its ratios are the suite's `bytes_vs_colyseus_latency*` figures exactly.
 * Bytes do not depend on timing, so this needs no quiet machine (the timing rows do: run the suite for those).
 */
import { HZ } from './suites/_sync-scenes.ts';
import { runColyseus, runQuiver, SCENES } from './suites/sync.ts';

const seconds = Number(process.argv[2] ?? 60);
const only = process.argv[3]?.split(',');
const seed = Number(process.argv[4] ?? 1);
const LOSS = 0.02;
const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / Math.max(1, a.length);
for (const def of SCENES) {
  if (only && !only.includes(def.key)) continue;
  const trace = def.trace(seed, seconds * HZ);
  const coly = mean(runColyseus(def, trace, LOSS, def.clients, seed).down);
  const cells: string[] = [];
  for (const lat of [0, 3]) {
    const o = runQuiver(def, trace, lat, LOSS, def.clients, seed + lat);
    if (!o.verified) throw new Error(`${def.key}: client state diverged`);
    const total = mean(o.down) + o.up;
    cells.push(`${Math.round((lat * 1000) / HZ)} ms: ${total.toFixed(1)} B (${(total / coly).toFixed(3)})`);
  }
  console.log(`${def.key}: colyseus ${coly.toFixed(1)} B/tick; quiver-sync ${cells.join(', ')}`);
}
