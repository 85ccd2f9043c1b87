// Editing a compression recipe as data. Every function here returns a new recipe (or step) and leaves
// its input alone, so the store can hand the result to the engine's validator and the UI can undo by
// keeping the old value. The engine stays the judge of what is valid (checkRecipe); what this file knows
// about each method (its parameters, defaults, ranges) comes from the engine's catalogue (listMethods),
// passed in, so there is no second list here to drift from the engine's.

import type { RecipeDoc, TensorInfo, TensorRole } from '@contract/api'
import type { MethodInfo, MethodKind, ParamSpec } from '@contract/method-params'
import { KV_CACHE_SETTINGS } from '@contract/kv-cache-settings'

export type RecipeStepDoc = RecipeDoc['steps'][number]
/** The engine's methods with their parameter specs (stores/methods.ts loads it once). */
export type MethodCatalogue = readonly MethodInfo[]

/** Parameter types a form edits with an input of its own; lists and mappings stay in the JSON field. */
const FORM_TYPES: ReadonlySet<ParamSpec['type']> = new Set(['int', 'number', 'bool', 'choice', 'string'])

/** Every parameter the method declares (empty for a method the catalogue does not know). */
export function paramSpecsFor(catalogue: MethodCatalogue, method: string): readonly ParamSpec[] {
  return catalogue.find((m) => m.name === method)?.params ?? []
}

/** The parameters a form shows inputs for; the rest (lists, mappings) are edited as JSON. */
export function formParamSpecs(catalogue: MethodCatalogue, method: string): readonly ParamSpec[] {
  return paramSpecsFor(catalogue, method).filter((p) => FORM_TYPES.has(p.type))
}

/** A parameter's label in a form: its recipe name in words ('group_size' → 'group size'). */
export function paramLabel(p: ParamSpec): string {
  return p.name.replace(/_/g, ' ')
}

/** The engine's default for a param, or undefined when it has none (absent unless given) or is unknown. */
export function paramDefault(
  catalogue: MethodCatalogue,
  method: string,
  key: string,
): number | boolean | string | undefined {
  return paramSpecsFor(catalogue, method).find((p) => p.name === key)?.default ?? undefined
}

/** True when the method takes a `bits` parameter (a uniform quantizer whose bits can be overridden per tensor). */
export function takesBits(catalogue: MethodCatalogue, method: string): boolean {
  return paramSpecsFor(catalogue, method).some((p) => p.name === 'bits')
}

/** The names of the catalogue's methods of one kind, e.g. the pruners the Prune view offers. */
export function methodsOfKind(catalogue: MethodCatalogue, kind: MethodKind): string[] {
  return catalogue.filter((m) => m.kind === kind).map((m) => m.name)
}

/** Method names for the select: the catalogue's, then any the recipe or presets use that it lacks. */
export function methodChoices(catalogue: MethodCatalogue, ...recipes: RecipeDoc[]): string[] {
  const names = catalogue.map((m) => m.name)
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

/** Params without an input of their own (not form parameters of the method): what the JSON field shows. */
export function extraParams(catalogue: MethodCatalogue, step: RecipeStepDoc): Record<string, unknown> {
  const known = new Set(formParamSpecs(catalogue, step.method).map((p) => p.name))
  const extra: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(step.params ?? {})) if (!known.has(k)) extra[k] = v
  return extra
}

/**
 * A new method for a step. Values the two methods share (bits, group size …) carry over; the rest
 * would be refused by the new method as unknown parameters, so they go. A method the catalogue does
 * not know keeps everything (the engine will say what it does not take).
 */
