/**
 * Development certificates that browsers accept through W3C WebTransport §6.2 `serverCertificateHashes`.
 *
 * That option only pins certificates that are X.509 v3, ECDSA (Chromium: P-256) and valid for at most 14 days
 * (W3C WebTransport §4.4 "custom certificate requirements"), so the certificate is short-lived by design and
 * regenerated automatically before it expires.
 */
// @peculiar/x509 resolves its ASN.1 providers through tsyringe, which needs the Reflect metadata API; this must be
// evaluated before @peculiar/x509 (ES modules evaluate imports in order).
import 'reflect-metadata';
import {
  createHash,
  createPrivateKey,
  X509Certificate as NodeX509Certificate,
  randomBytes,
  webcrypto,
} from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as x509 from '@peculiar/x509';

const DAY_MS = 86_400_000;
/** W3C WebTransport §4.4: the whole validity period of a hash-pinned certificate must not exceed two weeks. */
export const MAX_VALIDITY_DAYS = 14;
/** notBefore is moved this far into the past so that a peer whose clock lags a little still accepts it. */
export const CLOCK_SKEW_MS = 3_600_000;

/** Hosts a development certificate covers unless told otherwise. */
export const DEFAULT_HOSTS: readonly string[] = ['localhost', '127.0.0.1', '::1'];

/** Options of {@link generateCertificate}. */
export interface GenerateCertificateOptions {
  /** DNS names and IP addresses for subjectAltName. Default: `localhost`, `127.0.0.1`, `::1`. */
  hosts?: readonly string[];
  /**
   * Days between notBefore and notAfter, including the clock-skew margin. Default 13; at most 14 (W3C
   * WebTransport §4.4), a RangeError otherwise.
   */
  validityDays?: number;
  /** Clock (ms since the epoch). Default `Date.now`. */
  now?: () => number;
}

/** Options of {@link ensureDevCertificate}: where the certificate lives and when it is renewed. */
export interface EnsureDevCertificateOptions extends GenerateCertificateOptions {
  /** Where `cert.pem`, `key.pem`, `cert.sha256` and `cert.json` live. Default: `<repo>/certs`. */
  dir?: string;
  /** Regenerate when the certificate expires within this many milliseconds. Default: one day. */
  renewWithinMs?: number;
  /** How long to wait for another process holding the directory's lock before a DevCertError. Default 30 000 ms. */
  lockTimeoutMs?: number;
  /**
   * A lock file older than this is considered abandoned (its process died mid-way) and removed. Default 30 000 ms;
   * generating takes milliseconds.
   */
  staleLockMs?: number;
}

/** A generated certificate, its key and its hash. */
export interface DevCertificate {
  /** The certificate, PEM. */
  certPem: string;
  /** PKCS #8 PEM. */
  keyPem: string;
  /** DER of the certificate. */
  certDer: Uint8Array;
  /**
   * SHA-256 of `certDer`: the value for `serverCertificateHashes: [{ algorithm: 'sha-256', value: hash }]`. Backed by
   * a plain `ArrayBuffer` (never shared), so it is a `BufferSource` as W3C WebTransport's dictionary types it.
   */
  hash: Uint8Array<ArrayBuffer>;
  /** `hash` as lower-case hex. */
  hashHex: string;
  /** Start of validity (an hour before generation, for clock skew). */
  notBefore: Date;
  /** End of validity: `notBefore` plus `validityDays`. */
  notAfter: Date;
  /** subjectAltName entries the certificate covers. */
  hosts: string[];
}

/** A development certificate as stored on disk by {@link ensureDevCertificate}. */
export interface DevCertificateFiles extends DevCertificate {
  /** Path of `cert.pem`. */
  certPath: string;
  /** Path of `key.pem`. */
  keyPath: string;
  /** Whether this call generated a new certificate (false: an existing one was loaded). */
  generated: boolean;
}

/** Raised for bad options or a lock that could not be taken; file damage is repaired, not raised. */
export class DevCertError extends Error {
  /** Always `DevCertError`. */
  override readonly name = 'DevCertError';
}

const subtle = webcrypto.subtle as SubtleCrypto;
const cryptoProvider = webcrypto as unknown as Crypto;

function validityMs(validityDays: number): number {
  if (!Number.isFinite(validityDays) || validityDays <= 0 || validityDays > MAX_VALIDITY_DAYS) {
    throw new RangeError(`validityDays must be in (0, ${MAX_VALIDITY_DAYS}], got ${validityDays}`);
  }
  return validityDays * DAY_MS;
}

