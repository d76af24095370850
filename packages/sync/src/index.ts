export { BitReader, BitWriter } from './bits.js';
export {
  type ClientSnapshot,
  SyncClient,
  type SyncClientOptions,
  type SyncClientStats,
  type SyncEvent,
} from './client.js';
export { type SyncErrorCode, SyncError } from './errors.js';
export {
  type Component,
  type ComponentMap,
  type ComponentValue,
  defineComponent,
  defineSchema,
  type EntityInput,
  type EntityValues,
  type AngleSpec,
  type Field,
  type FloatSpec,
  type IntSpec,
  type FieldOptions,
  type FieldValue,
  type PerAxis,
  type Quat,
  type QuatSpec,
  type StringSpec,
  type SyncSchema,
  type SyncSchemaOptions,
  t,
  type Vec2,
  type Vec3,
  type VecSpec,
} from './schema.js';
export {
  type ClientKey,
  type ClientOptions,
  type SpawnOptions,
  SyncServer,
  type SyncServerOptions,
  type SyncServerStats,
} from './server.js';
