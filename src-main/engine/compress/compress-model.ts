// One compression run as the CLI and the UI use it: calibration windows from the recipe, perplexity
// before and after on an eval text, the recipe pipeline, and the cost report (size, bits per weight,
// per-tensor errors).

import path from 'node:path'
import { calibrationWindows } from '../calibration/windows'
import { WhittleError } from '../errors'
import { perplexity } from '../eval/perplexity'
import { kvCacheReport, type KvCacheReport } from '../analysis/kv-ranges'
import { kvCacheHooks } from '../forward/kv-cache-quant'
import { readTextFile, tokenizeForEval } from '../eval/tokenize-text'
import type { LoadedModel } from '../model/loaded-model'
import type { ModelView } from '../model/model-view'
import type { WorkerPool } from '../pool/worker-pool'
import { getMethod } from './methods'
import { needsCalibration } from './methods/method'
import { runRecipe } from './pipeline'
import type { PipelineResult, StepTraining, TensorOutcome } from './pipeline-types'
import { recipeKvCache, type Recipe } from './recipe/recipe'
import type { LoraAdapterSet } from '../train/lora'
import type { UniformGridRecord } from './quant/record'
import { storageTotals, type StoredTensor } from './storage'
import { blockShapes } from './block-shapes'
import type { BlockShape } from '../../contract/api'

export interface CompressionReport {
  model: string
  recipe: Recipe
  eval: { text: string; seqlen: number; windows: number } | null
  ppl_before: number | null
  /** True when ppl_before was measured earlier (same model, text, seqlen, windows) and not run again. */
  ppl_before_reused: boolean
  ppl_after: number | null
  /** Perplexity after each step (null without an eval text); the last equals ppl_after. */
  ppl_after_step: (number | null)[]
  /** Fraction of zero weights over the compressed Linears (each at its last step). */
  sparsity: number
  params_before: number
  params_after: number
  /** Parameters after, not counting the zeros pruning left in the compressed Linears. */
  nonzero_params_after: number
  /** Geometry before → after when a structural step changed it. */
  structure?: { layers: [number, number]; heads: [number, number]; kvHeads: [number, number] }
  /** Each block's widths before → after when a structural step changed any (block-shapes.ts). */
  blocks?: BlockShape[]
  /** Over the compressed Linears. */
  bits_per_weight: number
  bytes_before: number
  /** Stored compactly: compressed Linears at their bits per weight (GPTQ, compressed-tensors, GGUF). */
  bytes_after: number
  /** The same model written densely (safetensors at the held dtypes): pruning and fake quantization save nothing here. */
  bytes_dense_after: number
  compressed_params: number
  seconds: number
  tensors: TensorOutcome[]
  /** Per recovery (training) step: its first and last loss and the tokens it saw. */
  training?: StepTraining[]
  /**
   * The recipe's kv_cache: the perplexities after were measured with this KV cache (ppl_before with the
   * source model's unquantized one); its memory per token of the eval seqlen and llama.cpp's flags.
   */
  kv_cache?: KvCacheReport
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
  /** The source model's perplexity on the same text, seqlen and windows, already measured: not measured again. */
  knownPplBefore?: number
  signal?: AbortSignal
  onProgress?: (fraction: number, message: string) => void
}

export async function calibrationFor(
  model: LoadedModel,
  recipe: Recipe,
  recipeDir: string,
  fallback: string | null,
): Promise<Int32Array[] | undefined> {
  if (!recipe.steps.some((s) => needsCalibration(getMethod(s.method, s.method), s.params))) return undefined
  const c = recipe.calibration
  const textPath = c.text ? path.resolve(recipeDir, c.text) : fallback
  if (!textPath)
    throw new WhittleError(
      'validation',
      null,
      'the recipe needs calibration text and none is available (set calibration.text)',
    )
  const ids = await tokenizeForEval(model.files, await readTextFile(textPath))
  return calibrationWindows(ids, { samples: c.samples, seqlen: c.seqlen, seed: c.seed, starts: c.starts }, textPath)
}

function parameterCount(model: LoadedModel): number {
  let n = 0
  for (const t of model.tensors) n += t.shape.reduce((a, b) => a * b, 1)
  return n
}

/**
 * Sparsity and parameter counts of a result: zeros are counted in the compressed Linears that a pruning
 * step touched. A quantizer's codes that happen to land on 0 are not sparsity (nothing stores or skips
 * them), so a quantization-only recipe reports none.
 */
export function parameterReport(
  model: LoadedModel,
  result: ModelView,
  tensors: TensorOutcome[],
): Pick<
  CompressionReport,
  'sparsity' | 'params_before' | 'params_after' | 'nonzero_params_after' | 'structure' | 'blocks'
> {
  const last = new Map<string, TensorOutcome>()
  for (const t of tensors) last.set(t.name, t)
  const pruned = new Set(tensors.filter((t) => t.mask !== undefined).map((t) => t.name))
  let zeros = 0,
    numel = 0
  const present = new Set(result.tensors.map((t) => t.name))
  for (const t of last.values()) {
    if (!present.has(t.name)) continue
    const n = t.shape[0] * t.shape[1]
    if (pruned.has(t.name)) zeros += t.sparsity * n
    numel += n
  }
  const before = parameterCount(model),
    after = parameterCount(result)
  const a = model.arch,
    b = result.arch
  const changed = a.layers !== b.layers || a.heads !== b.heads || a.kvHeads !== b.kvHeads
  const blocks = blockShapes(model, result)
  return {
    sparsity: numel > 0 ? zeros / numel : 0,
    params_before: before,
    params_after: after,
    nonzero_params_after: after - Math.round(zeros),
    ...(changed
      ? { structure: { layers: [a.layers, b.layers], heads: [a.heads, b.heads], kvHeads: [a.kvHeads, b.kvHeads] } }
      : {}),
    ...(blocks ? { blocks } : {}),
  }
}

