// One layer-wise recipe step (quantizers, pruners, transforms) inside runRecipe, sequentially as in the
// GPTQ reference: layer i is compressed with inputs computed through layers < i that are already
// compressed. Two forward passes share one view of the model: `original` runs block i before it is
// compressed (to capture its inputs' statistics, calibration/layer-inputs.ts), `compressed` runs it
// after (to produce the inputs of block i + 1). Each loads a layer once, so with resident weights
// neither ever sees a stale copy. One layer's weights are in flight at a time, one input group's for a
// method that compresses group by group.

import type { InputGroup, TensorInfo } from '../../contract/api'
import { tensorName } from '../arch'
import { INPUT_GROUP } from '../calibration/capture'
import { captureLayerInputs, type SampledInputStats } from '../calibration/layer-inputs'
import { WhittleError } from '../errors'
import { readTensorF32 } from '../formats/read'
import { createForward } from '../forward'
import type { CausalLM, LinearRole } from '../forward/causal-lm'
import { throwIfCancelled } from '../jobs/cancel'
import { REPLACEMENT_MEMORY_BUDGET, type ModelView } from '../model/model-view'
import { collectGarbage } from '../pool/collect-garbage'
import type { WorkerPool } from '../pool/worker-pool'
import type { CompressionMethod, GroupContext, LinearOutcome, LinearToCompress } from './methods/method'
import { needsCalibration } from './methods/method'
import type { PipelineOptions, TensorOutcome } from './pipeline-types'
import type { UniformGridRecord } from './quant/record'
import type { GgufKeptBytes } from './gguf-types/kept-bytes'
import type { Recipe, RecipeStep } from './recipe/recipe'
import { overrideFor, selectTargets } from './recipe/targets'
import { layerOutcomes, OUTPUT_SAMPLE_ROWS } from './tensor-outcomes'

interface Planned {
  info: TensorInfo
  params: unknown
}

/** The step's targets by layer and input group, each with its params (recipe overrides applied). */
type StepPlan = Map<number, Map<InputGroup, Planned[]>>

function planStep(
  view: ModelView,
  step: RecipeStep,
  method: CompressionMethod,
  recipe: Recipe,
  index: number,
): StepPlan {
  const byLayer: StepPlan = new Map()
  for (const info of selectTargets(view.tensors, step.targets)) {
    const group = INPUT_GROUP[info.role as LinearRole]
    if (!group) continue
    const params = method.parseParams(
      { ...step.params, ...overrideFor(info.name, recipe.overrides) },
      `recipe step ${index + 1} (${step.method}) for ${info.name}`,
    )
    const layer = info.layer!
    if (!byLayer.has(layer)) byLayer.set(layer, new Map())
    const groups = byLayer.get(layer)!
    if (!groups.has(group)) groups.set(group, [])
    groups.get(group)!.push({ info, params })
  }
  return byLayer
}

/** The step being run, and what it writes into. */
export interface LayerStep {
  pool: WorkerPool
  view: ModelView
  recipe: Recipe
  index: number
  method: CompressionMethod
  options: PipelineOptions
  /** The quantization grids kept for packed exports: updated in place as tensors change. */
  records: Map<string, UniformGridRecord>
  /** The GGUF bytes kept for GGUF exports (gguf-types/kept-bytes.ts): updated in place like `records`. */
  ggufBytes?: GgufKeptBytes
  /** A layer's groups are compressed side by side below this many bytes (default CONCURRENT_GROUPS_BYTES). */
  concurrentGroupsBytes?: number
}

/** A group's Linears read as f32 from the view (the method compresses each `weight` in place). */
async function readGroup(
  s: LayerStep,
  layer: number,
  group: InputGroup,
  planned: Planned[],
  input: SampledInputStats | null,
): Promise<GroupContext> {
  const linears: LinearToCompress[] = []
  for (const { info, params } of planned) {
    linears.push({
      name: info.name,
      role: info.role,
      layer,
      rows: info.shape[0],
      cols: info.shape[1],
      weight: await readTensorF32(s.view.entry(info.name)),
      params,
    })
  }
  return { layer, group, linears, input, pool: s.pool }
}

/** The group's weights as the view still holds them (read again before their replacement): the originals. */
async function readOriginals(s: LayerStep, g: GroupContext): Promise<Map<string, Float32Array>> {
  const originals = new Map<string, Float32Array>()
  for (const l of g.linears) originals.set(l.name, await readTensorF32(s.view.entry(l.name)))
  return originals
}

