/**
 * `npm run smoke:install [-- --keep] [--json <file>]`: Quiver installed as a user installs it. Packs every public
 * package (`npm pack`, which builds `dist/` on `prepack`), installs the tarballs into a fresh app in a temporary
 * folder outside the repository (third-party packages come from the npm registry), and in that app:
 *
 * - typechecks the README quick start with `skipLibCheck: false` for Node, compiles it with `tsc` and runs it with
 *   plain `node` (no tsx, no custom condition): over WebTransport, then with the native QUIC binding hidden (as on
 *   a platform without a prebuilt one) over WebSocket, where the server must log exactly one warning;
 * - typechecks a browser client with a browser tsconfig (`lib: DOM`, no Node types, `skipLibCheck: false`);
 * - bundles that client with esbuild for the browser (a Node import fails the bundle), gzips it and holds the
 *   budget: session + native WebTransport client at most 20 KB gzipped.
 *
 * Prints a table of packed sizes and bundle sizes; `--json` writes them to a file.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';

const { values } = parseArgs({
  options: {
    keep: { type: 'boolean', default: false },
    json: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log('usage: npm run smoke:install [-- --keep] [--json <file>]');
  process.exit(0);
}

/** Gzipped bytes allowed for `connect` + `defineMessage` + the native WebTransport connector, minified. */
// Issue #13's budget for the default browser client; optional parts (persisted queue, Worker host, tracing) must
// stay out of it, which is what this holds.
const BUDGET_SESSION_NATIVE_WT = 20 * 1024;
const root = fileURLToPath(new URL('..', import.meta.url));

