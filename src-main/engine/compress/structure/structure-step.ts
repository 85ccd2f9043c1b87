// One structural recipe step (drop_layers, prune_heads) inside runRecipe: the method acts on the whole
// model; tensors it zeroed in place are reported like any compressed tensor; renamed or removed tensors
// carry (or lose) their quantization grids. Recovery steps (recover-step.ts) act on the whole model too
// and are reported the same way (runWholeModelStep).

import { readTensorF32 } from '../../formats/read'
import type { ModelView } from '../../model/model-view'
import type { WorkerPool } from '../../pool/worker-pool'
import { relativeError } from '../measures'
import { WhittleError } from '../../errors'
import type { CompressionMethod, StructureContext, StructureResult, TrainingSummary } from '../methods/method'
import type { PipelineOptions, TensorOutcome } from '../pipeline-types'
import { maskThumbnail, zeroFraction } from '../prune/sparsity'
import type { UniformGridRecord } from '../quant/record'
import type { RecipeStep } from '../recipe/recipe'
import type { LoraAdapterSet } from '../../train/lora'
import { selectTargets } from '../recipe/targets'

export interface StructureStepResult {
  view: ModelView
  tensors: TensorOutcome[]
  /** The grids that survive the step, under the tensors' new names. */
  records(before: Map<string, UniformGridRecord>): Map<string, UniformGridRecord>
  /** Recovery steps: how training went. */
  training?: TrainingSummary
  /** LoRA steps: the trained adapters. */
  adapters?: LoraAdapterSet
  /** Old → new tensor names when the step renamed or removed tensors (absent names were removed). */
  renames?: Map<string, string>
}

/** A step that acts on the whole model at once (a structural or a recovery method's hook). */
export type WholeModelRun = (ctx: StructureContext) => Promise<StructureResult>

export async function runStructureStep(
  pool: WorkerPool,
  view: ModelView,
  method: CompressionMethod,
  step: RecipeStep,
  index: number,
  steps: number,
  options: PipelineOptions,
): Promise<StructureStepResult> {
  const restructure = method.restructure
  if (!restructure)
    throw new WhittleError(
      'validation',
      null,
      `recipe step ${index + 1} (${step.method}): a structural method without restructure`,
    )
  return runWholeModelStep(pool, view, method, (ctx) => restructure.call(method, ctx), step, index, steps, options)
}

/** Runs `run` on the whole view and reports its changed tensors like any compressed tensor. */
export async function runWholeModelStep(
  pool: WorkerPool,
  view: ModelView,
  method: CompressionMethod,
  run: WholeModelRun,
  step: RecipeStep,
  index: number,
  steps: number,
  options: PipelineOptions,
): Promise<StructureStepResult> {
  const params = method.parseParams(step.params, `recipe step ${index + 1} (${step.method})`)
  const r = await run({
    view,
    params,
    pool,
    windows: options.windows,
    targets: new Set(selectTargets(view.tensors, step.targets).map((t) => t.name)),
    quantized: options.quantized,
    signal: options.signal,
    onProgress: (f, m) => options.onProgress?.((index + f) / steps, `step ${index + 1}/${steps} ${step.method}: ${m}`),
  })
  const tensors: TensorOutcome[] = []
  for (const c of r.changed) {
    const e = r.view.entry(c.name)
    const after = await readTensorF32(e)
    const info = r.view.tensors.find((t) => t.name === c.name)!
    const [rows, cols] = e.shape
    tensors.push({
      name: c.name,
      step: index,
      method: step.method,
      layer: info.layer ?? -1,
      role: info.role,
      shape: [rows, cols],
      // Masked weights stay dense in their dtype; the saving comes when they are removed.
      bitsPerWeight: c.bitsPerWeight ?? (view.entry(c.name).byteLength * 8) / (rows * cols),
      format: c.format,
      note: r.note,
      relWeightError: relativeError(c.before, after),
      relOutputError: null,
      sparsity: zeroFraction(after),
      // A quantized result's zeros are codes, not pruning: no mask, so the report counts no sparsity.
      ...(c.bitsPerWeight === undefined ? { mask: maskThumbnail(after, rows, cols) } : {}),
    })
  }
  const changed = new Set(r.changed.map((c) => c.name))
  options.onProgress?.((index + 1) / steps, `step ${index + 1}/${steps} ${step.method}: ${r.note}`)
  return {
    view: r.view,
    tensors,
    ...(r.training ? { training: r.training } : {}),
    ...(r.adapters ? { adapters: r.adapters } : {}),
    ...(r.renames ? { renames: r.renames } : {}),
    records(before) {
      const after = new Map<string, UniformGridRecord>()
      for (const [name, rec] of before) {
        if (changed.has(name)) continue
        const renamed = r.renames ? r.renames.get(name) : name
        // A tensor sliced to fewer heads has another shape: its grids no longer describe it.
        if (
          renamed !== undefined &&
          r.view.entry(renamed).shape[0] === rec.rows &&
          r.view.entry(renamed).shape[1] === rec.cols
        )
          after.set(renamed, rec)
      }
      return after
    },
  }
}
