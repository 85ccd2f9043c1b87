// Editing a compression recipe as data. Every function here returns a new recipe (or step) and leaves
// its input alone, so the store can hand the result to the engine's validator and the UI can undo by
// keeping the old value. The engine stays the judge of what is valid (checkRecipe); this file only
// knows enough about each method to offer suitable inputs.

import type { RecipeDoc, TensorInfo, TensorRole } from '@contract/api'

export type RecipeStepDoc = RecipeDoc['steps'][number]
export type ParamKind = 'int' | 'number' | 'bool' | 'choice' | 'group'

/** One parameter a method takes, as the recipe spells it, with the engine's default. */
export interface ParamSpec {
  key: string
  label: string
  kind: ParamKind
  default: number | boolean | string
  min?: number
  max?: number
  step?: number
  choices?: readonly string[]
  hint: string
}

const BITS: ParamSpec = { key: 'bits', label: 'bits', kind: 'int', default: 4, min: 2, max: 8, step: 1, hint: 'Code width per weight (2–8)' }
function group(fallback: number): ParamSpec {
  return {
    key: 'group_size', label: 'group size', kind: 'group', default: fallback, min: -1, step: 1,
    hint: 'Input columns sharing one scale and zero point; -1 = one grid per output row',
  }
}
const GROUP = group(-1)
const SPARSITY: ParamSpec = { key: 'sparsity', label: 'sparsity', kind: 'number', default: 0.5, min: 0, max: 0.999, step: 0.05, hint: 'Fraction of weights set to zero' }
const PATTERN: ParamSpec = { key: 'pattern', label: 'N:M', kind: 'choice', default: 'unstructured', choices: ['unstructured', '2:4', '4:8'], hint: 'Keep N of every M consecutive inputs (implies the sparsity)' }
const SYM: ParamSpec = { key: 'sym', label: 'symmetric', kind: 'bool', default: false, hint: 'Symmetric grid (no zero point)' }

/**
 * The parameters of the methods the engine has or is getting (src-main/engine/compress/methods).
 * A method missing here, or a key missing from its list, is still editable as JSON.
 */
export const METHOD_PARAMS: Readonly<Record<string, readonly ParamSpec[]>> = {
  rtn: [BITS, GROUP, SYM],
  gptq: [
    BITS, GROUP, SYM,
    { key: 'act_order', label: 'act-order', kind: 'bool', default: false, hint: 'Quantize columns in order of decreasing Hessian diagonal' },
    { key: 'static_groups', label: 'static groups', kind: 'bool', default: false, hint: 'With act-order: grids from the unpermuted weight (needs a group size)' },
    { key: 'damp', label: 'damp', kind: 'number', default: 0.01, min: 0, max: 10, step: 0.001, hint: 'Added to the Hessian diagonal, as a fraction of its mean' },
    { key: 'block_size', label: 'block size', kind: 'int', default: 128, min: 1, step: 1, hint: 'Columns per lazy-update block' },
    { key: 'preserve_zeros', label: 'keep zeros', kind: 'bool', default: true, hint: 'Weights an earlier step pruned stay exactly zero' },
  ],
  magnitude: [SPARSITY, PATTERN, { key: 'scope', label: 'scope', kind: 'choice', default: 'layer', choices: ['layer', 'row', 'global'], hint: 'One threshold per Linear, per output row, or across all targets' }],
  wanda: [SPARSITY, PATTERN],
  sparsegpt: [
    SPARSITY, PATTERN,
    { key: 'damp', label: 'damp', kind: 'number', default: 0.01, min: 0, max: 10, step: 0.001, hint: 'Added to the Hessian diagonal, as a fraction of its mean' },
    { key: 'block_size', label: 'block size', kind: 'int', default: 128, min: 1, step: 1, hint: 'Columns per mask-selection block' },
  ],
  low_rank: [{ key: 'energy', label: 'energy', kind: 'number', default: 0.9, min: 0.01, max: 1, step: 0.01, hint: 'Keep the smallest rank holding this fraction of Σσ² (or set rank in JSON)' }],
  prune_heads: [{ key: 'mode', label: 'mode', kind: 'choice', default: 'masked', choices: ['masked', 'physical'], hint: 'Zero the heads, or cut them out (smaller model)' }],
  awq: [
    BITS, group(128), SYM,
    { key: 'grid', label: 'grid', kind: 'int', default: 20, min: 1, max: 1000, step: 1, hint: 'Points of the search over the scaling exponent α in [0, 1)' },
  ],
  llm_int8: [
    { key: 'threshold', label: 'threshold', kind: 'number', default: 6, min: 0, step: 0.5, hint: 'Input channels whose activation absmax exceeds this stay in 16 bits' },
  ],
  nf4: [
    { key: 'block_size', label: 'block size', kind: 'int', default: 64, min: 2, step: 1, hint: 'Weights per absmax block' },
    { key: 'double_quant', label: 'double quant', kind: 'bool', default: false, hint: 'Quantize the block absmax values too (8-bit)' },
  ],
  gguf: [
    { key: 'type', label: 'type', kind: 'choice', default: 'Q4_K', choices: ['Q8_0', 'Q4_0', 'Q4_K', 'Q5_K', 'Q6_K'], hint: 'GGUF block quantization type' },
  ],
  smoothquant: [
    { key: 'alpha', label: 'α', kind: 'number', default: 0.5, min: 0, max: 1, step: 0.05, hint: 'Migration strength: s_j = max|X_j|^α / max|W_j|^(1−α)' },
    { key: 'smooth', label: 'smooth', kind: 'bool', default: true, hint: 'Fold the scales (off = plain W8A8, the baseline)' },
  ],
}

