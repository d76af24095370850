/** The fuzz loop inside a worker thread; see engine.ts for the watchdog protocol. */
import { parentPort, workerData } from 'node:worker_threads';
import {
  CTL_CURRENT,
  CTL_DONE,
  CTL_HEARTBEAT,
  CTL_LENGTH,
  generateInput,
  runOne,
  type WorkerData,
  type WorkerMessage,
} from './engine.js';
import { getTarget } from './targets.js';

const data = workerData as WorkerData;
const port = parentPort!;
const target = getTarget(data.target);
const seeds = target.seeds();
const ctl = new Int32Array(data.control);
const shared = new Uint8Array(data.input);
const post = (m: WorkerMessage): void => port.postMessage(m);

function timed(input: Uint8Array): number {
  const t = performance.now();
  runOne(target, input);
  return performance.now() - t;
}

let done = 0;
let lastReport = performance.now();
for (let i = data.start; i < data.end; i++) {
  const input = generateInput(target, seeds, data.seed, i);
  shared.set(input.subarray(0, shared.length));
  Atomics.store(ctl, CTL_LENGTH, Math.min(input.length, shared.length));
  Atomics.store(ctl, CTL_CURRENT, i);
  // Odd while an input runs, even between inputs: the watchdog only fires on a stuck odd beat.
  Atomics.store(ctl, CTL_HEARTBEAT, 2 * (i - data.start) + 1);
  const t0 = performance.now();
  const failure = runOne(target, input);
  const dt = performance.now() - t0;
  // A shared machine can deschedule the worker mid-input: only an input slow twice in a row is reported. The
  // second run is still under the watchdog (odd heartbeat).
  const again = !failure && dt > data.slowMs ? timed(input) : 0;
  Atomics.store(ctl, CTL_HEARTBEAT, 2 * (i - data.start) + 2);
  done++;
  Atomics.store(ctl, CTL_DONE, done);
  if (failure) {
    post({
      type: 'finding',
      finding: { kind: 'exception', target: target.name, iteration: i, input, ...failure },
    });
  } else if (again > data.slowMs) {
    post({
      type: 'finding',
      finding: {
        kind: 'slow',
        target: target.name,
        iteration: i,
        input,
        error: `took ${dt.toFixed(0)} ms, then ${again.toFixed(0)} ms (limit ${data.slowMs} ms)`,
        signature: 'slow',
      },
    });
  }
  if ((done & 1023) === 0) {
    const now = performance.now();
    if (now - lastReport > 500) {
      lastReport = now;
      post({ type: 'progress', done });
    }
  }
}
post({ type: 'end', done });
