/** The browser-busy suite's messages, shared by the page, its Worker and the server agent. */
import { defineMessage } from '@quiver/session';

/** A probe: sequence number, the page's epoch time when it was sent, and which mode sent it (0 main, 1 worker). */
export interface Probe {
  s: number;
  t: number;
  m: 0 | 1;
  /** Worker mode: when the Worker took the page's send off its port (epoch ms; stamped by the bench's Worker). */
  w?: number;
  /** When the server agent received it (epoch ms; stamped on the echo). */
  a?: number;
}

/** Echoed on datagrams. */
export const DgramEcho = defineMessage<Probe>('dgram-echo', { id: 1, channel: 'unreliable' });
/** Echoed on the reliable stream. */
export const ReliableEcho = defineMessage<Probe>('reliable-echo', { id: 2 });
/** A 60 Hz input stream (datagrams, as game input): only its arrival at the server is recorded. */
export const Input = defineMessage<Probe>('input', { id: 3, channel: 'unreliable' });

export const MESSAGES = [DgramEcho, ReliableEcho, Input];