function checkHosts(hosts: readonly string[]): string[] {
  if (hosts.length === 0) throw new DevCertError('hosts must not be empty');
  for (const h of hosts) {
    if (typeof h !== 'string' || h.length === 0 || /[\s/,]/.test(h))
      throw new DevCertError(`invalid host "${h}"`);
  }
  return [...new Set(hosts)];
}

/** X.509 serial numbers are positive and at most 20 octets (RFC 5280 §4.1.2.2). */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] & 0x7f) | 0x01;
  return bytes.toString('hex');
}

function toPem(label: string, der: ArrayBuffer | Uint8Array): string {
  const b64 = Buffer.from(der instanceof Uint8Array ? der : new Uint8Array(der)).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

function sha256(data: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(createHash('sha256').update(data).digest());
}

function hex(data: Uint8Array): string {
  return Buffer.from(data).toString('hex');
}

/** Generates a certificate and key in memory; nothing is written. */
export async function generateCertificate(opts: GenerateCertificateOptions = {}): Promise<DevCertificate> {
  const hosts = checkHosts(opts.hosts ?? DEFAULT_HOSTS);
  const totalMs = validityMs(opts.validityDays ?? 13);
  const now = (opts.now ?? Date.now)();
  // Whole seconds: X.509 UTCTime has no fractions, and the hash must match what was signed.
  const notBefore = new Date(Math.floor((now - Math.min(CLOCK_SKEW_MS, totalMs / 2)) / 1000) * 1000);
  const notAfter = new Date(notBefore.getTime() + totalMs);

  const keys = (await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair;
  const names = hosts.map((h) =>
    isIP(h) ? { type: 'ip' as const, value: h } : { type: 'dns' as const, value: h },
  );
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerial(),
      name: [{ CN: [hosts[0]] }, { O: ['Quiver development'] }],
      notBefore,
      notAfter,
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
        new x509.SubjectAlternativeNameExtension(names, false),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, cryptoProvider),
      ],
    },
    cryptoProvider,
  );
  const certDer = new Uint8Array(cert.rawData);
  const pkcs8 = await subtle.exportKey('pkcs8', keys.privateKey);
  const hash = sha256(certDer);
  return {
    certPem: toPem('CERTIFICATE', certDer),
    keyPem: toPem('PRIVATE KEY', pkcs8),
    certDer,
    hash,
    hashHex: hex(hash),
    notBefore,
    notAfter,
    hosts,
  };
}

/** Hosts listed in a node:crypto `subjectAltName` string (`DNS:localhost, IP Address:127.0.0.1, ...`). */
export function subjectAltNames(cert: NodeX509Certificate): string[] {
  const san = cert.subjectAltName;
  if (!san) return [];
  return san.split(/,\s*/).map((entry) => {
    const i = entry.indexOf(':');
    const value = entry.slice(i + 1);
    return isIP(value) === 6 ? normalizeIpv6(value) : value;
  });
}

/** Node prints IPv6 SANs uncompressed (`0:0:0:0:0:0:0:1`); compare through a canonical form. */
function normalizeIpv6(ip: string): string {
  return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
}

function canonicalHost(h: string): string {
  return isIP(h) === 6 ? normalizeIpv6(h) : h.toLowerCase();
}

/**
 * Parses PEMs and returns the certificate if it is usable: EC P-256, validity within 14 days, not yet expiring
 * within `renewWithinMs`, covering every host, and with a key that belongs to it (a half-written pair from a
 * concurrent writer fails this check and is regenerated or re-read).
 */
function loadValid(
  certPem: string,
  keyPem: string,
  hosts: string[],
  now: number,
  renewWithinMs: number,
): DevCertificate | undefined {
  let cert: NodeX509Certificate;
  try {
    cert = new NodeX509Certificate(certPem);
    const key = createPrivateKey(keyPem);
    if (!cert.checkPrivateKey(key)) return undefined;
  } catch {
    return undefined;
  }
  const pub = cert.publicKey;
  if (pub.asymmetricKeyType !== 'ec' || pub.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
    return undefined;
  const notBefore = new Date(cert.validFrom);
  const notAfter = new Date(cert.validTo);
  if (notAfter.getTime() - notBefore.getTime() > MAX_VALIDITY_DAYS * DAY_MS) return undefined;
  if (notBefore.getTime() > now) return undefined;
  if (notAfter.getTime() - now <= renewWithinMs) return undefined;
  const covered = new Set(subjectAltNames(cert).map(canonicalHost));
  if (!hosts.every((h) => covered.has(canonicalHost(h)))) return undefined;
  const certDer = new Uint8Array(cert.raw);
  const hash = sha256(certDer);
  return {
    certPem,
    keyPem,
    certDer,
    hash,
    hashHex: hex(hash),
    notBefore,
    notAfter,
    hosts: subjectAltNames(cert),
  };
}

async function readPair(dir: string): Promise<{ certPem: string; keyPem: string } | undefined> {
  try {
    const [certPem, keyPem] = await Promise.all([
      readFile(join(dir, 'cert.pem'), 'utf8'),
      readFile(join(dir, 'key.pem'), 'utf8'),
    ]);
    return { certPem, keyPem };
  } catch {
    return undefined;
  }
}

/** write to a unique temporary name, then rename: readers see the old or the new file, never a partial one. */
async function writeAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, data, { mode });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * A lock file created with O_EXCL, so that two processes starting at once do not both generate and then
 * interleave their renames (which would pair one's cert with the other's key).
 */
