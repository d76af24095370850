/**
 * What makes a networked scene feel local, measured on seeded simulated links (RTT 20/100/200 ms, jitter
 * 0/10/30 ms, loss 0/2/5 %): a 60 Hz server sends 20 Hz snapshots of one player the client owns (driven by a seeded
 * random input stream, inputs sent redundantly on the lossy channel) and of remote entities moving along smooth
 * seeded paths (metres). The client predicts and reconciles its player with @quiver/predict, and draws the remote
 * entities both through @quiver/predict's adaptive InterpolationBuffer and through
 * @geckos.io/snapshot-interpolation (default settings: a buffer of 3 snapshot intervals, linear + quaternion slerp),
 * on the same snapshot trace with the same arrival times; errors are measured against the analytic ground truth at
 * the server time each library says it is drawing.
 */
import { SnapshotInterpolation } from '@geckos.io/snapshot-interpolation';
import {
  defineInputCodec,
  defineSimulation,
  InputReceiver,
  InputSender,
  type InputOf,
  InterpolationBuffer,
  Predictor,
  type EntitySample,
  type Quat,
  quatAngle,
  quatFromAxisAngle,
  SimLink,
} from '@quiver/predict';
import { createRng } from '@quiver/transport';
import type { BenchContext, BenchSuite, ResultRow, SuiteResult } from '../lib/harness.js';
import { summarize } from '../lib/harness.js';

const TICK_RATE = 60;
const TICK_MS = 1000 / TICK_RATE;
const SNAPSHOT_EVERY = 3; // 20 Hz
const REMOTES = 8;
const REDUNDANCY = 8;
const WARMUP_MS = 6000;
/** The client's clock has its own epoch: nothing may assume synchronized clocks. */
const CLIENT_EPOCH = 7_777;

// ---- the world -------------------------------------------------------------------------------------------------

interface Player {
  x: number;
  z: number;
  vx: number;
  vz: number;
  yaw: number;
}
const codec = defineInputCodec({ moveX: 'i8', moveZ: 'i8', yaw: 'f32', sprint: 'bool' });
type Input = InputOf<{ moveX: 'i8'; moveZ: 'i8'; yaw: 'f32'; sprint: 'bool' }>;
const NEUTRAL: Input = { moveX: 0, moveZ: 0, yaw: 0, sprint: false };
const f = Math.fround;
const HALF = 25;
const PILLARS = [
  { x: 5, z: 5, r: 1.5 },
  { x: -6, z: 3, r: 1 },
  { x: 2, z: -7, r: 2 },
];

/** A walking player with walls and pillars; stored state rounded to f32 so client and server start from equal bits. */
const playerSim = defineSimulation<Player, Input>({
  tickRate: TICK_RATE,
  step(s, input, dt) {
    const c = Math.cos(input.yaw);
    const sn = Math.sin(input.yaw);
    const speed = input.sprint ? 7 : 4;
    const ix = input.moveX / 127;
    const iz = input.moveZ / 127;
    const k = Math.min(1, 10 * dt);
    let vx = f(s.vx + ((ix * c - iz * sn) * speed - s.vx) * k);
    let vz = f(s.vz + ((ix * sn + iz * c) * speed - s.vz) * k);
    let x = f(s.x + vx * dt);
    let z = f(s.z + vz * dt);
    if (Math.abs(x) > HALF) {
      x = f(Math.sign(x) * HALF);
      vx = 0;
    }
    if (Math.abs(z) > HALF) {
      z = f(Math.sign(z) * HALF);
      vz = 0;
    }
    for (const p of PILLARS) {
      const dx = x - p.x;
      const dz = z - p.z;
      const d = Math.hypot(dx, dz);
      if (d < p.r && d > 0) {
        x = f(p.x + (dx / d) * p.r);
        z = f(p.z + (dz / d) * p.r);
      }
    }
    return { x, z, vx, vz, yaw: f(input.yaw) };
  },
});
const START: Player = { x: 0, z: 0, vx: 0, vz: 0, yaw: 0 };
const CONTACT_RADIUS = 1.5;

