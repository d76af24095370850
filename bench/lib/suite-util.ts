/** Helpers shared by the transport suites. */
import type { BenchContext, ResultRow } from './harness.js';
import { summarize } from './harness.js';
import { linkUnavailable } from './link.js';
import { emulated, loopback, type Network } from './network.js';

export interface PathSpec {
  /** `loopback`, `rtt50`, `rtt50-loss2`, ... */
  name: string;
  rttMs: number;
  loss?: number;
  burst?: number;
}

/**
 * Opens the network for `spec`; without link support every path runs on loopback, once, and the reason is
 * reported (`skipped` tells the caller to leave out later link paths).
 */
export async function openPath(
  ctx: BenchContext,
  spec: PathSpec,
  notes: string[],
): Promise<{ net: Network; effective: string } | undefined> {
  if (spec.rttMs === 0) return { net: loopback(), effective: 'loopback' };
  const why = linkUnavailable();
  if (why) {
    const msg = `no emulated link (${why.message}): path ${spec.name} not measured, loopback only`;
    if (!notes.includes(msg)) {
      notes.push(msg);
      ctx.progress(msg);
    }
    return undefined;
  }
  const net = await emulated({
    delayMs: spec.rttMs / 2,
    loss: spec.loss ?? 0,
    burst: spec.burst,
    seed: ctx.seed,
  });
  return { net, effective: spec.name };
}

export function distRow(
  name: string,
  group: string,
  values: number[],
  unit = 'ms',
  extra?: Record<string, number | string>,
  params?: Record<string, string | number | boolean>,
): ResultRow {
  const s = summarize(values);
  return { name, group, unit, ...s, ...(extra ? { extra } : {}), ...(params ? { params } : {}) };
}

export function median(values: number[]): number {
  return summarize(values).p50;
}

export function round(v: number, digits = 3): number {
  if (!Number.isFinite(v)) return v;
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
