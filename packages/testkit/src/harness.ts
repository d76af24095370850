/**
 * The browser half of a transport conformance harness (`runConformanceSuite` of `@quiver/transport/conformance`):
 * a blank page served from 127.0.0.1 in a freshly launched browser, whose sessions are made by a connector module
 * bundled into the page and driven from Node through the page-backed session proxy. The transport's own test then
 * only says which browser, which client module and which listener.
 */
import type { ConnectOptions, TransportListener } from '@quiver/transport';
import {
  type BrowserSession,
  type EvaluatingPage,
  type ModuleSource,
  openBrowserSession,
} from './session-proxy.js';
import { type StaticServer, serveStatic } from './static-server.js';

/** What {@link launchChromium} and {@link launchFirefox} both return, as far as the harness needs it. */
export interface LaunchedBrowser {
  newPage(url: string): Promise<EvaluatingPage>;
  close(): Promise<void>;
}

export interface BrowserHarnessOptions {
  /** Starts the browser, e.g. `launchChromium` or `launchFirefox`. Called once, in `setup`. */
  launch: () => Promise<LaunchedBrowser>;
  /** The connector module bundled into the page (`connect` export, or `exportName`). */
  module: ModuleSource;
  /** The connector's export name in `module`. Default `connect` (falling back to the default export). */
  exportName?: string;
  /**
   * The URL the page connects to for `path` (with its query string) on `listener`. Default
   * `http://127.0.0.1:<port><path>`: connectors map the scheme themselves (WebSocket: `http:` to `ws:`).
   */
  url?: (listener: Pick<TransportListener, 'address'>, path: string) => string;
}

export interface BrowserHarness {
  /** Serves the page and launches the browser (the conformance suite's `setup`, or a `beforeAll`). */
  setup(): Promise<void>;
  /** Closes the browser and the page server; safe after a failed or skipped `setup`. */
  teardown(): Promise<void>;
  /** A session in the page for `path` on `listener`; `options` are JSON-serialised into the page. */
  connect(
    listener: Pick<TransportListener, 'address'>,
    path: string,
    options?: ConnectOptions,
  ): BrowserSession;
  /** The page, once `setup` has run; throws before. (A method, not a getter, so that the harness can be spread.) */
  page(): EvaluatingPage;
}

const defaultUrl = (listener: Pick<TransportListener, 'address'>, path: string): string =>
  `http://127.0.0.1:${listener.address.port}${path}`;

/**
 * Builds the browser half of a conformance harness. Spread it into the harness:
 * `runConformanceSuite({ name, listen, capabilities, ...browserHarness({ launch: launchChromium, module }) })`.
 */
export function browserHarness(options: BrowserHarnessOptions): BrowserHarness {
  const url = options.url ?? defaultUrl;
  let server: StaticServer | undefined;
  let browser: LaunchedBrowser | undefined;
  let page: EvaluatingPage | undefined;
  const requirePage = (): EvaluatingPage => {
    if (!page) throw new Error('browserHarness: setup() has not run (or failed)');
    return page;
  };
  return {
    async setup() {
      server = await serveStatic();
      browser = await options.launch();
      page = await browser.newPage(server.url);
    },
    async teardown() {
      await browser?.close();
      await server?.close();
      browser = server = page = undefined;
    },
    connect: (listener, path, connectOptions) =>
      openBrowserSession(requirePage(), {
        kind: 'module',
        url: url(listener, path),
        options: connectOptions,
        module: options.module,
        exportName: options.exportName,
      }),
    page: requirePage,
  };
}
