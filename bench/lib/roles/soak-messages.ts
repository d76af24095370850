/** The messages of the soak suite: a player's input up, the world's state down, both at the tick rate. */
import { defineMessage } from '@quiver/session';

export const SoakInput = defineMessage<{ seq: number; x: number; y: number }>('soak-input', {
  channel: 'unreliable',
});
export const SoakState = defineMessage<{ seq: number; x: number; y: number }>('soak-state', {
  channel: 'unreliable',
});
export const SOAK_MESSAGES = [SoakInput, SoakState];
