/**
 * OpenTelemetry tracing over real sockets: one trace runs from a client's send through the server's handler to the
 * receive on a second client, over WebTransport (real QUIC) and WebSocket; the trace context costs zero bytes on the
 * wire when the sender's span is not sampled; a malformed context is ignored and counted.
 */
import { type Span, SpanKind } from '@opentelemetry/api';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  InMemorySpanExporter,
  type ReadableSpan,
  type Sampler,
  SamplingDecision,
  SimpleSpanProcessor,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import { certificateHashOption, ensureDevCertificate } from '@quiver/devcert';
import type { Connector, QuiverSession } from '@quiver/transport';
import { connectWebSocket, createWebSocketListener } from '@quiver/websocket';
import { connectWebTransport, createWebTransportListener } from '@quiver/webtransport';
import { describe, expect, it } from 'vitest';
import { Kind, parseBody, unbundle } from '../src/codec.js';
import {
  connect,
  createSessionServer,
  defineMessage,
  type MessageType,
  TRACE_CONTEXT_BYTES,
} from '../src/index.js';
import { otelTracing, startSpan, withSpan } from '../src/otel.js';
import { cleanups, until, useCleanup } from './support/harness.js';
import type { RealTransport } from './support/transports.js';

useCleanup();

const Chat = defineMessage<{ text: string }>('chat');
const Pos = defineMessage<number[]>('pos', { channel: 'unreliable' });

async function webtransport(): Promise<RealTransport> {
  const cert = await ensureDevCertificate();
  return {
    listen: () =>
      createWebTransportListener({ host: '127.0.0.1', port: 0, cert: cert.certPem, key: cert.keyPem }),
    url: (port, path) => `https://127.0.0.1:${port}${path}`,
    connector: connectWebTransport,
    connectOptions: { serverCertificateHashes: [certificateHashOption(cert)] },
  };
}

const websocket: RealTransport = {
  listen: () => createWebSocketListener({ host: '127.0.0.1', port: 0 }),
  url: (port, path) => `http://127.0.0.1:${port}${path}`,
  connector: connectWebSocket,
};

