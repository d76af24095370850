import { spawn } from 'node:child_process';
import { createHash, createPrivateKey, sign, verify, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { createServer, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DevCertError,
  ensureDevCertificate,
  generateCertificate,
  MAX_VALIDITY_DAYS,
  subjectAltNames,
} from '@quiver/devcert';

const DAY = 86_400_000;

describe('generateCertificate', () => {
  it('makes an ECDSA P-256 X.509 v3 server certificate valid for at most 14 days', async () => {
    const now = Date.now();
    const c = await generateCertificate();
    const x = new X509Certificate(c.certPem);
    expect(x.publicKey.asymmetricKeyType).toBe('ec');
    expect(x.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    const from = Date.parse(x.validFrom);
    const to = Date.parse(x.validTo);
    expect(to - from).toBeLessThanOrEqual(MAX_VALIDITY_DAYS * DAY);
    expect(to - from).toBe(13 * DAY);
    // Starts in the past for clock skew, but covers now.
    expect(from).toBeLessThan(now);
    expect(to).toBeGreaterThan(now + 12 * DAY);
    expect(c.notAfter.getTime()).toBe(to);
    expect(c.notBefore.getTime()).toBe(from);
    expect(x.ca).toBe(false);
    // Self-signed (CA:false, so OpenSSL's checkIssued, which wants keyCertSign, does not apply).
    expect(x.issuer).toBe(x.subject);
    expect(x.verify(x.publicKey)).toBe(true);
    // Certificate and TBSCertificate SEQUENCEs (long-form lengths), then [0] EXPLICIT INTEGER 2: X.509 v3.
    expect(
      [...x.raw.subarray(0, 13)].map((b, i) => (i === 2 || i === 3 || i === 6 || i === 7 ? 0 : b)),
    ).toEqual([0x30, 0x82, 0, 0, 0x30, 0x82, 0, 0, 0xa0, 0x03, 0x02, 0x01, 0x02]);
    expect(x.toLegacyObject()).toMatchObject({ subject: { CN: 'localhost' } });
    expect(x.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
  });

  it('lists every host in subjectAltName as DNS or IP entries', async () => {
    const c = await generateCertificate({ hosts: ['localhost', 'example.test', '127.0.0.1', '::1'] });
    const x = new X509Certificate(c.certPem);
    expect(x.subjectAltName).toBe(
      'DNS:localhost, DNS:example.test, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1',
    );
    expect(subjectAltNames(x)).toEqual(['localhost', 'example.test', '127.0.0.1', '::1']);
    expect(x.checkHost('example.test')).toBe('example.test');
    expect(x.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(x.checkHost('other.test')).toBeUndefined();
  });

  it('hash is the SHA-256 of the DER certificate', async () => {
    const c = await generateCertificate();
    const x = new X509Certificate(c.certPem);
    const expected = createHash('sha256').update(x.raw).digest();
    expect(Buffer.from(c.certDer).equals(x.raw)).toBe(true);
    expect(Buffer.from(c.hash).equals(expected)).toBe(true);
    expect(c.hashHex).toBe(expected.toString('hex'));
    expect(x.fingerprint256.replaceAll(':', '').toLowerCase()).toBe(c.hashHex);
  });

  it('key matches the certificate (sign with the key, verify with the certificate)', async () => {
    const c = await generateCertificate();
    const other = await generateCertificate();
    const x = new X509Certificate(c.certPem);
    const key = createPrivateKey(c.keyPem);
    expect(x.checkPrivateKey(key)).toBe(true);
    const data = Buffer.from('quiver');
    const sig = sign('sha256', data, key);
    expect(verify('sha256', data, x.publicKey, sig)).toBe(true);
    expect(verify('sha256', data, new X509Certificate(other.certPem).publicKey, sig)).toBe(false);
  });

  it('each certificate has its own key and serial', async () => {
    const [a, b] = await Promise.all([generateCertificate(), generateCertificate()]);
    expect(a.hashHex).not.toBe(b.hashHex);
    expect(new X509Certificate(a.certPem).serialNumber).not.toBe(new X509Certificate(b.certPem).serialNumber);
  });

  it('refuses validity above 14 days and bad hosts', async () => {
    await expect(generateCertificate({ validityDays: 15 })).rejects.toBeInstanceOf(RangeError);
    await expect(generateCertificate({ validityDays: 0 })).rejects.toBeInstanceOf(RangeError);
    await expect(generateCertificate({ hosts: [] })).rejects.toBeInstanceOf(DevCertError);
    await expect(generateCertificate({ hosts: ['a b'] })).rejects.toBeInstanceOf(DevCertError);
    const c = await generateCertificate({ validityDays: 14 });
    expect(c.notAfter.getTime() - c.notBefore.getTime()).toBe(14 * DAY);
  });
});

describe('ensureDevCertificate', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'quiver-devcert-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes cert.pem, key.pem (0600), cert.sha256 and cert.json, then reuses them', async () => {
    const first = await ensureDevCertificate({ dir });
    expect(first.generated).toBe(true);
    expect(first.certPath).toBe(join(dir, 'cert.pem'));
    expect(first.keyPath).toBe(join(dir, 'key.pem'));
    expect(await readFile(first.certPath, 'utf8')).toBe(first.certPem);
    expect(await readFile(first.keyPath, 'utf8')).toBe(first.keyPem);
    expect((await stat(first.keyPath)).mode & 0o777).toBe(0o600);
    expect((await readFile(join(dir, 'cert.sha256'), 'utf8')).trim()).toBe(first.hashHex);
    expect(JSON.parse(await readFile(join(dir, 'cert.json'), 'utf8'))).toEqual({
      hashHex: first.hashHex,
      notAfter: first.notAfter.toISOString(),
    });

    const second = await ensureDevCertificate({ dir });
    expect(second.generated).toBe(false);
    expect(second.hashHex).toBe(first.hashHex);
    expect(Buffer.from(second.hash).equals(Buffer.from(first.hash))).toBe(true);
    expect(second.notAfter.getTime()).toBe(first.notAfter.getTime());
  });

  it('regenerates when the certificate expires within renewWithinMs', async () => {
    const first = await ensureDevCertificate({ dir });
    // 12.5 days later the 13-day certificate has less than one day left.
    const later = () => Date.now() + 12.5 * DAY;
    const renewed = await ensureDevCertificate({ dir, now: later });
    expect(renewed.generated).toBe(true);
    expect(renewed.hashHex).not.toBe(first.hashHex);
    expect(renewed.notAfter.getTime()).toBeGreaterThan(first.notAfter.getTime());
    // With a smaller renewal window the old one would still have been fine.
    const dir2 = await mkdtemp(join(tmpdir(), 'quiver-devcert-'));
    try {
      const a = await ensureDevCertificate({ dir: dir2 });
      const b = await ensureDevCertificate({ dir: dir2, now: later, renewWithinMs: 3_600_000 });
      expect(b.generated).toBe(false);
      expect(b.hashHex).toBe(a.hashHex);
    } finally {
      await rm(dir2, { recursive: true, force: true });
    }
  });

  it('regenerates an expired, corrupt, mismatched or host-missing certificate', async () => {
    const first = await ensureDevCertificate({ dir });
    const expired = await ensureDevCertificate({ dir, now: () => Date.now() + 20 * DAY });
    expect(expired.generated).toBe(true);

    await writeFile(join(dir, 'cert.pem'), 'garbage');
    const corrupt = await ensureDevCertificate({ dir });
    expect(corrupt.generated).toBe(true);

    // A key from another certificate (a half-finished write by another process looks like this).
    await writeFile(join(dir, 'key.pem'), first.keyPem);
    const mismatched = await ensureDevCertificate({ dir });
    expect(mismatched.generated).toBe(true);
    expect(new X509Certificate(mismatched.certPem).checkPrivateKey(createPrivateKey(mismatched.keyPem))).toBe(
      true,
    );

    const more = await ensureDevCertificate({ dir, hosts: ['localhost', 'game.test'] });
    expect(more.generated).toBe(true);
    expect(more.hosts).toEqual(['localhost', 'game.test']);

    await rm(join(dir, 'key.pem'));
    expect((await ensureDevCertificate({ dir, hosts: ['localhost'] })).generated).toBe(true);
  });

  it('concurrent callers end up with one consistent certificate', async () => {
    const results = await Promise.all(Array.from({ length: 6 }, () => ensureDevCertificate({ dir })));
    expect(results.filter((r) => r.generated)).toHaveLength(1);
    expect(new Set(results.map((r) => r.hashHex)).size).toBe(1);
    const onDisk = await ensureDevCertificate({ dir });
    expect(onDisk.generated).toBe(false);
    expect(onDisk.hashHex).toBe(results[0].hashHex);
  });

  it('two processes starting at once agree on one certificate', async () => {
    const run = () =>
      new Promise<string>((resolve, reject) => {
        const p = spawn(
          process.execPath,
          ['--import', 'tsx', '--conditions=quiver-source', 'scripts/certs.ts', '--dir', dir, '--json'],
          { cwd: join(import.meta.dirname, '../../..'), stdio: ['ignore', 'pipe', 'inherit'] },
        );
        let out = '';
        p.stdout.on('data', (d) => {
          out += d;
        });
        p.on('error', reject);
        p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}`))));
      });
    const outs = (await Promise.all([run(), run(), run()])).map(
      (o) => JSON.parse(o) as { hashHex: string; generated: boolean },
    );
    expect(new Set(outs.map((o) => o.hashHex)).size).toBe(1);
    expect(outs.filter((o) => o.generated)).toHaveLength(1);
    const final = await ensureDevCertificate({ dir });
    expect(final.hashHex).toBe(outs[0].hashHex);
  });

  it('takes over a lock abandoned by a dead process, and times out on a live one', async () => {
    const lock = join(dir, '.lock');
    await writeFile(lock, '999999');
    // A lock older than lockTimeoutMs is abandoned.
    const old = new Date(Date.now() - 60_000);
    await utimes(lock, old, old);
    const c = await ensureDevCertificate({ dir, lockTimeoutMs: 1_000, staleLockMs: 30_000 });
    expect(c.generated).toBe(true);
    expect(existsSync(lock)).toBe(false);

    // A fresh lock held by someone else: no certificate is generated behind its back.
    await writeFile(lock, '999999');
    await expect(
      ensureDevCertificate({ dir, hosts: ['other.test'], lockTimeoutMs: 300 }),
    ).rejects.toBeInstanceOf(DevCertError);
    // Reuse needs no lock.
    expect((await ensureDevCertificate({ dir, lockTimeoutMs: 300 })).generated).toBe(false);
  });

  it('serves a real TLS handshake to a client that trusts only this certificate', async () => {
    const cert = await ensureDevCertificate({ dir });
    const server = createServer({ cert: cert.certPem, key: cert.keyPem }, (_req, res) => res.end('quiver'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const get = (ca: string, servername?: string) =>
      new Promise<{ body: string; peerHash: string }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/', ca, servername, agent: false }, (res) => {
          let body = '';
          const raw = (res.socket as import('node:tls').TLSSocket).getPeerX509Certificate()?.raw;
          res.setEncoding('utf8');
          res.on('data', (d) => {
            body += d;
          });
          res.on('end', () =>
            resolve({ body, peerHash: raw ? createHash('sha256').update(raw).digest('hex') : '' }),
          );
        });
        req.on('error', reject);
        req.end();
      });
    try {
      const ok = await get(cert.certPem);
      expect(ok.body).toBe('quiver');
      expect(ok.peerHash).toBe(cert.hashHex);
      // By name too (SAN DNS:localhost), with the IP connection above checking the IP SAN.
      expect((await get(cert.certPem, 'localhost')).body).toBe('quiver');
      // A client pinning another certificate refuses the handshake.
      const other = await generateCertificate();
      await expect(get(other.certPem)).rejects.toThrow(/self.signed|unable to verify|certificate/i);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
