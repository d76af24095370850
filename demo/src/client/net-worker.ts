/**
 * The demo's dedicated Worker: hosts the page's session (`@quiver/session/worker-host`) with the same transports as
 * the page would use, each behind the emulated link, whose settings the page posts here when they change.
 */
import { connectHttpPosts } from './http-posts.js';
import { nativeWebTransportConnector } from '@quiver/session';
import { hostSessions } from '@quiver/session/worker-host';
import { connectWebSocket } from '@quiver/websocket';
import { type LinkSettings, type ShaperStats, shapeConnector } from './shaper.js';

const link: LinkSettings = { latencyMs: 0, loss: 0 };
const stats: ShaperStats = { droppedIn: 0, droppedOut: 0 };
const scope = globalThis as unknown as {
  addEventListener(type: 'message', fn: (ev: { data: unknown }) => void): void;
  postMessage(message: unknown): void;
};
scope.addEventListener('message', (ev) => {
  const m = ev.data as { q?: string; link?: LinkSettings };
  if (m?.q === 'link' && m.link) Object.assign(link, m.link);
});
// The overlay shows what the emulated link dropped.
setInterval(() => scope.postMessage({ q: 'shaper', stats }), 500);

hostSessions({
  connectors: {
    webtransport: shapeConnector(nativeWebTransportConnector, link, stats),
    websocket: shapeConnector(connectWebSocket, link, stats),
    http: shapeConnector(connectHttpPosts, link, stats),
  },
});
