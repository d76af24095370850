import { trackTimers } from '@quiver/transport';
import { runConformanceSuite } from '@quiver/transport/conformance';
import { connectHttpStream, createHttpStreamListener } from '../src/index.js';

/** Every timer of every session on both ends goes through this clock, so the leak test can count them. */
function timerLeakCheck(clock: ReturnType<typeof trackTimers>) {
  return () => {
    if (clock.pending > 0) throw new Error(`${clock.pending} session timers still pending after close`);
  };
}

const plainClock = trackTimers();
runConformanceSuite({
  name: 'http-stream (Node client, HTTP/1.1)',
  listen: () => createHttpStreamListener({ host: '127.0.0.1', port: 0, clock: plainClock }),
  connect: (listener, path, options) =>
    connectHttpStream(`http://127.0.0.1:${listener.address.port}${path}`, { ...options, clock: plainClock }),
  leakCheck: timerLeakCheck(plainClock),
});
