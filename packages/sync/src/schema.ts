/**
 * Typed component schemas. Every field is quantised to unsigned integer "slots" of a known bit width, so
 * that server and client agree bit-for-bit on what a value is: the client's decoded state equals the
 * server's quantised state exactly, never approximately.
 */

/** Options every field builder accepts. */
export interface FieldOptions {
  /**
   * A change to this field is never deferred by the byte budget: the entity goes into the next packet even
   * over budget (up to `maxPacketBytes`). Delivery is still latest-value (intermediate values coalesce).
   */
  reliable?: boolean;
  /** Multiplies the entity's priority while this field differs from the client's baseline. Default 1. */
  priority?: number;
  /** Sent only to the client that owns the entity (`spawn(..., { owner })`); others keep the default. */
  ownerOnly?: boolean;
}

/** The value of a `t.vec2()` field. */
export interface Vec2 {
  /** First axis, in the field's units. */
  x: number;
  /** Second axis. */
  y: number;
}
/** The value of a `t.vec3()` field. */
export interface Vec3 {
  /** First axis, in the field's units. */
  x: number;
  /** Second axis. */
  y: number;
  /** Third axis. */
  z: number;
}
/** The value of a `t.quat()` field: a unit quaternion (rotation). */
export interface Quat {
  /** Vector part, first component. */
  x: number;
  /** Vector part, second component. */
  y: number;
  /** Vector part, third component. */
  z: number;
  /** Scalar part. */
  w: number;
}

/** An integer field: every integer in [min, max] is exact; values outside are clamped. */
export interface IntSpec extends FieldOptions {
  /** Smallest value, an integer. */
  min: number;
  /** Largest value, an integer; `max - min` at most 2^32 - 1. */
  max: number;
}
/** A quantised float field on [min, max]; values outside are clamped. */
export interface FloatSpec extends FieldOptions {
  /** Smallest value; exact after quantisation. */
  min: number;
  /** Largest value; exact after quantisation. */
  max: number;
  /**
   * Largest quantisation step. The range is cut into n = ceil((max - min) / precision) equal steps, so both ends are
   * exact, the step is at most `precision` and the error at most half of it.
   */
  precision: number;
}
/** A range per axis (`[x, y]` or `[x, y, z]`) or one number for every axis. */
export type PerAxis<N extends number> =
  | number
  | (N extends 2 ? readonly [number, number] : readonly [number, number, number]);
/** A quantised vector field, each axis like a {@link FloatSpec}. */
export interface VecSpec<N extends 2 | 3> extends FieldOptions {
  /** Smallest value per axis. */
  min: PerAxis<N>;
  /** Largest value per axis. */
  max: PerAxis<N>;
  /** Largest step per axis (see `FloatSpec.precision`). An axis with min = max costs no bits. */
  precision: PerAxis<N>;
}
/** A wrapping angle field (radians). */
export interface AngleSpec extends FieldOptions {
  /** Largest step in degrees: a turn is cut into ceil(360 / precision) steps. Default 1. */
  precision?: number;
}
/** A rotation field, sent as smallest-three (Glenn Fiedler, "Snapshot Compression"). */
export interface QuatSpec extends FieldOptions {
  /**
   * Bits per smallest-three component, 3..15. Default 9 (Fiedler's choice): worst case 0.47° measured over a million
   * random rotations (see the README table).
   */
  bits?: number;
}
/** A short UTF-8 string field. */
export interface StringSpec extends FieldOptions {
  /** Maximum UTF-8 length in bytes, 0..4095. Default 32. */
  maxBytes?: number;
}

type Kind = 'int' | 'float' | 'vec2' | 'vec3' | 'angle' | 'quat' | 'bool' | 'enum' | 'string';

/** A declared field; `V` is the TypeScript type of its value (phantom, for inference only). */
export interface Field<V = unknown, K extends Kind = Kind> {
  /** Which builder made it (`int`, `float`, `vec3`, ...). */
  readonly kind: K;
  /** The field options with defaults filled in. */
  readonly options: FieldOptions;
  /** The builder's validated parameters (ranges, steps, bits); part of the schema hash. */
  readonly params: Readonly<Record<string, unknown>>;
  /** Phantom: never set at run time. */
  readonly __value?: V;
}