/** The report's outcomes of `groups` once the method has compressed them; their new weights go into the view. */
function finishGroups(
  s: LayerStep,
  layer: number,
  groups: GroupContext[],
  outcomes: LinearOutcome[],
  originals: ReadonlyMap<string, Float32Array>,
  inputs: ReadonlyMap<GroupContext, SampledInputStats | null>,
): Promise<TensorOutcome[]> {
  for (const g of groups) for (const l of g.linears) s.view.replace(l.name, l.weight)
  const step = s.recipe.steps[s.index]
  return layerOutcomes(
    { step: s.index, method: step.method, kind: s.method.kind, layer, groups, outcomes, originals, inputs },
    s.records,
    s.ggufBytes,
  )
}

/** compressLayer for a method that works group by group: one group read, compressed and handed to the view. */
async function compressOneGroup(
  s: LayerStep,
  layer: number,
  group: InputGroup,
  linears: Planned[],
  input: SampledInputStats | null,
): Promise<TensorOutcome[]> {
  const g = await readGroup(s, layer, group, linears, input)
  const outcomes = await s.method.compressGroup(g)
  // No later group reads this Hessian: let it go before the next group's weights come in.
  if (input) input.hessian = null
  // compressGroup cannot touch the view, so it still holds the originals: read them again for the
  // measures rather than keep a copy through the compression, the step with the most memory in use.
  const originals = await readOriginals(s, g)
  return finishGroups(s, layer, [g], outcomes, originals, new Map([[g, input]]))
}

/** f32 weights and f64 Hessians of a layer below which its groups are compressed side by side. */
export const CONCURRENT_GROUPS_BYTES = 32 * 2 ** 20

/** The bytes a layer's groups hold at once while compressed together: their f32 weights (twice: the originals are read again for the measures) and their Hessians. */
function groupBytes(planned: [InputGroup, Planned[]][], stats: Map<InputGroup, SampledInputStats> | null): number {
  let bytes = 0
  for (const [group, linears] of planned) {
    for (const { info } of linears) bytes += 2 * info.shape[0] * info.shape[1] * 4
    bytes += stats?.get(group)?.hessian?.byteLength ?? 0
  }
  return bytes
}

/**
 * Runs the method over one layer's planned Linears and writes the results into the view. A method that
 * works group by group holds one group at a time (issue #15: at 7B scale the whole layer's f32 weights,
 * their originals and four Hessians did not fit 4 GB beside each other): the group's weights are read, the
 * group compressed, its Hessian dropped from `stats`, its originals read again for the measures and its
 * weights handed to the view (spilled to disk over the budget) before the next group is read.
 */
async function compressLayer(
  s: LayerStep,
  plan: StepPlan,
  layer: number,
  stats: Map<InputGroup, SampledInputStats> | null,
): Promise<TensorOutcome[]> {
  const { pool, view, method, records } = s
  const planned = [...(plan.get(layer) ?? [])]
  if (!method.compressLayer) {
    if (planned.length > 1 && groupBytes(planned, stats) <= (s.concurrentGroupsBytes ?? CONCURRENT_GROUPS_BYTES)) {
      // A small layer's groups side by side: the workers stay busy through each group's short, mostly
      // sequential steps (factorization, column loop, measures) and the main thread's work between them.
      // Every group settles before the step goes on, failed or not, so none writes into the view after.
      const settled = await Promise.allSettled(
        planned.map(([group, linears]) => compressOneGroup(s, layer, group, linears, stats?.get(group) ?? null)),
      )
      const failed = settled.find((r) => r.status === 'rejected')
      if (failed) throw failed.reason
      await view.spillIfOver(REPLACEMENT_MEMORY_BUDGET)
      return settled.flatMap((r) => (r.status === 'fulfilled' ? r.value : []))
    }
    const tensors: TensorOutcome[] = []
    for (const [group, linears] of planned) {
      tensors.push(...(await compressOneGroup(s, layer, group, linears, stats?.get(group) ?? null)))
      await view.spillIfOver(REPLACEMENT_MEMORY_BUDGET)
      // The group's originals and Hessian, and its new weights once spilled, are garbage now: free
      // them before the next group's come in (this function no longer holds any of them).
      const weightBytes = linears.reduce((a, { info }) => a + info.shape[0] * info.shape[1] * 4, 0)
      collectGarbage(2 * weightBytes)
    }
    return tensors
  }
  // A whole-layer method (AWQ, SmoothQuant: scales folded across groups) sees every group at once.
  const groups: GroupContext[] = []
  const inputs = new Map<GroupContext, SampledInputStats | null>()
  const originals = new Map<string, Float32Array>()
  for (const [group, linears] of planned) {
    const input = stats?.get(group) ?? null
    // A whole-layer method may rewrite a Linear of another group (AWQ folds into v_proj): keep copies.
    const g = await readGroup(s, layer, group, linears, input)
    groups.push(g)
    inputs.set(g, input)
    for (const l of g.linears) originals.set(l.name, l.weight.slice())
  }
  const outcomes = await method.compressLayer({
    layer,
    groups,
    pool,
    read: async (role) => {
      const name = tensorName(view.arch, layer, role)
      return name ? readTensorF32(view.entry(name)) : null
    },
    write: (role, values) => {
      const name = tensorName(view.arch, layer, role)
      if (!name) throw new WhittleError('not-found', view.files.path, `layer ${layer} has no ${role} tensor to rewrite`)
      view.replace(name, values)
      records.delete(name)
      s.ggufBytes?.delete(name)
    },
  })
  return finishGroups(s, layer, groups, outcomes, originals, inputs)
}

