import { createRng } from '@quiver/transport';
import { describe, expect, it } from 'vitest';
import { InputReceiver, InputSender, Predictor, SimLink } from '../src/index.js';
import {
  inputStream,
  neutralInput,
  type PlayerInput,
  type PlayerState,
  playerCodec,
  playerSim,
  sameBits,
} from './player.js';

interface StateMsg {
  state: PlayerState;
  ack: number;
}

interface RunResult {
  predicted: PlayerState;
  server: PlayerState;
  ackSeq: number;
  lastSeq: number;
  pending: number;
  mispredictions: number;
  filled: number;
  lostUp: number;
  maxCorrection: number;
  invariantBroken: number;
}

const start: PlayerState = { x: 0, z: 0, vx: 0, vz: 0, yaw: 0 };

/** Client and server on two seeded links; the client stops making inputs after `inputs` ticks and runs until acked. */
function run(seed: number, inputs: number): RunResult {
  const r = createRng(seed).next;
  const linkOpts = {
    delayMs: 5 + r() * 150,
    jitterMs: r() * 40,
    lossRate: r() * 0.25,
    meanBurstLength: 1 + r() * 4,
  };
  const redundancy = 1 + Math.floor(r() * 8);
  const up = new SimLink<Uint8Array>({ ...linkOpts, seed: seed * 2 + 1 });
  const down = new SimLink<StateMsg>({ ...linkOpts, seed: seed * 2 + 2 });
  const sender = new InputSender(playerCodec, { redundancy });
  const receiver = new InputReceiver(playerCodec, neutralInput);
  const predictor = new Predictor(playerSim, start, { position: (s) => ({ x: s.x, y: 0, z: s.z }) });
  const next = inputStream(createRng(seed + 1000).next);
  let server = start;
  let captured = 0;
  let invariantBroken = 0;
  const applied: PlayerInput[] = [];
  const tickMs = playerSim.tickMs;
  for (let tick = 0; tick < 100_000; tick++) {
    const now = tick * tickMs;
    // Server: apply inputs as they arrive; send its state every third tick (20 Hz) on the lossy channel.
    for (const { payload } of up.receive(now)) {
      for (const { input } of receiver.receive(payload)) server = playerSim.step(server, input);
    }
    if (tick % 3 === 0) down.send(now, { state: server, ack: receiver.lastSeq });
    // Client.
    for (const { payload } of down.receive(now)) {
      if (payload.ack >= 0) {
        predictor.reconcile(payload.state, payload.ack);
        sender.ack(payload.ack);
        // The contract, checked independently after every update: the present prediction is the newest server
        // state advanced through every input it has not acknowledged yet.
        if (payload.ack >= predictor.ackSeq) {
          const expected = playerSim.run(payload.state, applied.slice(payload.ack + 1));
          if (!sameBits(predictor.state, expected)) invariantBroken++;
        }
      }
    }
    if (captured < inputs) {
      const { seq, input } = sender.capture(next());
      predictor.apply(seq, input);
      applied[seq] = input;
      captured++;
    } else if (predictor.ackSeq === inputs - 1) {
      break;
    }
    const packet = sender.packet();
    if (packet) up.send(now, packet);
    predictor.smooth(tickMs);
  }
  return {
    predicted: predictor.state,
    server,
    ackSeq: predictor.ackSeq,
    lastSeq: inputs - 1,
    pending: predictor.pendingCount,
    mispredictions: predictor.stats.mispredictions,
    filled: receiver.stats.filled,
    lostUp: up.stats.lost,
    maxCorrection: predictor.stats.maxCorrection,
    invariantBroken,
  };
}

describe('prediction and reconciliation', () => {
  it('converges bit for bit to the server state for random inputs on random lossy links (60 seeds)', () => {
    let corrected = 0;
    let withLoss = 0;
    for (let seed = 1; seed <= 60; seed++) {
      const res = run(seed, 600);
      expect(res.ackSeq, `seed ${seed}`).toBe(res.lastSeq);
      expect(res.pending, `seed ${seed}`).toBe(0);
      expect(res.invariantBroken, `seed ${seed}`).toBe(0);
      expect(sameBits(res.predicted, res.server), `seed ${seed}: ${JSON.stringify(res)}`).toBe(true);
      if (res.lostUp > 0) withLoss++;
      if (res.mispredictions > 0) {
        // Only an input the server had to invent (every packet carrying it was lost) can make it disagree.
        expect(res.filled, `seed ${seed}`).toBeGreaterThan(0);
        corrected++;
      }
      if (res.filled === 0) {
        // Every input reached the server: a deterministic simulation never mispredicts.
        expect(res.mispredictions, `seed ${seed}`).toBe(0);
        expect(res.maxCorrection, `seed ${seed}`).toBe(0);
      }
    }
    // The seeds must exercise both paths, or the test proves less than it claims.
    expect(withLoss).toBeGreaterThan(40);
    expect(corrected).toBeGreaterThan(3);
  });

  it('smooths a correction over frames and snaps a teleport', () => {
    const p = new Predictor(playerSim, start, {
      position: (s) => ({ x: s.x, y: 0, z: s.z }),
      smoothingHalfLifeMs: 50,
      snapDistance: 3,
    });
    const input: PlayerInput = { moveX: 127, moveZ: 0, yaw: 0, sprint: false };
    for (let seq = 0; seq < 10; seq++) p.apply(seq, input);
    const shownBefore = p.renderPosition();
    // The server says the player was pushed 1 m along z after input 4.
    let s = start;
    for (let i = 0; i < 5; i++) s = playerSim.step(s, input);
    const c = p.reconcile({ ...s, z: s.z + 1 }, 4);
    expect(c?.snapped).toBe(false);
    expect(c?.distance).toBeCloseTo(1, 5);
    expect(c?.replayed).toBe(5);
    // The view has not jumped yet; the state has.
    expect(p.renderPosition().z).toBeCloseTo(shownBefore.z, 9);
    expect(p.state.z).toBeCloseTo(1, 5);
    p.smooth(50);
    expect(p.visualOffset.z).toBeCloseTo(-0.5, 5);
    for (let i = 0; i < 40; i++) p.smooth(16);
    expect(p.visualOffset.z).toBe(0);
    expect(p.renderPosition().z).toBe(p.state.z);
    // A teleport: 10 m away.
    const t = p.reconcile({ ...p.state, x: p.state.x + 10 }, 9);
    expect(t?.snapped).toBe(true);
    expect(p.renderPosition().x).toBe(p.state.x);
    expect(p.stats).toMatchObject({ mispredictions: 2, snaps: 1, reconciliations: 2 });
    // Stale states (reordered datagrams) are ignored and counted.
    expect(p.reconcile(start, 3)).toBeUndefined();
    expect(p.stats.staleStates).toBe(1);
  });

  it('rejects non-increasing input seqs and bounds the pending inputs', () => {
    const p = new Predictor(playerSim, start, { position: (s) => ({ x: s.x, y: 0, z: s.z }), maxPending: 4 });
    p.apply(0, neutralInput);
    expect(() => p.apply(0, neutralInput)).toThrow(RangeError);
    for (let seq = 1; seq < 10; seq++) p.apply(seq, neutralInput);
    expect(p.pendingCount).toBe(4);
    expect(p.stats.droppedInputs).toBe(6);
    expect(
      () => new Predictor(playerSim, start, { position: () => ({ x: 0, y: 0, z: 0 }), maxPending: 0 }),
    ).toThrow(RangeError);
  });
});
