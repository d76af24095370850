/**
 * `npm run certs [-- --dir <path>] [--json]`: makes sure a valid development certificate exists (generating it
 * when missing or expiring within a day) and prints where it is, its SHA-256 hash and its expiry.
 */
import { parseArgs } from 'node:util';
import { ensureDevCertificate } from '@quiver/devcert';

const { values } = parseArgs({
  options: {
    dir: { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (values.help) {
  console.log('usage: npm run certs [-- --dir <path>] [--json]');
  process.exit(0);
}

const cert = await ensureDevCertificate(values.dir ? { dir: values.dir } : {});
if (values.json) {
  console.log(
    JSON.stringify({
      certPath: cert.certPath,
      keyPath: cert.keyPath,
      hashHex: cert.hashHex,
      notAfter: cert.notAfter.toISOString(),
      generated: cert.generated,
    }),
  );
} else {
  const days = ((cert.notAfter.getTime() - Date.now()) / 86_400_000).toFixed(1);
  console.log(`${cert.generated ? 'generated' : 'reusing'} development certificate`);
  console.log(`  cert:    ${cert.certPath}`);
  console.log(`  key:     ${cert.keyPath}`);
  console.log(`  sha-256: ${cert.hashHex}`);
  console.log(`  expires: ${cert.notAfter.toISOString()} (in ${days} days)`);
  console.log(`  hosts:   ${cert.hosts.join(', ')}`);
}