function pickOptions(o: FieldOptions | undefined): FieldOptions {
  return { reliable: o?.reliable ?? false, priority: o?.priority ?? 1, ownerOnly: o?.ownerOnly ?? false };
}

function checkRange(min: number, max: number, what: string): void {
  if (!Number.isFinite(min) || !Number.isFinite(max) || max < min)
    throw new RangeError(`${what}: need finite min <= max`);
}

/** Field builders. */
export const t = {
  /** An integer in [min, max]; throws RangeError for non-integer bounds or a span over 2^32. */
  int(spec: IntSpec): Field<number, 'int'> {
    checkRange(spec.min, spec.max, 't.int');
    if (!Number.isInteger(spec.min) || !Number.isInteger(spec.max) || spec.max - spec.min > 0xffffffff)
      throw new RangeError('t.int: integer bounds spanning at most 2^32 values');
    return { kind: 'int', options: pickOptions(spec), params: { min: spec.min, max: spec.max } };
  },
  /** A float on [min, max] with steps of at most `precision`. */
  float(spec: FloatSpec): Field<number, 'float'> {
    checkFloat(spec, 't.float');
    return {
      kind: 'float',
      options: pickOptions(spec),
      params: { min: spec.min, max: spec.max, precision: spec.precision },
    };
  },
  /** A 2D vector, each axis quantised like `t.float`. */
  vec2(spec: VecSpec<2>): Field<Vec2, 'vec2'> {
    return { kind: 'vec2', options: pickOptions(spec), params: vecParams(spec, 2, 't.vec2') };
  },
  /** A 3D vector, each axis quantised like `t.float`. */
  vec3(spec: VecSpec<3>): Field<Vec3, 'vec3'> {
    return { kind: 'vec3', options: pickOptions(spec), params: vecParams(spec, 3, 't.vec3') };
  },
  /** An angle in radians that wraps: any input is taken modulo a turn and decodes into [-π, π). */
  angle(spec: AngleSpec = {}): Field<number, 'angle'> {
    const precision = spec.precision ?? 1;
    if (!(precision > 0 && precision <= 180))
      throw new RangeError('t.angle: precision must be in (0, 180] degrees');
    const steps = Math.ceil(360 / precision - 1e-9);
    if (steps > 2 ** 31) throw new RangeError('t.angle: at most 2^31 steps per turn');
    return { kind: 'angle', options: pickOptions(spec), params: { precision, steps } };
  },
  /** A rotation, smallest-three encoded with `bits` per component (default 9). */
  quat(spec: QuatSpec = {}): Field<Quat, 'quat'> {
    const bits = spec.bits ?? 9;
    if (!Number.isInteger(bits) || bits < 3 || bits > 15) throw new RangeError('t.quat: bits must be 3..15');
    return { kind: 'quat', options: pickOptions(spec), params: { bits } };
  },
  /** A boolean: one bit. */
  bool(opts: FieldOptions = {}): Field<boolean, 'bool'> {
    return { kind: 'bool', options: pickOptions(opts), params: {} };
  },
  /** One of `values` (distinct, at least one), sent as its index. */
  enum<const V extends readonly string[]>(values: V, opts: FieldOptions = {}): Field<V[number], 'enum'> {
    if (values.length === 0 || new Set(values).size !== values.length)
      throw new RangeError('t.enum: need at least one value, all distinct');
    return { kind: 'enum', options: pickOptions(opts), params: { values: [...values] } };
  },
  /** A UTF-8 string of at most `maxBytes` bytes (default 32). */
  string(spec: StringSpec = {}): Field<string, 'string'> {
    const maxBytes = spec.maxBytes ?? 32;
    if (!Number.isInteger(maxBytes) || maxBytes < 0 || maxBytes > 4095)
      throw new RangeError('t.string: maxBytes must be 0..4095');
    return { kind: 'string', options: pickOptions(spec), params: { maxBytes } };
  },
};

