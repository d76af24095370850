import { describe, expect, it } from 'vitest';
import { QuiverTransportError, streamErrorCodeOf } from '@quiver/transport';

describe('streamErrorCodeOf', () => {
  it('reads the code of a WebTransportError-shaped reason and defaults to 0', () => {
    expect(streamErrorCodeOf(new QuiverTransportError('x', { streamErrorCode: 42 }))).toBe(42);
    expect(streamErrorCodeOf(new Error('plain'))).toBe(0);
    expect(streamErrorCodeOf({ streamErrorCode: 2 ** 32 })).toBe(0);
  });
});
