// A recipe is data: which calibration, which methods on which tensors, and per-tensor overrides.
// The same recipe drives the UI, the CLI and the export, and is written beside every export.
//
//   calibration: {text: tinystories_calib.txt, samples: 128, seqlen: 256, seed: 0}   # or starts: [...]
//   steps:
//     - method: gptq
//       targets: {include: ['layers\.\d+\.(self_attn|mlp)\.\w+_proj'], exclude: []}
//       params: {bits: 4, group_size: 32, sym: false}
//   overrides:
//     'layers.0.mlp.down_proj': {bits: 8}
//   kv_cache: token:4            # optional: perplexity after is measured with this KV cache (as eval --kv)

import { readFile } from 'node:fs/promises'
import { parse as parseYaml, stringify as toYaml } from 'yaml'
import { WhittleError } from '../../errors'
import { expandSweep, sweepProblem, type RecipeSweep } from '../../../contract/sweep'
import { getMethod } from '../methods'
import { kvCacheLabel, parseKvCacheSetting, type KvCacheSetting } from '../../forward/kv-cache-quant'

export interface RecipeCalibration {
  /** Path of the calibration text; relative paths resolve against the recipe file's folder. */
  text?: string
  samples: number
  seqlen: number
  seed: number
  starts?: number[]
}

export interface RecipeTargets {
  /** Regular expressions searched in tensor names; empty = every Linear inside the decoder blocks. */
  include: string[]
  exclude: string[]
}

export interface RecipeStep {
  method: string
  targets: RecipeTargets
  params: Record<string, unknown>
}

export interface Recipe {
  calibration: RecipeCalibration
  steps: RecipeStep[]
  /** Module name (suffix match, e.g. 'layers.0.mlp.down_proj') → params that replace the step's. */
  overrides: Record<string, Record<string, unknown>>
  /** A sweep over one step's parameter; run by `compress --sweep` or the Compare view, one run per value. */
  sweep?: RecipeSweep
  /**
   * The KV cache the compressed model's perplexity is measured with, in `whittle eval --kv`'s syntax and
   * normalised by its parser ('token:4', 'kivi:2', 'q8_0', …); absent = the cache is not quantized.
   */
  kv_cache?: string
}

const MAX_RECIPE_BYTES = 1 << 20

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function bad(where: string, problem: string): never {
  throw new WhittleError('validation', null, `recipe ${where}: ${problem}`)
}

function stringList(v: unknown, where: string): string[] {
  if (v === undefined) return []
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) bad(where, 'must be a list of strings')
  for (const s of v as string[]) {
    try {
      new RegExp(s)
    } catch {
      bad(where, `${JSON.stringify(s)} is not a valid regular expression`)
    }
  }
  return v as string[]
}

function only(o: Record<string, unknown>, keys: string[], where: string): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) bad(where, `unknown field "${k}"`)
}

