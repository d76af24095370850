/**
 * Where a latency tail on a shared machine comes from: per-thread CPU time and run-queue wait (Linux
 * `/proc/<pid>/task/<tid>/schedstat`: ns on a CPU, ns runnable but waiting for one) of the processes a measurement
 * runs in, between two snapshots. A thread that waits for a CPU tens of ms per second has tens-of-ms tails that no
 * code inside it can remove. Nothing is read where `/proc` has no schedstat (other systems): the result is empty.
 */
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';

/** Names a process of interest from its pid and command line, or `undefined` to skip it. */
export type ProcessLabel = (pid: string, cmdline: string) => string | undefined;

/** Whether `pid` runs in the named network namespace (`ip netns` names, bound under /var/run/netns). */
export function inNetns(pid: string, ns: string): boolean {
  try {
    return readlinkSync(`/proc/${pid}/ns/net`) === `net:[${statSync(`/var/run/netns/${ns}`).ino}]`;
  } catch {
    return false;
  }
}

interface Sample {
  pid: string;
  label: string;
  thread: string;
  cpuNs: number;
  waitNs: number;
}

export interface ThreadLoad {
  /** The process's label and the thread's name (`comm`), e.g. `renderer/DedicatedWorker`. */
  name: string;
  threads: number;
  /** Milliseconds on a CPU per second of wall time. */
  cpuMsPerS: number;
  /** Milliseconds runnable but waiting for a CPU, per second of wall time. */
  waitMsPerS: number;
}

export interface SchedSnapshot {
  at: number;
  samples: Map<string, Sample>;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

export function schedSnapshot(label: ProcessLabel): SchedSnapshot {
  const samples = new Map<string, Sample>();
  let pids: string[] = [];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {}
  for (const pid of pids) {
    const cmd = read(`/proc/${pid}/cmdline`)?.replaceAll('\0', ' ');
    const l = cmd === undefined ? undefined : label(pid, cmd);
    if (!l) continue;
    let tids: string[] = [];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      const thread = read(`/proc/${pid}/task/${tid}/comm`)?.trim();
      const stat = read(`/proc/${pid}/task/${tid}/schedstat`)?.split(' ');
      if (!thread || !stat || stat.length < 2) continue;
      samples.set(`${pid}/${tid}`, {
        pid,
        label: l,
        thread,
        cpuNs: Number(stat[0]),
        waitNs: Number(stat[1]),
      });
    }
  }
  return { at: performance.now(), samples };
}

/** CPU and run-queue wait per second between two snapshots, summed by process label and thread name. */
export function schedDiff(a: SchedSnapshot, b: SchedSnapshot): ThreadLoad[] {
  const seconds = (b.at - a.at) / 1000;
  const by = new Map<string, ThreadLoad>();
  if (seconds <= 0) return [];
  for (const [key, s] of b.samples) {
    const before = a.samples.get(key);
    // A thread id reused by another thread in between (its name differs, or its counters went back) is skipped.
    if (!before || before.thread !== s.thread || s.cpuNs < before.cpuNs || s.waitNs < before.waitNs) continue;
    if (s.cpuNs - before.cpuNs + s.waitNs - before.waitNs > (b.at - a.at) * 1.05e6) continue;
    const name = `${s.label}/${s.thread}`;
    const t = by.get(name) ?? { name, threads: 0, cpuMsPerS: 0, waitMsPerS: 0 };
    t.threads++;
    t.cpuMsPerS += (s.cpuNs - before.cpuNs) / 1e6 / seconds;
    t.waitMsPerS += (s.waitNs - before.waitNs) / 1e6 / seconds;
    by.set(name, t);
  }
  return [...by.values()].sort((x, y) => y.waitMsPerS - x.waitMsPerS);
}