function checkFloat(spec: { min: number; max: number; precision: number }, what: string): void {
  checkRange(spec.min, spec.max, what);
  if (!(spec.precision > 0)) throw new RangeError(`${what}: precision must be > 0`);
  if ((spec.max - spec.min) / spec.precision > 0xffffffff)
    throw new RangeError(`${what}: (max - min) / precision must be below 2^32`);
}

function vecParams(spec: VecSpec<2> | VecSpec<3>, n: number, what: string): Record<string, unknown> {
  const axis = (v: number | readonly number[], name: string): number[] => {
    if (typeof v === 'number') return new Array(n).fill(v);
    if (!Array.isArray(v) || v.length !== n) throw new RangeError(`${what}: ${name} needs ${n} values`);
    return [...v];
  };
  const min = axis(spec.min, 'min');
  const max = axis(spec.max, 'max');
  const precision = axis(spec.precision, 'precision');
  for (let i = 0; i < n; i++) checkFloat({ min: min[i], max: max[i], precision: precision[i] }, what);
  // One number each is kept as a number, so schemas written before per-axis ranges hash as before.
  const one = (v: number[]) => (v.every((x) => x === v[0]) ? v[0] : v);
  return { min: one(min), max: one(max), precision: one(precision) };
}

/**
 * Steps of a float range: n = ceil((max - min) / precision), tolerant of binary rounding (0.3 / 0.1 is not 3), so
 * that the step (max - min) / n is never above the precision asked for and max itself is a step.
 */
export function floatSteps(min: number, max: number, precision: number): number {
  const r = (max - min) / precision;
  const near = Math.round(r);
  return Math.abs(r - near) <= 1e-9 * Math.max(1, near) ? near : Math.ceil(r);
}

/** Fields of a component, by name. */
export type FieldMap = Record<string, Field<unknown, Kind>>;

/** A declared component: a named group of fields an entity may have. */
export interface Component<F extends FieldMap = FieldMap> {
  /** Its fields, by name. */
  readonly fields: F;
}

/** Declares a component; its value type is inferred from the field builders. */
export function defineComponent<const F extends FieldMap>(fields: F): Component<F> {
  if (Object.keys(fields).length === 0) throw new RangeError('defineComponent: at least one field');
  return { fields };
}

/** The TypeScript value type of a field. */
export type FieldValue<F> = F extends Field<infer V, Kind> ? V : never;
/** The TypeScript value type of a component: one value per field. */
export type ComponentValue<C> =
  C extends Component<infer F> ? { -readonly [K in keyof F]: FieldValue<F[K]> } : never;
/** Components of a schema, by name. */
export type ComponentMap = Record<string, Component>;
/** The values of one entity: any subset of the schema's components. */
export type EntityValues<M extends ComponentMap> = { -readonly [K in keyof M]?: ComponentValue<M[K]> };
/** What `spawn`/`set` accept: every field optional (missing fields keep their value or the default). */
export type EntityInput<M extends ComponentMap> = {
  -readonly [K in keyof M]?: Partial<ComponentValue<M[K]>>;
};

/** A field as laid out in an entity's row of quantised slots. */
export interface CompiledField {
  readonly name: string;
  readonly kind: Kind;
  /** Index of the field's first slot within the entity row. */
  readonly slot: number;
  readonly slotCount: number;
  /** Bit width of each slot. */
  readonly widths: readonly number[];
  /** Largest valid quantised value of each slot (anything above is corrupt input). */
  readonly maxQ: readonly number[];
  /** Per slot of a number field (int, float, vec, angle): decoded value = lo + q * step (angles wrap). */
  readonly lo: readonly number[];
  readonly hi: readonly number[];
  readonly step: readonly number[];
  /** Per slot: the modulus of a wrapping slot (angles: steps per turn), 0 otherwise. Deltas wrap around it. */
  readonly wrap: readonly number[];
  /** Widest slot of a multi-slot field's shared-width delta (a quaternion's index excluded): its "absolute" code. */
  readonly jointMax: number;
  /** First slot of the shared-width delta (a quaternion's index slot does not join it). */
  readonly jointFrom: number;
  /** Slots of the shared-width delta whose width is not 0, and the sum of their widths (its absolute form). */
  readonly jointSlots: number;
  readonly jointAbs: number;
  /** A quaternion (its index slot first). */
  readonly quat: boolean;
  /** Extrapolated from two baselines (`isPredictable`). */
  readonly predictable: boolean;
  readonly reliable: boolean;
  readonly priority: number;
  readonly ownerOnly: boolean;
  readonly params: Readonly<Record<string, unknown>>;
}