/** Validates a parsed recipe document; every error names the step and the field. */
export function validateRecipe(doc: unknown): Recipe {
  if (!isObject(doc)) bad('', 'must be a mapping with calibration, steps and overrides')
  only(doc, ['calibration', 'steps', 'overrides', 'sweep', 'kv_cache'], 'top level')
  const c = doc.calibration ?? {}
  if (!isObject(c)) bad('calibration', 'must be a mapping')
  only(c, ['text', 'samples', 'seqlen', 'seed', 'starts'], 'calibration')
  const int = (v: unknown, fallback: number, lo: number, hi: number, where: string): number => {
    const n = v ?? fallback
    if (typeof n !== 'number' || !Number.isInteger(n) || n < lo || n > hi)
      bad(where, `must be an integer in [${lo}, ${hi}] (got ${JSON.stringify(n)})`)
    return n
  }
  if (c.text !== undefined && typeof c.text !== 'string') bad('calibration.text', 'must be a path')
  let starts: number[] | undefined
  if (c.starts !== undefined) {
    if (!Array.isArray(c.starts) || c.starts.some((s) => typeof s !== 'number' || !Number.isInteger(s) || s < 0))
      bad('calibration.starts', 'must be a list of non-negative integers')
    starts = c.starts as number[]
  }
  const calibration: RecipeCalibration = {
    text: c.text as string | undefined,
    samples: starts ? starts.length : int(c.samples, 128, 1, 4096, 'calibration.samples'),
    seqlen: int(c.seqlen, 256, 2, 8192, 'calibration.seqlen'),
    seed: int(c.seed, 0, 0, 2 ** 32 - 1, 'calibration.seed'),
    starts,
  }
  if (!Array.isArray(doc.steps) || doc.steps.length === 0) bad('steps', 'must be a non-empty list')
  const steps = doc.steps.map((raw, i): RecipeStep => {
    const where = `step ${i + 1}`
    if (!isObject(raw)) bad(where, 'must be a mapping with method, targets and params')
    only(raw, ['method', 'targets', 'params'], where)
    if (typeof raw.method !== 'string') bad(`${where}.method`, 'must name a method')
    const method = getMethod(raw.method, where)
    const t = raw.targets ?? {}
    if (!isObject(t)) bad(`${where}.targets`, 'must be a mapping with include and exclude')
    only(t, ['include', 'exclude'], `${where}.targets`)
    const params = raw.params ?? {}
    if (!isObject(params)) bad(`${where}.params`, 'must be a mapping')
    method.parseParams(params, `recipe ${where} (${raw.method})`)
    return {
      method: raw.method,
      targets: {
        include: stringList(t.include, `${where}.targets.include`),
        exclude: stringList(t.exclude, `${where}.targets.exclude`),
      },
      params,
    }
  })
  const o = doc.overrides ?? {}
  if (!isObject(o)) bad('overrides', 'must map module names to params')
  const overrides: Recipe['overrides'] = {}
  for (const [k, v] of Object.entries(o)) {
    if (!isObject(v)) bad(`overrides.${k}`, 'must be a mapping of params')
    overrides[k] = v
  }
  const kvCache = doc.kv_cache === undefined ? {} : { kv_cache: kvCacheLabel(kvCacheSettingOf(doc.kv_cache)) }
  if (doc.sweep === undefined) return { calibration, steps, overrides, ...kvCache }
  const problem = sweepProblem(doc.sweep, steps.length)
  if (problem) bad('sweep', problem)
  const sweep = doc.sweep as RecipeSweep
  // Every value must make a valid step: a sweep fails now, not at its fifth run.
  for (const { value, recipe } of expandSweep({ steps, sweep })) {
    const i = (sweep.step ?? 1) - 1
    getMethod(steps[i].method, `step ${i + 1}`).parseParams(
      recipe.steps[i].params ?? {},
      `recipe sweep value ${JSON.stringify(value)} (step ${i + 1}, ${steps[i].method})`,
    )
  }
  return { calibration, steps, overrides, sweep, ...kvCache }
}

/** The recipe's kv_cache text read by the one parser `whittle eval --kv` uses; its objection names the field. */
function kvCacheSettingOf(v: unknown): KvCacheSetting {
  if (typeof v !== 'string') bad('kv_cache', `must be a KV-cache setting such as "token:4" (got ${JSON.stringify(v)})`)
  try {
    return parseKvCacheSetting(v)
  } catch (e) {
    if (e instanceof WhittleError) bad('kv_cache', e.message)
    throw e
  }
}

/** The KV-cache setting a validated recipe measures perplexity after with, or null for an unquantized cache. */
export function recipeKvCache(recipe: Recipe): KvCacheSetting | null {
  return recipe.kv_cache === undefined ? null : parseKvCacheSetting(recipe.kv_cache)
}

export function parseRecipeText(text: string, file: string): Recipe {
  let doc: unknown
  try {
    doc = parseYaml(text)
  } catch (e) {
    throw new WhittleError(
      'format',
      file,
      `is not valid YAML or JSON: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`,
    )
  }
  try {
    return validateRecipe(doc)
  } catch (e) {
    if (e instanceof WhittleError) throw new WhittleError(e.code, file, e.message)
    throw e
  }
}

export async function readRecipe(file: string): Promise<Recipe> {
  const bytes = await readFile(file).catch(() => {
    throw new WhittleError('not-found', file, 'cannot read the recipe file')
  })
  if (bytes.length > MAX_RECIPE_BYTES) throw new WhittleError('validation', file, 'recipe is larger than 1 MB')
  return parseRecipeText(bytes.toString('utf8'), file)
}

export function recipeToYaml(recipe: Recipe): string {
  const doc: Record<string, unknown> = { calibration: recipe.calibration, steps: recipe.steps }
  if (Object.keys(recipe.overrides).length > 0) doc.overrides = recipe.overrides
  if (recipe.sweep) doc.sweep = recipe.sweep
  if (recipe.kv_cache !== undefined) doc.kv_cache = recipe.kv_cache
  return toYaml(doc)
}
