/**
 * The cross-node broadcast probe of the `cluster` suite, in a process of its own: the storm's clients saturate the
 * bench process (600 clients at 20 Hz), so broadcast latency measured there is its event-loop lag, not the path.
 * This process holds one client in a room of its own on each node (room type `probe`); each asks its room `shout-hz`
 * times a second to broadcast to every probe room of every node (`room.cluster.broadcast`). A client gets its own shout from its own
 * node (single-node broadcast) and the others' from theirs over Redis (cross-node): both on one clock, in one run.
 *
 * argv: endpoints (JSON), node names (JSON), shout Hz, seconds. stdout: one JSON line `{ nodes }` once joined;
 * then, for each line on stdin (`<seconds> [<shout Hz>]`, or empty: the argv's), one JSON line `{ local, cross }`
 * (milliseconds); it exits when stdin ends.
 */
import { createInterface } from 'node:readline';
import { type ClientRoom, RoomsClient } from '@quiver/rooms/client';
import { connectWebSocket } from '@quiver/websocket';
import { Shout, Shouted } from '../../packages/redis/test/fixtures/messages.ts';

const [endpointsArg = '[]', namesArg = '[]', hzArg = '5', secondsArg = '5'] = process.argv.slice(2);
const endpoints = JSON.parse(endpointsArg) as string[];
const names = JSON.parse(namesArg) as string[];
const hz = Number(hzArg);
const seconds = Number(secondsArg);

const client = new RoomsClient({ endpoint: endpoints, connectors: { websocket: connectWebSocket } });
const byNode = new Map<string, ClientRoom>();
const extra: ClientRoom[] = [];
// Placement spreads new rooms over the nodes; create until every node hosts one probe room.
for (let k = 0; k < 4 * names.length && byNode.size < names.length; k++) {
  const room = await client.create('probe');
  if (room.processId && !byNode.has(room.processId)) byNode.set(room.processId, room);
  else extra.push(room);
}
await Promise.all(extra.map((r) => r.leave()));
let local: number[] = [];
let cross: number[] = [];
let measuring = false;
for (const room of byNode.values()) {
  // A probe room that leaves (its node gone, a refused rejoin) stops shouting; said on stderr, not a crash.
  room.on('leave', (info: unknown) =>
    process.stderr.write(`probe room on ${room.processId} left: ${JSON.stringify(info)}\n`),
  );
  room.on('error', (err: unknown) =>
    process.stderr.write(`probe room on ${room.processId}: ${String(err)}\n`),
  );
  room.on(Shouted, (m) => {
    if (!measuring) return;
    (m.from === room.processId ? local : cross).push(performance.now() - Number(m.text));
  });
}
process.stdout.write(`${JSON.stringify({ nodes: [...byNode.keys()] })}\n`);

// Each line on stdin: one measurement (the suite asks once with the cluster idle, once under the storm's traffic).
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  local = [];
  cross = [];
  measuring = true;
  // Staggered over the period: shouts sent at the same instant reach every node and this process together, and
  // the ones from other nodes queued behind the local one (in each node's loop and in this one), which measured
  // this probe's own queueing as cross-node overhead (~20 ms at p50 with 48 clients).
  const [secondsIn, hzIn] = line.trim().split(/\s+/).map(Number);
  const period = 1000 / (hzIn || hz);
  const timers: ReturnType<typeof setInterval>[] = [];
  const starts = [...byNode.values()].map((room, k) =>
    setTimeout(
      () => {
        timers.push(
          setInterval(() => {
            if (!room.left) room.send(Shout, { text: String(performance.now()) });
          }, period),
        );
      },
      (k * period) / byNode.size,
    ),
  );
  await new Promise((r) => setTimeout(r, (secondsIn || seconds) * 1000));
  for (const t of starts) clearTimeout(t);
  for (const t of timers) clearInterval(t);
  // Shouts in flight arrive.
  await new Promise((r) => setTimeout(r, 1000));
  measuring = false;
  process.stdout.write(`${JSON.stringify({ local, cross })}\n`);
}
await Promise.all([...byNode.values()].map((r) => r.leave().catch(() => {})));
process.exit(0);