/** Compresses every targeted layer of the view in turn; returns the outcome of each changed Linear. */
export async function runLayerStep(s: LayerStep): Promise<TensorOutcome[]> {
  const { pool, view, recipe, index, method, options } = s
  const step = recipe.steps[index]
  const L = view.arch.layers
  const plan = planStep(view, step, method, recipe, index)
  if (plan.size === 0)
    throw new WhittleError('validation', null, `recipe step ${index + 1} (${step.method}) matches no Linear weight`)
  if (method.prepareStep) {
    const targets = [...plan.values()]
      .flatMap((groups) => [...groups.values()].flat())
      .map(({ info, params }) => ({
        name: info.name,
        rows: info.shape[0],
        cols: info.shape[1],
        params,
        read: () => readTensorF32(view.entry(info.name)),
      }))
    await method.prepareStep(targets, {
      view,
      pool,
      windows: options.windows,
      signal: options.signal,
      onProgress: (_fraction, message) =>
        options.onProgress?.(
          index / recipe.steps.length,
          `step ${index + 1}/${recipe.steps.length} ${step.method}: ${message}`,
        ),
    })
  }
  if (needsCalibration(method, step.params) && !options.windows?.length)
    throw new WhittleError('validation', null, `recipe step ${index + 1} (${step.method}) needs calibration windows`)
  const progress = (layer: number, what: string): void =>
    options.onProgress?.(
      (index + (layer + 1) / L) / recipe.steps.length,
      `step ${index + 1}/${recipe.steps.length} ${step.method}: layer ${layer + 1}/${L} ${what}`,
    )
  const tensors: TensorOutcome[] = []

  if (!needsCalibration(method, step.params)) {
    for (let layer = 0; layer < L; layer++) {
      throwIfCancelled(options.signal)
      tensors.push(...(await compressLayer(s, plan, layer, null)))
      await view.spillIfOver(REPLACEMENT_MEMORY_BUDGET)
      progress(layer, 'done')
    }
    return tensors
  }

  const windows = options.windows!
  const T = windows[0].length
  const original = await createForward(pool, view)
  const compressed = await createForward(pool, view)
  try {
    const hidden = await original.embed(windows)
    const sequential = method.needs.sequential !== false
    // A layer the step does not target records nothing (non-sequential methods still run it to reach the next).
    const capture = (
      forward: CausalLM,
      layer: number,
      input: Float32Array,
      outputNeeded: boolean,
    ): Promise<Map<InputGroup, SampledInputStats>> =>
      captureLayerInputs(pool, forward, layer, input, T, {
        groups: new Set(plan.get(layer)?.keys() ?? []),
        hessian: method.needs.hessian,
        sampleRows: OUTPUT_SAMPLE_ROWS,
        windows: windows.length,
        outputNeeded,
      })
    // Non-sequential methods take every layer's statistics from the original model first.
    let upfront: Map<number, Map<InputGroup, SampledInputStats>> | null = null
    if (!sequential) {
      upfront = new Map()
      const h = hidden.slice()
      for (let layer = 0; layer < L; layer++) {
        throwIfCancelled(options.signal)
        upfront.set(layer, await capture(original, layer, h, true))
        progress(layer, 'calibration')
      }
    }
    // Layers after the last target need no inputs: the compressed pass stops there.
    const lastTarget = Math.max(...plan.keys())
    for (let layer = 0; layer <= lastTarget; layer++) {
      throwIfCancelled(options.signal)
      if (plan.has(layer)) {
        // The capture's block output is not wanted (the compressed pass below makes the next input), so
        // it leaves `hidden` as it was.
        const stats = sequential ? await capture(original, layer, hidden, false) : upfront!.get(layer)!
        progress(layer, 'compressing')
        tensors.push(...(await compressLayer(s, plan, layer, stats)))
      }
      if (layer < lastTarget) await compressed.block(layer, hidden, T)
      await view.spillIfOver(REPLACEMENT_MEMORY_BUDGET)
      progress(layer, 'done')
    }
    if (lastTarget < L - 1) progress(L - 1, 'done')
  } finally {
    original.close()
    compressed.close()
  }
  return tensors
}