/** A tracer provider of its own per process end, so that each end's spans are told apart. */
function recorder(sampler: Sampler = new AlwaysOnSampler(), sampling?: 'session' | 'message') {
  const exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({ sampler, spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  return { exporter, tracing: otelTracing({ tracerProvider: provider, sampling }), provider };
}

/** Samples every span but the sessions' establishment: every session is unsampled, every child span sampled. */
/** A session server over WebSocket with `serverEnd`'s tracing, closed after the test. */
async function tracedServer(serverEnd: ReturnType<typeof recorder>) {
  const listener = await websocket.listen();
  const server = createSessionServer({ listeners: [listener], messages: [Chat], tracing: serverEnd.tracing });
  cleanups.push(async () => {
    await server.close();
    await listener.close();
  });
  return { listener, server, serverEnd };
}

function sessionsOff(seen: string[] = []): Sampler {
  return {
    shouldSample: (_ctx, _traceId, name) => {
      seen.push(name);
      return {
        decision: name.startsWith('quiver.session.')
          ? SamplingDecision.NOT_RECORD
          : SamplingDecision.RECORD_AND_SAMPLED,
      };
    },
    toString: () => 'sessions-off',
  };
}

function one(spans: ReadableSpan[], name: string, kind?: SpanKind): ReadableSpan {
  const found = spans.filter((s) => s.name === name && (kind === undefined || s.kind === kind));
  expect(found.map((s) => s.name)).toEqual([name]);
  return found[0];
}

function parentOf(s: ReadableSpan): string | undefined {
  return s.parentSpanContext?.spanId;
}

/** Runs a relay: alice sends, the server's handler forwards to every other session, bob receives. */
async function relayTrace(
  t: RealTransport,
  type: typeof Chat | typeof Pos,
  payload: unknown,
  opts: { sampler?: () => Sampler; inSpan?: boolean } = {},
) {
  // One code path for either message type: the payload is whatever the test passes.
  const channelMessage = type as MessageType<unknown>;
  const listener = await t.listen();
  const sampler = opts.sampler ?? (() => new AlwaysOnSampler());
  const serverEnd = recorder(sampler());
  const server = createSessionServer({
    listeners: [listener],
    messages: [Chat, Pos],
    tracing: serverEnd.tracing,
  });
  cleanups.push(async () => {
    await server.close();
    await listener.close();
  });
  server.on(channelMessage, (p, from) => {
    for (const s of server.sessions.values()) if (s !== from) s.send(channelMessage, p);
  });
  const url = t.url(listener.address.port, '/');
  const aliceEnd = recorder(sampler());
  const bobEnd = recorder(sampler());
  const options = { connector: t.connector, connectOptions: t.connectOptions, messages: [Chat, Pos] };
  const alice = await connect(url, { ...options, tracing: aliceEnd.tracing });
  cleanups.push(() => alice.close());
  const bob = await connect(url, { ...options, tracing: bobEnd.tracing });
  cleanups.push(() => bob.close());
  await until(() => server.sessions.size === 2, 'two sessions');
  const got: unknown[] = [];
  bob.on(channelMessage, (p) => got.push(p));
  // Datagrams may be lost even on loopback: send until one arrives (each send is its own trace).
  const appTracer = aliceEnd.provider.getTracer('game');
  for (let i = 0; got.length === 0 && i < 50; i++) {
    if (opts.inSpan) {
      // The application's own span (a player's action) around the send.
      const action = startSpan(appTracer, 'fire', SpanKind.INTERNAL, {});
      withSpan(action, () => alice.send(channelMessage, payload));
      action.end();
    } else alice.send(channelMessage, payload);
    await new Promise((r) => setTimeout(r, 20));
  }
  await until(() => got.length > 0, 'relayed message');
  const ch = channelMessage.channel ?? 'reliable';
  await until(
    () => bobEnd.exporter.getFinishedSpans().some((s) => s.name === `receive ${ch}`),
    'receive span at bob',
  );
  for (const e of [aliceEnd, serverEnd, bobEnd]) await e.provider.forceFlush();
  const bobRecv = bobEnd.exporter.getFinishedSpans().find((s) => s.name === `receive ${ch}`)!;
  const traceId = bobRecv.spanContext().traceId;
  const inTrace = (e: ReturnType<typeof recorder>) =>
    e.exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
  return {
    alice: inTrace(aliceEnd),
    server: inTrace(serverEnd),
    bob: inTrace(bobEnd),
    bobRecv,
    ch,
    aliceEnd,
  };
}

function assertOneTrace(r: Awaited<ReturnType<typeof relayTrace>>, transport: string) {
  const { ch } = r;
  const send = one(r.alice, `send ${ch}`, SpanKind.PRODUCER);
  const write = one(r.alice, `write ${ch}`);
  expect(parentOf(write)).toBe(send.spanContext().spanId);
  expect(send.attributes['messaging.system']).toBe('quiver');
  expect(send.attributes['messaging.destination.name']).toBe(ch);
  expect(send.attributes['network.protocol.name']).toBe(transport);
  // The server: receive is the child of alice's send span (the context crossed the wire), process its child, and
  // the handler's send to bob a child of process.
  const recv = one(r.server, `receive ${ch}`, SpanKind.CONSUMER);
  expect(parentOf(recv)).toBe(send.spanContext().spanId);
  expect(recv.parentSpanContext?.isRemote).toBe(true);
  const proc = one(r.server, `process ${ch}`);
  expect(parentOf(proc)).toBe(recv.spanContext().spanId);
  const fwd = one(r.server, `send ${ch}`, SpanKind.PRODUCER);
  expect(parentOf(fwd)).toBe(proc.spanContext().spanId);
  // Bob: receive is the child of the server's send.
  expect(parentOf(r.bobRecv)).toBe(fwd.spanContext().spanId);
  one(r.bob, `process ${ch}`);
  const ids = new Set([...r.alice, ...r.server, ...r.bob].map((s) => s.spanContext().traceId));
  expect(ids.size).toBe(1);
}

describe('OpenTelemetry tracing of messages', () => {
  it('one trace over WebSocket: alice send → server receive, handler, send → bob receive', async () => {
    const r = await relayTrace(websocket, Chat, { text: 'hi' });
    assertOneTrace(r, 'websocket');
    // The establishment span of each client, with the race's attempt as an event.
    const connectSpan = r.aliceEnd.exporter
      .getFinishedSpans()
      .find((s) => s.name === 'quiver.session.connect')!;
    expect(connectSpan.kind).toBe(SpanKind.CLIENT);
    expect(connectSpan.events.map((e) => [e.name, e.attributes?.['quiver.transport.outcome']])).toEqual([
      ['quiver.transport.attempt', 'won'],
    ]);
  });

  it('one trace over WebTransport, on a reliable stream and on datagrams', async () => {
    const t = await webtransport();
    assertOneTrace(await relayTrace(t, Chat, { text: 'hi' }), 'webtransport');
    assertOneTrace(await relayTrace(t, Pos, [1, 2, 3]), 'webtransport');
  });

  it('a span started by the application (a room broadcast) parents the sends made inside it', async () => {
    const { listener, server, serverEnd } = await tracedServer(recorder());
    const c = await connect(websocket.url(listener.address.port, '/'), {
      connector: websocket.connector,
      messages: [Chat],
    });
    cleanups.push(() => c.close());
    const got: unknown[] = [];
    c.on(Chat, (p) => got.push(p));
    await until(() => server.sessions.size === 1, 'session');
    const tracer = serverEnd.provider.getTracer('test');
    const span: Span = startSpan(tracer, 'broadcast chat', SpanKind.INTERNAL, {});
    withSpan(span, () => {
      for (const s of server.sessions.values()) s.send(Chat, { text: 'all' });
    });
    span.end();
    await until(() => got.length === 1, 'broadcast');
    await serverEnd.provider.forceFlush();
    const spans = serverEnd.exporter.getFinishedSpans();
    const b = one(spans, 'broadcast chat');
    expect(parentOf(one(spans, 'send reliable'))).toBe(b.spanContext().spanId);
  });
});

describe('sampling per session', () => {
  it('asks the sampler once per session, not per message, unless told to ask per message', async () => {
    const serverSeen: string[] = [];
    const { listener, server, serverEnd } = await tracedServer(recorder(sessionsOff(serverSeen)));
    let received = 0;
    server.on(Chat, () => received++);
    const url = websocket.url(listener.address.port, '/');
    for (const sampling of ['session', 'message'] as const) {
      const seen: string[] = [];
      const end = recorder(sessionsOff(seen), sampling);
      const c = await connect(url, {
        connector: websocket.connector,
        messages: [Chat],
        tracing: end.tracing,
      });
      const before = received;
      for (let i = 0; i < 5; i++) c.send(Chat, { text: `m${i}` });
      await until(() => received === before + 5, 'five messages');
      await c.close();
      expect(seen.filter((n) => n === 'send reliable')).toHaveLength(sampling === 'session' ? 0 : 5);
      expect(seen).toContain('quiver.session.connect');
      await serverEnd.provider.forceFlush();
      const spans = serverEnd.exporter.getFinishedSpans().map((sp) => sp.name);
      if (sampling === 'session') {
        // Unsampled sessions at both ends: no message asked the sampler, nothing recorded, nothing on the wire.
        expect(serverSeen.filter((n) => !n.startsWith('quiver.session.'))).toEqual([]);
        expect(spans).toEqual([]);
      } else {
        // Asked per message, the client's sends were sampled: their context made the server's receives traced.
        expect(spans.filter((n) => n === 'receive reliable')).toHaveLength(5);
      }
    }
  });

  it('traces a message sent inside a sampled span across unsampled sessions, end to end', async () => {
    const r = await relayTrace(
      websocket,
      Chat,
      { text: 'hi' },
      { sampler: () => sessionsOff(), inSpan: true },
    );
    assertOneTrace(r, 'websocket');
    const fire = one(r.alice, 'fire');
    expect(parentOf(one(r.alice, 'send reliable'))).toBe(fire.spanContext().spanId);
  });
});

describe('unsampled receive', () => {
  it('is still the parent of what the handler sends, though nothing of it is recorded', async () => {
    // Receive spans are dropped by the sampler, everything else is recorded: the handler's send must be a child of
    // the unsampled receive span (its trace id), not a root of its own.
    const seen: { name: string; traceId: string }[] = [];
    const sampler: Sampler = {
      shouldSample: (_ctx, traceId, name) => {
        seen.push({ name, traceId });
        return {
          decision: name.startsWith('receive')
            ? SamplingDecision.NOT_RECORD
            : SamplingDecision.RECORD_AND_SAMPLED,
        };
      },
      toString: () => 'receive-off',
    };
    const { listener, server, serverEnd } = await tracedServer(recorder(sampler));
    server.on(Chat, (p, from) => from.send(Chat, p));
    const c = await connect(websocket.url(listener.address.port, '/'), {
      connector: websocket.connector,
      messages: [Chat],
    });
    cleanups.push(() => c.close());
    const got: unknown[] = [];
    c.on(Chat, (p) => got.push(p));
    c.send(Chat, { text: 'echo' });
    await until(() => got.length === 1, 'echo');
    await serverEnd.provider.forceFlush();
    const spans = serverEnd.exporter.getFinishedSpans();
    expect(spans.filter((s) => s.name.startsWith('receive') || s.name.startsWith('process'))).toEqual([]);
    const recv = seen.filter((x) => x.name === 'receive reliable');
    expect(recv).toHaveLength(1);
    const send = one(spans, 'send reliable', SpanKind.PRODUCER);
    expect(send.parentSpanContext?.traceId).toBe(recv[0].traceId);
    expect(send.spanContext().traceId).toBe(recv[0].traceId);
  });
});

/** Wraps a connector: every chunk the client writes on a unidirectional stream or as a datagram is recorded. */
function recording(inner: Connector, wire: { streams: Uint8Array[]; datagrams: Uint8Array[] }): Connector {
  const tee = (w: WritableStream<Uint8Array>, into: Uint8Array[]) => {
    const writer = w.getWriter();
    return new WritableStream<Uint8Array>({
      write: (chunk) => {
        into.push(chunk.slice());
        return writer.write(chunk);
      },
      close: () => writer.close(),
      abort: (r) => writer.abort(r),
    });
  };
  return (url, options) => {
    const s: QuiverSession = inner(url, options);
    let datagrams: WritableStream<Uint8Array> | undefined;
    return new Proxy(s, {
      get(target, prop) {
        if (prop === 'createUnidirectionalStream')
          return async () => tee(await target.createUnidirectionalStream(), wire.streams);
        if (prop === 'datagrams')
          return new Proxy(target.datagrams, {
            get: (d, p) => {
              if (p !== 'writable') return Reflect.get(d, p);
              datagrams ??= tee(d.writable, wire.datagrams);
              return datagrams;
            },
          });
        const v = Reflect.get(target, prop);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
  };
}

/** DATA and DGRAM frame bodies of what a client wrote (heartbeats and the OPEN frame left out). */
function messageFrames(wire: { streams: Uint8Array[]; datagrams: Uint8Array[] }): number[][] {
  const out: number[][] = [];
  for (const chunk of wire.streams) {
    const body = chunk.subarray(4);
    if (parseBody(body).header[0] === Kind.DATA) out.push([...chunk]);
  }
  for (const d of wire.datagrams) {
    const f = parseBody(d);
    const bodies = f.header[0] === Kind.BUNDLE ? unbundle(f) : [d];
    for (const b of bodies) if (parseBody(b).header[0] === Kind.DGRAM) out.push([...b]);
  }
  return out;
}

describe('trace context on the wire', () => {
  it('adds zero bytes when the span is not sampled, and a fixed 28 when it is', async () => {
    const t = await webtransport();
    const listener = await t.listen();
    const server = createSessionServer({ listeners: [listener], messages: [Chat, Pos] });
    cleanups.push(async () => {
      await server.close();
      await listener.close();
    });
    let received = 0;
    server.on(Chat, () => received++);
    const url = t.url(listener.address.port, '/');
    const run = async (tracing: ReturnType<typeof recorder>['tracing'] | undefined) => {
      const wire = { streams: [] as Uint8Array[], datagrams: [] as Uint8Array[] };
      const c = await connect(url, {
        connector: recording(t.connector, wire),
        connectOptions: t.connectOptions,
        messages: [Chat, Pos],
        tracing,
        // Every frame counts here: on a loaded machine the freshness guard may hold a datagram back as stale, and
        // the comparison is of bytes per message, not of what the guard decides.
        maxUnreliableAgeMs: 0,
      });
      const before = received;
      for (let i = 0; i < 5; i++) {
        c.send(Chat, { text: `m${i}` });
        c.send(Pos, [i, i]);
      }
      await until(() => received === before + 5, 'five messages');
      await c.close();
      return messageFrames(wire);
    };
    const off = await run(undefined);
    const unsampled = await run(recorder(new AlwaysOffSampler()).tracing);
    // Asked per message, the sampler says no to every message span: still nothing on the wire.
    const unsampledPerMessage = await run(recorder(new AlwaysOffSampler(), 'message').tracing);
    const sampled = await run(recorder().tracing);
    expect(off).toHaveLength(10);
    // Byte for byte what a session without tracing sends.
    expect(unsampled).toEqual(off);
    expect(unsampledPerMessage).toEqual(off);
    // Sampled: the context as a MessagePack bin 8 (2 bytes of type and length) of 26 bytes, nothing else.
    expect(sampled.map((f) => f.length - (off[sampled.indexOf(f)]?.length ?? 0))).toEqual(
      new Array(10).fill(TRACE_CONTEXT_BYTES + 2),
    );
  });

  it('ignores and counts a malformed trace context; the message is still delivered', async () => {
    const { listener, server, serverEnd } = await tracedServer(recorder());
    const got: unknown[] = [];
    server.on(Chat, (p) => got.push(p));
    // A tracer that claims every message is sampled with a context that is not 26 bytes of version 00.
    const bad = [new Uint8Array(25).fill(1), new Uint8Array(26), Uint8Array.from({ length: 26 }, () => 7)];
    let i = 0;
    const c = await connect(websocket.url(listener.address.port, '/'), {
      connector: websocket.connector,
      messages: [Chat],
      tracing: {
        send: () => ({ wire: bad[i++], write: () => () => {}, end: () => {} }),
        receive: (_c, message, _b, _s, _p, run, payload) => run(message, payload),
        establish: () => ({ sampled: false, event: () => {}, attempts: () => {}, end: () => {} }),
      },
    });
    cleanups.push(() => c.close());
    for (let k = 0; k < 3; k++) c.send(Chat, { text: `x${k}` });
    await until(() => got.length === 3, 'three messages');
    expect(server.metrics.traceContextInvalid).toBe(3);
    const s = [...server.sessions.values()][0];
    expect(s.stats.traceContextInvalid).toBe(3);
    await serverEnd.provider.forceFlush();
    // Ignored means no remote parent: the server's receive spans start traces of their own.
    const recvs = serverEnd.exporter.getFinishedSpans().filter((x) => x.name === 'receive reliable');
    expect(recvs).toHaveLength(3);
    for (const r of recvs) expect(r.parentSpanContext).toBeUndefined();
  });
});