export interface CompiledComponent {
  readonly name: string;
  readonly index: number;
  readonly fields: readonly CompiledField[];
  readonly slot: number;
  readonly slotCount: number;
  /** Upper bound of the bits a full (absolute) encoding of this component takes. */
  readonly maxFullBits: number;
  /** Some field is `ownerOnly` (its records differ per client; no all-changed form). */
  readonly hasOwnerOnly: boolean;
}

/** Options of `defineSchema`. */
export interface SyncSchemaOptions {
  /** Highest number of live entities (slots). Default 4096. Part of the schema hash. */
  maxEntities?: number;
}

/** A compiled schema: the components, their bit layout and the hash both ends check. */
export interface SyncSchema<M extends ComponentMap = ComponentMap> {
  /** The components as declared, by name. */
  readonly components: M;
  /** The components' bit layout, in wire order. */
  readonly compiled: readonly CompiledComponent[];
  /** The same, by component name. */
  readonly byName: ReadonlyMap<string, CompiledComponent>;
  /** Slots per entity row. */
  readonly rowWidth: number;
  /** Highest number of live entities (default 4096). */
  readonly maxEntities: number;
  /** FNV-1a of the canonical schema description; sent in every packet header. */
  readonly hash: number;
  /** Some field is `ownerOnly`: records of owned entities then differ per client and are not shared. */
  readonly hasOwnerOnly: boolean;
  /** Some field is a float, vector, angle or quaternion: UPDATE records carry a prediction flag (see codec.ts). */
  readonly predictable: boolean;
  /** Upper bound of the bits of one full entity record body (without its index). */
  readonly maxFullRecordBits: number;
}

const MAX_COMPONENTS = 31;
/**
 * 2: ranges cut into equal steps ending at max, exact identity quaternions, angles, value prediction.
 * 3: shared-width deltas of multi-slot fields, a 1-bit UPDATE kind.
 */
const WIRE_VERSION = 3;

export function bitsFor(maxValue: number): number {
  if (maxValue <= 0) return 0;
  return maxValue >= 2 ** 31 ? 32 : 32 - Math.clz32(maxValue);
}

