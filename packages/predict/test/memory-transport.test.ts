/**
 * Prediction over the memory transport's datagrams (its seeded link model: delay, jitter, loss, reordering) under a
 * ManualClock: inputs go up redundantly, states come down, and the client ends bit for bit on the server's state.
 */
import { createMemoryPair, createRng, ManualClock } from '@quiver/transport';
import { describe, expect, it } from 'vitest';
import { InputReceiver, InputSender, Predictor } from '../src/index.js';
import { inputStream, neutralInput, type PlayerState, playerCodec, playerSim, sameBits } from './player.js';

const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

function encodeState(s: PlayerState, ack: number): Uint8Array {
  const bytes = new Uint8Array(24);
  const v = new DataView(bytes.buffer);
  v.setInt32(0, ack, true);
  for (const [i, n] of [s.x, s.z, s.vx, s.vz, s.yaw].entries()) v.setFloat32(4 + 4 * i, n, true);
  return bytes;
}
function decodeState(bytes: Uint8Array): { ack: number; state: PlayerState } {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const f = (i: number) => v.getFloat32(4 + 4 * i, true);
  return { ack: v.getInt32(0, true), state: { x: f(0), z: f(1), vx: f(2), vz: f(3), yaw: f(4) } };
}

async function drain(readable: ReadableStream<Uint8Array>, into: Uint8Array[]): Promise<void> {
  const reader = readable.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    into.push(value);
  }
}

describe('prediction over the memory transport', () => {
  it('converges bit for bit over lossy, jittery datagrams', async () => {
    const clock = new ManualClock();
    const { client, server } = createMemoryPair({
      clock,
      seed: 42,
      link: { delayMs: 60, jitterMs: 25, lossRate: 0.1, reorderRate: 0.05 },
    });
    await Promise.all([client.ready, server.ready]);
    const upQueue: Uint8Array[] = [];
    const downQueue: Uint8Array[] = [];
    const serverReading = drain(server.datagrams.readable, upQueue).catch(() => {});
    const clientReading = drain(client.datagrams.readable, downQueue).catch(() => {});
    const up = client.datagrams.writable.getWriter();
    const down = server.datagrams.writable.getWriter();

    const sender = new InputSender(playerCodec, { redundancy: 6 });
    const receiver = new InputReceiver(playerCodec, neutralInput);
    const start: PlayerState = { x: 0, z: 0, vx: 0, vz: 0, yaw: 0 };
    // States cross the wire as f32, which the simulation already rounds to: no precision is lost.
    const predictor = new Predictor(playerSim, start, { position: (s) => ({ x: s.x, y: 0, z: s.z }) });
    let serverState = start;
    const next = inputStream(createRng(7).next);
    const INPUTS = 900;
    let tick = 0;
    for (; tick < 5000; tick++) {
      for (const bytes of upQueue.splice(0))
        for (const { input } of receiver.receive(bytes)) serverState = playerSim.step(serverState, input);
      if (tick % 3 === 0 && receiver.lastSeq >= 0)
        void down.write(encodeState(serverState, receiver.lastSeq));
      for (const bytes of downQueue.splice(0)) {
        const { ack, state } = decodeState(bytes);
        predictor.reconcile(state, ack);
        sender.ack(ack);
      }
      if (sender.nextSeq < INPUTS) {
        const { seq, input } = sender.capture(next());
        predictor.apply(seq, input);
      } else if (predictor.ackSeq === INPUTS - 1) break;
      const packet = sender.packet();
      if (packet) void up.write(packet);
      clock.advance(playerSim.tickMs);
      await flush();
    }
    expect(predictor.ackSeq).toBe(INPUTS - 1);
    expect(sameBits(predictor.state, serverState)).toBe(true);
    // The link really lost input datagrams; redundancy made the inputs survive.
    const sent = (await client.getStats()).datagrams.sent;
    const received = (await server.getStats()).datagrams.received;
    expect(sent - received).toBeGreaterThan(50);
    expect(receiver.stats.applied).toBe(INPUTS);
    client.close();
    server.close();
    clock.runAll();
    await Promise.all([serverReading, clientReading]);
  });
});