/**
 * The "contact" variant: on the server only, remote entities shove the player out of a 1.5 m radius. The client's
 * simulation does not model them, so every contact is a genuine misprediction that reconciliation must correct.
 */
function shove(p: Player, paths: Path[], tMs: number): Player {
  let { x, z, vx, vz } = p;
  for (const path of paths) {
    const e = truth(path, tMs);
    const dx = x - e.x;
    const dz = z - e.z;
    const d = Math.hypot(dx, dz);
    if (d >= CONTACT_RADIUS || d === 0) continue;
    x = f(e.x + (dx / d) * CONTACT_RADIUS);
    z = f(e.z + (dz / d) * CONTACT_RADIUS);
    const vn = (vx * dx + vz * dz) / d;
    if (vn < 0) {
      vx = f(vx - (vn * dx) / d);
      vz = f(vz - (vn * dz) / d);
    }
  }
  return x === p.x && z === p.z && vx === p.vx && vz === p.vz ? p : { ...p, x, z, vx, vz };
}

/** A person on a gamepad: an input held for 0-0.5 s, then another. */
function inputStream(random: () => number): () => Input {
  let current = NEUTRAL;
  let hold = 0;
  return () => {
    if (hold-- <= 0) {
      hold = Math.floor(random() * 30);
      current = {
        moveX: Math.round((random() * 2 - 1) * 127),
        moveZ: Math.round((random() * 2 - 1) * 127),
        yaw: random() * Math.PI * 2,
        sprint: random() < 0.3,
      };
    }
    return current;
  };
}

interface Path {
  ax: number[];
  wx: number[];
  px: number[];
  az: number[];
  wz: number[];
  pz: number[];
}
/** Remote entity paths: sums of two sinusoids per axis, speeds of a few m/s, heading as rotation. */
function makePaths(seed: number): Path[] {
  const r = createRng(seed).next;
  return Array.from({ length: REMOTES }, () => ({
    ax: [3 + r() * 8, 1 + r() * 3],
    wx: [0.2 + r() * 0.6, 0.8 + r() * 1.2],
    px: [r() * 6.3, r() * 6.3],
    az: [3 + r() * 8, 1 + r() * 3],
    wz: [0.2 + r() * 0.6, 0.8 + r() * 1.2],
    pz: [r() * 6.3, r() * 6.3],
  }));
}
const Y_AXIS = { x: 0, y: 1, z: 0 };
function truth(p: Path, tMs: number): { x: number; y: number; z: number; q: Quat } {
  const s = tMs / 1000;
  let x = 0;
  let z = 0;
  let vx = 0;
  let vz = 0;
  for (let i = 0; i < 2; i++) {
    x += p.ax[i] * Math.sin(p.wx[i] * s + p.px[i]);
    vx += p.ax[i] * p.wx[i] * Math.cos(p.wx[i] * s + p.px[i]);
    z += p.az[i] * Math.sin(p.wz[i] * s + p.pz[i]);
    vz += p.az[i] * p.wz[i] * Math.cos(p.wz[i] * s + p.pz[i]);
  }
  return { x, y: 0, z, q: quatFromAxisAngle(Y_AXIS, Math.atan2(vx, vz)) };
}

// ---- one run -------------------------------------------------------------------------------------------------

interface Link {
  rtt: number;
  jitter: number;
  loss: number;
}
const label = (l: Link) => `rtt${l.rtt} j${l.jitter} loss${Math.round(l.loss * 100)}`;

interface Snapshot {
  t: number;
  ack: number;
  player: Player;
  contactPlayer: Player;
  contactAck: number;
  entities: { id: string; x: number; y: number; z: number; q: Quat }[];
}

