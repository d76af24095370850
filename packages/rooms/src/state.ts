import type {
  ComponentMap,
  ClientOptions as SyncClientInterest,
  SyncSchema,
  SyncServer,
  SyncServerOptions,
} from '@quiver/sync';

/** The room's synchronised state: a `@quiver/sync` server the room ticks and sends for you. */
// biome-ignore lint/suspicious/noExplicitAny: any component map
export type RoomState<M extends ComponentMap = any> = SyncServer<M>;

/** Options of `room.setState`: `C` is the room's client type, `M` the component map of the schema. */
export interface RoomStateOptions<C, M extends ComponentMap = ComponentMap> {
  /** The `@quiver/sync` schema of the state's entities and components. */
  schema: SyncSchema<M>;
  /** Options of the sync server (window, budget, position field for radius interest, ...). */
  sync?: SyncServerOptions;
  /**
   * Every how many ms the state is ticked and each client sent its delta (as a datagram). Default 50 (20 Hz).
   * `0`: never on its own; call `room.sendState()` (which ticks) yourself, e.g. from the simulation interval.
   */
  patchIntervalMs?: number;
  /** Per-client interest (radius, filter, byte budget), asked once when the client joins. */
  interest?: (client: C) => SyncClientInterest | undefined;
}
