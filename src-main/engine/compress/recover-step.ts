// One recovery step inside runRecipe: the training engine (engine/train) fits the weights of the model as
// the earlier steps left it (distill: knowledge distillation or fine-tuning, masks of pruned entries
// kept). It trains the whole model at once, so it runs between layer-wise steps, never inside one; the
// tensors it changed are reported like a structural step's, and lose their quantization grids (a
// trained weight is no longer on its grid).

import { WhittleError } from '../errors'
import type { ModelView } from '../model/model-view'
import type { WorkerPool } from '../pool/worker-pool'
import type { CompressionMethod } from './methods/method'
import type { PipelineOptions } from './pipeline-types'
import type { RecipeStep } from './recipe/recipe'
import { runWholeModelStep, type StructureStepResult } from './structure/structure-step'

export async function runRecoverStep(
  pool: WorkerPool,
  view: ModelView,
  method: CompressionMethod,
  step: RecipeStep,
  index: number,
  steps: number,
  options: PipelineOptions,
): Promise<StructureStepResult> {
  const recover = method.recover
  if (!recover)
    throw new WhittleError(
      'validation',
      null,
      `recipe step ${index + 1} (${step.method}): a recovery method without recover`,
    )
  return runWholeModelStep(pool, view, method, (ctx) => recover.call(method, ctx), step, index, steps, options)
}
