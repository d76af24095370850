import type { SendTrace } from './tracing.js';
import type { DeliveryMode } from './messages.js';
import type { ChannelOptions } from './peer-options.js';
import type { ReceiveTracker } from './reassembly.js';

/** A message on its way out (queued, in flight, or being retransmitted). */
export interface OutMsg {
  name: string;
  flags: number;
  payload: Uint8Array;
  key: unknown;
  size: number;
  seq: number;
  /** When the message was last written to a link (reliable channels); the path watch judges acknowledgements by it. */
  sentAt?: number;
  /** The trace context carried in the envelope (FLAG_TRACE set), kept for replays. */
  tp?: Uint8Array;
  /** The send span, until the message is first written. */
  trace?: SendTrace;
}

/** A local channel: its options and send state (queue, replay window, sequence numbers). */
export interface ChannelState {
  name: string;
  id: number;
  mode: DeliveryMode;
  reliable: boolean;
  dedupe: boolean;
  priority: number;
  maxQueuedBytes: number;
  maxQueuedMessages: number;
  overflow: 'error' | 'drop-oldest' | 'coalesce' | 'close';
  fragment: boolean;
  queue: OutMsg[];
  queuedBytes: number;
  retransmit: OutMsg[];
  window: OutMsg[];
  nextSeq: number;
  dgramSeq: number;
  vtime: number;
  served: number;
}

/** What this end knows of a peer channel it receives on. */
export interface RecvChannel {
  name: string;
  mode: DeliveryMode;
  tracker: ReceiveTracker;
  lastSeq: number;
  ackDirty: boolean;
}

export function isRaw(payload: unknown): payload is Uint8Array {
  return payload instanceof Uint8Array;
}

/** The delivery mode a channel's options describe (`mode`, else derived from `qos`). */
export function channelMode(o: ChannelOptions): DeliveryMode {
  return (
    o.mode ??
    (o.qos === 'at-most-once'
      ? 'unreliable'
      : o.qos === 'at-least-once'
        ? 'reliable-unordered'
        : 'reliable-ordered')
  );
}

export function channelFromOptions(
  name: string,
  id: number,
  o: ChannelOptions,
  defaultOverflow: ChannelState['overflow'],
) {
  const mode = channelMode(o);
  const reliable = mode === 'reliable-ordered' || mode === 'reliable-unordered';
  const state: ChannelState = {
    name,
    id,
    mode,
    reliable,
    dedupe: o.qos !== 'at-least-once',
    priority: o.priority ?? 1,
    maxQueuedBytes: o.maxQueuedBytes ?? 1 << 20,
    maxQueuedMessages: o.maxQueuedMessages ?? 4096,
    overflow: o.overflow ?? defaultOverflow,
    fragment: o.fragment ?? true,
    queue: [],
    queuedBytes: 0,
    retransmit: [],
    window: [],
    nextSeq: 1,
    dgramSeq: 0,
    vtime: 0,
    served: 0,
  };
  return state;
}
