/**
 * Typed component schemas. Every field is quantised to unsigned integer "slots" of a known bit width, so
 * that server and client agree bit-for-bit on what a value is: the client's decoded state equals the
 * server's quantised state exactly, never approximately.
 */

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

export interface Vec3 {
  x: number;
  y: number;
  z: number;
}
export interface Quat {
  x: number;
  y: number;
  z: number;
  w: number;
}

export interface IntSpec extends FieldOptions {
  min: number;
  max: number;
}
export interface FloatSpec extends FieldOptions {
  min: number;
  max: number;
  /** Quantisation step: values are sent as round((v - min) / precision). */
  precision: number;
}
export interface QuatSpec extends FieldOptions {
  /** Bits per smallest-three component, 2..15. Default 9 (Fiedler's choice; < 0.2° error). */
  bits?: number;
}
export interface StringSpec extends FieldOptions {
  /** Maximum UTF-8 length in bytes, 0..4095. Default 32. */
  maxBytes?: number;
}

type Kind = 'int' | 'float' | 'vec3' | 'quat' | 'bool' | 'enum' | 'string';

/** A declared field; `V` is the TypeScript type of its value (phantom, for inference only). */
export interface Field<V = unknown, K extends Kind = Kind> {
  readonly kind: K;
  readonly options: FieldOptions;
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
  int(spec: IntSpec): Field<number, 'int'> {
    checkRange(spec.min, spec.max, 't.int');
    if (!Number.isInteger(spec.min) || !Number.isInteger(spec.max) || spec.max - spec.min > 0xffffffff)
      throw new RangeError('t.int: integer bounds spanning at most 2^32 values');
    return { kind: 'int', options: pickOptions(spec), params: { min: spec.min, max: spec.max } };
  },
  float(spec: FloatSpec): Field<number, 'float'> {
    checkFloat(spec, 't.float');
    return {
      kind: 'float',
      options: pickOptions(spec),
      params: { min: spec.min, max: spec.max, precision: spec.precision },
    };
  },
  vec3(spec: FloatSpec): Field<Vec3, 'vec3'> {
    checkFloat(spec, 't.vec3');
    return {
      kind: 'vec3',
      options: pickOptions(spec),
      params: { min: spec.min, max: spec.max, precision: spec.precision },
    };
  },
  quat(spec: QuatSpec = {}): Field<Quat, 'quat'> {
    const bits = spec.bits ?? 9;
    if (!Number.isInteger(bits) || bits < 2 || bits > 15) throw new RangeError('t.quat: bits must be 2..15');
    return { kind: 'quat', options: pickOptions(spec), params: { bits } };
  },
  bool(opts: FieldOptions = {}): Field<boolean, 'bool'> {
    return { kind: 'bool', options: pickOptions(opts), params: {} };
  },
  enum<const V extends readonly string[]>(values: V, opts: FieldOptions = {}): Field<V[number], 'enum'> {
    if (values.length === 0 || new Set(values).size !== values.length)
      throw new RangeError('t.enum: need at least one value, all distinct');
    return { kind: 'enum', options: pickOptions(opts), params: { values: [...values] } };
  },
  string(spec: StringSpec = {}): Field<string, 'string'> {
    const maxBytes = spec.maxBytes ?? 32;
    if (!Number.isInteger(maxBytes) || maxBytes < 0 || maxBytes > 4095)
      throw new RangeError('t.string: maxBytes must be 0..4095');
    return { kind: 'string', options: pickOptions(spec), params: { maxBytes } };
  },
};

function checkFloat(spec: FloatSpec, what: string): void {
  checkRange(spec.min, spec.max, what);
  if (!(spec.precision > 0)) throw new RangeError(`${what}: precision must be > 0`);
  if ((spec.max - spec.min) / spec.precision > 0xffffffff)
    throw new RangeError(`${what}: (max - min) / precision must be below 2^32`);
}

export type FieldMap = Record<string, Field<unknown, Kind>>;

export interface Component<F extends FieldMap = FieldMap> {
  readonly fields: F;
}

/** Declares a component; its value type is inferred from the field builders. */
export function defineComponent<const F extends FieldMap>(fields: F): Component<F> {
  if (Object.keys(fields).length === 0) throw new RangeError('defineComponent: at least one field');
  return { fields };
}

export type FieldValue<F> = F extends Field<infer V, Kind> ? V : never;
export type ComponentValue<C> =
  C extends Component<infer F> ? { -readonly [K in keyof F]: FieldValue<F[K]> } : never;
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
}

export interface SyncSchemaOptions {
  /** Highest number of live entities (slots). Default 4096. Part of the schema hash. */
  maxEntities?: number;
}

export interface SyncSchema<M extends ComponentMap = ComponentMap> {
  readonly components: M;
  readonly compiled: readonly CompiledComponent[];
  readonly byName: ReadonlyMap<string, CompiledComponent>;
  /** Slots per entity row. */
  readonly rowWidth: number;
  readonly maxEntities: number;
  /** FNV-1a of the canonical schema description; sent in every packet header. */
  readonly hash: number;
  readonly hasOwnerOnly: boolean;
  /** Upper bound of the bits of one full entity record body (without its index). */
  readonly maxFullRecordBits: number;
}

const MAX_COMPONENTS = 31;

export function bitsFor(maxValue: number): number {
  if (maxValue <= 0) return 0;
  return maxValue >= 2 ** 31 ? 32 : 32 - Math.clz32(maxValue);
}