/** Methods offered in the step editor even before a preset mentions them. */
export const KNOWN_METHODS: readonly string[] = ['rtn', 'gptq', 'awq', 'gguf', 'nf4', 'llm_int8', 'smoothquant', 'magnitude', 'wanda', 'sparsegpt', 'low_rank', 'prune_heads', 'drop_layers']

/** Pruning methods: the Prune view edits these. */
export const PRUNE_METHODS: readonly string[] = ['magnitude', 'wanda', 'sparsegpt']

export function paramSpecsFor(method: string): readonly ParamSpec[] {
  return METHOD_PARAMS[method] ?? []
}

/** The engine's default for a param, or undefined when this file does not know it. */
export function paramDefault(method: string, key: string): number | boolean | string | undefined {
  return paramSpecsFor(method).find((p) => p.key === key)?.default
}

/** True when the method takes a `bits` parameter (a uniform quantizer whose bits can be overridden per tensor). */
export function takesBits(method: string): boolean {
  return paramSpecsFor(method).some((p) => p.key === 'bits')
}

/** Method names for the select: the known ones, then any the recipe or presets use that are not. */
export function methodChoices(...recipes: RecipeDoc[]): string[] {
  const names = [...KNOWN_METHODS]
  for (const r of recipes) for (const s of r.steps) if (!names.includes(s.method)) names.push(s.method)
  return names
}

/** A plain, deep copy: safe to send over IPC (structured clone refuses Vue proxies) and to mutate. */
export function plainCopy<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T
}

export function emptyRecipe(): RecipeDoc {
  return { steps: [newStep('rtn')] }
}

export function newStep(method: string): RecipeStepDoc {
  return { method, targets: { include: [], exclude: [] }, params: {} }
}

function withStep(recipe: RecipeDoc, index: number, change: (s: RecipeStepDoc) => RecipeStepDoc): RecipeDoc {
  if (index < 0 || index >= recipe.steps.length) return recipe
  const next = plainCopy(recipe)
  next.steps[index] = change(next.steps[index])
  return next
}

/** Params not covered by the method's known list: what the JSON fallback shows. */
export function extraParams(step: RecipeStepDoc): Record<string, unknown> {
  const known = new Set(paramSpecsFor(step.method).map((p) => p.key))
  const extra: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(step.params ?? {})) if (!known.has(k)) extra[k] = v
  return extra
}

/**
 * A new method for a step. Values the two methods share (bits, group size …) carry over; the rest
 * would be refused by the new method as unknown parameters, so they go. A method with no known list
 * keeps everything (the engine will say what it does not take).
 */
export function setStepMethod(recipe: RecipeDoc, index: number, method: string): RecipeDoc {
  return withStep(recipe, index, (s) => {
    const specs = METHOD_PARAMS[method]
    const params: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(s.params ?? {})) if (!specs || specs.some((p) => p.key === k)) params[k] = v
    return { ...s, method, params }
  })
}

/** Sets one param; undefined removes it (the engine's default applies). */
export function setStepParam(recipe: RecipeDoc, index: number, key: string, value: unknown): RecipeDoc {
  return withStep(recipe, index, (s) => {
    const params = { ...(s.params ?? {}) }
    if (value === undefined) delete params[key]
    else params[key] = value
    return { ...s, params }
  })
}