function compileField(name: string, f: Field, slot: number): CompiledField {
  const p = f.params;
  let widths: number[];
  let maxQ: number[];
  let lo: number[] = [];
  let hi: number[] = [];
  let step: number[] = [];
  let wrap: number[] = [];
  switch (f.kind) {
    case 'int': {
      const m = (p.max as number) - (p.min as number);
      widths = [bitsFor(m)];
      maxQ = [m];
      lo = [p.min as number];
      hi = [p.max as number];
      step = [1];
      break;
    }
    case 'float':
    case 'vec2':
    case 'vec3': {
      const n = f.kind === 'float' ? 1 : f.kind === 'vec2' ? 2 : 3;
      const at = (v: unknown, i: number) => (typeof v === 'number' ? v : (v as number[])[i]);
      widths = [];
      maxQ = [];
      for (let i = 0; i < n; i++) {
        const min = at(p.min, i);
        const max = at(p.max, i);
        const m = floatSteps(min, max, at(p.precision, i));
        widths.push(bitsFor(m));
        maxQ.push(m);
        lo.push(min);
        hi.push(max);
        step.push(m === 0 ? 0 : (max - min) / m);
      }
      break;
    }
    case 'angle': {
      const n = p.steps as number;
      widths = [bitsFor(n - 1)];
      maxQ = [n - 1];
      lo = [0];
      hi = [2 * Math.PI];
      step = [(2 * Math.PI) / n];
      wrap = [n];
      break;
    }
    case 'quat': {
      // An even top code: the midpoint (zero) is a code, so the identity is exact. The code 2^bits - 1 is unused.
      const b = p.bits as number;
      widths = [2, b, b, b];
      maxQ = [3, 2 ** b - 2, 2 ** b - 2, 2 ** b - 2];
      break;
    }
    case 'bool':
      widths = [1];
      maxQ = [1];
      break;
    case 'enum': {
      const n = (p.values as string[]).length;
      widths = [bitsFor(n - 1)];
      maxQ = [n - 1];
      break;
    }
    case 'string':
      // The slot holds an interned string id; the wire carries length + bytes.
      widths = [bitsFor(p.maxBytes as number)];
      maxQ = [0xffffffff];
      break;
  }
  if (wrap.length === 0) wrap = new Array(widths.length).fill(0);
  const jointFrom = f.kind === 'quat' ? 1 : 0;
  const joint = widths.slice(jointFrom);
  return {
    name,
    kind: f.kind,
    slot,
    slotCount: widths.length,
    widths,
    maxQ,
    lo,
    hi,
    step,
    wrap,
    jointMax: Math.max(0, ...joint),
    jointFrom,
    jointSlots: joint.filter((w) => w > 0).length,
    jointAbs: joint.reduce((x, y) => x + y, 0),
    quat: f.kind === 'quat',
    predictable: PREDICTABLE.has(f.kind),
    reliable: f.options.reliable ?? false,
    priority: f.options.priority ?? 1,
    ownerOnly: f.options.ownerOnly ?? false,
    params: p,
  };
}

/** Fields whose values are extrapolated from two baselines (numbers that move; ints are counters, not motion). */
export function isPredictable(f: CompiledField): boolean {
  return f.predictable;
}
const PREDICTABLE = new Set<Kind>(['float', 'vec2', 'vec3', 'angle', 'quat']);

