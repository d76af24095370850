/**
 * A throwaway certificate for the examples and tests: ECDSA P-256, valid 10 days, SAN localhost and 127.0.0.1,
 * which is what W3C WebTransport §6.2 `serverCertificateHashes` accepts.
 */
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface DevCert {
  cert: string;
  key: string;
  /** SHA-256 of the DER certificate. */
  hash: Uint8Array;
  hashHex: string;
}

export function makeDevCert(): DevCert {
  const dir = mkdtempSync(join(tmpdir(), 'quiver-wt-cert-'));
  try {
    const keyPath = join(dir, 'key.pem');
    const certPath = join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-days', '10', '-nodes',
        '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
        '-keyout', keyPath, '-out', certPath,
      ],
      { stdio: 'ignore' },
    );
    const cert = readFileSync(certPath, 'utf8');
    const key = readFileSync(keyPath, 'utf8');
    const hash = new Uint8Array(createHash('sha256').update(new X509Certificate(cert).raw).digest());
    return { cert, key, hash, hashHex: Buffer.from(hash).toString('hex') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
