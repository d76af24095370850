import { createHash, X509Certificate } from 'node:crypto';

/** W3C WebTransport §4.4 "custom certificate requirements": a hash-pinned certificate is valid at most 2 weeks. */
const MAX_PINNED_VALIDITY_MS = 14 * 86_400_000;

/** The SHA-256 to advertise for `serverCertificateHashes`, or `null` and why browsers would refuse it. */
export type CertificatePin = { hash: Uint8Array; reason?: undefined } | { hash: null; reason: string };

/**
 * Whether browsers accept `certPem` through `serverCertificateHashes` (W3C WebTransport §4.4: an X.509v3
 * certificate with an ECDSA secp256r1 key, valid now, whose whole validity period is at most two weeks), and
 * then the SHA-256 of its DER (§6.2). A CA-signed certificate (typically 90 days, often RSA) is not pinnable:
 * advertising its hash would make browsers refuse the connection instead of validating it against their CAs.
 */
export function certificatePin(certPem: string, now = Date.now()): CertificatePin {
  const cert = new X509Certificate(certPem);
  const key = cert.publicKey;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType !== 'ec' || curve !== 'prime256v1') {
    return {
      hash: null,
      reason: `its key is ${key.asymmetricKeyType}${curve ? ` ${curve}` : ''}, not ECDSA P-256`,
    };
  }
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  if (to - from > MAX_PINNED_VALIDITY_MS) {
    return {
      hash: null,
      reason: `it is valid for ${Math.round((to - from) / 86_400_000)} days, more than 14`,
    };
  }
  if (now < from || now > to) return { hash: null, reason: 'it is not valid now' };
  return { hash: new Uint8Array(createHash('sha256').update(cert.raw).digest()) };
}
