// The schema of the compression methods' parameters: the types here, the data beside each method
// (src-main/engine/compress/methods/*.ts, `export const <METHOD>_PARAMS`). The engine's ParamReader
// validates recipes from it, the renderer builds its forms from it, `whittle compress --help-method`
// prints it and a test checks the README's method table against it: one list, so none can drift.
//
// Adding a parameter to a method is one entry in its spec array, e.g.
//   intParam('bits', 4, 2, 8, 'Code width per weight'),
// then reading it in the method's parseParams with the same name (r.int('bits')).

/** What a method does to the model; the UI groups methods by it. */
export type MethodKind = 'quantize' | 'prune' | 'transform' | 'structure' | 'recover'

interface ParamBase {
  /** The key a recipe spells, e.g. 'group_size'. */
  name: string
  /** One line, for tooltips, `--help-method` and the README. */
  help: string
  /** Set when the default is not a constant (e.g. "= batch_size"); shown instead of `default`. */
  defaultNote?: string
}

/** An integer in [min, max]. A null default: the parameter is absent unless given. */
export interface IntParamSpec extends ParamBase {
  type: 'int'
  default: number | null
  min: number
  max: number
}

/** A finite number in [min, max]. A null default: the parameter is absent unless given. */
export interface NumberParamSpec extends ParamBase {
  type: 'number'
  default: number | null
  min: number
  max: number
  /** A sensible increment for an input field. */
  step?: number
}

export interface BoolParamSpec extends ParamBase {
  type: 'bool'
  default: boolean
}

/** One of a fixed list of strings. */
export interface ChoiceParamSpec extends ParamBase {
  type: 'choice'
  default: string
  choices: readonly string[]
}

/** Free text (a path, an N:M pattern); `suggestions` lists common values for a form's select. */
export interface StringParamSpec extends ParamBase {
  type: 'string'
  default: string | null
  suggestions?: readonly string[]
}

/** A non-empty list of distinct non-negative indices (e.g. layers). */
export interface IndexListParamSpec extends ParamBase {
  type: 'index_list'
  default: null
}

/** A mapping of indices to index lists, e.g. {"0": [1, 3]} (layer → heads). */
export interface IndexMapParamSpec extends ParamBase {
  type: 'index_map'
  default: null
}

/** A nested mapping with its own fields (e.g. distill's optimizer). */
export interface ObjectParamSpec extends ParamBase {
  type: 'object'
  default: null
  fields: readonly ParamSpec[]
}

export type ParamSpec =
  | IntParamSpec
  | NumberParamSpec
  | BoolParamSpec
  | ChoiceParamSpec
  | StringParamSpec
  | IndexListParamSpec
  | IndexMapParamSpec
  | ObjectParamSpec

export type ParamType = ParamSpec['type']

/** One method of the catalogue, as the contract's listMethods() returns it. */
export interface MethodInfo {
  name: string
  kind: MethodKind
  /** One line: what it does and what it needs. */
  summary: string
  /** Whether the step needs calibration text (statistics of real activations). */
  needsCalibration: boolean
  params: readonly ParamSpec[]
}

// Short constructors, so a spec reads as one line per parameter.

export function intParam(
  name: string,
  def: number | null,
  min: number,
  max: number,
  help: string,
  defaultNote?: string,
): IntParamSpec {
  return { name, type: 'int', default: def, min, max, help, ...(defaultNote ? { defaultNote } : {}) }
}

export function numberParam(
  name: string,
  def: number | null,
  min: number,
  max: number,
  help: string,
  step?: number,
): NumberParamSpec {
  return { name, type: 'number', default: def, min, max, help, ...(step !== undefined ? { step } : {}) }
}

export function boolParam(name: string, def: boolean, help: string): BoolParamSpec {
  return { name, type: 'bool', default: def, help }
}

export function choiceParam(name: string, def: string, choices: readonly string[], help: string): ChoiceParamSpec {
  return { name, type: 'choice', default: def, choices, help }
}

export function stringParam(
  name: string,
  help: string,
  suggestions?: readonly string[],
  def: string | null = null,
): StringParamSpec {
  return { name, type: 'string', default: def, help, ...(suggestions ? { suggestions } : {}) }
}

export function indexListParam(name: string, help: string): IndexListParamSpec {
  return { name, type: 'index_list', default: null, help }
}

export function indexMapParam(name: string, help: string): IndexMapParamSpec {
  return { name, type: 'index_map', default: null, help }
}

export function objectParam(name: string, fields: readonly ParamSpec[], help: string): ObjectParamSpec {
  return { name, type: 'object', default: null, fields, help }
}

/** The spec of a parameter by name, or undefined. */
export function findParam(specs: readonly ParamSpec[], name: string): ParamSpec | undefined {
  return specs.find((p) => p.name === name)
}

/** The default as people read it: "4", "per-channel", "= batch_size", "—" (absent unless given). */
export function describeDefault(p: ParamSpec): string {
  if (p.defaultNote) return p.defaultNote
  if (p.default === null) return '—'
  return String(p.default)
}

/** The accepted values as people read them: "[2, 8]", "f16 | f32", "true | false". */
export function describeRange(p: ParamSpec): string {
  switch (p.type) {
    case 'int':
    case 'number':
      return `[${p.min}, ${p.max}]`
    case 'bool':
      return 'true | false'
    case 'choice':
      return p.choices.join(' | ')
    case 'string':
      return p.suggestions ? `text, e.g. ${p.suggestions.join(', ')}` : 'text'
    case 'index_list':
      return 'list of indices'
    case 'index_map':
      return 'index → list of indices'
    case 'object':
      return `mapping of ${p.fields.map((f) => f.name).join(', ')}`
  }
}
