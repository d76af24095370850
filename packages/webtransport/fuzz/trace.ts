/**
 * Prints what an H3Connection does with a fuzz script, op by op: for reading the reproducers of the h3-* and
 * wt-* targets. `npx tsx --conditions=quiver-source packages/webtransport/fuzz/trace.ts <file.hex|hex> [server|client] [split]`
 */
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { type Checker, drive } from './h3-driver.js';
import { chunkings } from './targets.js';

const {
  positionals: [arg, roleArg = 'server', mode],
} = parseArgs({ allowPositionals: true, options: {} });
if (!arg) {
  console.error('usage: trace.ts <file.hex|hex> [server|client] [split]');
  process.exit(2);
}
const hex = (existsSync(arg) ? readFileSync(arg, 'utf8') : arg).replace(/[^0-9a-f]/gi, '');
const input = new Uint8Array(Buffer.from(hex, 'hex'));
const role = roleArg === 'client' ? 'client' : 'server';
const split = mode === 'split' ? (data: Uint8Array) => chunkings(data, 2)[data[0] & 1] : undefined;
const fmt = (v: unknown): string =>
  JSON.stringify(v, (_k, x) =>
    typeof x === 'bigint'
      ? `0x${x.toString(16)}`
      : x instanceof Uint8Array
        ? Buffer.from(x).toString('hex')
        : x,
  );

let checker: Checker | undefined;
let events = 0;
let commands = 0;
const flush = (): void => {
  if (!checker) return;
  for (const c of checker.commands.slice(commands)) console.log(`    cmd   ${fmt(c)}`);
  for (const e of checker.events.slice(events)) console.log(`    event ${fmt(e)}`);
  commands = checker.commands.length;
  events = checker.events.length;
};
try {
  drive(role, input, {
    split,
    onStep: (c, op) => {
      checker = c;
      console.log(`op 0x${op.toString(16)}`);
      flush();
    },
  });
  console.log('ok');
} catch (err) {
  console.log(`op (failing)`);
  flush();
  console.log(String(err instanceof Error ? err.stack : err));
  process.exitCode = 1;
}