/** Upper bound of the bits of one field written absolutely (see codec.ts). */
export function fieldMaxBits(f: CompiledField): number {
  if (f.kind === 'string') return f.widths[0] + 8 * (f.params.maxBytes as number);
  let n = 0;
  for (const w of f.widths) n += w;
  return n;
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Compiles a set of named components into a wire schema shared (identically) by server and clients. */
export function defineSchema<const M extends ComponentMap>(
  components: M,
  options: SyncSchemaOptions = {},
): SyncSchema<M> {
  const maxEntities = options.maxEntities ?? 4096;
  if (!Number.isInteger(maxEntities) || maxEntities < 1 || maxEntities > 1 << 20)
    throw new RangeError('maxEntities must be 1..2^20');
  const names = Object.keys(components);
  if (names.length === 0 || names.length > MAX_COMPONENTS)
    throw new RangeError(`a schema has 1..${MAX_COMPONENTS} components`);
  const compiled: CompiledComponent[] = [];
  let slot = 0;
  let hasOwnerOnly = false;
  let maxFullRecordBits = 0;
  // The wire format's version first: a schema hash never matches across incompatible quantisers.
  const canon: unknown[] = [WIRE_VERSION, maxEntities];
  names.forEach((cname, index) => {
    const start = slot;
    const fields: CompiledField[] = [];
    let maxFullBits = 0;
    for (const [fname, f] of Object.entries(components[cname].fields)) {
      const cf = compileField(fname, f, slot);
      slot += cf.slotCount;
      fields.push(cf);
      hasOwnerOnly ||= cf.ownerOnly;
      maxFullBits += fieldMaxBits(cf) + (cf.ownerOnly ? 1 : 0);
      canon.push([cname, fname, f.kind, f.params, cf.ownerOnly]);
    }
    compiled.push({
      name: cname,
      index,
      fields,
      slot: start,
      slotCount: slot - start,
      maxFullBits,
      hasOwnerOnly: fields.some((f) => f.ownerOnly),
    });
    maxFullRecordBits += maxFullBits;
  });
  // Kind (2) + id (exp-Golomb of up to 32 bits) + mask.
  maxFullRecordBits += 2 + 64 + names.length;
  return {
    components,
    compiled,
    byName: new Map(compiled.map((c) => [c.name, c])),
    rowWidth: slot,
    maxEntities,
    hash: fnv1a(JSON.stringify(canon)),
    hasOwnerOnly,
    predictable: compiled.some((c) => c.fields.some((f) => isPredictable(f))),
    maxFullRecordBits,
  };
}

/** Interned strings: a slot holds a string's id, so change detection is an integer compare. */
export class StringTable {
  private readonly ids = new Map<string, number>();
  readonly strings: string[] = [''];
  readonly utf8: Uint8Array[] = [new Uint8Array(0)];
  private readonly encoder = new TextEncoder();

  intern(s: string): number {
    let id = this.ids.get(s);
    if (id === undefined) {
      id = this.strings.length;
      this.ids.set(s, id);
      this.strings.push(s);
      this.utf8.push(this.encoder.encode(s));
    }
    return id;
  }

  get size(): number {
    return this.strings.length;
  }
}

const SQRT1_2 = Math.SQRT1_2;
const TURN = 2 * Math.PI;

/**
 * Writes the quantised form of `value` into `row[base + f.slot ...]`. Out-of-range numbers are clamped; returns how
 * many were (non-finite numbers count and become the minimum).
 */
export function quantiseField(
  f: CompiledField,
  value: unknown,
  row: Uint32Array,
  base: number,
  strings: StringTable,
): number {
  const o = base + f.slot;
  const p = f.params;
  switch (f.kind) {
    case 'int':
    case 'float':
      return quantiseNumber(f, 0, Number(value), row, o);
    case 'vec2': {
      const v = value as Vec2;
      return quantiseNumber(f, 0, v.x, row, o) + quantiseNumber(f, 1, v.y, row, o + 1);
    }
    case 'vec3': {
      const v = value as Vec3;
      return (
        quantiseNumber(f, 0, v.x, row, o) +
        quantiseNumber(f, 1, v.y, row, o + 1) +
        quantiseNumber(f, 2, v.z, row, o + 2)
      );
    }
    case 'angle': {
      const v = Number(value);
      if (!Number.isFinite(v)) {
        row[o] = 0;
        return 1;
      }
      const n = f.wrap[0];
      const q = Math.round((v / TURN) * n) % n;
      row[o] = q < 0 ? q + n : q;
      return 0;
    }
    case 'quat':
      quantiseQuat(value as Quat, f.maxQ[1], row, o);
      return 0;
    case 'bool':
      row[o] = value ? 1 : 0;
      return 0;
    case 'enum': {
      const i = (p.values as string[]).indexOf(value as string);
      if (i < 0) throw new RangeError(`field ${f.name}: ${String(value)} is not one of ${String(p.values)}`);
      row[o] = i;
      return 0;
    }
    case 'string': {
      const s = String(value);
      const id = strings.intern(s);
      if (strings.utf8[id].length > (p.maxBytes as number))
        throw new RangeError(`field ${f.name}: string longer than ${p.maxBytes as number} UTF-8 bytes`);
      row[o] = id;
      return 0;
    }
  }
}

/** Nearest step of slot `i` (clamped into the range); returns 1 when the value had to be clamped. */
function quantiseNumber(f: CompiledField, i: number, v: number, row: Uint32Array, o: number): number {
  const lo = f.lo[i];
  const maxQ = f.maxQ[i];
  if (!(v >= lo && v <= f.hi[i])) {
    row[o] = v > f.hi[i] ? maxQ : 0;
    return 1;
  }
  if (maxQ === 0) {
    row[o] = 0;
    return 0;
  }
  const q = Math.round((v - lo) / f.step[i]);
  row[o] = Math.min(q, maxQ);
  return 0;
}

/** The decoded value of a number slot: never outside [lo, hi] (the top step is hi itself, not lo + n * step). */
export function numberOf(f: CompiledField, i: number, q: number): number {
  if (q >= f.maxQ[i]) return f.hi[i];
  return f.lo[i] + q * f.step[i];
}

/**
 * Smallest-three: drop the largest component (made positive), send its index and the other three, each mapped from
 * [-1/√2, 1/√2] onto 0..maxQ with maxQ even, so that 0 (and with it the identity) is exact.
 */
function quantiseQuat(q: Quat, maxQ: number, row: Uint32Array, o: number): void {
  let { x, y, z, w } = q;
  let len = Math.hypot(x, y, z, w);
  if (!(len > 0) || !Number.isFinite(len)) {
    x = 0;
    y = 0;
    z = 0;
    w = 1;
    len = 1;
  }
  const c = [x / len, y / len, z / len, w / len];
  let li = 0;
  for (let i = 1; i < 4; i++) if (Math.abs(c[i]) > Math.abs(c[li])) li = i;
  const sign = c[li] < 0 ? -1 : 1;
  const mid = maxQ / 2;
  row[o] = li;
  let k = 1;
  for (let i = 0; i < 4; i++) {
    if (i === li) continue;
    const v = Math.round(((c[i] * sign) / SQRT1_2) * mid + mid);
    row[o + k++] = v < 0 ? 0 : Math.min(v, maxQ);
  }
}

/** The value a quantised field decodes to (identical on server and client). */
export function dequantiseField(
  f: CompiledField,
  row: Uint32Array,
  base: number,
  strings: StringTable,
): unknown {
  const o = base + f.slot;
  const p = f.params;
  switch (f.kind) {
    case 'int':
      return row[o] + (p.min as number);
    case 'float':
      return numberOf(f, 0, row[o]);
    case 'vec2':
      return { x: numberOf(f, 0, row[o]), y: numberOf(f, 1, row[o + 1]) };
    case 'vec3':
      return { x: numberOf(f, 0, row[o]), y: numberOf(f, 1, row[o + 1]), z: numberOf(f, 2, row[o + 2]) };
    case 'angle': {
      const n = f.wrap[0];
      const q = row[o];
      return (q < n / 2 ? q : q - n) * f.step[0];
    }
    case 'quat': {
      const mid = f.maxQ[1] / 2;
      const li = row[o];
      const c = [0, 0, 0, 0];
      let k = 1;
      let sum = 0;
      for (let i = 0; i < 4; i++) {
        if (i === li) continue;
        const v = ((row[o + k++] - mid) / mid) * SQRT1_2;
        c[i] = v;
        sum += v * v;
      }
      c[li] = Math.sqrt(Math.max(0, 1 - sum));
      return { x: c[0], y: c[1], z: c[2], w: c[3] };
    }
    case 'bool':
      return row[o] === 1;
    case 'enum':
      return (p.values as string[])[row[o]];
    case 'string':
      return strings.strings[row[o]] ?? '';
  }
}

/** Default quantised row of a component (what an absent or never-sent field reads as). */
export function defaultField(f: CompiledField, row: Uint32Array, base: number): void {
  const o = base + f.slot;
  for (let i = 0; i < f.slotCount; i++) row[o + i] = 0;
  switch (f.kind) {
    case 'int':
    case 'float':
    case 'vec2':
    case 'vec3':
      // Zero when in range, else the minimum: the most natural "unset" number.
      for (let i = 0; i < f.slotCount; i++)
        if (f.lo[i] <= 0 && f.hi[i] >= 0 && f.step[i] > 0)
          row[o + i] = Math.min(Math.round(-f.lo[i] / f.step[i]), f.maxQ[i]);
      return;
    case 'quat': {
      // Identity: w (index 3) is the largest; x, y, z sit exactly at the midpoint of their range.
      const mid = f.maxQ[1] / 2;
      row[o] = 3;
      row[o + 1] = mid;
      row[o + 2] = mid;
      row[o + 3] = mid;
      return;
    }
    default:
      return;
  }
}
