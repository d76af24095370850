/**
 * What @fails-components/webtransport 1.6.8 does where the conformance suite asks for more (see
 * KNOWN_LIBRARY_FAILURES in conformance.test.ts and README.md). These assert the library's present behaviour through
 * the adapter: if a release fixes one, its test fails and the evaluation should be redone.
 */
import { QuiverTransportError } from '@quiver/transport';
import { afterEach, describe, expect, it } from 'vitest';
import { readError, type Rig, rig } from './helpers.js';

let r: Rig | undefined;
afterEach(async () => {
  await r?.close();
  r = undefined;
});

async function openPair(rg: Rig) {
  const client = rg.connect('/x');
  const incoming = await rg.next();
  const server = incoming.accept();
  server.closed.catch(() => {});
  await Promise.all([client.ready, server.ready]);
  return { client, server };
}

describe('library limitations (asserted as they are, 1.6.8)', () => {
  it('sends a reset code above 255 as 255 (lib/stream.js clamps abort reasons)', async () => {
    r = await rig();
    const { client, server } = await openPair(r);
    const stream = await server.createBidirectionalStream();
    const writer = stream.writable.getWriter();
    await writer.write(new Uint8Array([1]));
    const incoming = await client.incomingBidirectionalStreams.getReader().read();
    const reading = readError(incoming.value!.readable);
    await writer.abort(new QuiverTransportError('big code', { streamErrorCode: 3_000_000_000 }));
    const error = (await reading) as QuiverTransportError;
    expect(error.source).toBe('stream');
    expect(error.streamErrorCode).toBe(255);
    client.close();
    await client.closed;
  });

  it('sends a STOP_SENDING code above 255 as 255 (lib/stream.js clamps cancel reasons)', async () => {
    r = await rig();
    const { client, server } = await openPair(r);
    const stream = await client.createBidirectionalStream();
    const cw = stream.writable.getWriter();
    await cw.write(new Uint8Array([1]));
    const serverStream = (await server.incomingBidirectionalStreams.getReader().read()).value!;
    await serverStream.readable.cancel(new QuiverTransportError('stop', { streamErrorCode: 300 }));
    let error: unknown;
    for (let i = 0; i < 1000 && !error; i++) {
      try {
        await cw.write(new Uint8Array(1024));
        await new Promise((resolve) => setTimeout(resolve, 1));
      } catch (e) {
        error = e;
      }
    }
    expect((error as QuiverTransportError).streamErrorCode).toBe(255);
    client.close();
    await client.closed;
  });

  it('answers reject() with the status but no reason (the library sends an empty body)', async () => {
    r = await rig();
    const client = r.connect('/x');
    (await r.next()).reject(401, 'token expired');
    const error = (await client.ready.then(
      () => undefined,
      (e: unknown) => e,
    )) as Error;
    expect(error).toBeInstanceOf(QuiverTransportError);
    expect(error.message).toContain('401');
    expect(error.message).not.toContain('token expired');
  });
});
