import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runExample } from './run-example.js';

const file = fileURLToPath(new URL('../tictactoe.ts', import.meta.url));

describe('tic-tac-toe example', () => {
  it('plays a game in a private room: requests answered, illegal moves refused with typed errors', async () => {
    const { out, code } = await runExample(file);
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
