// One compression run as the CLI and the UI use it: calibration windows from the recipe, perplexity
// before and after on an eval text, the recipe pipeline, and the cost report (size, bits per weight,
// per-tensor errors).

import path from 'node:path'
import { calibrationWindows } from '../calibration/windows'
import { perplexity } from '../eval/perplexity'
import { readTextFile, tokenizeForEval } from '../eval/tokenize-text'
import type { LoadedModel } from '../model/loaded-model'
import type { ModelView } from '../model/model-view'
import type { WorkerPool } from '../pool/worker-pool'
import { getMethod } from './methods'
import { runRecipe, type TensorOutcome } from './pipeline'
import type { Recipe } from './recipe/recipe'
import { storageTotals, type StoredTensor } from './storage'

export interface CompressionReport {
  model: string
  recipe: Recipe
  eval: { text: string; seqlen: number; windows: number } | null
  ppl_before: number | null
  ppl_after: number | null
  /** Over the compressed Linears. */
  bits_per_weight: number
  bytes_before: number
  bytes_after: number
  compressed_params: number
  seconds: number
  tensors: TensorOutcome[]
}

export interface CompressOptions {
  /** Folder that relative paths in the recipe resolve against. */
  recipeDir: string
  /** Calibration text when the recipe names none. */
  defaultCalibrationText: string | null
  /** Token ids of the eval text (BOS first), with its path for the report. */
  evalText?: { path: string; ids: Int32Array }
  seqlen?: number
  maxEvalWindows?: number
  signal?: AbortSignal
  onProgress?: (fraction: number, message: string) => void
}

export async function calibrationFor(model: LoadedModel, recipe: Recipe, recipeDir: string, fallback: string | null): Promise<Int32Array[] | undefined> {
  if (!recipe.steps.some((s) => getMethod(s.method, s.method).needs.calibration)) return undefined
  const c = recipe.calibration
  const textPath = c.text ? path.resolve(recipeDir, c.text) : fallback
  if (!textPath) throw new Error('the recipe needs calibration text and none is available')
  const ids = await tokenizeForEval(model.files, await readTextFile(textPath))
  return calibrationWindows(ids, { samples: c.samples, seqlen: c.seqlen, seed: c.seed, starts: c.starts })
}

export function sizeReport(model: LoadedModel, tensors: TensorOutcome[]): Pick<CompressionReport, 'bits_per_weight' | 'bytes_before' | 'bytes_after' | 'compressed_params'> {
  // The last step that touched a tensor decides its storage.
  const last = new Map<string, StoredTensor>()
  for (const t of tensors) last.set(t.name, { bitsPerWeight: t.bitsPerWeight, params: t.shape[0] * t.shape[1] })
  const s = storageTotals(model, last)
  return { bits_per_weight: s.bitsPerWeight, bytes_before: s.bytesBefore, bytes_after: s.bytesAfter, compressed_params: s.compressedParams }
}

export async function compressModel(pool: WorkerPool, model: LoadedModel, recipe: Recipe, options: CompressOptions): Promise<{ view: ModelView; report: CompressionReport }> {
  const started = performance.now()
  const seqlen = options.seqlen ?? 256
  const evalPpl = async (m: LoadedModel, label: string, from: number, span: number): Promise<number | null> => {
    if (!options.evalText) return null
    const r = await perplexity(pool, m, options.evalText.ids, {
      seqlen, maxWindows: options.maxEvalWindows, signal: options.signal,
      onProgress: (f, msg) => options.onProgress?.(from + span * f, `${label}: ${msg}`),
    })
    return r.ppl
  }
  const evalShare = options.evalText ? 0.2 : 0
  const pplBefore = await evalPpl(model, 'perplexity before', 0, evalShare)
  options.onProgress?.(evalShare, 'calibration')
  const windows = await calibrationFor(model, recipe, options.recipeDir, options.defaultCalibrationText)
  const result = await runRecipe(pool, model, recipe, {
    windows,
    signal: options.signal,
    onProgress: (f, msg) => options.onProgress?.(evalShare + (1 - 2 * evalShare) * f, msg),
  })
  const pplAfter = await evalPpl(result.view, 'perplexity after', 1 - evalShare, evalShare)
  const evalInfo = options.evalText ? { text: options.evalText.path, seqlen, windows: Math.min(Math.floor(options.evalText.ids.length / seqlen), options.maxEvalWindows ?? Infinity) } : null
  return {
    view: result.view,
    report: {
      model: model.files.path,
      recipe,
      eval: evalInfo,
      ppl_before: pplBefore,
      ppl_after: pplAfter,
      ...sizeReport(model, result.tensors),
      seconds: (performance.now() - started) / 1000,
      tensors: result.tensors,
    },
  }
}
