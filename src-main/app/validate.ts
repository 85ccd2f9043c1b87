// Every argument that arrives over IPC or the WebSocket is checked here before the engine sees it.
// Shapes are checked by hand (no schema library): the contract is small and the messages must be exact.
// Every path argument is also listed (PathUse: which argument, which path, read or write), so the desktop
// app's path policy can check all of them in one place without knowing each call's shape.

import path from 'node:path'
import type { ApiCall, CalibrationRequest, ExportFormat, JobSpec, RecipeDoc } from '../contract/api'
import { PERPLEXITY_PROTOCOLS } from '../contract/analysis-types'
import { WhittleError } from '../engine/errors'
import { EXPORT_FORMATS } from '../engine/export/export-model'
import { parseKvCacheSetting } from '../engine/forward/kv-cache-quant'
import { GGUF_EXPORT_TYPES } from '../engine/export/gguf/type-policy'
import { validateGgufFlags } from './validate-gguf-flags'
import type { PathAccess, PathUse } from './path-policy'

const MAX_PATH = 4096
const MAX_ID = 128

function fail(call: string, problem: string): never {
  throw new WhittleError('validation', null, `${call}: ${problem}`)
}

function record(call: string, v: unknown): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(call, 'expected an object argument')
  return v as Record<string, unknown>
}

function only(call: string, obj: Record<string, unknown>, keys: string[]): void {
  for (const k of Object.keys(obj)) if (!keys.includes(k)) fail(call, `unexpected field "${k}"`)
}

function str(call: string, obj: Record<string, unknown>, key: string, max: number): string {
  const v = obj[key]
  if (typeof v !== 'string' || v.length === 0 || v.length > max)
    fail(call, `"${key}" must be a non-empty string of at most ${max} characters`)
  if (v.includes('\0')) fail(call, `"${key}" contains a NUL character`)
  return v
}

function optInt(call: string, obj: Record<string, unknown>, key: string, lo: number, hi: number): number | undefined {
  const v = obj[key]
  if (v === undefined) return undefined
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi)
    fail(call, `"${key}" must be an integer in [${lo}, ${hi}]`)
  return v
}

function optOneOf<T extends string>(
  call: string,
  obj: Record<string, unknown>,
  key: string,
  options: readonly T[],
): T | undefined {
  const v = obj[key]
  if (v === undefined) return undefined
  if (typeof v !== 'string' || !options.includes(v as T)) fail(call, `"${key}" must be one of ${options.join(', ')}`)
  return v as T
}

function optNum(call: string, obj: Record<string, unknown>, key: string, lo: number, hi: number): number | undefined {
  const v = obj[key]
  if (v === undefined) return undefined
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi)
    fail(call, `"${key}" must be a number in [${lo}, ${hi}]`)
  return v
}

/** An absolute path argument, normalised, and recorded in `uses` under its argument name. */
export function absolutePath(
  call: string,
  p: string,
  uses?: PathUse[],
  arg = 'path',
  access: PathAccess = 'read',
): string {
  if (!path.isAbsolute(p)) fail(call, `path must be absolute: ${p}`)
  const normal = path.normalize(p)
  uses?.push({ arg: `${call}: "${arg}"`, path: normal, access })
  return normal
}

function optCalibration(call: string, o: Record<string, unknown>, uses?: PathUse[]): CalibrationRequest | undefined {
  if (o.calibration === undefined) return undefined
  const c = record(call, o.calibration)
  only(call, c, ['text', 'samples', 'seqlen', 'seed'])
  return {
    text:
      c.text === undefined ? undefined : absolutePath(call, str(call, c, 'text', MAX_PATH), uses, 'calibration.text'),
    samples: optInt(call, c, 'samples', 1, 4096),
    seqlen: optInt(call, c, 'seqlen', 2, 8192),
    seed: optInt(call, c, 'seed', 0, 2 ** 32 - 1),
  }
}

/**
 * The recipe's structure is checked by the engine's recipe validator; here its envelope and size, and the
 * one path it can carry, calibration.text, is listed when the call will read it (a compress job reads it
 * relative to the working folder; calls that only convert or predict never open it, so pass no `uses`).
 */
function recipeObject(call: string, v: unknown, uses?: PathUse[]): RecipeDoc {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(call, '"recipe" must be an object')
  if (JSON.stringify(v).length > 1 << 20) fail(call, '"recipe" is larger than 1 MB')
  const calibration = (v as Record<string, unknown>).calibration
  if (uses && typeof calibration === 'object' && calibration !== null && Object.hasOwn(calibration, 'text')) {
    // A wrong type is the recipe validator's to report; an empty text means "the bundled text".
    const text = (calibration as Record<string, unknown>).text
    if (typeof text === 'string' && text.length > 0)
      uses.push({ arg: `${call}: "recipe.calibration.text"`, path: path.resolve(text), access: 'read' })
  }
  return v as RecipeDoc
}