export function sizeReport(
  model: LoadedModel,
  tensors: TensorOutcome[],
  after: LoadedModel = model,
): Pick<
  CompressionReport,
  'bits_per_weight' | 'bytes_before' | 'bytes_after' | 'bytes_dense_after' | 'compressed_params'
> {
  // The last step that touched a tensor decides its storage.
  const last = new Map<string, StoredTensor>()
  for (const t of tensors) last.set(t.name, { bitsPerWeight: t.bitsPerWeight, params: t.shape[0] * t.shape[1] })
  const s = storageTotals(model, last, after)
  return {
    bits_per_weight: s.bitsPerWeight,
    bytes_before: s.bytesBefore,
    bytes_after: s.bytesAfter,
    bytes_dense_after: s.bytesDenseAfter,
    compressed_params: s.compressedParams,
  }
}

export interface CompressionOutput {
  view: ModelView
  report: CompressionReport
  /** LoRA adapters the recipe trained (its last LoRA step's), for adapter exports; null without. */
  adapters: LoraAdapterSet | null
  /** Quantization grids of the tensors a uniform quantizer produced last (for packed exports). */
  records: Map<string, UniformGridRecord>
  /** GGUF bytes of the tensors a gguf step produced last (for a GGUF export of the same type). */
  ggufBytes: PipelineResult['ggufBytes']
}

export async function compressModel(
  pool: WorkerPool,
  model: LoadedModel,
  recipe: Recipe,
  options: CompressOptions,
): Promise<CompressionOutput> {
  const started = performance.now()
  const seqlen = options.seqlen ?? 256
  // The recipe's KV cache is part of the compressed model as it will run: every perplexity after a step
  // is measured with it, the source model's before without.
  const kvCache = recipeKvCache(recipe)
  // A llama.cpp cache type this model's head_dim cannot hold fails now, not after the compression.
  if (kvCache) kvCacheReport(model.arch, kvCache, seqlen)
  const evalPpl = async (
    m: LoadedModel,
    label: string,
    from: number,
    span: number,
    after = true,
  ): Promise<number | null> => {
    if (!options.evalText) return null
    const r = await perplexity(pool, m, options.evalText.ids, {
      seqlen,
      maxWindows: options.maxEvalWindows,
      signal: options.signal,
      textFile: options.evalText.path,
      hooks: after && kvCache ? kvCacheHooks(kvCache) : undefined,
      onProgress: (f, msg) => options.onProgress?.(from + span * f, `${label}: ${msg}`),
    })
    return r.ppl
  }
  const evalShare = options.evalText ? 0.2 : 0
  const pplBefore =
    options.evalText && options.knownPplBefore !== undefined
      ? options.knownPplBefore
      : await evalPpl(model, 'perplexity before', 0, evalShare, false)
  options.onProgress?.(evalShare, 'calibration')
  const windows = await calibrationFor(model, recipe, options.recipeDir, options.defaultCalibrationText)
  // With several steps (prune, then quantize) the cost is measured after each one.
  const steps = recipe.steps.length
  const pplAfterStep: (number | null)[] = []
  const result = await runRecipe(pool, model, recipe, {
    windows,
    signal: options.signal,
    onProgress: (f, msg) => options.onProgress?.(evalShare + (1 - 2 * evalShare) * f, msg),
    afterStep: async (step, view) => {
      if (step < steps - 1)
        pplAfterStep.push(
          await evalPpl(
            view,
            `perplexity after step ${step + 1}`,
            evalShare + (1 - 2 * evalShare) * ((step + 1) / steps),
            0,
          ),
        )
    },
  })
  const pplAfter = await evalPpl(result.view, 'perplexity after', 1 - evalShare, evalShare)
  pplAfterStep.push(pplAfter)
  const evalInfo = options.evalText
    ? {
        text: options.evalText.path,
        seqlen,
        windows: Math.min(Math.floor(options.evalText.ids.length / seqlen), options.maxEvalWindows ?? Infinity),
      }
    : null
  return {
    view: result.view,
    records: result.records,
    ggufBytes: result.ggufBytes,
    adapters: result.adapters,
    report: {
      model: model.files.path,
      recipe,
      eval: evalInfo,
      ppl_before: pplBefore,
      ppl_before_reused: options.evalText !== undefined && options.knownPplBefore !== undefined,
      ppl_after: pplAfter,
      ppl_after_step: pplAfterStep,
      ...sizeReport(model, result.tensors, result.view),
      ...parameterReport(model, result.view, result.tensors),
      seconds: (performance.now() - started) / 1000,
      tensors: result.tensors,
      ...(result.training.length ? { training: result.training } : {}),
      ...(kvCache ? { kv_cache: kvCacheReport(result.view.arch, kvCache, seqlen) } : {}),
    },
  }
}
