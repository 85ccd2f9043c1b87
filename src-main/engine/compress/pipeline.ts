// Runs a recipe over a model, one step after another, each on the model as the steps before it left it.
// A step runs where its method's kind says:
// - layer-wise (quantize, prune, transform): layer-step.ts, sequentially as in the GPTQ reference, with
//   calibration statistics from calibration/layer-inputs.ts and outcomes from tensor-outcomes.ts;
// - 'structure' (drop layers, prune heads): structure/structure-step.ts, on the whole model, which may
//   come back smaller (later steps plan on it);
// - 'recover' (distillation, fine-tuning): recover-step.ts, where the training engine fits the whole
//   model's weights.
// After each step the view is handed to afterStep (perplexity per step). The types are pipeline-types.ts.

import { WhittleError } from '../errors'
import type { LoadedModel } from '../model/loaded-model'
import { withReplacements, type ModelView } from '../model/model-view'
import type { WorkerPool } from '../pool/worker-pool'
import { runLayerStep } from './layer-step'
import { getMethod } from './methods'
import type { CompressionMethod, TrainingSummary } from './methods/method'
import type { PipelineOptions, PipelineResult, StepTraining, TensorOutcome } from './pipeline-types'
import type { UniformGridRecord } from './quant/record'
import type { GgufKeptBytes } from './gguf-types/kept-bytes'
import type { Recipe } from './recipe/recipe'
import type { LoraAdapterSet } from '../train/lora'
import { nextQuantized } from './quantized-tensors'
import { runRecoverStep } from './recover-step'
import { runStructureStep } from './structure/structure-step'

/** Where one step runs: its outcomes, the view after it, and the grids that survive it. */
interface StepDone {
  view: ModelView
  tensors: TensorOutcome[]
  records: Map<string, UniformGridRecord>
  training?: TrainingSummary
  adapters?: LoraAdapterSet
  renames?: Map<string, string>
}

async function runStep(
  pool: WorkerPool,
  view: ModelView,
  recipe: Recipe,
  index: number,
  method: CompressionMethod,
  records: Map<string, UniformGridRecord>,
  options: PipelineOptions,
  ggufBytes?: GgufKeptBytes,
): Promise<StepDone> {
  const step = recipe.steps[index]
  const steps = recipe.steps.length
  switch (method.kind) {
    case 'structure': {
      const r = await runStructureStep(pool, view, method, step, index, steps, options)
      return { view: r.view, tensors: r.tensors, records: r.records(records), renames: r.renames }
    }
    case 'recover': {
      const r = await runRecoverStep(pool, view, method, step, index, steps, options)
      return {
        view: r.view,
        tensors: r.tensors,
        records: r.records(records),
        training: r.training,
        adapters: r.adapters,
      }
    }
    case 'quantize':
    case 'prune':
    case 'transform': {
      const tensors = await runLayerStep({ pool, view, recipe, index, method, options, records, ggufBytes })
      if (method.runtime) view.runtime = method.runtime
      return { view, tensors, records }
    }
    default:
      throw new WhittleError(
        'validation',
        null,
        `recipe step ${index + 1} (${step.method}): unknown method kind ${String(method.kind)}`,
      )
  }
}

export async function runRecipe(
  pool: WorkerPool,
  model: LoadedModel,
  recipe: Recipe,
  options: PipelineOptions = {},
): Promise<PipelineResult> {
  const started = performance.now()
  let view = withReplacements(model)
  const tensors: TensorOutcome[] = []
  const training: StepTraining[] = []
  let adapters: LoraAdapterSet | null = null
  let records = new Map<string, UniformGridRecord>()
  const ggufBytes: GgufKeptBytes = new Map()
  let quantized = new Map<string, string>()
  for (const [index, step] of recipe.steps.entries()) {
    const method = getMethod(step.method, `step ${index + 1}`)
    const done = await runStep(pool, view, recipe, index, method, records, { ...options, quantized }, ggufBytes)
    quantized = nextQuantized(quantized, method, done.tensors, done.renames)
    view = done.view
    tensors.push(...done.tensors)
    if (done.training) training.push({ step: index, method: step.method, ...done.training })
    if (done.adapters) adapters = done.adapters
    records = done.records
    await options.afterStep?.(index, view)
  }
  return { view, tensors, training, adapters, records, ggufBytes, seconds: (performance.now() - started) / 1000 }
}