interface Run {
  code: number | null;
  out: string;
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}, timeoutMs = 300_000) {
  return new Promise<Run>((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

async function must(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await run(cmd, args, cwd, env);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) exited ${r.code}:\n${r.out}`);
  return r.out;
}

function check(ok: boolean, what: string, detail = ''): void {
  if (!ok) throw new Error(`FAILED: ${what}${detail ? `\n${detail}` : ''}`);
  console.log(`ok: ${what}`);
}

const versionOf = async (pkg: string) =>
  JSON.parse(await readFile(join(root, 'node_modules', pkg, 'package.json'), 'utf8')).version as string;

const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;

// --- pack ---------------------------------------------------------------------------------------------------
const work = await mkdtemp(join(tmpdir(), 'quiver-smoke-'));
const tarballs = join(work, 'tarballs');
const app = join(work, 'app');
await mkdir(tarballs);
await mkdir(app);
console.log(`working in ${work}`);

interface Packed {
  name: string;
  file: string;
  size: number;
  unpackedSize: number;
  files: number;
}
const packed: Packed[] = [];
for (const dir of (await readdir(join(root, 'packages'))).sort()) {
  const pj = JSON.parse(await readFile(join(root, 'packages', dir, 'package.json'), 'utf8'));
  if (pj.private) continue;
  const out = await must(
    'npm',
    ['pack', '--json', '--pack-destination', tarballs],
    join(root, 'packages', dir),
  );
  const info = JSON.parse(out.slice(out.indexOf('[')))[0];
  packed.push({
    name: info.name,
    file: info.filename,
    size: info.size,
    unpackedSize: info.unpackedSize,
    files: info.entryCount,
  });
  check(
    info.files.some((f: { path: string }) => f.path === 'dist/index.d.ts') &&
      info.files.some((f: { path: string }) => f.path === 'dist/index.js') &&
      !info.files.some(
        (f: { path: string }) => f.path.endsWith('.tsbuildinfo') || f.path.startsWith('test/'),
      ),
    `${info.name} packs dist/index.js and its declarations, no build info or tests`,
  );
}

// --- a fresh app ----------------------------------------------------------------------------------------------
const quiverDeps = Object.fromEntries(packed.map((p) => [p.name, `file:../tarballs/${p.file}`]));
await writeFile(
  join(app, 'package.json'),
  `${JSON.stringify(
    {
      name: 'quiver-smoke-app',
      private: true,
      type: 'module',
      dependencies: { ...quiverDeps, fastify: `^${await versionOf('fastify')}` },
      devDependencies: {
        '@types/node': `^${await versionOf('@types/node')}`,
        esbuild: `^${await versionOf('esbuild')}`,
        typescript: `^${await versionOf('typescript')}`,
      },
      // The packages depend on each other by version: take those from the tarballs too, never from a registry.
      overrides: Object.fromEntries(packed.map((p) => [p.name, `$${p.name}`])),
    },
    null,
    2,
  )}\n`,
);
await must('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline'], app);

// The README's session quick start ("Without rooms"), exactly: the packages this app installs. The rooms quick start
// above it runs in the repository (examples/test).
const readme = await readFile(join(root, 'README.md'), 'utf8');
const start = readme.indexOf(
  "```ts\nimport quiver from '@quiver/fastify';",
  readme.indexOf('### Without rooms'),
);
check(readme.includes('### Without rooms') && start >= 0, 'README has the session quick start');
const quickstart = readme.slice(start + 6, readme.indexOf('```', start + 6));
await writeFile(join(app, 'quickstart.ts'), quickstart);

// A server that only reports what it logs and advertises (for the run without the QUIC binding).
await writeFile(
  join(app, 'server-info.js'),
  `import quiver from '@quiver/fastify';
import Fastify from 'fastify';
const app = Fastify({ logger: { level: 'warn' } });
await app.register(quiver, { path: '/quiver' });
await app.listen({ host: '127.0.0.1', port: 0 });
await app.quiverTransports.ready();
console.log(JSON.stringify({ info: await app.quiverTransports.info() }));
await app.close();
`,
);

// A server with its own certificate must not load @quiver/devcert (and its reflect-metadata polyfill).
await writeFile(
  join(app, 'make-cert.js'),
  `import { writeFileSync } from 'node:fs';
import { generateCertificate } from '@quiver/devcert';
const c = await generateCertificate();
writeFileSync('own-cert.pem', c.certPem);
writeFileSync('own-key.pem', c.keyPem);
`,
);
await writeFile(
  join(app, 'server-own-cert.js'),
  `import { readFileSync } from 'node:fs';
import quiver from '@quiver/fastify';
import Fastify from 'fastify';
const app = Fastify();
const webtransport = { cert: readFileSync('own-cert.pem', 'utf8'), key: readFileSync('own-key.pem', 'utf8') };
await app.register(quiver, { webtransport });
await app.listen({ host: '127.0.0.1', port: 0 });
await app.quiverTransports.ready();
const info = await app.quiverTransports.info();
console.log(JSON.stringify({ reflectMetadata: typeof Reflect.getMetadata, hashes: info.webtransport.certificateHashes.length }));
await app.close();
`,
);

// Browser clients: the budgeted one (session + native WebTransport) and the full one with the WebSocket fallback.
await writeFile(
  join(app, 'client-wt.ts'),
  `import { connect, defineMessage, nativeWebTransportConnector, type QuiverInfo, transportsFromInfo } from '@quiver/session';

const Chat = defineMessage<{ from?: string; text: string }>('chat');
const info = (await (await fetch('/quiver/info')).json()) as QuiverInfo;
const transports = transportsFromInfo(info, { webtransport: nativeWebTransportConnector });
const client = await connect(transports[0].url!, { transports });
client.on(Chat, (m) => {
  document.body.textContent = \`\${m.from}: \${m.text}\`;
});
client.send(Chat, { text: 'hello from the browser' });
`,
);
await writeFile(
  join(app, 'client.ts'),
  `import { connect, defineMessage, nativeWebTransportConnector, type QuiverInfo, transportsFromInfo } from '@quiver/session';
import { connectWebSocket } from '@quiver/websocket';

const Chat = defineMessage<{ from?: string; text: string }>('chat');
const info = (await (await fetch('/quiver/info')).json()) as QuiverInfo;
const transports = transportsFromInfo(info, { webtransport: nativeWebTransportConnector, websocket: connectWebSocket });
const client = await connect(transports[0].url!, { transports });
client.on(Chat, (m) => {
  document.body.textContent = \`\${m.from}: \${m.text} over \${client.transport}\`;
});
client.send(Chat, { text: 'hello from the browser' });
`,
);

// A Node client of the packages that need no DOM types at all (WebSocket transport, sync, prediction).
await writeFile(
  join(app, 'node-client.ts'),
  `import { connect, defineMessage } from '@quiver/session';
import { createRng } from '@quiver/transport';
import { connectWebSocket } from '@quiver/websocket';
import { defineSchema } from '@quiver/sync';
import { FixedTicker } from '@quiver/predict';

export const Chat = defineMessage<{ text: string }>('chat');
export async function chat(url: string): Promise<void> {
  const client = await connect(url, { connector: connectWebSocket });
  client.send(Chat, { text: String(createRng(1).next()) });
  await client.close();
}
export { defineSchema, FixedTicker };
`,
);

const strict = {
  strict: true,
  skipLibCheck: false,
  target: 'ES2022',
  forceConsistentCasingInFileNames: true,
};
const node = { ...strict, module: 'NodeNext', moduleResolution: 'NodeNext', types: ['node'] };
await writeFile(
  join(app, 'tsconfig.json'),
  // `@quiver/webtransport`'s declarations reach `@matrixai/quic`'s, which use DOM event types.
  JSON.stringify({ compilerOptions: { ...node, lib: ['ES2022', 'DOM'] }, files: ['quickstart.ts'] }),
);
await writeFile(
  join(app, 'tsconfig.node-nodom.json'),
  JSON.stringify({ compilerOptions: { ...node, lib: ['ES2022'], noEmit: true }, files: ['node-client.ts'] }),
);
await writeFile(
  join(app, 'tsconfig.browser.json'),
  JSON.stringify({
    compilerOptions: {
      ...strict,
      module: 'ESNext',
      moduleResolution: 'Bundler',
      // What bundlers resolve for the browser: @quiver/websocket's `browser` export and its declarations.
      customConditions: ['browser'],
      lib: ['ES2022', 'DOM', 'DOM.Iterable'],
      types: [],
      noEmit: true,
    },
    files: ['client.ts', 'client-wt.ts'],
  }),
);

// --- typecheck and run ----------------------------------------------------------------------------------------
const tsc = join(app, 'node_modules', 'typescript', 'bin', 'tsc');
await must(process.execPath, [tsc, '-p', 'tsconfig.json'], app);
check(true, 'the quick start typechecks for Node with skipLibCheck: false and compiles with tsc');
await must(process.execPath, [tsc, '-p', 'tsconfig.node-nodom.json'], app);
check(true, 'session, transport, websocket, sync and predict typecheck for Node without the DOM lib');
await must(process.execPath, [tsc, '-p', 'tsconfig.browser.json'], app);
check(true, 'the browser clients typecheck with lib DOM, no Node types, skipLibCheck: false');

await must(process.execPath, ['make-cert.js'], app);
const ownCert = await run(process.execPath, ['server-own-cert.js'], app, { NODE_OPTIONS: '' }, 60_000);
check(
  ownCert.code === 0 && ownCert.out.includes('{"reflectMetadata":"undefined","hashes":1}'),
  'a server with its own certificate serves WebTransport without loading @quiver/devcert (no reflect-metadata)',
  ownCert.out,
);

async function quickstartOver(transport: string): Promise<void> {
  // Plain node, no loader, no condition: what `node quickstart.js` does for a user.
  const r = await run(process.execPath, ['quickstart.js'], app, { PORT: '0', NODE_OPTIONS: '' }, 60_000);
  check(
    r.code === 0 &&
      r.out.includes(`connected over ${transport}`) &&
      r.out.includes('chat from anonymous: hello, quiver') &&
      /pos echo: \d+,-\d+/.test(r.out) &&
      /rtt \d+\.\d+ ms/.test(r.out),
    `node quickstart.js runs the README quick start over ${transport}`,
    r.out,
  );
}
await quickstartOver('webtransport');

// Without the prebuilt QUIC binding (its platform package), as on linux-arm64 or Alpine.
const scoped = join(app, 'node_modules', '@matrixai');
const natives = (await readdir(scoped)).filter((d) => d.startsWith('quic-'));
check(natives.length > 0, `the QUIC binding is a platform package (${natives.join(', ')})`);
const hidden = join(work, 'hidden-natives');
await mkdir(hidden);
for (const d of natives) await rename(join(scoped, d), join(hidden, d));
try {
  await quickstartOver('websocket');
  const r = await run(process.execPath, ['server-info.js'], app, { NODE_OPTIONS: '' }, 60_000);
  const lines = r.out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l));
  const warnings = lines.filter((l) => l.level === 40);
  const info = lines.find((l) => 'info' in l)?.info;
  check(
    r.code === 0 &&
      warnings.length === 1 &&
      /QUIC binding/.test(warnings[0].msg) &&
      info?.webtransport === null &&
      typeof info?.websocket?.url === 'string',
    'without the QUIC binding the server logs one warning and advertises WebSocket only',
    r.out,
  );
} finally {
  for (const d of natives) await rename(join(hidden, d), join(scoped, d));
}

