/**
 * An emulated link by hand: creates the client and server namespaces, prints their names and addresses, and keeps
 * the link until Ctrl-C (or EOF). Lines on stdin change it live (`loss=0.05 delayMs=30`, `stats`).
 *
 *   npx tsx scripts/netem/link.ts --delay 25 [--jitter 2] [--loss 0.01] [--burst 3] [--rate 10] [--seed 1]
 *   ip netns exec <server-ns> node server.js   # in another shell; the server listens on 198.18.0.2
 */
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { createLink, type LinkParams, LinkUnavailableError } from '../../bench/lib/link.ts';

const { values } = parseArgs({
  options: {
    delay: { type: 'string' },
    jitter: { type: 'string' },
    loss: { type: 'string' },
    burst: { type: 'string' },
    rate: { type: 'string' },
    seed: { type: 'string' },
  },
});

function arg(name: keyof typeof values): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (!Number.isFinite(v)) throw new RangeError(`--${name} needs a number`);
  return v;
}

const params: LinkParams = {
  delayMs: arg('delay') ?? 25,
  jitterMs: arg('jitter'),
  loss: arg('loss'),
  burst: arg('burst'),
  rateMbit: arg('rate'),
  seed: arg('seed'),
};

try {
  const link = await createLink(params);
  process.stdout.write(
    `client namespace ${link.clientNs} (${link.clientAddr}), server namespace ${link.serverNs} (${link.serverAddr})\n` +
      `parameters ${JSON.stringify(params)}; type "key=value ..." to change them, "stats", or Ctrl-C to tear down\n`,
  );
  const rl = createInterface({ input: process.stdin });
  const done = new Promise<void>((resolve) => rl.once('close', resolve));
  process.once('SIGINT', () => rl.close());
  // Commands run one after another, and EOF waits for the last one.
  let chain = Promise.resolve();
  rl.on('line', (line) => {
    chain = chain.then(async () => {
      try {
        if (line.trim() === 'stats') {
          process.stdout.write(`${JSON.stringify(await link.stats())}\n`);
          return;
        }
        const p: Record<string, number> = {};
        for (const kv of line.trim().split(/\s+/).filter(Boolean)) {
          const [k, v] = kv.split('=');
          p[k] = Number(v);
        }
        await link.setParams(p as Partial<LinkParams>);
        process.stdout.write('ok\n');
      } catch (e) {
        process.stdout.write(`error: ${e instanceof Error ? e.message : e}\n`);
      }
    });
  });
  await done;
  await chain;
  await link.close();
} catch (e) {
  if (e instanceof LinkUnavailableError) {
    process.stderr.write(`${e.message}\n`);
    process.exitCode = 2;
  } else throw e;
}
