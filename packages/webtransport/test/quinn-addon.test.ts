/**
 * The quinn addon (`npm run build:native`) loads in Node through hand-declared N-API, and its loopback self-test
 * (high-level quinn API) completes a handshake with a Quiver certificate (ECDSA P-256 from @quiver/devcert), takes
 * the server's connection at 0.5-RTT and echoes an RFC 9221 datagram. Skipped when the addon is not built.
 */
import { generateCertificate } from '@quiver/devcert';
import { describe, expect, it } from 'vitest';
import { loadQuinnAddon } from '../src/node/quinn-engine.js';

const addon = loadQuinnAddon();

describe.skipIf(!addon)('quinn addon (built by npm run build:native)', () => {
  it('reports its crates and that the engine is ready', () => {
    const info = JSON.parse(addon!.info());
    expect(info).toMatchObject({ quinn: '0.9', rustls: '0.20', engineReady: true });
  });

  it('runs a quinn handshake and datagram echo on loopback with a devcert certificate', async () => {
    const c = await generateCertificate({ hosts: ['localhost', '127.0.0.1'], validityDays: 10 });
    const r = JSON.parse(addon!.selfTest(c.certPem, c.keyPem));
    expect(r.serverHalfRtt).toBe(true);
    expect(r.alpn).toBe('h3');
    expect(r.maxDatagramSize).toBeGreaterThan(1000);
  });

  it('throws a JavaScript error, not a crash, for bad certificate input', () => {
    expect(() => addon!.selfTest('not a pem', 'nor this')).toThrow(/no certificate/);
    expect(() => (addon as unknown as { selfTest(): string }).selfTest()).toThrow(/two arguments/);
  });
});