/** Replaces the params outside the method's known list with `extra` (the JSON fallback's content). */
export function setExtraParams(recipe: RecipeDoc, index: number, extra: Record<string, unknown>): RecipeDoc {
  return withStep(recipe, index, (s) => {
    const known = new Set(paramSpecsFor(s.method).map((p) => p.key))
    const params: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(s.params ?? {})) if (known.has(k)) params[k] = v
    // A known parameter typed into the JSON is taken too (it then shows in its own input), never dropped.
    for (const [k, v] of Object.entries(extra)) params[k] = v
    return { ...s, params }
  })
}

/** Reads the JSON fallback's text: an object, or a message saying why not. */
export function parseParamsJson(text: string): { ok: true; value: Record<string, unknown> } | { ok: false; error: string } {
  if (!text.trim()) return { ok: true, value: {} }
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch (e) {
    return { ok: false, error: `not valid JSON: ${e instanceof Error ? e.message : String(e)}` }
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { ok: false, error: 'must be a JSON object, e.g. {"n_grid": 20}' }
  return { ok: true, value: v as Record<string, unknown> }
}

/** One regular expression per line; blank lines dropped. */
export function patternsFromText(text: string): string[] {
  return text.split('\n').map((l) => l.trim()).filter(Boolean)
}

export function setStepTargets(recipe: RecipeDoc, index: number, which: 'include' | 'exclude', patterns: string[]): RecipeDoc {
  return withStep(recipe, index, (s) => ({ ...s, targets: { include: s.targets?.include ?? [], exclude: s.targets?.exclude ?? [], [which]: patterns } }))
}

export function addStep(recipe: RecipeDoc, method: string): RecipeDoc {
  const next = plainCopy(recipe)
  next.steps.push(newStep(method))
  return next
}

/** Removes a step; the last one stays (a recipe needs at least one). */
export function removeStep(recipe: RecipeDoc, index: number): RecipeDoc {
  if (recipe.steps.length <= 1 || index < 0 || index >= recipe.steps.length) return recipe
  const next = plainCopy(recipe)
  next.steps.splice(index, 1)
  return next
}

/** Moves a step up (delta −1) or down (+1); a move past either end changes nothing. */
export function moveStep(recipe: RecipeDoc, index: number, delta: number): RecipeDoc {
  const to = index + delta
  if (index < 0 || index >= recipe.steps.length || to < 0 || to >= recipe.steps.length) return recipe
  const next = plainCopy(recipe)
  const [step] = next.steps.splice(index, 1)
  next.steps.splice(to, 0, step)
  return next
}

export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** A pattern that matches exactly this tensor name and nothing else. */
export function exactNamePattern(name: string): string {
  return `^${escapeRegExp(name)}$`
}

/**
 * Adds the tensor to the step's include list as an exact-name pattern, or removes it when it is
 * there already. Adding also drops the same exact pattern from exclude, so a click always wins.
 */
export function toggleTarget(recipe: RecipeDoc, index: number, name: string): RecipeDoc {
  const pattern = exactNamePattern(name)
  return withStep(recipe, index, (s) => {
    const include = s.targets?.include ?? []
    const exclude = s.targets?.exclude ?? []
    if (include.includes(pattern)) return { ...s, targets: { include: include.filter((p) => p !== pattern), exclude } }
    return { ...s, targets: { include: [...include, pattern], exclude: exclude.filter((p) => p !== pattern) } }
  })
}

/** The names a step picks one by one (its exact-name include patterns). */
export function pickedNames(step: RecipeStepDoc | undefined, tensors: readonly TensorInfo[]): Set<string> {
  const patterns = new Set(step?.targets?.include ?? [])
  return new Set(tensors.filter((t) => patterns.has(exactNamePattern(t.name))).map((t) => t.name))
}

const LINEAR_ROLES: ReadonlySet<TensorRole> = new Set<TensorRole>(['q', 'k', 'v', 'qkv', 'o', 'gate', 'up', 'down', 'fc1', 'fc2'])

/** What the engine will compress at all: 2-D Linear weights inside the decoder blocks. */
export function isCompressible(t: TensorInfo): boolean {
  return t.layer !== null && LINEAR_ROLES.has(t.role) && t.shape.length === 2 && t.name.endsWith('weight')
}

/**
 * The tensors a step targets, by the engine's rule: compressible, matched by an include pattern (or
 * include empty = all), matched by no exclude pattern. A pattern that is not a valid regular
 * expression gives the error instead (the engine refuses it too).
 */
export function stepTargets(step: RecipeStepDoc, tensors: readonly TensorInfo[]): { tensors: TensorInfo[] } | { error: string } {
  let include: RegExp[]
  let exclude: RegExp[]
  try {
    include = (step.targets?.include ?? []).map((s) => new RegExp(s))
    exclude = (step.targets?.exclude ?? []).map((s) => new RegExp(s))
  } catch (e) {
    return { error: e instanceof Error ? e.message : String(e) }
  }
  return {
    tensors: tensors.filter((t) =>
      isCompressible(t) && (include.length === 0 || include.some((r) => r.test(t.name))) && !exclude.some((r) => r.test(t.name))),
  }
}

/** Override keys are module names: the tensor name without its '.weight'. */
export function moduleName(tensorName: string): string {
  return tensorName.replace(/\.weight$/, '')
}

/**
 * The params a step uses for a tensor, as the engine merges them: the step's own, then every
 * override whose key is the module name or a dotted suffix of it, in the order they are written.
 */
export function effectiveParams(recipe: RecipeDoc, index: number, tensorName: string): Record<string, unknown> {
  const step = recipe.steps[index]
  if (!step) return {}
  const module = moduleName(tensorName)
  let merged: Record<string, unknown> = { ...(step.params ?? {}) }
  for (const [key, params] of Object.entries(recipe.overrides ?? {})) {
    if (module === key || module.endsWith(`.${key}`)) merged = { ...merged, ...params }
  }
  return merged
}

/**
 * Sets a module's override bits (null removes them; an entry left empty goes). The entry moves to
 * the end so it is merged last and wins over broader suffix keys.
 */
export function setOverrideBits(recipe: RecipeDoc, module: string, bits: number | null): RecipeDoc {
  const next = plainCopy(recipe)
  const overrides = { ...(next.overrides ?? {}) }
  const entry = { ...(overrides[module] ?? {}) }
  delete overrides[module]
  if (bits === null) delete entry.bits
  else entry.bits = bits
  if (Object.keys(entry).length > 0) overrides[module] = entry
  if (Object.keys(overrides).length > 0) next.overrides = overrides
  else delete next.overrides
  return next
}

export function removeOverride(recipe: RecipeDoc, module: string): RecipeDoc {
  if (!recipe.overrides || !(module in recipe.overrides)) return recipe
  const next = plainCopy(recipe)
  delete next.overrides![module]
  if (Object.keys(next.overrides!).length === 0) delete next.overrides
  return next
}

/** Calibration fields the builder edits; undefined removes one (the engine's default applies). */
export type CalibrationField = 'text' | 'samples' | 'seqlen' | 'seed'

export function setCalibration(recipe: RecipeDoc, field: CalibrationField, value: string | number | undefined): RecipeDoc {
  const next = plainCopy(recipe)
  const calibration: Record<string, unknown> = { ...(next.calibration ?? {}) }
  if (value === undefined || value === '') delete calibration[field]
  else calibration[field] = value
  // Fixed window starts decide the sample count; a typed sample count means they no longer apply.
  if (field === 'samples') delete calibration.starts
  if (Object.keys(calibration).length > 0) next.calibration = calibration as RecipeDoc['calibration']
  else delete next.calibration
  return next
}

/** JSON with object keys sorted, so two recipes that differ only in key order compare equal. */
function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`
  if (v && typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${stableJson(x)}`).join(',')}}`
  }
  return JSON.stringify(v)
}

/**
 * Whether two recipes say the same thing: absent targets, params and overrides read as empty, as the
 * engine reads them (a preset stays "unmodified" after a target is clicked on and off again).
 */
export function sameRecipe(a: RecipeDoc, b: RecipeDoc): boolean {
  const canonical = (r: RecipeDoc): unknown => ({
    calibration: r.calibration ?? {},
    steps: r.steps.map((s) => ({
      method: s.method,
      targets: { include: s.targets?.include ?? [], exclude: s.targets?.exclude ?? [] },
      params: s.params ?? {},
    })),
    overrides: r.overrides ?? {},
  })
  return stableJson(canonical(a)) === stableJson(canonical(b))
}
