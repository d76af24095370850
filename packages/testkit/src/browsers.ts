import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import puppeteer, { type Browser as PuppeteerBrowser, type Page as PuppeteerPage } from 'puppeteer-core';

/**
 * Profiles of browsers not closed yet. Playwright and Puppeteer kill their browsers when the process exits (a
 * failed test, Ctrl-C); this removes what those browsers leave behind.
 */
const liveProfiles = new Set<string>();
let exitHookInstalled = false;

async function makeProfile(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  liveProfiles.add(dir);
  return dir;
}

/** Called after a launch, so that it runs after the drivers' own exit hooks have killed their browsers. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const d of liveProfiles) rmSync(d, { recursive: true, force: true });
  });
}

async function removeProfile(dir: string): Promise<void> {
  liveProfiles.delete(dir);
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}

export const CHROMIUM_PATH = '/usr/bin/chromium';
export const FIREFOX_PATH = '/usr/bin/firefox-esr';

/** Switches that keep a test browser quiet and off the network (besides what the test opens). */
export const CHROMIUM_ARGS: readonly string[] = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface LaunchChromiumOptions {
  /** Default `$QUIVER_CHROMIUM` or /usr/bin/chromium. */
  executablePath?: string;
  /** Appended to {@link CHROMIUM_ARGS}. */
  args?: string[];
  /**
   * Adds `--disable-quic`: no HTTP/3 at all, so `new WebTransport()` fails and fallbacks can be tested. Never set
   * otherwise.
   */
  disableQuic?: boolean;
  /** Environment for the browser process. */
  env?: Record<string, string>;
  /** Milliseconds to wait for the browser to start. Default 60 000. */
  timeoutMs?: number;
}

export interface LaunchedChromium {
  readonly name: 'chromium';
  /** The Playwright persistent context (one per launch, with its own temporary profile). */
  readonly context: BrowserContext;
  readonly version: string;
  readonly userDataDir: string;
  /** A new tab; if `url` is given it is opened first. */
  newPage(url?: string): Promise<Page>;
  /** Closes the browser and deletes the temporary profile. Idempotent. */
  close(): Promise<void>;
}

let netLogs = 0;

/**
 * `QUIVER_CHROMIUM_NETLOG=<dir>` makes every launched Chromium write its full net-log (QUIC frames included) to
 * `<dir>/netlog-<pid>-<n>.json`: how a flaky browser test is read after the fact (which side closed, with which
 * code) without changing the test.
 */
function netLogArgs(): string[] {
  const dir = process.env.QUIVER_CHROMIUM_NETLOG;
  if (!dir) return [];
  return [
    `--log-net-log=${dir}/netlog-${process.pid}-${netLogs++}.json`,
    '--net-log-capture-mode=Everything',
  ];
}

/** Headless Chromium through playwright-core, with a fresh profile that `close()` removes. */
export async function launchChromium(opts: LaunchChromiumOptions = {}): Promise<LaunchedChromium> {
  const userDataDir = await makeProfile('quiver-chromium-');
  const args = [
    ...CHROMIUM_ARGS,
    ...(opts.disableQuic ? ['--disable-quic'] : []),
    ...netLogArgs(),
    ...(opts.args ?? []),
  ];
  let context: BrowserContext;
  try {
    // Playwright refuses --user-data-dir in args; a persistent context is how a chosen profile directory is used.
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: opts.executablePath ?? process.env.QUIVER_CHROMIUM ?? CHROMIUM_PATH,
      headless: true,
      args,
      env: opts.env,
      timeout: opts.timeoutMs ?? 60_000,
    });
  } catch (err) {
    await removeProfile(userDataDir);
    throw err;
  }
  installExitHook();
  // The persistent context opens with one blank tab; keep it out of the way of the tests' own pages.
  let spare: Page | undefined = context.pages()[0];
  let closing: Promise<void> | undefined;
  return {
    name: 'chromium',
    context,
    version: context.browser()?.version() ?? 'unknown',
    userDataDir,
    async newPage(url?: string) {
      const page = spare ?? (await context.newPage());
      spare = undefined;
      if (url) await page.goto(url);
      return page;
    },
    close() {
      closing ??= (async () => {
        try {
          await context.close();
        } finally {
          await removeProfile(userDataDir);
        }
      })();
      return closing;
    },
  };
}