// --- browser bundles ------------------------------------------------------------------------------------------
interface Bundle {
  name: string;
  minified: number;
  gzipped: number;
  budget?: number;
}
const bundles: Bundle[] = [];
// The platform binary esbuild installs for itself, run directly.
const esbuild = join(app, 'node_modules', '.bin', 'esbuild');
for (const [name, entry, budget] of [
  ['session + native WebTransport', 'client-wt.ts', BUDGET_SESSION_NATIVE_WT],
  ['session + native WebTransport + WebSocket', 'client.ts', undefined],
] as const) {
  const outfile = join(app, 'out', entry.replace(/\.ts$/, '.js'));
  const meta = join(app, 'out', entry.replace(/\.ts$/, '.meta.json'));
  // platform=browser: a Node built-in anywhere in the graph fails the bundle.
  await must(
    esbuild,
    [
      entry,
      '--bundle',
      '--platform=browser',
      '--format=esm',
      '--target=es2022',
      '--minify',
      `--outfile=${outfile}`,
      `--metafile=${meta}`,
    ],
    app,
  );
  const inputs = Object.keys(JSON.parse(await readFile(meta, 'utf8')).inputs);
  check(
    !inputs.some((i) => /node_modules\/(ws|@matrixai|fastify)\/|^node:/.test(i)),
    `${name}: the browser bundle has no Node module`,
    inputs.join('\n'),
  );
  const code = await readFile(outfile);
  const gzipped = gzipSync(code, { level: 9 }).length;
  bundles.push({ name, minified: code.length, gzipped, ...(budget ? { budget } : {}) });
  if (budget) check(gzipped <= budget, `${name}: ${kb(gzipped)} gzipped, within the ${kb(budget)} budget`);
}

// --- report ---------------------------------------------------------------------------------------------------
const pad = (s: string, n: number) => s.padEnd(n);
const lpad = (s: string, n: number) => s.padStart(n);
console.log('\npackage                   packed    unpacked  files');
for (const p of packed) {
  console.log(
    `${pad(p.name, 24)} ${lpad(kb(p.size), 9)} ${lpad(kb(p.unpackedSize), 10)} ${lpad(String(p.files), 6)}`,
  );
}
console.log('\nbrowser bundle (esbuild --minify)              minified   gzipped   budget');
for (const b of bundles) {
  console.log(
    `${pad(b.name, 44)} ${lpad(kb(b.minified), 9)} ${lpad(kb(b.gzipped), 9)} ${lpad(b.budget ? kb(b.budget) : '-', 8)}`,
  );
}
if (values.json) {
  await writeFile(values.json, `${JSON.stringify({ packed, bundles }, null, 2)}\n`);
  console.log(`\nwrote ${values.json}`);
}
if (values.keep) {
  console.log(`\nkept ${work}`);
} else {
  await rm(work, { recursive: true, force: true });
}
console.log('\nsmoke:install passed');