interface RemoteMetrics {
  errorsCm: number[];
  rotErrorsDeg: number[];
  presentErrorsCm: number[];
  delays: number[];
  interpolated: number;
  extrapolated: number;
  held: number;
}
const newRemote = (): RemoteMetrics => ({
  errorsCm: [],
  rotErrorsDeg: [],
  presentErrorsCm: [],
  delays: [],
  interpolated: 0,
  extrapolated: 0,
  held: 0,
});

interface RunResult {
  link: Link;
  corrections: number[];
  contactCorrections: number[];
  contactDisplayCm: number[];
  contactReconciliations: number;
  contactMispredictions: number;
  reconciliations: number;
  mispredictions: number;
  filled: number;
  localDisplayCm: number[];
  recipeDisplayCm: number[];
  quiver: RemoteMetrics;
  quiverCover: RemoteMetrics;
  geckos: RemoteMetrics;
}

// geckos reads the time from a static Now(); the simulation replaces it with the simulated client clock.
let simClientNow = 0;
(SnapshotInterpolation as unknown as { Now: () => number }).Now = () => simClientNow;

function runLink(link: Link, seed: number, durationMs: number): RunResult {
  const linkOpts = {
    delayMs: link.rtt / 2,
    jitterMs: link.jitter,
    lossRate: link.loss,
    meanBurstLength: 1.5,
  };
  const up = new SimLink<Uint8Array>({ ...linkOpts, seed: seed * 7 + 1 });
  const down = new SimLink<Snapshot>({ ...linkOpts, seed: seed * 7 + 2 });
  const paths = makePaths(seed);

  // Server.
  const receiver = new InputReceiver(codec, NEUTRAL);
  let serverPlayer = START;
  // The contact variant gets the same input packets.
  const contactReceiver = new InputReceiver(codec, NEUTRAL);
  let contactPlayer = START;

  // Client (quiver).
  const sender = new InputSender(codec, { redundancy: REDUNDANCY });
  const predictor = new Predictor(playerSim, START, { position: (s) => ({ x: s.x, y: 0, z: s.z }) });
  const corrections: number[] = [];
  const contactPredictor = new Predictor(playerSim, START, { position: (s) => ({ x: s.x, y: 0, z: s.z }) });
  const contactCorrections: number[] = [];
  // Counted after the warm-up, like the distances.
  let mispredictions = 0;
  let contactMispredictions = 0;
  const contactDisplayCm: number[] = [];
  let reference = START; // the player with zero latency: every input applied at once
  const interp = new InterpolationBuffer();
  // The low-latency setting: the delay covers jitter only, lost snapshots are extrapolated through.
  const interpCover = new InterpolationBuffer({ coverLoss: false });
  const localDisplayCm: number[] = [];
  const quiver = newRemote();
  const quiverCover = newRemote();

  // Client (geckos: remote entities through the library; local player through the recipe of its example).
  const SI = new SnapshotInterpolation(1000 / (TICK_MS * SNAPSHOT_EVERY));
  const geckos = newRemote();
  const geckosShown = new Map<string, { x: number; y: number; z: number; q: Quat }>();
  let recipePlayer = START;
  const playerVault: { time: number; x: number; z: number }[] = [];
  const recipeDisplayCm: number[] = [];
  let latestServer: Snapshot | undefined;

  const next = inputStream(createRng(seed + 99).next);
  let tick = 0;
  let nextFrame = 5; // client frames are out of phase with server ticks
  for (let now = 0; now <= durationMs; now += 0.5) {
    // ---- server ----
    if (now >= tick * TICK_MS) {
      if (tick % SNAPSHOT_EVERY === 0) {
        down.send(now, {
          t: now,
          ack: receiver.lastSeq,
          player: serverPlayer,
          contactPlayer,
          contactAck: contactReceiver.lastSeq,
          entities: paths.map((p, i) => ({ id: `e${i}`, ...truth(p, now) })),
        });
      }
      tick++;
    }
    for (const { payload } of up.receive(now)) {
      for (const { input } of receiver.receive(payload)) serverPlayer = playerSim.step(serverPlayer, input);
      for (const { input } of contactReceiver.receive(payload))
        contactPlayer = shove(playerSim.step(contactPlayer, input), paths, now);
    }
    // ---- client: arrivals at their exact times ----
    for (const { at, payload } of down.receive(now)) {
      simClientNow = at + CLIENT_EPOCH;
      const samples = payload.entities.map(
        (e) => [e.id, { position: { x: e.x, y: e.y, z: e.z }, rotation: e.q }] as [string, EntitySample],
      );
      interp.push(payload.t, simClientNow, samples);
      interpCover.push(payload.t, simClientNow, samples);
      SI.snapshot.add({ id: String(payload.t), time: payload.t, state: payload.entities });
      if (payload.ack >= 0) {
        const c = predictor.reconcile(payload.player, payload.ack);
        if (at >= WARMUP_MS) {
          corrections.push(c ? c.distance * 100 : 0);
          if (c) mispredictions++;
        }
        sender.ack(payload.ack);
      }
      if (payload.contactAck >= 0) {
        const c = contactPredictor.reconcile(payload.contactPlayer, payload.contactAck);
        if (at >= WARMUP_MS) {
          contactCorrections.push(c ? c.distance * 100 : 0);
          if (c) contactMispredictions++;
        }
      }
      if (!latestServer || payload.t > latestServer.t) latestServer = payload;
    }
    if (now < nextFrame) continue;
    nextFrame += TICK_MS;
    simClientNow = now + CLIENT_EPOCH;
    const measuring = now >= WARMUP_MS;
    // Local player: capture, predict, send redundantly.
    const { seq, input } = sender.capture(next());
    predictor.apply(seq, input);
    contactPredictor.apply(seq, input);
    reference = playerSim.step(reference, input);
    const packet = sender.packet();
    if (packet) up.send(now, packet);
    predictor.smooth(TICK_MS);
    contactPredictor.smooth(TICK_MS);
    if (measuring) {
      const shown = predictor.renderPosition();
      localDisplayCm.push(Math.hypot(shown.x - reference.x, shown.z - reference.z) * 100);
      // How far the drawn player is from its (corrected) prediction: the part of corrections still being smoothed.
      const o = contactPredictor.visualOffset;
      contactDisplayCm.push(Math.hypot(o.x, o.z) * 100);
    }
    // The geckos example's recipe: predict locally, store (server-clock time, position) in a vault, and nudge the
    // player by 1/60 of the offset between the newest server snapshot and the stored position closest in time.
    // Clocks are given to it perfectly synchronized (its example runs client and server on one machine).
    recipePlayer = playerSim.step(recipePlayer, input);
    playerVault.push({ time: now, x: recipePlayer.x, z: recipePlayer.z });
    if (playerVault.length > 120) playerVault.shift();
    if (latestServer) {
      const target = latestServer.t;
      let best = playerVault[0];
      for (const v of playerVault) if (Math.abs(v.time - target) < Math.abs(best.time - target)) best = v;
      const moving = input.moveX !== 0 || input.moveZ !== 0;
      const k = moving ? 60 : 180;
      recipePlayer = {
        ...recipePlayer,
        x: recipePlayer.x - (best.x - latestServer.player.x) / k,
        z: recipePlayer.z - (best.z - latestServer.player.z) / k,
      };
    }
    if (measuring)
      recipeDisplayCm.push(Math.hypot(recipePlayer.x - reference.x, recipePlayer.z - reference.z) * 100);

    // Remote entities, quiver.
    for (const [buffer, m] of [
      [interp, quiver],
      [interpCover, quiverCover],
    ] as const) {
      const rt = buffer.update(simClientNow);
      if (rt === undefined) continue;
      if (measuring) m.delays.push(now - rt);
      for (let i = 0; i < REMOTES; i++) {
        const pose = buffer.sample(`e${i}`);
        if (!pose || !measuring) continue;
        m[pose.mode]++;
        const tr = truth(paths[i], rt);
        const present = truth(paths[i], now);
        m.errorsCm.push(Math.hypot(pose.position.x - tr.x, pose.position.z - tr.z) * 100);
        m.rotErrorsDeg.push((quatAngle(pose.rotation, tr.q) * 180) / Math.PI);
        m.presentErrorsCm.push(Math.hypot(pose.position.x - present.x, pose.position.z - present.z) * 100);
      }
    }
    // Remote entities, geckos: when it cannot interpolate it returns nothing and the game keeps the last pose.
    if (SI.vault.size > 0) {
      const gt = simClientNow - SI.timeOffset - SI.interpolationBuffer.get();
      const out = SI.calcInterpolation('x y z q(quat)');
      if (out) {
        for (const e of out.state) {
          geckosShown.set(String(e.id), {
            x: e.x as number,
            y: e.y as number,
            z: e.z as number,
            q: e.q as Quat,
          });
        }
      }
      if (measuring) {
        geckos.delays.push(now - gt);
        for (let i = 0; i < REMOTES; i++) {
          const shown = geckosShown.get(`e${i}`);
          if (!shown) continue;
          if (out) geckos.interpolated++;
          else geckos.held++;
          const tr = truth(paths[i], gt);
          const present = truth(paths[i], now);
          geckos.errorsCm.push(Math.hypot(shown.x - tr.x, shown.z - tr.z) * 100);
          geckos.rotErrorsDeg.push((quatAngle(shown.q, tr.q) * 180) / Math.PI);
          geckos.presentErrorsCm.push(Math.hypot(shown.x - present.x, shown.z - present.z) * 100);
        }
      }
    }
  }
  return {
    link,
    corrections,
    contactCorrections,
    contactDisplayCm,
    contactReconciliations: contactCorrections.length,
    contactMispredictions,
    reconciliations: corrections.length,
    mispredictions,
    filled: receiver.stats.filled,
    localDisplayCm,
    recipeDisplayCm,
    quiver,
    quiverCover,
    geckos,
  };
}