export function setStepMethod(catalogue: MethodCatalogue, recipe: RecipeDoc, index: number, method: string): RecipeDoc {
  return withStep(recipe, index, (s) => {
    const known = catalogue.some((m) => m.name === method)
    const specs = paramSpecsFor(catalogue, method)
    const params: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(s.params ?? {})) if (!known || specs.some((p) => p.name === k)) params[k] = v
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

/** Replaces the params without an input of their own with `extra` (the JSON field's content). */
export function setExtraParams(
  catalogue: MethodCatalogue,
  recipe: RecipeDoc,
  index: number,
  extra: Record<string, unknown>,
): RecipeDoc {
  return withStep(recipe, index, (s) => {
    const known = new Set(formParamSpecs(catalogue, s.method).map((p) => p.name))
    const params: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(s.params ?? {})) if (known.has(k)) params[k] = v
    // A form parameter typed into the JSON is taken too (it then shows in its own input), never dropped.
    for (const [k, v] of Object.entries(extra)) params[k] = v
    return { ...s, params }
  })
}

/** Reads the JSON fallback's text: an object, or a message saying why not. */
export function parseParamsJson(
  text: string,
): { ok: true; value: Record<string, unknown> } | { ok: false; error: string } {
  if (!text.trim()) return { ok: true, value: {} }
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch (e) {
    return { ok: false, error: `not valid JSON: ${e instanceof Error ? e.message : String(e)}` }
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    return { ok: false, error: 'must be a JSON object, e.g. {"n_grid": 20}' }
  return { ok: true, value: v as Record<string, unknown> }
}

/** One regular expression per line; blank lines dropped. */
export function patternsFromText(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
}

export function setStepTargets(
  recipe: RecipeDoc,
  index: number,
  which: 'include' | 'exclude',
  patterns: string[],
): RecipeDoc {
  return withStep(recipe, index, (s) => ({
    ...s,
    targets: { include: s.targets?.include ?? [], exclude: s.targets?.exclude ?? [], [which]: patterns },
  }))
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

const LINEAR_ROLES: ReadonlySet<TensorRole> = new Set<TensorRole>([
  'q',
  'k',
  'v',
  'qkv',
  'o',
  'gate',
  'up',
  'down',
  'fc1',
  'fc2',
])

/** What the engine will compress at all: 2-D Linear weights inside the decoder blocks. */
export function isCompressible(t: TensorInfo): boolean {
  return t.layer !== null && LINEAR_ROLES.has(t.role) && t.shape.length === 2 && t.name.endsWith('weight')
}

/**
 * The tensors a step targets, by the engine's rule: compressible, matched by an include pattern (or
 * include empty = all), matched by no exclude pattern. A pattern that is not a valid regular
 * expression gives the error instead (the engine refuses it too).
 */
export function stepTargets(
  step: RecipeStepDoc,
  tensors: readonly TensorInfo[],
): { tensors: TensorInfo[] } | { error: string } {
  let include: RegExp[]
  let exclude: RegExp[]
  try {
    include = (step.targets?.include ?? []).map((s) => new RegExp(s))
    exclude = (step.targets?.exclude ?? []).map((s) => new RegExp(s))
  } catch (e) {
    return { error: e instanceof Error ? e.message : String(e) }
  }
  return {
    tensors: tensors.filter(
      (t) =>
        isCompressible(t) &&
        (include.length === 0 || include.some((r) => r.test(t.name))) &&
        !exclude.some((r) => r.test(t.name)),
    ),
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

export function setCalibration(
  recipe: RecipeDoc,
  field: CalibrationField,
  value: string | number | undefined,
): RecipeDoc {
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

/** The recipe with the KV cache its perplexity after is measured with ('token:4', …); '' or undefined: none. */
export function setKvCache(recipe: RecipeDoc, setting: string | undefined): RecipeDoc {
  const next = plainCopy(recipe)
  if (setting === undefined || setting.trim() === '') delete next.kv_cache
  else next.kv_cache = setting.trim()
  return next
}

/** The KV-cache select's settings: the usual ones, and the recipe's own when it is another (e.g. kivi:2:128). */
export function kvCacheChoices(current: string | undefined): string[] {
  return current && !KV_CACHE_SETTINGS.includes(current) ? [...KV_CACHE_SETTINGS, current] : [...KV_CACHE_SETTINGS]
}

/** JSON with object keys sorted, so two recipes that differ only in key order compare equal. */
function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`
  if (v && typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
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
    kv_cache: r.kv_cache ?? null,
  })
  return stableJson(canonical(a)) === stableJson(canonical(b))
}