async function withLock<T>(
  dir: string,
  timeoutMs: number,
  staleMs: number,
  fn: () => Promise<T>,
): Promise<T> {
  const lockPath = join(dir, '.lock');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fh = await open(lockPath, 'wx', 0o600);
      await fh.writeFile(String(process.pid));
      await fh.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const age = await stat(lockPath).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0,
      );
      if (age > staleMs) {
        // The holder died without releasing; everything it wrote was renamed into place atomically.
        await rm(lockPath, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new DevCertError(`timed out waiting for ${lockPath}`);
      await sleep(25 + Math.random() * 50);
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lockPath, { force: true });
  }
}

/** `<repo>/certs`: the nearest ancestor of this module holding a workspaces package.json, else `./certs`. */
export function defaultCertDir(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(d, 'package.json');
    if (existsSync(pkg) && !d.includes('node_modules')) {
      try {
        const json = JSON.parse(readFileSync(pkg, 'utf8')) as { workspaces?: unknown };
        if (json.workspaces) return join(d, 'certs');
      } catch {
        // Unreadable package.json: keep walking up.
      }
    }
    const up = dirname(d);
    if (up === d) return resolve('certs');
    d = up;
  }
}

/**
 * Loads the development certificate from `dir`, or generates and writes a new one when it is missing,
 * unreadable, does not cover `hosts`, or expires within `renewWithinMs`. Safe to call from several processes
 * at once.
 */
export async function ensureDevCertificate(
  opts: EnsureDevCertificateOptions = {},
): Promise<DevCertificateFiles> {
  const dir = resolve(opts.dir ?? defaultCertDir());
  const hosts = checkHosts(opts.hosts ?? DEFAULT_HOSTS);
  validityMs(opts.validityDays ?? 13);
  const clock = opts.now ?? Date.now;
  const renewWithinMs = opts.renewWithinMs ?? DAY_MS;
  if (!(renewWithinMs >= 0)) throw new RangeError(`renewWithinMs must be >= 0, got ${renewWithinMs}`);
  const lockTimeoutMs = opts.lockTimeoutMs ?? 30_000;
  const staleLockMs = opts.staleLockMs ?? 30_000;
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');

  const tryLoad = async () => {
    const pair = await readPair(dir);
    return pair && loadValid(pair.certPem, pair.keyPem, hosts, clock(), renewWithinMs);
  };

  // Fast path without the lock: both files are replaced by rename, and a mismatched pair is rejected.
  const existing = await tryLoad();
  if (existing) return { ...existing, certPath, keyPath, generated: false };

  await mkdir(dir, { recursive: true });
  return withLock(dir, lockTimeoutMs, staleLockMs, async () => {
    // Another process may have written a fresh certificate while this one waited for the lock.
    const again = await tryLoad();
    if (again) return { ...again, certPath, keyPath, generated: false };
    const cert = await generateCertificate({ ...opts, hosts });
    await writeAtomic(keyPath, cert.keyPem, 0o600);
    await writeAtomic(certPath, cert.certPem, 0o644);
    await writeAtomic(join(dir, 'cert.sha256'), `${cert.hashHex}\n`, 0o644);
    await writeAtomic(
      join(dir, 'cert.json'),
      `${JSON.stringify({ hashHex: cert.hashHex, notAfter: cert.notAfter.toISOString() }, null, 2)}\n`,
      0o644,
    );
    return { ...cert, certPath, keyPath, generated: true };
  });
}

/** `serverCertificateHashes` entry for W3C WebTransport §6.2 (assignable to `ConnectOptions`). */
export function certificateHashOption(cert: Pick<DevCertificate, 'hash'>): {
  /** Always `sha-256` (W3C WebTransport §6.2). */
  algorithm: 'sha-256';
  /** SHA-256 of the DER certificate. */
  value: Uint8Array<ArrayBuffer>;
} {
  return { algorithm: 'sha-256', value: cert.hash };
}