export function validateJobSpec(v: unknown, uses?: PathUse[]): JobSpec {
  const call = 'startJob'
  const o = record(call, v)
  const modelId = str(call, o, 'modelId', MAX_ID)
  switch (o.kind) {
    case 'tensor': {
      only(call, o, ['kind', 'modelId', 'name', 'bins', 'k', 'range'])
      let range: [number, number] | undefined
      if (o.range !== undefined) {
        const r = o.range
        if (
          !Array.isArray(r) ||
          r.length !== 2 ||
          !r.every((x) => typeof x === 'number' && Number.isFinite(x)) ||
          !(r[1] > r[0])
        )
          fail(call, '"range" must be [lo, hi] with lo < hi')
        range = [r[0], r[1]]
      }
      return {
        kind: 'tensor',
        modelId,
        name: str(call, o, 'name', 1024),
        bins: optInt(call, o, 'bins', 1, 4096),
        k: optNum(call, o, 'k', 1, 1000),
        range,
      }
    }
    case 'scan':
      only(call, o, ['kind', 'modelId', 'k'])
      return { kind: 'scan', modelId, k: optNum(call, o, 'k', 1, 1000) }
    case 'compress':
      only(call, o, ['kind', 'modelId', 'recipe', 'evalText', 'seqlen', 'maxEvalWindows'])
      return {
        kind: 'compress',
        modelId,
        recipe: recipeObject(call, o.recipe, uses),
        evalText:
          o.evalText === undefined
            ? undefined
            : absolutePath(call, str(call, o, 'evalText', MAX_PATH), uses, 'evalText'),
        seqlen: optInt(call, o, 'seqlen', 2, 8192),
        maxEvalWindows: optInt(call, o, 'maxEvalWindows', 1, 1 << 24),
      }
    case 'perplexity':
      only(call, o, ['kind', 'modelId', 'text', 'seqlen', 'maxWindows', 'protocol'])
      return {
        kind: 'perplexity',
        modelId,
        text: o.text === undefined ? undefined : absolutePath(call, str(call, o, 'text', MAX_PATH), uses, 'text'),
        seqlen: optInt(call, o, 'seqlen', 2, 8192),
        maxWindows: optInt(call, o, 'maxWindows', 1, 1 << 24),
        protocol: optOneOf(call, o, 'protocol', PERPLEXITY_PROTOCOLS),
      }
    case 'kv-cache': {
      only(call, o, ['kind', 'modelId', 'text', 'seqlen', 'maxWindows', 'settings', 'contextLength'])
      const settings = o.settings
      if (
        settings !== undefined &&
        (!Array.isArray(settings) ||
          settings.length === 0 ||
          settings.length > 64 ||
          !settings.every((x) => typeof x === 'string' && x.length <= 64))
      )
        fail(call, '"settings" must be a non-empty array of at most 64 setting strings such as "token:4" or "q8_0"')
      // Parsed here so a bad setting is a validation error before the job starts.
      for (const x of (settings as string[] | undefined) ?? []) parseKvCacheSetting(x)
      return {
        kind: 'kv-cache',
        modelId,
        text: o.text === undefined ? undefined : absolutePath(call, str(call, o, 'text', MAX_PATH), uses, 'text'),
        seqlen: optInt(call, o, 'seqlen', 2, 8192),
        maxWindows: optInt(call, o, 'maxWindows', 1, 1 << 24),
        settings: settings as string[] | undefined,
        contextLength: optInt(call, o, 'contextLength', 1, 1 << 24),
      }
    }
    case 'activations':
      only(call, o, ['kind', 'modelId', 'calibration', 'threshold'])
      return {
        kind: 'activations',
        modelId,
        calibration: optCalibration(call, o, uses),
        threshold: optNum(call, o, 'threshold', 0, 1e6),
      }
    case 'heads':
    case 'layers':
      only(call, o, ['kind', 'modelId', 'calibration'])
      return { kind: o.kind, modelId, calibration: optCalibration(call, o, uses) }
    case 'export': {
      only(call, o, ['kind', 'modelId', 'format', 'out', 'ggufType', 'gguf', 'gptqFormat', 'dtype', 'shardBytes'])
      const oneOf = <T extends string>(key: string, options: readonly T[]): T | undefined =>
        optOneOf(call, o, key, options)
      const format = oneOf('format', EXPORT_FORMATS)
      if (!format) fail(call, '"format" is required')
      return {
        kind: 'export',
        modelId,
        format,
        out: absolutePath(call, str(call, o, 'out', MAX_PATH), uses, 'out', 'write'),
        ggufType: oneOf('ggufType', GGUF_EXPORT_TYPES),
        gguf: o.gguf === undefined ? undefined : validateGgufFlags(o.gguf, (problem) => fail(call, problem)),
        gptqFormat: oneOf('gptqFormat', ['gptq', 'gptq_v2'] as const),
        dtype: oneOf('dtype', ['F32', 'F16', 'BF16'] as const),
        shardBytes: optInt(call, o, 'shardBytes', 1 << 20, Number.MAX_SAFE_INTEGER),
      }
    }
    default:
      fail(call, `unknown job kind ${JSON.stringify(o.kind)}`)
  }
}

