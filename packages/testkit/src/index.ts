export {
  CHROMIUM_ARGS,
  CHROMIUM_PATH,
  FIREFOX_PATH,
  FIREFOX_PREFS,
  type LaunchChromiumOptions,
  type LaunchedChromium,
  type LaunchedFirefox,
  type LaunchFirefoxOptions,
  launchChromium,
  launchFirefox,
} from './browsers.js';
export { type BundleOptions, bundleForBrowser, bundleForBrowserCached } from './bundle.js';
export {
  type BrowserHarness,
  type BrowserHarnessOptions,
  browserHarness,
  type LaunchedBrowser,
} from './harness.js';
export {
  type BrowserSession,
  type BrowserSessionOptions,
  browserConnector,
  type EvaluatingPage,
  type ModuleSource,
  mapNativeStats,
  openBrowserSession,
} from './session-proxy.js';
export {
  BLANK_PAGE,
  type StaticBody,
  type StaticServer,
  type StaticServerOptions,
  serveStatic,
} from './static-server.js';
export {
  startTestProxy,
  type TestProxy,
  type TestProxyOptions,
  type TestProxyStats,
} from './http-proxy.js';
export {
  startThrottledRelay,
  type ThrottledRelay,
  type ThrottledRelayOptions,
  type ThrottledRelayStats,
} from './throttle-proxy.js';