function compileField(name: string, f: Field, slot: number): CompiledField {
  const p = f.params;
  let widths: number[];
  let maxQ: number[];
  switch (f.kind) {
    case 'int': {
      const m = (p.max as number) - (p.min as number);
      widths = [bitsFor(m)];
      maxQ = [m];
      break;
    }
    case 'float':
    case 'vec3': {
      const m = Math.round(((p.max as number) - (p.min as number)) / (p.precision as number));
      const n = f.kind === 'vec3' ? 3 : 1;
      widths = new Array(n).fill(bitsFor(m));
      maxQ = new Array(n).fill(m);
      break;
    }
    case 'quat': {
      const b = p.bits as number;
      widths = [2, b, b, b];
      maxQ = [3, 2 ** b - 1, 2 ** b - 1, 2 ** b - 1];
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
  return {
    name,
    kind: f.kind,
    slot,
    slotCount: widths.length,
    widths,
    maxQ,
    reliable: f.options.reliable ?? false,
    priority: f.options.priority ?? 1,
    ownerOnly: f.options.ownerOnly ?? false,
    params: p,
  };
}

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
  const canon: unknown[] = [maxEntities];
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
    compiled.push({ name: cname, index, fields, slot: start, slotCount: slot - start, maxFullBits });
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

/** Writes the quantised form of `value` into `row[base + f.slot ...]`. Out-of-range numbers are clamped. */
export function quantiseField(
  f: CompiledField,
  value: unknown,
  row: Uint32Array,
  base: number,
  strings: StringTable,
): void {
  const o = base + f.slot;
  const p = f.params;
  switch (f.kind) {
    case 'int': {
      const v = Math.round(Number(value));
      const min = p.min as number;
      row[o] = Number.isFinite(v) ? Math.min(Math.max(v, min), p.max as number) - min : 0;
      return;
    }
    case 'float':
      row[o] = quantiseFloat(Number(value), p, f.maxQ[0]);
      return;
    case 'vec3': {
      const v = value as Vec3;
      row[o] = quantiseFloat(v.x, p, f.maxQ[0]);
      row[o + 1] = quantiseFloat(v.y, p, f.maxQ[0]);
      row[o + 2] = quantiseFloat(v.z, p, f.maxQ[0]);
      return;
    }
    case 'quat':
      quantiseQuat(value as Quat, p.bits as number, row, o);
      return;
    case 'bool':
      row[o] = value ? 1 : 0;
      return;
    case 'enum': {
      const i = (p.values as string[]).indexOf(value as string);
      if (i < 0) throw new RangeError(`field ${f.name}: ${String(value)} is not one of ${String(p.values)}`);
      row[o] = i;
      return;
    }
    case 'string': {
      const s = String(value);
      const id = strings.intern(s);
      if (strings.utf8[id].length > (p.maxBytes as number))
        throw new RangeError(`field ${f.name}: string longer than ${p.maxBytes as number} UTF-8 bytes`);
      row[o] = id;
      return;
    }
  }
}

function quantiseFloat(v: number, p: Readonly<Record<string, unknown>>, maxQ: number): number {
  if (!Number.isFinite(v)) return 0;
  const q = Math.round((v - (p.min as number)) / (p.precision as number));
  return q < 0 ? 0 : Math.min(q, maxQ);
}

/** Smallest-three: drop the largest component (made positive), send its index and the other three. */
function quantiseQuat(q: Quat, bits: number, row: Uint32Array, o: number): void {
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
  const maxQ = 2 ** bits - 1;
  row[o] = li;
  let k = 1;
  for (let i = 0; i < 4; i++) {
    if (i === li) continue;
    const v = Math.round(((c[i] * sign + SQRT1_2) / (2 * SQRT1_2)) * maxQ);
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
      return (p.min as number) + row[o] * (p.precision as number);
    case 'vec3': {
      const min = p.min as number;
      const pr = p.precision as number;
      return { x: min + row[o] * pr, y: min + row[o + 1] * pr, z: min + row[o + 2] * pr };
    }
    case 'quat': {
      const maxQ = 2 ** (p.bits as number) - 1;
      const li = row[o];
      const c = [0, 0, 0, 0];
      let k = 1;
      let sum = 0;
      for (let i = 0; i < 4; i++) {
        if (i === li) continue;
        const v = (row[o + k++] / maxQ) * 2 * SQRT1_2 - SQRT1_2;
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
  if (f.kind === 'int' || f.kind === 'float') {
    // Zero when in range, else the minimum: the most natural "unset" number.
    const min = f.params.min as number;
    const max = f.params.max as number;
    if (min <= 0 && max >= 0) {
      const q = f.kind === 'int' ? -min : Math.round(-min / (f.params.precision as number));
      row[o] = Math.min(q, f.maxQ[0]);
    }
  } else if (f.kind === 'vec3') {
    const min = f.params.min as number;
    const max = f.params.max as number;
    if (min <= 0 && max >= 0) {
      const q = Math.min(Math.round(-min / (f.params.precision as number)), f.maxQ[0]);
      row[o] = q;
      row[o + 1] = q;
      row[o + 2] = q;
    }
  } else if (f.kind === 'quat') {
    // Identity: w (index 3) is the largest; x, y, z sit at the midpoint of their range.
    const mid = Math.round((SQRT1_2 / (2 * SQRT1_2)) * (2 ** (f.params.bits as number) - 1));
    row[o] = 3;
    row[o + 1] = mid;
    row[o + 2] = mid;
    row[o + 3] = mid;
  }
}