/**
 * Validated request objects, by call. Calls without arguments accept undefined or {}.
 * Every path argument is appended to `uses` (when given) for the path policy.
 */
export function validateRequest(call: ApiCall, params: unknown, uses?: PathUse[]): unknown {
  switch (call) {
    case 'appInfo':
    case 'openDemo':
    case 'recentModels':
      if (params !== undefined && params !== null) only(call, record(call, params), [])
      return undefined
    case 'pickModel': {
      const o = record(call, params)
      only(call, o, ['folder'])
      if (typeof o.folder !== 'boolean') fail(call, '"folder" must be a boolean')
      return { folder: o.folder }
    }
    case 'openModel': {
      const o = record(call, params)
      only(call, o, ['path'])
      return { path: absolutePath(call, str(call, o, 'path', MAX_PATH), uses) }
    }
    case 'listTensors': {
      const o = record(call, params)
      only(call, o, ['modelId'])
      return { modelId: str(call, o, 'modelId', MAX_ID) }
    }
    case 'startJob':
      return validateJobSpec(params, uses)
    case 'headWeights': {
      const o = record(call, params)
      only(call, o, ['modelId', 'layer', 'head'])
      return {
        modelId: str(call, o, 'modelId', MAX_ID),
        layer: optInt(call, o, 'layer', 0, 1 << 16) ?? fail(call, '"layer" is required'),
        head: optInt(call, o, 'head', 0, 1 << 16) ?? fail(call, '"head" is required'),
      }
    }
    case 'recipePresets':
    case 'listMethods':
      if (params !== undefined && params !== null) only(call, record(call, params), [])
      return undefined
    case 'checkRecipe': {
      const o = record(call, params)
      only(call, o, ['recipe', 'text'])
      if (o.text !== undefined && (typeof o.text !== 'string' || o.text.length > 1 << 20))
        fail(call, '"text" must be a string of at most 1 MB')
      if (o.text === undefined && (typeof o.recipe !== 'object' || o.recipe === null))
        fail(call, 'give "recipe" or "text"')
      return o
    }
    case 'recipeToYaml': {
      const o = record(call, params)
      only(call, o, ['recipe'])
      return { recipe: recipeObject(call, o.recipe) }
    }
    case 'predictCompression': {
      const o = record(call, params)
      only(call, o, ['modelId', 'recipe'])
      return { modelId: str(call, o, 'modelId', MAX_ID), recipe: recipeObject(call, o.recipe) }
    }
    case 'suggestExportPath': {
      const o = record(call, params)
      only(call, o, ['modelId', 'format', 'ggufType'])
      const format = str(call, o, 'format', 32)
      if (!EXPORT_FORMATS.includes(format as ExportFormat))
        fail(call, `"format" must be one of ${EXPORT_FORMATS.join(', ')}`)
      // Both end up in a file name: only known values, never text from the caller.
      let ggufType: string | undefined
      if (o.ggufType !== undefined) {
        if (format !== 'gguf') fail(call, '"ggufType" applies only to format gguf')
        if (typeof o.ggufType !== 'string' || !(GGUF_EXPORT_TYPES as readonly string[]).includes(o.ggufType))
          fail(call, `"ggufType" must be one of ${GGUF_EXPORT_TYPES.join(', ')}`)
        ggufType = o.ggufType
      }
      return { modelId: str(call, o, 'modelId', MAX_ID), format, ggufType }
    }
    case 'planGgufExport': {
      const o = record(call, params)
      only(call, o, ['modelId', 'ggufType', 'gguf'])
      const ggufType = str(call, o, 'ggufType', 32)
      if (!(GGUF_EXPORT_TYPES as readonly string[]).includes(ggufType))
        fail(call, `"ggufType" must be one of ${GGUF_EXPORT_TYPES.join(', ')}`)
      return {
        modelId: str(call, o, 'modelId', MAX_ID),
        ggufType,
        gguf: o.gguf === undefined ? undefined : validateGgufFlags(o.gguf, (problem) => fail(call, problem)),
      }
    }
    case 'listResults': {
      const o = record(call, params)
      only(call, o, ['modelId'])
      return { modelId: str(call, o, 'modelId', MAX_ID) }
    }
    case 'readImatrix': {
      const o = record(call, params)
      only(call, o, ['path', 'modelId'])
      return {
        path: absolutePath(call, str(call, o, 'path', MAX_PATH), uses),
        modelId: o.modelId === undefined ? undefined : str(call, o, 'modelId', MAX_ID),
      }
    }
    case 'readReport': {
      const o = record(call, params)
      only(call, o, ['path'])
      return { path: absolutePath(call, str(call, o, 'path', MAX_PATH), uses) }
    }
    case 'cancelJob':
    case 'jobStatus':
    case 'pauseJob':
    case 'resumeJob': {
      const o = record(call, params)
      only(call, o, ['id'])
      return { id: str(call, o, 'id', MAX_ID) }
    }
    default:
      fail(String(call), 'unknown call')
  }
}
