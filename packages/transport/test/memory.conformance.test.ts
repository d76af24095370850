import {
  connectMemory,
  createMemoryListener,
  type MemoryListener,
  type MemoryListenerOptions,
  memoryListenerCount,
  type TrackedClock,
  trackTimers,
} from '@quiver/transport';
import { runConformanceSuite } from '@quiver/transport/conformance';

/**
 * Each listener gets its own timer-counting clock, so the leak check can prove that the leak test's listener left
 * no timer behind and is gone from the registry.
 */
function memoryHarness(name: string, options: MemoryListenerOptions) {
  let last: { listener: MemoryListener; clock: TrackedClock } | undefined;
  const listeners = new Set<string>();
  return {
    name,
    capabilities: { unreliableDatagrams: true },
    listen: async () => {
      const clock = trackTimers();
      const listener = createMemoryListener({ ...options, clock });
      listeners.add(listener.name);
      last = { listener, clock };
      return listener;
    },
    connect: (listener: { address: { host: string } }, path: string) =>
      connectMemory(`${(listener as MemoryListener).url}${path}`),
    leakCheck: async () => {
      if (!last) throw new Error('no listener was created');
      if (last.clock.pending !== 0) throw new Error(`${last.clock.pending} timers still pending after close`);
      // Only the suite's own listener (closed in afterAll) may still be registered.
      if (memoryListenerCount() > 1)
        throw new Error(`${memoryListenerCount()} memory listeners still registered`);
      const probe = connectMemory(`${last.listener.url}/echo`);
      if (
        await probe.ready.then(
          () => true,
          () => false,
        )
      )
        throw new Error('a closed listener accepted a session');
    },
  };
}

runConformanceSuite(memoryHarness('memory, no delay', {}));

runConformanceSuite(
  memoryHarness('memory, 2 ms delay and 1 ms jitter', {
    seed: 7,
    link: { delayMs: 2, jitterMs: 1 },
  }),
);