// ---- the suite -----------------------------------------------------------------------------------------------

const mean = (a: number[]) => (a.length ? a.reduce((x, y) => x + y, 0) / a.length : Number.NaN);
const pct = (n: number, d: number) => (d ? (100 * n) / d : Number.NaN);

function remoteRow(name: string, group: string, params: Record<string, number>, m: RemoteMetrics): ResultRow {
  const frames = m.interpolated + m.extrapolated + m.held;
  return {
    name,
    group,
    unit: 'cm',
    params,
    ...summarize(m.errorsCm),
    extra: {
      interp_pct: pct(m.interpolated, frames),
      extrap_pct: pct(m.extrapolated, frames),
      held_pct: pct(m.held, frames),
      delay_ms: mean(m.delays),
      rot_p99_deg: summarize(m.rotErrorsDeg).p99,
      present_p99_cm: summarize(m.presentErrorsCm).p99,
    },
  };
}

const suite: BenchSuite = {
  name: 'predict',
  description:
    'Client prediction/reconciliation and remote-entity interpolation on seeded simulated links: @quiver/predict side by side with @geckos.io/snapshot-interpolation on the same traces (60 Hz ticks, 20 Hz snapshots, 8 remote entities, one predicted player).',
  async run(ctx: BenchContext): Promise<SuiteResult> {
    const all: Link[] = [];
    for (const rtt of [20, 100, 200])
      for (const jitter of [0, 10, 30]) for (const loss of [0, 0.02, 0.05]) all.push({ rtt, jitter, loss });
    const quickSet = new Set([
      'rtt20 j0 loss0',
      'rtt100 j10 loss0',
      'rtt100 j10 loss2',
      'rtt100 j10 loss5',
      'rtt100 j30 loss0',
      'rtt200 j30 loss5',
    ]);
    const links = ctx.quick ? all.filter((l) => quickSet.has(label(l))) : all;
    const durationMs = Number(ctx.args.duration ?? (ctx.quick ? 60_000 : 120_000));
    const rows: ResultRow[] = [];
    const results = new Map<string, RunResult>();
    for (const link of links) {
      ctx.progress(`${label(link)}: ${durationMs / 1000} s simulated`);
      const r = runLink(link, ctx.seed, durationMs);
      results.set(label(link), r);
      const group = label(link);
      const params = { rtt_ms: link.rtt, jitter_ms: link.jitter, loss_pct: link.loss * 100 };
      rows.push({
        name: 'quiver local (correction)',
        group,
        unit: 'cm',
        params,
        ...summarize(r.corrections),
        extra: {
          mispredict_pct: pct(r.mispredictions, r.reconciliations),
          filled_inputs: r.filled,
          display_p99_cm: summarize(r.localDisplayCm).p99,
        },
      });
      rows.push({
        name: 'quiver local, contact (correction)',
        group,
        unit: 'cm',
        params,
        ...summarize(r.contactCorrections),
        extra: {
          mispredict_pct: pct(r.contactMispredictions, r.contactReconciliations),
          mean_when_wrong_cm: mean(r.contactCorrections.filter((c) => c > 0)),
          display_p99_cm: summarize(r.contactDisplayCm).p99,
        },
      });
      rows.push({
        name: 'geckos-recipe local (display error)',
        group,
        unit: 'cm',
        params,
        ...summarize(r.recipeDisplayCm),
        extra: { display_p99_cm: summarize(r.recipeDisplayCm).p99 },
      });
      rows.push(remoteRow('quiver remote', group, params, r.quiver));
      rows.push(remoteRow('quiver remote (coverLoss: false)', group, params, r.quiverCover));
      rows.push(remoteRow('geckos remote', group, params, r.geckos));
    }
    const at = (k: string) => results.get(k);
    const ratios: Record<string, number> = {};
    const r5 = at('rtt100 j10 loss5');
    if (r5) {
      ratios.local_p99_correction_cm_rtt100_loss5 = summarize(r5.corrections).p99;
      ratios.local_mispredict_rate_rtt100_loss5 = r5.mispredictions / r5.reconciliations;
      ratios.contact_mean_correction_when_wrong_cm_rtt100_loss5 = mean(
        r5.contactCorrections.filter((c) => c > 0),
      );
      ratios.contact_mispredict_rate_rtt100_loss5 = r5.contactMispredictions / r5.contactReconciliations;
    }
    const r2 = at('rtt100 j10 loss2');
    if (r2) {
      ratios.remote_p99_error_vs_geckos_rtt100_loss2 =
        summarize(r2.quiver.errorsCm).p99 / summarize(r2.geckos.errorsCm).p99;
      ratios.remote_present_p99_error_vs_geckos_rtt100_loss2 =
        summarize(r2.quiver.presentErrorsCm).p99 / summarize(r2.geckos.presentErrorsCm).p99;
      ratios.remote_delay_vs_geckos_rtt100_loss2 = mean(r2.quiver.delays) / mean(r2.geckos.delays);
      const q = r2.quiver;
      ratios.remote_extrapolated_share_rtt100_loss2 =
        q.extrapolated / (q.interpolated + q.extrapolated + q.held);
      ratios.remote_p99_error_lowlatency_vs_geckos_rtt100_loss2 =
        summarize(r2.quiverCover.errorsCm).p99 / summarize(r2.geckos.errorsCm).p99;
      ratios.remote_present_p99_error_lowlatency_vs_geckos_rtt100_loss2 =
        summarize(r2.quiverCover.presentErrorsCm).p99 / summarize(r2.geckos.presentErrorsCm).p99;
      ratios.remote_interpolated_share_rtt100_loss2 =
        q.interpolated / (q.interpolated + q.extrapolated + q.held);
      ratios.local_display_p99_vs_geckos_recipe_rtt100_loss2 =
        summarize(r2.localDisplayCm).p99 / Math.max(1e-9, summarize(r2.recipeDisplayCm).p99);
    }
    const j30 = at('rtt100 j30 loss0');
    if (j30) {
      const q = j30.quiver;
      ratios.remote_interpolated_share_rtt100_jitter30_loss0 =
        q.interpolated / (q.interpolated + q.extrapolated + q.held);
    }
    const shown = ctx.quick ? links : links.filter((l) => l.jitter === 10);
    return {
      link: {
        model: 'SimLink (seeded; uniform jitter; Gilbert-Elliott loss, mean burst 1.5)',
        durationMs,
        warmupMs: WARMUP_MS,
        seed: ctx.seed,
      },
      rows,
      ratios,
      goals: {
        local_p99_correction_cm_rtt100_loss5: { op: '<', value: 1, note: 'deterministic simulation' },
        remote_p99_error_vs_geckos_rtt100_loss2: { op: '<', value: 1, note: 'error at the drawn time' },
        remote_interpolated_share_rtt100_jitter30_loss0: {
          op: '>=',
          value: 0.99,
          note: 'adaptive delay target',
        },
        remote_interpolated_share_rtt100_loss2: { op: '>=', value: 0.99, note: 'adaptive delay target' },
      },
      charts: [
        {
          file: 'remote-p99',
          title: 'Remote entities: p99 position error at the drawn time (cm)',
          categories: shown.map(label),
          series: [
            {
              name: 'quiver',
              values: shown.map((l) => summarize(results.get(label(l))!.quiver.errorsCm).p99),
            },
            {
              name: 'quiver coverLoss: false',
              values: shown.map((l) => summarize(results.get(label(l))!.quiverCover.errorsCm).p99),
            },
            {
              name: 'geckos',
              values: shown.map((l) => summarize(results.get(label(l))!.geckos.errorsCm).p99),
            },
          ],
          unit: 'cm',
          kind: 'bar',
        },
        {
          file: 'remote-delay',
          title: 'Remote entities: mean interpolation delay (ms)',
          categories: shown.map(label),
          series: [
            { name: 'quiver', values: shown.map((l) => mean(results.get(label(l))!.quiver.delays)) },
            {
              name: 'quiver coverLoss: false',
              values: shown.map((l) => mean(results.get(label(l))!.quiverCover.delays)),
            },
            { name: 'geckos', values: shown.map((l) => mean(results.get(label(l))!.geckos.delays)) },
          ],
          unit: 'ms',
          kind: 'bar',
        },
      ],
      notes: [
        'Remote error = |drawn position - ground truth at the server time the library says it draws| over every entity frame after a 6 s warm-up (the coverage quantile needs 100 snapshots); present error compares with the truth now (includes the interpolation delay). geckos frames where calcInterpolation() returns nothing keep the last pose (counted as held).',
        'quiver remote: InterpolationBuffer defaults (delay = max(interval + 3 * RFC 3550 jitter, frame-weighted p99 of the delay each snapshot needed, gaps from lost snapshots included), Hermite with parabolic finite-difference velocities, slerp, extrapolation <= 150 ms then a 40 ms half-life correction). "coverLoss: false" is the low-latency setting: the delay covers jitter only and lost snapshots are extrapolated through. Snapshots carry positions and rotations only, no velocities, for both libraries.',
        'Local: quiver predicts and reconciles (inputs sent 8x redundantly on the lossy channel; the server fills inputs lost for good). Correction = distance the present prediction moved on a server update (0 when right). Display error = |drawn - the player with zero latency|. "contact": the server alone shoves the player out of 1.5 m around remote entities, so contacts are real mispredictions; its display column is the p99 of the still-decaying visual offset (60 ms half-life). geckos has no prediction API; its example recipe (vault of own positions, nudge by offset/60 toward the newest snapshot) is run with perfectly synchronized clocks.',
      ],
    };
  },
};

export default suite;
