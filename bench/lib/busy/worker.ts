/**
 * The browser-busy page's dedicated Worker: hosts the session for the `worker` mode. For the latency breakdown it
 * stamps each probe when the Worker takes the page's send off the session's port (`Probe.w`), and, when asked, watches
 * its own event loop with a 2 ms timer: gaps are times the Worker thread did not run (no CPU, GC, a long task).
 */
import { nativeWebTransportConnector } from '@quiver/session';
import { hostSessions, type PortLike } from '@quiver/session/worker-host';

const now = () => performance.timeOrigin + performance.now();
type Listener = (ev: { data: unknown }) => void;

function stampSends(data: unknown): void {
  const m = data as { q?: string; b?: [unknown, unknown][] } | null;
  if (m?.q !== 'send' || !m.b) return;
  const at = now();
  for (const [, p] of m.b) if (p && typeof p === 'object' && 't' in p) (p as { w?: number }).w = at;
}

function wrapPort(port: MessagePort): PortLike {
  const wrapped = new Map<Listener, (ev: MessageEvent) => void>();
  return {
    postMessage: (m, t) => port.postMessage(m, (t ?? []) as Transferable[]),
    addEventListener: (_type, l) => {
      const w = (ev: MessageEvent) => {
        stampSends(ev.data);
        l(ev);
      };
      wrapped.set(l, w);
      port.addEventListener('message', w);
    },
    removeEventListener: (_type, l) => {
      const w = wrapped.get(l);
      if (w) port.removeEventListener('message', w);
    },
    start: () => port.start(),
    close: () => port.close(),
  };
}

const scope: PortLike = {
  postMessage: (m) => self.postMessage(m),
  addEventListener: (_type, l) =>
    self.addEventListener('message', (ev: MessageEvent) => {
      const d = ev.data as { q?: string; port?: MessagePort } | null;
      l({ data: d?.q === 'attach' && d.port ? { ...d, port: wrapPort(d.port) } : d });
    }),
  removeEventListener: () => {},
};
hostSessions({ connectors: { webtransport: nativeWebTransportConnector }, scope });

// Event-loop gaps of the Worker thread (`--gaps`): [start, length] in epoch ms, gaps over 6 ms.
let gaps: [number, number][] = [];
let watch: ReturnType<typeof setInterval> | undefined;
self.addEventListener('message', (ev: MessageEvent) => {
  const q = (ev.data as { q?: string } | null)?.q;
  if (q === 'bench-gaps-start') {
    let last = now();
    watch = setInterval(() => {
      const t = now();
      if (t - last > 6) gaps.push([last, t - last]);
      last = t;
    }, 2);
  } else if (q === 'bench-gaps') {
    clearInterval(watch);
    self.postMessage({ q: 'bench-gaps', gaps });
    gaps = [];
  }
});
