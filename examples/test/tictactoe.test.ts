import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const file = fileURLToPath(new URL('../tictactoe.ts', import.meta.url));

describe('tic-tac-toe example', () => {
  it('plays a game in a private room: requests answered, illegal moves refused with typed errors', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=quiver-source', file], {
      cwd: root,
      env: { ...process.env, PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    clearTimeout(timer);
    expect(out.trim().split('\n')).toEqual([
      'rooms listed: 0',
      "a stranger's joinOrCreate went to a new room",
      'alice plays 4',
      'alice plays 0: refused, not-your-turn',
      'bob plays 4: refused, cell-taken',
      'bob plays 9: refused, validation',
      'bob plays 0',
      'alice plays 2',
      'bob plays 6',
      'alice plays 3',
      'bob plays 5',
      'alice plays 1',
      'bob plays 8',
      'alice plays 7',
      'bob plays 7: refused, game-over',
      'result: X wins',
    ]);
    expect(code).toBe(0);
  });
});
