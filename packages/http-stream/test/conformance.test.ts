import { type DevCertificate, generateCertificate } from '@quiver/devcert';
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

// A downstream response ends after 16 KiB and the client reconnects, naming the last message it has: the 16 MiB
// transfer goes through about a thousand reconnections and must arrive whole.
const rotateClock = trackTimers();
runConformanceSuite({
  name: 'http-stream (Node client, downstream cut every 16 KiB)',
  listen: () =>
    createHttpStreamListener({
      host: '127.0.0.1',
      port: 0,
      clock: rotateClock,
      maxDownstreamBytes: 16 * 1024,
    }),
  connect: (listener, path, options) =>
    connectHttpStream(`http://127.0.0.1:${listener.address.port}${path}`, { ...options, clock: rotateClock }),
  leakCheck: timerLeakCheck(rotateClock),
});

let cert: DevCertificate | undefined;
const h2Clock = trackTimers();
runConformanceSuite({
  name: 'http-stream (Node client, HTTP/2 over TLS)',
  setup: async () => {
    cert = await generateCertificate();
  },
  listen: () =>
    createHttpStreamListener({
      host: '127.0.0.1',
      port: 0,
      clock: h2Clock,
      tls: { cert: cert!.certPem, key: cert!.keyPem },
    }),
  connect: (listener, path, options) =>
    connectHttpStream(`https://127.0.0.1:${listener.address.port}${path}`, {
      ...options,
      clock: h2Clock,
      http2: true,
      tls: { ca: cert!.certPem },
    }),
  leakCheck: timerLeakCheck(h2Clock),
});

const tls1Clock = trackTimers();
runConformanceSuite({
  name: 'http-stream (Node client, HTTP/1.1 over TLS to the HTTP/2 server)',
  setup: async () => {
    cert ??= await generateCertificate();
  },
  listen: () =>
    createHttpStreamListener({
      host: '127.0.0.1',
      port: 0,
      clock: tls1Clock,
      tls: { cert: cert!.certPem, key: cert!.keyPem },
    }),
  connect: (listener, path, options) =>
    connectHttpStream(`https://127.0.0.1:${listener.address.port}${path}`, {
      ...options,
      clock: tls1Clock,
      tls: { ca: cert!.certPem },
    }),
  leakCheck: timerLeakCheck(tls1Clock),
});
