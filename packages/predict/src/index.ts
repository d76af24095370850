export type { PredictErrorCode } from './errors.js';
export { PredictError } from './errors.js';
export type { Quat, Vec3 } from './math.js';
export {
  add,
  addScaled,
  angularVelocity,
  decay,
  distance,
  hermite,
  IDENTITY,
  integrate,
  length,
  lerp,
  quatAngle,
  quatConj,
  quatExp,
  quatFromAxisAngle,
  quatLog,
  quatMul,
  quatNormalize,
  rotate,
  scale,
  slerp,
  sub,
  vec3,
} from './math.js';
export type { FixedTickerOptions, Simulation, SimulationDefinition } from './simulation.js';
export { defineSimulation, FixedTicker } from './simulation.js';
export type {
  InputCodec,
  InputFieldType,
  InputOf,
  InputReceiverOptions,
  InputSenderOptions,
  ReceivedInput,
  SequencedInput,
} from './input.js';
export {
  decodeInputPacket,
  defineInputCodec,
  encodeInputPacket,
  InputReceiver,
  InputSender,
  MAX_INPUTS_PER_PACKET,
  quantize,
} from './input.js';
export type { Correction, PredictorOptions, PredictorStats } from './predictor.js';
export { deepEqual, Predictor } from './predictor.js';
export type {
  EntitySample,
  FrameMode,
  InterpolationOptions,
  InterpolationStats,
  SampledPose,
  VelocityEstimate,
} from './interpolation.js';
export { InterpolationBuffer } from './interpolation.js';
export type { PosePredictorOptions, PoseSample, PredictedPose } from './xr.js';
export { PosePredictor } from './xr.js';
export type { HitVolume, LagCompensatorOptions, RayHit } from './lagcomp.js';
export { LagCompensator, raycastVolumes } from './lagcomp.js';
export type { ServerClockSource, ServerTickEstimatorOptions, TickEstimate } from './tick.js';
export { ServerTickEstimator } from './tick.js';
export type { SimLinkOptions, SimLinkStats } from './simlink.js';
export { SimLink } from './simlink.js';
export type { SnapshotFeedOptions, TickSnapshotLike } from './snapshots.js';
export { SnapshotFeed } from './snapshots.js';
