/** How a channel delivers. */
export type DeliveryMode = 'reliable-ordered' | 'reliable-unordered' | 'unreliable' | 'unreliable-sequenced';
/** Delivery guarantee, as an alternative to naming a {@link DeliveryMode} (see `ChannelOptions.qos`). */
export type QoS = 'at-most-once' | 'at-least-once' | 'exactly-once';

/** A typed message: `T` is the payload type, carried only at compile time. */
export interface MessageType<T = unknown> {
  /** Unique name of the message type, the same on both ends; handlers are looked up by it. */
  readonly name: string;
  /** A compact id fixed by the application; otherwise one is assigned and announced at the handshake. */
  readonly id?: number;
  /** The channel it is sent on unless `send()` says otherwise. Default `reliable`. */
  readonly channel?: string;
  /** Checks an incoming payload; returning false (or throwing) closes the sending session with 4422. */
  readonly validate?: (payload: unknown) => boolean;
  /** Phantom field carrying `T`; never set. */
  readonly __payload?: T;
}

/** Options of {@link defineMessage}. */
export interface MessageOptions<T> {
  /** A fixed compact id, 1 to 65535, unique among the application's messages. Default: assigned at registration. */
  id?: number;
  /** The channel it is sent on unless `send()` says otherwise. Default `reliable`. */
  channel?: string;
  /** Type guard for incoming payloads (e.g. from a schema library); false closes the sender with 4422. */
  validate?: (payload: unknown) => payload is T;
}

/**
 * Defines a message type. `defineMessage<{ text: string }>('chat')` or with a fixed id and channel:
 * `defineMessage<Pos>('pos', { id: 2, channel: 'unreliable' })`.
 */
export function defineMessage<T = unknown>(
  name: string,
  options: MessageOptions<T> | number = {},
): MessageType<T> {
  if (typeof name !== 'string' || name.length === 0)
    throw new TypeError('message name must be a non-empty string');
  const opts = typeof options === 'number' ? { id: options } : options;
  if (opts.id !== undefined && (!Number.isInteger(opts.id) || opts.id < 1 || opts.id > 0xffff)) {
    throw new RangeError('message id must be an integer in 1..65535');
  }
  return Object.freeze({
    name,
    id: opts.id,
    channel: opts.channel,
    validate: opts.validate as MessageType<T>['validate'],
  });
}

/** The payload type of a message type. */
export type PayloadOf<M> = M extends MessageType<infer T> ? T : never;

/**
 * Names to compact ids on the sending side. Ids are never reassigned, so frames already encoded (waiting in a
 * replay buffer) stay valid across reconnects; the table is announced at every handshake.
 */
export class MessageRegistry {
  private readonly byName = new Map<string, MessageType>();
  private readonly ids = new Map<string, number>();
  private readonly used = new Set<number>();
  private next = 1;

  /**
   * Adds `type` (the first registration of a name wins, though a later one may add a `validate`); returns the
   * registered type. Throws RangeError when an id is declared twice or differently for one name.
   */
  register(type: MessageType): MessageType {
    const existing = this.byName.get(type.name);
    if (existing) {
      if (type.id !== undefined && existing.id !== undefined && existing.id !== type.id) {
        throw new RangeError(`message '${type.name}' declared with ids ${existing.id} and ${type.id}`);
      }
      if (!existing.validate && type.validate) this.byName.set(type.name, type);
      return existing;
    }
    let id = type.id;
    if (id !== undefined) {
      if (this.used.has(id)) throw new RangeError(`message id ${id} is used twice`);
    } else {
      while (this.used.has(this.next)) this.next++;
      id = this.next++;
    }
    this.used.add(id);
    this.ids.set(type.name, id);
    this.byName.set(type.name, type);
    return type;
  }

  /** The registered type named `name`. */
  get(name: string): MessageType | undefined {
    return this.byName.get(name);
  }

  /** The compact wire id of `name`, if registered. */
  idOf(name: string): number | undefined {
    return this.ids.get(name);
  }

  /** `[name, id]` pairs, the handshake table. */
  table(): [string, number][] {
    return [...this.ids];
  }
}