export interface LaunchFirefoxOptions {
  /** Default `$QUIVER_FIREFOX` or /usr/bin/firefox-esr. */
  executablePath?: string;
  args?: string[];
  /** Merged over {@link FIREFOX_PREFS}. */
  prefs?: Record<string, unknown>;
  env?: Record<string, string>;
  timeoutMs?: number;
}

/**
 * Prefs for a quiet test profile: no telemetry, updates, safe browsing or remote settings from the internet
 * (release builds fetch them at start-up unless MOZ_REMOTE_SETTINGS_DEVTOOLS=1 lets `services.settings.server`
 * point elsewhere: here a closed loopback port).
 */
export const FIREFOX_PREFS: Readonly<Record<string, unknown>> = {
  'services.settings.server': 'http://127.0.0.1:9/v1',
  'toolkit.telemetry.enabled': false,
  'toolkit.telemetry.unified': false,
  'toolkit.telemetry.archive.enabled': false,
  'datareporting.healthreport.uploadEnabled': false,
  'datareporting.policy.dataSubmissionEnabled': false,
  'app.update.enabled': false,
  'app.update.auto': false,
  'app.update.checkInstallTime': false,
  'extensions.update.enabled': false,
  'extensions.blocklist.enabled': false,
  'browser.safebrowsing.malware.enabled': false,
  'browser.safebrowsing.phishing.enabled': false,
  'browser.safebrowsing.downloads.enabled': false,
  'browser.safebrowsing.downloads.remote.enabled': false,
  'browser.safebrowsing.blockedURIs.enabled': false,
  'browser.safebrowsing.provider.mozilla.updateURL': '',
  'browser.shell.checkDefaultBrowser': false,
  'browser.search.update': false,
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
  'browser.newtabpage.enabled': false,
  'browser.startup.page': 0,
};

export interface LaunchedFirefox {
  readonly name: 'firefox';
  /** The puppeteer-core browser, driven over WebDriver BiDi. */
  readonly browser: PuppeteerBrowser;
  readonly version: string;
  readonly userDataDir: string;
  newPage(url?: string): Promise<PuppeteerPage>;
  close(): Promise<void>;
}

/** Headless Firefox ESR through puppeteer-core over WebDriver BiDi, with a fresh profile that `close()` removes. */
export async function launchFirefox(opts: LaunchFirefoxOptions = {}): Promise<LaunchedFirefox> {
  const userDataDir = await makeProfile('quiver-firefox-');
  let browser: PuppeteerBrowser;
  try {
    browser = await puppeteer.launch({
      browser: 'firefox',
      executablePath: opts.executablePath ?? process.env.QUIVER_FIREFOX ?? FIREFOX_PATH,
      headless: true,
      userDataDir,
      args: opts.args,
      extraPrefsFirefox: { ...FIREFOX_PREFS, ...opts.prefs },
      env: { ...process.env, MOZ_REMOTE_SETTINGS_DEVTOOLS: '1', ...opts.env },
      timeout: opts.timeoutMs ?? 60_000,
    });
  } catch (err) {
    await removeProfile(userDataDir);
    throw err;
  }
  installExitHook();
  let closing: Promise<void> | undefined;
  return {
    name: 'firefox',
    browser,
    version: await browser.version(),
    userDataDir,
    async newPage(url?: string) {
      const page = await browser.newPage();
      if (url) await page.goto(url);
      return page;
    },
    close() {
      closing ??= (async () => {
        try {
          await browser.close();
        } finally {
          await removeProfile(userDataDir);
        }
      })();
      return closing;
    },
  };
}
